"""Keyboard shortcuts that act only while the focus is inside one widget (shared by the gallery and history)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QWidget

Key = QKeySequence | QKeySequence.StandardKey


def local_shortcuts(widget: QWidget, keys: Iterable[tuple[Key, Callable[[], object]]]) -> list[QShortcut]:
    """A shortcut on ``widget`` for each (key, slot) of ``keys``, in order, that runs the slot only while the focus
    is in ``widget`` or one of its children: window-wide, one key bound by two panels ran neither (Qt runs no
    shortcut whose key is ambiguous in a window). Returns the shortcuts (``widget`` owns them)."""
    made = []
    for key, slot in keys:
        # ``context=`` as a keyword, without the slot: PySide6 drops a context given with a slot.
        shortcut = QShortcut(key, widget, context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        shortcut.activated.connect(slot)
        made.append(shortcut)
    return made
