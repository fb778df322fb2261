"""Two-way bindings between ``Prop`` state and standard widgets, so panels hold no logic of their own."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QDoubleSpinBox,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QSpinBox,
)

log = logging.getLogger(__name__)


def _signal(state: Any, name: str) -> Any:
    return getattr(state, f"{name}_changed")


def _is_value_widget(widget: Any) -> bool:
    """Spin boxes and anything shaped like them (``value()``, ``setValue()``, ``valueChanged``), such as
    ``IntegerEdit``: checked before QLineEdit, which that one also is."""
    if isinstance(widget, (QSpinBox, QDoubleSpinBox)):
        return True
    return all(hasattr(widget, attr) for attr in ("value", "setValue", "valueChanged"))


def _replace_text(widget: QPlainTextEdit, text: str) -> None:
    """``widget``'s whole text replaced as one edit, so Ctrl+Z brings back what was there (a prompt from the
    history, a dropped image's settings); ``setPlainText`` cleared the undo stack and the user's typing was lost.
    The cursor ends after the new text, where typing goes on."""
    cursor = widget.textCursor()
    cursor.beginEditBlock()
    cursor.select(QTextCursor.SelectionType.Document)
    cursor.insertText(text)
    cursor.endEditBlock()
    widget.setTextCursor(cursor)


def bind(state: Any, name: str, widget: Any) -> None:
    value = getattr(state, name)
    if _is_value_widget(widget):
        widget.setValue(value)
        shown: list[Any] = []  # the state's value while it is being shown (set in code: restored, a default)

        def to_widget(v: Any) -> None:
            if widget.value() == v:  # the user's own edit coming back: setValue rewrote the text being typed
                return  # ("4" became "4.00" with the cursor after the 4, and "4.75" could not be typed)
            shown.append(v)
            try:
                widget.setValue(v)
            finally:
                shown.pop()
            if widget.value() != v:  # the job would use v while the form shows another: a parser was bypassed
                log.warning("%s = %r is shown as %r (outside what the widget holds)", name, v, widget.value())

        # Only the user's edits go to the state: the widget's answer to a value set in code is that value as the
        # widget rounds it (a spin box's decimals), and written back it replaced the value restored from an image
        # without a word. The state's own parsers (``app.generation_state``) fit values to what the widgets show.
        widget.valueChanged.connect(lambda v: shown or setattr(state, name, v))
    elif isinstance(widget, QPlainTextEdit):
        widget.setPlainText(value)

        def to_widget(v: str) -> None:
            if widget.toPlainText() != v:  # an edit (one more undo step): only when the text really differs
                _replace_text(widget, v)

        widget.textChanged.connect(lambda: setattr(state, name, widget.toPlainText()))
    elif isinstance(widget, QLineEdit):
        widget.setText(str(value))

        def to_widget(v: Any) -> None:
            if widget.text() != str(v):
                widget.setText(str(v))

        widget.textChanged.connect(lambda text: setattr(state, name, text))
    elif isinstance(widget, QLabel):  # one way: state -> label
        widget.setText(str(value))

        def to_widget(v: Any) -> None:
            widget.setText(str(v))

    elif isinstance(widget, QCheckBox):
        widget.setChecked(bool(value))
        to_widget = widget.setChecked
        widget.toggled.connect(lambda v: setattr(state, name, v))
    else:
        raise TypeError(f"cannot bind {type(widget).__name__}")
    _signal(state, name).connect(to_widget)


def bind_enabled(state: Any, name: str, widget: Any) -> None:
    """One way, state -> widget: ``widget`` is enabled while the property ``name`` is true (an action with
    nothing to act on is greyed rather than answering "nothing to do" once clicked)."""
    widget.setEnabled(bool(getattr(state, name)))
    _signal(state, name).connect(lambda v: widget.setEnabled(bool(v)))


def bind_typed(state: Any, name: str, widget: QAbstractSpinBox | QLineEdit) -> None:
    """Has ``state.watch_typed`` read what the number field ``widget`` shows while it is no value the field takes
    (half-typed, out of range, empty; a spin box's text without its suffix). ``bind`` carries values only: a spin
    box keeps "30" typed in a field of 64 to 2048 on screen, its value the last one it took, and a Generate
    pressed then ran that one."""
    text = widget.cleanText if isinstance(widget, QAbstractSpinBox) else widget.text
    state.watch_typed(name, lambda: None if widget.hasAcceptableInput() else text())
