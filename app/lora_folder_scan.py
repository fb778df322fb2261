"""The Qt side of a LoRA folder read on a thread of its own (``LoraFolderScan``, composed by ``LoraState``): the
scan started and cancelled, what the panel says of it ("Reading LoRAs… 340/2000", then how it ended, for a while),
the files it skipped, and its rows handed to the state at its end. The reading itself is ``app.lora_scan``'s."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

from app.background import start_thread, to_qt_thread
from app.engine_errors import EngineError
from app.lora_scan import (
    FolderScan,
    nothing_added,
    read_folder,
    scan_summary,
    scan_trouble,
    skipped_details,
    skipped_files,
)
from app.observable import Prop
from gpu.paths import resolved as resolve_path

if TYPE_CHECKING:
    from app.lora_state import LoraState

log = logging.getLogger(__name__)

_DONE_SHOWN_MS = 15_000  # how long the words of a folder's reading that ended stay on the panel


class LoraFolderScan(QObject):
    """A folder the user picks, read on a thread of its own for ``LoraState`` (its Qt parent), one at a time."""

    # What the panel says of the folder being read ("Reading LoRAs… 340/2000", then how it ended, for a while),
    # and whether it runs (the panel's Cancel shows then)
    scan_status = Prop("")
    scan_status_changed = Signal(str)
    scanning = Prop(False)
    scanning_changed = Signal(bool)
    # The files the last folder read skipped (``Skipped``: no usable FLUX.1 LoRA), while its words show
    scan_skipped = Prop(())
    scan_skipped_changed = Signal(object)
    notice = Signal(object)  # EngineError: what is wrong with a folder read, said once its reading ends

    def __init__(self, rows: LoraState) -> None:
        super().__init__(rows)
        self._scan: FolderScan | None = None  # the folder being read, while it runs
        self._skipped_from = Path()  # the folder of ``scan_skipped``
        self._done_shown = QTimer(self, singleShot=True, interval=_DONE_SHOWN_MS)
        self._done_shown.timeout.connect(self._forget_scan)
        app = QCoreApplication.instance()
        if app is not None:  # a scan left running at quit would read files for no one
            app.aboutToQuit.connect(self.cancel_scan)

    @property
    def _rows(self) -> LoraState:
        """The rows the scan adds to, its Qt parent: held by Qt, not by a Python attribute, so that no reference
        cycle keeps the state alive after it is let go."""
        return self.parent()  # type: ignore[return-value]

    def scan_folder(self, folder: str | Path) -> bool:
        """Adds the LoRA files of ``folder`` and its subfolders, switched off, as ``LoraState.add_folder`` does, but
        lists the folder and reads each file's header on a thread of its own, the window in use meanwhile:
        ``scan_status`` says how far it is ("Reading LoRAs… 340/2000"), ``cancel_scan`` stops it with nothing
        added, and the rows are added at its end, all at once (one rebuild of the panel). What is wrong with the
        folder (it cannot be read, it holds no LoRA file, subfolders that could not be read) is said through
        ``notice`` at the end. One folder at a time: while one is read, another is refused, and said (False)."""
        folder = Path(folder).expanduser()
        if self._scan is not None:
            self.notice.emit(
                EngineError(
                    "user",
                    f"The LoRAs of {self._scan.folder} are still being read, so {folder} was not added.",
                    "Wait until the LoRA panel says they were added (or cancel that), then add the folder again.",
                )
            )
            return False
        self._scan = scan = FolderScan(folder)
        self._done_shown.stop()
        self.scan_skipped = ()
        self.scanning = True
        self.scan_status = f"Looking for LoRAs in {folder}…"
        # A daemon, as the hash search: a quit does not wait for the header it reads (it writes nothing). It holds
        # the state too, which this scan reaches through Qt only: a state let go of meanwhile lives until the scan
        # ended, then goes on the Qt thread (``start_thread``), as while the scan was its own method.
        start_thread("LoRA folder", self._run_scan, scan, self._rows)
        return True

    def cancel_scan(self) -> None:
        """Stops the folder being read (the user's Cancel, the window closing): it stops after the file it reads,
        and none of its rows are added."""
        scan, self._scan = self._scan, None
        if scan is None:
            return
        scan.cancel.set()
        self.scanning = False
        self._show_done(f"Cancelled: no LoRAs of {scan.folder} were added.")

    def _run_scan(self, scan: FolderScan, rows: LoraState) -> None:
        """On the scan's thread: the folder read (``read_folder``), how far it is and the end handed to the Qt
        thread (``_on_scan_progress``, ``_on_scanned``), unless cancelled. ``rows`` (this scan's parent) is only
        held, for ``scan_folder``'s reason."""
        read_folder(scan, partial(to_qt_thread, self._on_scan_progress, scan))
        if not scan.cancel.is_set():
            to_qt_thread(self._on_scanned, scan)

    def _on_scan_progress(self, scan: FolderScan, done: int, total: int) -> None:
        """How far the scan is, unless it was cancelled (another may run since)."""
        if scan is self._scan:
            self.scan_status = f"Reading LoRAs… {done}/{total}"

    def _on_scanned(self, scan: FolderScan) -> None:
        """On the Qt thread, the scan ended: rows added for its FLUX.1 LoRAs (``LoraState.add_reads``), the other
        files skipped (a ComfyUI or Forge folder holds SDXL and SD 1.5 LoRAs and checkpoints beside them: hundreds
        of rows that said why they could not be used) and counted by kind in its words, which stay until
        "Skipped files…" was looked at; what went wrong said (``notice``)."""
        if scan is not self._scan:  # cancelled meanwhile: the user's word wins over a scan ending at that moment
            return
        self._scan = None
        if not scan.reads:
            self.scanning = False
            self._show_done("")
            self.notice.emit(nothing_added(scan))
            return
        skipped = skipped_files(scan.reads)
        usable = [(path, read) for path, read in scan.reads if not read.header.problem]
        added = self._rows.add_reads(usable)
        self.scanning = False  # with the rows there
        self._skipped_from = resolve_path(scan.folder)
        self.scan_skipped = skipped
        if skipped:
            log.info("LoRA files of %s skipped:\n%s", scan.folder, self.skipped_text())
        self._show_done(scan_summary(scan.folder, len(added), len(usable) - len(added), skipped), keep=bool(skipped))
        if not usable:
            self.notice.emit(nothing_added(scan))
        elif (trouble := scan_trouble(scan)) is not None:
            self.notice.emit(trouble)

    def _show_done(self, text: str, keep: bool = False) -> None:
        """A scan's last words on the panel, for a while (an old scan's result stays no news for good); until
        ``skipped_seen`` where ``keep``."""
        self.scan_status = text
        if text and not keep:
            self._done_shown.start()

    def skipped_text(self) -> str:
        """The files the last folder read skipped, each with why, by kind (``skipped_details``)."""
        return skipped_details(self._skipped_from, self.scan_skipped)

    def skipped_seen(self) -> None:
        """The user looked at the skipped files: the scan's words go after a while, as those of any scan."""
        if self._scan is None:
            self._done_shown.start()

    def _forget_scan(self) -> None:
        self.scan_status = ""
        self.scan_skipped = ()
