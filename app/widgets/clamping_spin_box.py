"""Number fields in which a number typed past a limit is brought to that limit once typing ends."""

from __future__ import annotations

import re

from PySide6.QtCore import Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import QSpinBox

_WHOLE = re.compile(r"[+-]?[0-9]+")


class ClampsTyped:
    """A mix-in for a spin box (QSpinBox, QDoubleSpinBox) that takes a number typed past its limits, and makes it
    the limit when editing ends (Return, the focus leaving: Qt's ``fixup``), which the field then shows;
    ``clamped`` says so, with the number as typed and the limit as shown. Qt refused the key that took the number
    past the limit and kept the digits before it: "1536" typed into a rank field of at most 1024 stood as 153, "4096"
    into Width (at most 2048) as 409, the value a job then used, nothing saying so. Past for good only: above a
    maximum of 0 or more (more digits only make it larger), below a minimum of 0 or less; "30" in a field of 64 or
    more may still become 300, and stays Qt's (the value before it, once left). Put it first among the bases:
    ``class X(ClampsTyped, QSpinBox)``."""

    clamped = Signal(str, str)  # the number as typed, the limit as the field shows it

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        state, text, pos = super().validate(text, pos)  # type: ignore[misc]
        if state == QValidator.State.Invalid and self._limit_past(text) is not None:
            return QValidator.State.Intermediate, text, pos  # still being typed: brought to the limit by ``fixup``
        return state, text, pos

    def fixup(self, text: str) -> str:
        limit = self._limit_past(text)
        if limit is None:
            return super().fixup(text)  # type: ignore[misc]
        shown = self.textFromValue(limit)  # type: ignore[attr-defined]
        self.clamped.emit(self._bare(text), shown)
        return shown

    def typed_number(self, bare: str) -> float | None:
        """The number ``bare`` (the field's text without prefix, suffix and white space) stands for, None for no
        whole number. A float: thousands of pasted digits make no ``int`` (Python refuses to parse them), only inf."""
        return float(bare) if _WHOLE.fullmatch(bare) else None

    def _bare(self, text: str) -> str:
        return text.removeprefix(self.prefix()).removesuffix(self.suffix()).strip()  # type: ignore[attr-defined]

    def _limit_past(self, text: str) -> float | None:
        """The limit ``text`` (the field's, its prefix and suffix included) is past for good, None when it is not."""
        number = self.typed_number(self._bare(text))
        if number is None:
            return None
        low, high = self.minimum(), self.maximum()  # type: ignore[attr-defined]
        if number > high >= 0:
            return high
        if number < low <= 0:
            return low
        return None


class ClampingSpinBox(ClampsTyped, QSpinBox):
    """A whole-number field in which a number typed past its limits is brought to them once typing ends
    (``ClampsTyped``)."""
