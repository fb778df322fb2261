"""LoRA files the user adds ("Add LoRA…"), their headers read on a thread of their own (``LoraAdds``, composed by
``LoraState``): on the window's thread, a file on a slow or hung network share froze the window until it was read.
Each file has its row at once, switched on and saying it is being read; the rows are filled in, or refused, when
the read ends, and a Generate click meanwhile waits for it (``HeldClicks``), as for the copy check."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from app.background import start_thread, to_qt_thread
from app.lora_entry import LoraEntry
from app.lora_header import UNREADABLE, FileRead, LoraHeader, read_file

if TYPE_CHECKING:
    from app.lora_state import LoraState, PickedFiles

log = logging.getLogger(__name__)

READING = "Reading the file…"  # a row's info line while its header is read


class LoraAdds(QObject):
    """The files added to the rows of ``LoraState`` (its Qt parent), read on threads of their own; ``busy`` while
    any is read, ``read`` when the last read ends (the rows filled in by then)."""

    read = Signal()

    def __init__(self, rows: LoraState) -> None:
        super().__init__(rows)
        self._reads = 0  # reads running

    @property
    def busy(self) -> bool:
        """Whether files added are being read (their rows say so, and no job may take them yet)."""
        return self._reads > 0

    def add(self, picked: list[str | Path], ended: Callable[[PickedFiles], None]) -> None:
        """The files ``picked`` added, switched on: a row for each not listed by that name, being read
        (``LoraState.add_reading``); ``ended`` is given what became of them (``LoraState.take_reads``). Each is
        only made absolute here: its folder is resolved (``named_path``) on the thread, with its header (a hung
        share froze the window at that lookup), and its row named by it once read."""
        rows = self.parent()
        paths = [Path(path).expanduser().absolute() for path in picked]
        reading = rows.add_reading(paths)  # type: ignore[attr-defined]
        self._reads += 1
        # A daemon, as the folder scan: a quit does not wait for the header it reads (it writes nothing); it holds
        # the state too, let go of on the Qt thread (``start_thread``).
        start_thread("LoRA add", self._run, paths, reading, ended, rows)

    def _run(self, paths: list[Path], reading: list[LoraEntry | None], ended: Callable[[PickedFiles], None],
             rows: LoraState) -> None:  # fmt: skip
        """On the thread: each file read (``_read``), handed to the Qt thread (``_ended``). ``rows`` is only held."""
        reads = [_read(path) for path in paths]
        to_qt_thread(self._ended, reads, reading, ended)

    def _ended(self, reads: list[FileRead], reading: list[LoraEntry | None],
               ended: Callable[[PickedFiles], None]) -> None:  # fmt: skip
        """On the Qt thread: the rows filled in or refused (``LoraState.take_reads``), said (``ended``); ``read``
        once no read runs."""
        self._reads -= 1
        ended(self.parent().take_reads(list(zip(reads, reading, strict=True))))  # type: ignore[attr-defined]
        if not self.busy:
            self.read.emit()


def _read(path: Path) -> FileRead:
    """``read_file``; an error it did not expect taken as the file unreadable, said why (its row then goes)."""
    try:
        return read_file(path)
    except Exception as err:  # noqa: BLE001 - the row would say "Reading the file…" for good
        log.exception("The LoRA file %s could not be read", path)
        problem = (f"it could not be read: an error Nibble Studio did not expect, {type(err).__name__}; the log file "
                   "has the details")  # fmt: skip
        return FileRead(None, LoraHeader("", problem, problem, kind=UNREADABLE), path, path)
