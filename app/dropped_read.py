"""Images dropped on the prompt panel (or opened with the app) read on a thread of their own: their metadata was read
on the window's thread, and a picture dropped from a network share that hangs (or a USB drive that sleeps) froze the
window till it answered. The status bar says "Reading <file>…" meanwhile; a second drop before the first was read
wins (the first's end is dropped); a Generate click meanwhile is refused with words (``refusal``), as its job
would have run with the settings of before the drop, or half of them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.background import Lookup, Lookups
from app.engine_errors import EngineError
from app.settings_restore import SettingsRestore, read_dropped
from gpu.generation.png_metadata import ImageSettings

# What a file whose read broke off is said to hold (as ``inspect_image_settings`` says of a reader's bug)
_NOT_READ = "its settings could not be read (the log file has the details)"
# How long the window's close waits for dropped files still being read (``DroppedRead.finish``): a local file is read
# at once, a drive that sleeps wakes in seconds; a share that does not answer is given up
QUIT_WAIT_S = 10.0

log = logging.getLogger(__name__)


class DroppedRead(QObject):
    """Reads dropped files off the window's thread, then has ``restore`` fill the form from them; ``tell`` puts a
    line in the status bar. ``read`` hands over what was read from the file restored (None: none was) once the form
    is filled and what was not restored as saved said."""

    read = Signal(object)  # ImageSettings | None, on the Qt thread

    def __init__(self, restore: SettingsRestore, tell: Callable[[str], None], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._restore = restore
        self._tell = tell
        self._lookups = Lookups("Dropped files", self)
        self._lookups.ended.connect(self._ended)
        self._lookup: Lookup | None = None  # the read under way, the last drop's
        self._dropped: tuple[list[Path], list[str] | None] = ([], None)  # (its files, its web addresses)

    @property
    def reading(self) -> bool:
        """Whether dropped files are being read (the form is to be filled from them)."""
        return self._lookup is not None

    def start(self, paths: list[Path], web_addresses: list[str] | None = None) -> None:
        """The files ``paths`` (and ``web_addresses``, a web browser's drag) dropped: read on a thread, said
        meanwhile; a read still under way for an earlier drop is dropped (this drop wins)."""
        self._dropped = (list(paths), web_addresses)
        if not paths:  # a web address alone: nothing to read, said at once
            self._lookup = None
            self.read.emit(self._restore.restore_from_files([], web_addresses, []))
            return
        self._tell(f"Reading {paths[0]}…")
        self._lookup = self._lookups.start(f"reading {paths[0]}", lambda: read_dropped(paths))

    def refusal(self) -> EngineError:
        """Why Generate queues no job while the dropped files are read."""
        return EngineError("user", f"Not generated: the settings of {self._dropped[0][0].name} are still being read, "
                                   "and the job would have run with the settings from before the drop.",
                           "Click Generate again once they are restored (the status bar says so).")  # fmt: skip

    def finish(self) -> None:
        """The window closes: the files dropped last (or handed on by a second start as it closes), while still
        read, waited for (``QUIT_WAIT_S`` at most) and the form filled from them, for the settings saved next. Left
        to the thread, the read's end came after the save, and the process ended before it was delivered: the drop
        lost. Files not read in time are logged, and their read's end, delivered later, fills nothing."""
        lookup = self._lookup
        if lookup is None:
            return
        if not lookup.wait(QUIT_WAIT_S):
            log.warning("the dropped %s were still being read after %.0f s at the close: their settings are not "
                        "restored", [str(p) for p in self._dropped[0]], QUIT_WAIT_S)  # fmt: skip
            self._lookup = None
            return
        self._ended(lookup)

    def _ended(self, lookup: Lookup) -> None:
        """A read ended: the form filled from it, unless another drop came since (that one's read wins), or the
        close took it (``finish``)."""
        if lookup is not self._lookup:
            return
        self._lookup = None
        paths, web_addresses = self._dropped
        found_in = lookup.result if lookup.error is None else [ImageSettings(None, [_NOT_READ]) for _ in paths]
        found = self._restore.restore_from_files(paths, web_addresses, found_in)
        if found is None:
            self._tell("")  # "Reading …" no longer true; the dialog says why nothing was restored
        self.read.emit(found)
