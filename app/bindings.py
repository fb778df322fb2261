"""Two-way bindings between ``Prop`` state and standard widgets, so panels hold no logic of their own."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QFocusEvent, QTextCursor
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


# The focus gone from a field for a moment, the user still on it: a menu opened (the menu bar's Generate), a popup
# (the field's own context menu), another window (a dialog, another program to copy a value from).
_MOMENTARY_FOCUS_OUT = (Qt.FocusReason.PopupFocusReason, Qt.FocusReason.MenuBarFocusReason,
                        Qt.FocusReason.ActiveWindowFocusReason)  # fmt: skip


class _KeepsTypedText(QObject):
    """Keeps the text of a number field that is no value it takes on screen while the focus is away for a moment
    (``_MOMENTARY_FOCUS_OUT``). The field put back the value it held as soon as its focus went, and Generate > Generate
    from the menu bar then ran that value (128) rather than refusing the "30" typed in Width; the refusal's dialog
    put it back too, and the text it named was gone once the dialog was closed. Left for another field (Tab, a
    click), a field still shows the value it holds again, as every spin box does: what it shows is what runs."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (event.type() != QEvent.Type.FocusOut or not isinstance(event, QFocusEvent)
                or event.reason() not in _MOMENTARY_FOCUS_OUT or watched.hasAcceptableInput()):  # fmt: skip
            return False
        # The line edit is told the focus went (its cursor stops blinking); the field's own handler, which puts the
        # value back, is skipped.
        if isinstance(watched, QAbstractSpinBox):
            watched.lineEdit().event(event)
            watched.update()
        else:
            QLineEdit.focusOutEvent(watched, event)
        return True


def bind_typed(state: Any, name: str, widget: QAbstractSpinBox | QLineEdit) -> None:
    """Has ``state.watch_typed`` read what the number field ``widget`` shows while it is no value the field takes
    (half-typed, out of range, empty; a spin box's text without its suffix). ``bind`` carries values only: a spin
    box keeps "30" typed in a field of 64 to 2048 on screen, its value the last one it took, and a Generate
    pressed then ran that one. That text stays on screen while a menu or another window has the focus for a moment
    (``_KeepsTypedText``), so Generate from the menu bar refuses it too."""
    text = widget.cleanText if isinstance(widget, QAbstractSpinBox) else widget.text
    state.watch_typed(name, lambda: None if widget.hasAcceptableInput() else text())
    widget.installEventFilter(_KeepsTypedText(widget))
