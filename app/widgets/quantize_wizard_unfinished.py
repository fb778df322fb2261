"""The quantize wizard's unfinished runs: the calibration page's count of them, their listing for the Unfinished runs
dialog, and the deletion of one, each on a thread (``QuantizeWizard.lookups``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QMessageBox

from app.background import Lookup, Lookups
from app.controller import AppController
from app.engine_errors import classify
from app.quantize_outputs import Deletion, delete_unfinished_run, not_deleted, unfinished_runs, unfinished_summary
from app.quantize_source import QuantizeSource
from app.widgets.error_dialog import show_error
from app.widgets.quantize_calibration_page import CalibrationPage
from app.widgets.quantize_unfinished_runs_dialog import UnfinishedRunsDialog

if TYPE_CHECKING:
    from gpu.quantizer import QuantizeConfig

log = logging.getLogger(__name__)


class UnfinishedRuns:
    """``QuantizeWizard``'s part that lists and deletes the unfinished runs in the models folder (a mixin: the
    wizard's own attributes below are set by its ``__init__``)."""

    controller: AppController
    lookups: Lookups
    source_state: QuantizeSource
    calibration_page: CalibrationPage
    deleting: Deletion | None  # an unfinished run being deleted: Quantize waits for it
    _summary: Lookup | None  # the calibration page's count of unfinished runs, being read
    unfinished_dialog: UnfinishedRunsDialog | None
    error_dialog: QMessageBox | None

    if TYPE_CHECKING:
        def config(self) -> QuantizeConfig: ...
        def models_folder(self) -> Path: ...
        def isVisible(self) -> bool: ...

    def list_unfinished_runs(self, with_settings: bool = False) -> Lookup:
        """Lists the unfinished runs in the models folder on a thread (``lookups``; its result: the runs);
        ``with_settings``: each says whether the settings chosen now resume it (which reads the source's files)."""
        folder = self.models_folder()
        # The source and settings as they are now, read on this thread (none: each run's resumes is None).
        settings = (self.source_state.source, self.config()) if with_settings else ()
        return self.lookups.start("listing the unfinished runs", lambda: unfinished_runs(folder, *settings))

    def show_unfinished_summary(self) -> None:
        """The calibration page's count of unfinished runs, read anew (on a thread: each folder is walked)."""
        self._summary = self.list_unfinished_runs()
        if self.deleting is None:
            self.calibration_page.unfinished.setText("Looking for unfinished runs in the models folder…")
        self.calibration_page.unfinished_button.setEnabled(False)

    def _show_summary(self, lookup: Lookup) -> None:
        page = self.calibration_page
        runs = lookup.result or []
        page.unfinished.setText(unfinished_summary(runs, lookup.error))
        page.unfinished_button.setEnabled(bool(runs))

    def delete_run(self, run: Any) -> None:
        """Deletes the unfinished ``run``'s parts folder on a thread (GiBs); meanwhile Quantize waits, and the
        page and the Unfinished runs dialog say so."""
        self.deleting = Deletion(run, self.lookups.start(f"deleting {run.parts}", lambda: delete_unfinished_run(run)))
        page = self.calibration_page
        page.unfinished.setText(f"Deleting the unfinished run {run.output.name}…")
        page.completeChanged.emit()

    def _deleted(self, lookup: Lookup, run: Any) -> None:
        self.calibration_page.completeChanged.emit()
        if not self.isVisible():
            # The wizard was closed meanwhile: none of its boxes pops up again (one did, over no window, minutes
            # later). A failure goes to the main window's error dialog instead (``AppController.error``, as other
            # background failures do): only logged, it left the user believing the GiBs freed.
            if lookup.error is not None:
                log.warning("deleting the unfinished run %s failed after its wizard was closed: %s",
                            run.parts, lookup.error)  # fmt: skip
                self.controller.error.emit(not_deleted(run, classify(lookup.error)))
            return
        dialog = self.unfinished_dialog
        shown = dialog is not None and dialog.isVisible()
        if lookup.error is not None:
            self.error_dialog = show_error(dialog if shown else self, classify(lookup.error))
        if shown:
            dialog.refresh()
        self.show_unfinished_summary()

    def show_unfinished_runs(self) -> None:
        """Opens the Unfinished runs dialog."""
        self.unfinished_dialog = UnfinishedRunsDialog(self)
        self.unfinished_dialog.open()

    def _unfinished_lookup_ended(self, lookup: Lookup) -> bool:
        """Takes ``lookup`` (``QuantizeWizard._on_lookup_ended``) when it is the count or the deletion asked for last;
        whether it was."""
        if lookup is self._summary:
            self._summary = None
            if self.deleting is None:  # else the page says the deletion, and lists again after it
                self._show_summary(lookup)
        elif self.deleting is not None and lookup is self.deleting.lookup:
            run = self.deleting.run
            self.deleting = None
            self._deleted(lookup, run)
        else:
            return False
        return True
