"""The quantize wizard's shared small widgets: its message labels (problems red, warnings amber) and a
combo box set without reporting it back."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLabel

from app.plain_text import plain_label
from app.theme import CAUTION_COLOR, PROBLEM_COLOR


def message_label(color: str) -> QLabel:
    """An empty word-wrapped label of ``color`` whose text can be selected and copied, shown as written (it quotes
    paths and the engine's words: ``app.plain_text``)."""
    label = plain_label()
    label.setWordWrap(True)
    label.setStyleSheet(f"color: {color}")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # a path or tensor name to copy
    return label


def problem_label() -> QLabel:
    """A ``message_label`` in red: what stops the user going on."""
    return message_label(PROBLEM_COLOR)


def warning_label() -> QLabel:
    """Amber, not red: something the user may want to change, which does not stop them going on."""
    return message_label(CAUTION_COLOR)


def select_quietly(combo: QComboBox, value: str) -> None:
    """Shows ``value`` in ``combo`` without reporting it back: the state it came from has it already."""
    combo.blockSignals(True)
    combo.setCurrentIndex(max(0, combo.findData(value)))
    combo.blockSignals(False)
