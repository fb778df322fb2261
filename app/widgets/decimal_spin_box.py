"""A decimal field that takes either decimal mark, whatever its locale."""

from __future__ import annotations

import re

from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QDoubleSpinBox

from app.widgets.clamping_spin_box import ClampsTyped

_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")


class DecimalSpinBox(ClampsTyped, QDoubleSpinBox):
    """A decimal field that takes either "." or "," as the decimal mark, whatever its locale; it shows its locale's.
    The other mark was taken as a group separator and dropped without a word: "3,5" ran at 35 in the C locale ("0,5"
    at 5 in en_US), and "3.5" copied from a model card ran at 35 in a German one; a wizard's GPU budget of "3,5" GiB
    was 35 GiB. The locale's group separator before exactly three digits stays one, as in any field of a locale
    (en_US "1,000" and de_DE "1.000" are 1000 GiB of RAM, not 1): a field of two decimals cannot mean those three
    digits as decimals. A number typed past its limits is brought to them once typing ends (``ClampsTyped``): "500"
    GiB in a budget of at most 192 stood as 50."""

    def _marked(self, text: str) -> str:
        """``text`` with either mark as the locale's decimal one, and the locale's group separators before
        exactly three digits dropped."""
        locale = self.locale()
        point, group = locale.decimalPoint(), locale.groupSeparator()
        if group in ",." and self.decimals() < 3:
            text = re.sub(re.escape(group) + r"(?=\d{3}(?!\d))", "", text)
        return text.replace(",", point).replace(".", point)

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        state, _text, _pos = super().validate(self._marked(text), pos)
        return state, text, pos  # the user's own text stays as typed

    def fixup(self, text: str) -> str:
        # Qt's drops the locale's group separator wherever it stands: a C-locale "0,5" below the field's minimum
        # became 5 instead of the value before it, as "0.5" does.
        return super().fixup(self._marked(text))

    def typed_number(self, bare: str) -> float | None:
        plain = self._marked(bare).replace(self.locale().decimalPoint(), ".")
        return float(plain) if _DECIMAL.fullmatch(plain) else None

    def valueFromText(self, text: str) -> float:
        return super().valueFromText(self._marked(text))
