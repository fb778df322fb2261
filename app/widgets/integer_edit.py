"""A line edit for one integer of any size in ``[minimum, maximum]`` (a QSpinBox stops at 2^31-1).

It mirrors QSpinBox's ``value()`` / ``setValue()`` / ``valueChanged`` so ``app.bindings`` binds both alike.
"""

from __future__ import annotations

import re

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QFocusEvent, QValidator
from PySide6.QtWidgets import QLineEdit, QWidget

_INTEGER = re.compile(r"-?[0-9]+")


class IntegerValidator(QValidator):
    """Accepts decimal integers in range. Python ints, not QIntValidator: that one is 32-bit. White space around
    the number is dropped, as a spin box drops it: a seed copied from a web page or a line of text comes with a
    space or a line end, and the paste was refused without a word."""

    def __init__(self, minimum: int, maximum: int, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.minimum, self.maximum = minimum, maximum

    def value_of(self, text: str) -> int | None:
        """The integer ``text`` stands for when it is complete and in range, else None."""
        text = text.strip()
        if not _INTEGER.fullmatch(text):
            return None
        value = int(text)
        return value if self.minimum <= value <= self.maximum else None

    def validate(self, text: str, pos: int) -> tuple[QValidator.State, str, int]:
        lead = len(text) - len(text.lstrip())
        text = text.strip()  # the field then shows the number alone, the cursor where it was in it
        pos = min(max(pos - lead, 0), len(text))
        if text in ("", "-" if self.minimum < 0 else ""):
            return QValidator.State.Intermediate, text, pos  # the user is still typing
        if not _INTEGER.fullmatch(text):
            return QValidator.State.Invalid, text, pos
        value = int(text)
        if self.minimum <= value <= self.maximum:
            return QValidator.State.Acceptable, text, pos
        # More digits only move a number away from zero: too big (or too small) stays so, and is refused.
        if value > self.maximum >= 0 or value < self.minimum <= 0:
            return QValidator.State.Invalid, text, pos
        return QValidator.State.Intermediate, text, pos


class IntegerEdit(QLineEdit):
    # ``object``, not ``int``: a Qt int signal argument is 32-bit and would overflow on a 64-bit seed.
    valueChanged = Signal(object)

    def __init__(self, minimum: int = 0, maximum: int = 2**63 - 1, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._validator = IntegerValidator(minimum, maximum, self)
        self.setValidator(self._validator)
        self._value = minimum
        self.setText(str(minimum))
        self.textChanged.connect(self._text_changed)

    def minimum(self) -> int:
        return self._validator.minimum

    def maximum(self) -> int:
        return self._validator.maximum

    def value(self) -> int:
        """The last complete value typed or set (the text may be half-typed meanwhile)."""
        return self._value

    def value_in(self, text: str) -> int | None:
        """The value ``text`` stands for, None while it is no whole number in range (empty, "-", half-typed)."""
        return self._validator.value_of(text)

    def setValue(self, value: int) -> None:
        value = min(max(int(value), self.minimum()), self.maximum())
        if self._validator.value_of(self.text()) != value:  # "007" already shows 7: keep the user's text
            self.setText(str(value))
        self._set(value)

    def _text_changed(self, text: str) -> None:
        value = self._validator.value_of(text)
        if value is not None:
            self._set(value)

    def _set(self, value: int) -> None:
        if value != self._value:
            self._value = value
            self.valueChanged.emit(value)

    def focusOutEvent(self, event: QFocusEvent) -> None:
        # Leaving the field half-typed (empty, "-") shows the value still in use again, like a spin box.
        if self._validator.value_of(self.text()) is None:
            self.setText(str(self._value))
        super().focusOutEvent(event)
