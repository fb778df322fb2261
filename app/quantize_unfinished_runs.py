"""The unfinished quantize runs in the models folder as state (``UnfinishedRuns``): their count for the wizard's
calibration page, their listing for the Unfinished runs dialog, and the deletion of one, each on a thread (each
folder is walked; a deletion frees GiBs). What is listed and deleted is ``app.quantize_outputs``'s."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Signal

from app.background import Lookup, Lookups
from app.observable import Prop
from app.quantize_outputs import Deletion, delete_unfinished_run, unfinished_runs, unfinished_summary

if TYPE_CHECKING:
    from gpu.quantizer import QuantizeConfig


class UnfinishedRuns(QObject):
    """The unfinished runs of one wizard's models folder: counted (``count``: ``summary``, ``openable``), listed
    (``list_runs``: the dialog takes its own listing's end from ``lookups.ended``) and deleted (``delete``:
    ``deleting`` while it works, then ``deleted``)."""

    # The calibration page's words on them: how many, or what is under way (looking, deleting one)
    summary = Prop("")
    summary_changed = Signal(str)
    # Whether the page offers their list (Unfinished runs…): not while they are counted, nor when there are none
    openable = Prop(True)
    openable_changed = Signal(bool)
    # The deletion under way (``Deletion``), or None: Quantize waits for it (a run started meanwhile could take the
    # name of the folder being deleted, whose lock the deletion holds)
    deleting = Prop(None)
    deleting_changed = Signal(object)
    # A deletion ended: its error (None when it freed the folder) and the run it deleted
    deleted = Signal(object, object)

    def __init__(self, folder: Path, settings: Callable[[], tuple[str, QuantizeConfig]],
                 parent: QObject | None = None) -> None:  # fmt: skip
        """``folder``: the models folder; ``settings``: the source and settings chosen now, which a listing with
        them reads to say whether they resume each run."""
        super().__init__(parent)
        self._folder = folder
        self._settings = settings
        self.lookups = Lookups("Quantize", self)
        self.lookups.ended.connect(self._on_lookup_ended)
        self._counting: Lookup | None = None  # the count being read, while it is the one asked for last

    @property
    def folder(self) -> Path:
        """The models folder whose unfinished runs these are."""
        return self._folder

    def list_runs(self, with_settings: bool = False) -> Lookup:
        """Lists the unfinished runs on a thread (``lookups``; its result: the runs); ``with_settings``: each says
        whether the settings chosen now resume it (which reads the source's files)."""
        folder = self._folder
        # The source and settings as they are now, read on this thread (none: each run's resumes is None).
        settings = self._settings() if with_settings else ()
        return self.lookups.start("listing the unfinished runs", lambda: unfinished_runs(folder, *settings))

    def count(self) -> None:
        """Counts the unfinished runs anew, on a thread (each folder is walked): ``summary`` says it once read."""
        self._counting = self.list_runs()
        if self.deleting is None:  # else the summary says the deletion, and they are counted again after it
            self.summary = "Looking for unfinished runs in the models folder…"
        self.openable = False

    def delete(self, run: Any) -> None:
        """Deletes the unfinished ``run``'s parts folder on a thread (GiBs): ``deleting`` meanwhile, then
        ``deleted``."""
        self.deleting = Deletion(run, self.lookups.start(f"deleting {run.parts}", lambda: delete_unfinished_run(run)))
        self.summary = f"Deleting the unfinished run {run.output.name}…"

    def _on_lookup_ended(self, lookup: Lookup) -> None:
        """A lookup ended: taken when it is the count or the deletion asked for last (a listing is the dialog's)."""
        if lookup is self._counting:
            self._counting = None
            if self.deleting is None:
                runs = lookup.result or []
                self.summary = unfinished_summary(runs, lookup.error)
                self.openable = bool(runs)
        elif self.deleting is not None and lookup is self.deleting.lookup:
            run = self.deleting.run
            self.deleting = None
            self.deleted.emit(lookup.error, run)
