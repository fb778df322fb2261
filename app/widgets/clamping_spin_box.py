"""A whole-number field in which a number typed past its maximum is brought down to it once typing ends."""

from __future__ import annotations

from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QSpinBox


class ClampingSpinBox(QSpinBox):
    """A QSpinBox that takes a number typed past its maximum, and makes it the maximum when editing ends (Return,
    the focus leaving: Qt's ``fixup``), which the field then shows. QSpinBox refused the key that took the number
    past the maximum and kept the digits before it: "1536" typed into a rank field of at most 1024 stood as 153,
    "200" into one of at most 128 as 20, the value a run then used, nothing saying so."""

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        state, text, pos = super().validate(text, pos)
        if state == QValidator.State.Invalid and self._past_maximum(text):
            return QValidator.State.Intermediate, text, pos  # still being typed: brought down by ``fixup``
        return state, text, pos

    def fixup(self, text: str) -> str:
        return self.textFromValue(self.maximum()) if self._past_maximum(text) else super().fixup(text)

    def _past_maximum(self, text: str) -> bool:
        """Whether ``text`` (the field's, its prefix and suffix included) is a whole number above the maximum."""
        digits = text.removeprefix(self.prefix()).removesuffix(self.suffix()).strip()
        if not (digits.isascii() and digits.isdigit()):
            return False
        # more digits than the maximum has are a larger number (never given to ``int``: a pasted run of thousands)
        return len(digits.lstrip("0")) > len(str(self.maximum())) or int(digits) > self.maximum()
