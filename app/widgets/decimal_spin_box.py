"""A decimal field that takes either decimal mark, whatever its locale."""

from __future__ import annotations

from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QDoubleSpinBox


class DecimalSpinBox(QDoubleSpinBox):
    """A decimal field that takes either "." or "," as the decimal mark, whatever its locale; it shows its locale's.
    The other mark was taken as a group separator and dropped without a word: "3,5" ran at 35 in the C locale ("0,5"
    at 5 in en_US), and "3.5" copied from a model card ran at 35 in a German one; a wizard's GPU budget of "3,5" GiB
    was 35 GiB. For fields of small numbers (guidance up to 50, a LoRA strength, a budget in GiB) and no group
    separators shown, where neither mark can be a group separator."""

    def _marked(self, text: str) -> str:
        """``text`` with either mark as the locale's decimal one."""
        point = self.locale().decimalPoint()
        return text.replace(",", point).replace(".", point)

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        state, _text, _pos = super().validate(self._marked(text), pos)
        return state, text, pos  # the user's own text stays as typed

    def valueFromText(self, text: str) -> float:
        return super().valueFromText(self._marked(text))
