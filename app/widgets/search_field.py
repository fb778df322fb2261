"""A search field that searches when typing pauses, not at every keystroke (shared by the gallery and history)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLineEdit

SEARCH_DELAY_MS = 150  # a pause in typing: longer than between keystrokes, too short to be noticed


def connect_search(edit: QLineEdit, apply: Callable[[str], None]) -> QTimer:
    """Runs ``apply(text)`` once typing in ``edit`` pauses for ``SEARCH_DELAY_MS``, or at once on Enter or when
    it is emptied: each keystroke re-read the database and rebuilt the list (of 10,000 images in the gallery),
    a word typed did that once a letter. Returns the timer of a pending search (``stop()`` drops it)."""
    timer = QTimer(edit, singleShot=True, interval=SEARCH_DELAY_MS)

    def run() -> None:
        timer.stop()
        apply(edit.text())

    timer.timeout.connect(run)
    edit.textChanged.connect(lambda text: timer.start() if text else run())
    edit.returnPressed.connect(run)
    return timer
