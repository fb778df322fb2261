"""A lookup asked for again and again (the gallery's pane reading the image selected last) run one at a time: while
one runs, only the latest ask waits, and only the end of the latest ask is handed on. A thread each, as ``Lookups``
started them, piled up on a drive that hangs: two for each arrow key press, each left waiting for the drive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.background import Lookup, Lookups


class LatestLookup(QObject):
    """Runs ``ask``'s work on a thread, one at a time; ``ended`` with the lookup of the latest ask once it ends."""

    ended = Signal(object)  # Lookup, on the Qt thread: the latest ask's

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        """``name``: whose lookups, for the threads' names (``Lookups``)."""
        super().__init__(parent)
        self._lookups = Lookups(name, self)
        self._lookups.ended.connect(self._ended)
        self._running: tuple[object, Lookup] | None = None  # (its key, the lookup on its thread)
        self._waiting: tuple[object, str, Callable[[], Any]] | None = None  # the latest ask, while one runs
        self._wanted: Lookup | None = None  # the running lookup, while it is the latest ask's

    def ask(self, key: object, what: str, work: Callable[[], Any]) -> None:
        """``work`` run on a thread (``what``: in words, for the thread's name) once the lookup running ends, or at
        once; an ask waiting is dropped. ``key`` says what it reads: asked again while the lookup of an equal key
        runs (a key press tells of a new selection and of a new current image), that one is waited for."""
        if self._running is None:
            self._start(key, what, work)
        elif self._running[0] == key:
            self._waiting, self._wanted = None, self._running[1]
        else:
            self._waiting, self._wanted = (key, what, work), None

    def cancel(self) -> None:
        """Nothing is handed on of the asks so far (the one running ends on its thread, unheard)."""
        self._waiting = self._wanted = None

    @property
    def busy(self) -> bool:
        """Whether an ask is still to be handed on."""
        return self._wanted is not None or self._waiting is not None

    def _start(self, key: object, what: str, work: Callable[[], Any]) -> None:
        self._wanted = self._lookups.start(what, work)
        self._running = (key, self._wanted)

    def _ended(self, lookup: Lookup) -> None:
        """On the Qt thread: the lookup running ended; handed on if still the latest ask's, else the one waiting
        started."""
        self._running = None
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            self._start(*waiting)
        elif lookup is self._wanted:
            self._wanted = None
            self.ended.emit(lookup)
