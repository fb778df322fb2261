"""The quantize wizard's run outcome: what the worker reports (the model saved, its comparison images, the end:
finished, cancelled or failed) shown on the run and result pages, what a stopped run leaves in words, and the result
handed to the library however the wizard is left."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QMessageBox

from app.controller import AppController
from app.engine_errors import EngineError
from app.quantize_outputs import kept_note
from app.quantize_source import no_comparison_reason
from app.quantize_worker import Comparison, QuantizeJob
from app.widgets.error_dialog import show_error
from app.widgets.quantize_calibration_page import CalibrationPage
from app.widgets.quantize_result_page import ResultPage
from app.widgets.quantize_run_page import RunPage
from app.wording import sentence


class RunOutcome:
    """``QuantizeWizard``'s part that shows how a run ended and hands its model to the library (a mixin: the wizard's
    own attributes and signals below are set by its ``__init__`` and class)."""

    controller: AppController
    calibration_page: CalibrationPage
    run_page: RunPage
    result_page: ResultPage
    job: QuantizeJob | None
    out_path: Path | None
    result_path: str | None
    added_name: str | None
    comparisons: list[Comparison]
    error_dialog: QMessageBox | None
    _adding: dict[int, str]
    running: bool  # a job is on the worker thread, or waiting for an earlier wizard's to stop
    run_ended: Any  # Signal(): the run (or the wait for an earlier wizard's) is over

    if TYPE_CHECKING:
        def isVisible(self) -> bool: ...

    def _set_running(self, running: bool) -> None:
        self.running = running
        # While a run works, Back stays disabled: going back and pressing Next would queue a second job
        # behind it. QWizard greys Back on the page after a commit page, and re-applies that whenever it
        # updates its buttons (which a plain setEnabled(False) would not survive). It updates them after
        # initializePage (which starts the run) and on the run page's completeChanged, which every end of a
        # run emits (RunPage.finish) after this.
        self.calibration_page.setCommitPage(running)
        if not running:
            self.run_ended.emit()

    def no_original_reason(self) -> str:
        """Why the result page shows no 16-bit images (a single-file source: ``no_comparison_reason``)."""
        job = self.job
        return no_comparison_reason(job.source if job is not None else None,
                                    job.config.base if job is not None else None)  # fmt: skip

    def kept_note(self, if_stopped_now: bool = False) -> str:
        """What a stopped run leaves for the next one, in words (``quantize_outputs.kept_note``; after "Stop
        quantizing?" with ``if_stopped_now``, what stopping the run that still works would leave)."""
        told = self.job.told if self.job is not None else None
        return kept_note(self.result_path, self.out_path, told, if_stopped_now)

    def left_note(self, kept: bool = True) -> str:
        """What the run page says once a run ended unfinished: what it keeps (``kept_note``; not with ``kept``
        False, where the error said it: a full disk), and what stays of a parts folder it deleted, in the engine's
        words (a file of the user's in it: "… is kept: it holds files the quantizer did not write …"), which reached
        only the log."""
        left = self.job.told.parts_left if self.job is not None else ""
        return " ".join(w for w in (self.kept_note() if kept else "", sentence(left)) if w)

    def _on_comparisons(self, items: list[Comparison]) -> None:
        self.comparisons = items
        self.result_page.show_comparisons(items)

    def _on_quantized(self, path: str) -> None:
        self.result_path = path  # from here on the model is the user's, whatever happens to the comparison
        self.run_page.log.appendPlainText(f"Saved {path}; rendering the comparison images…")
        left = self.job.told.parts_left if self.job is not None else ""
        self.result_page.parts_left.setText(sentence(left))  # its parts folder, kept with the user's files in it
        self.result_page.parts_left.setVisible(bool(left))
        if not self.isVisible():
            # Closed while the model was being written (past the run's last cancel check): its close kept no
            # result yet, so the model waited for the app's quit or next start to be listed. Added now, as at a close,
            # but not selected (add_to_library): the user may be at work on another model since.
            self.keep_result()

    def _on_compare_failed(self, error: EngineError) -> None:
        """The model is complete; only its comparison images could not be made (``finished`` follows)."""
        # The engine's hint is for a generation job (a smaller size, fewer images), none of which the wizard has.
        why = sentence(error.message, capital=False)
        if error.kind == "oom":
            why += " The comparison runs the 16-bit model too, which needs about 3.5 times the 4-bit model's memory."
        self.run_page.log.appendPlainText(
            f"Warning: the comparison images could not be rendered: {why} The model is complete "
            f"({self.result_path}); the next page adds it to the library.")  # fmt: skip
        self.result_page.summary.setText(f"Saved to {self.result_path}. No comparison images: {why} The model "
                                         "itself is complete and can be added to the library.")  # fmt: skip

    def _on_finished(self, path: str) -> None:
        self.result_path = path
        self._set_running(False)
        self.run_page.bar.setRange(0, 1)
        self.run_page.bar.setValue(1)
        self.run_page.log.appendPlainText("Done.")
        self.run_page.finish(True)

    def _on_cancelled(self) -> None:
        self._set_running(False)
        self.run_page.bar.setRange(0, 1)
        if self.result_path:  # cancelled during the comparison: the finished model stays offered, not orphaned
            self.run_page.log.appendPlainText(f"Comparison cancelled. The model is complete ({self.result_path}); "
                                              "the next page adds it to the library.")
            self.result_page.summary.setText(f"Saved to {self.result_path}. The comparison was cancelled.")
            self.run_page.finish(True)
            return
        note = self.left_note()
        self.run_page.log.appendPlainText(f"Cancelled. Nothing was added. {note}")
        self.run_page.left(note)
        self.run_page.finish(False)

    def _on_failed(self, error: EngineError, settings_can_fix: bool = True) -> None:
        self._set_running(False)
        self.run_page.log.appendPlainText(f"Failed: {error.text}")
        self.run_page.failed(error, settings_can_fix)
        # Refused before the run looked at its folder, the error says all there is; a full disk's says what is kept
        if self.job is not None and self.job.told.anything:
            # The log has the engine's words of what stays of a replaced folder already: only the kept note goes
            # there; under the error, the whole note
            kept = "" if error.kept_said else self.kept_note()
            if kept:
                self.run_page.log.appendPlainText(kept)
            self.run_page.left(self.left_note(kept=not error.kept_said))
        self.run_page.finish(False)
        if self.isVisible():  # a wizard the user closed mid-run: its run was cancelled, no dialog for it now
            self.error_dialog = show_error(self, error)

    def add_to_library(self) -> None:
        """Hands the result to the library. From the open wizard (Add, Finish, a close) the model is selected, as
        the user is there to use it; from a closed one (its run finished after the close) it is only added, and
        the status bar says so: minutes later, selecting it changed the model and the settings the user had set
        meanwhile, and their next Generate ran the new model."""
        if self.result_path:
            self._adding[self.controller.add_model(self.result_path, select=self.isVisible())] = self.result_path
            self.result_page.add_button.setEnabled(False)
            self.result_page.add_button.setText("Adding…")

    def _on_add_ended(self, request: int, outcome: str | EngineError) -> None:
        """An add ended (``AppController.add_ended``): this wizard's own (``_adding``) gives the library's name for
        the result, or the library refused it (e.g. the file was moved meanwhile; the main window's dialog says
        why), and the button offers the add again instead of reading "Added" for a model that is not listed. The
        add of an earlier run's result (made as a run after Back started) leaves the page of the run shown now as
        it is: its result is another file."""
        path = self._adding.pop(request, None)
        if path is None or path != self.result_path:
            return  # another add's (the Models panel's, another wizard's), or an earlier run's
        if isinstance(outcome, str):
            self.added_name = outcome
            self.result_page.add_button.setText("Added")
        else:
            self.result_page.add_button.setEnabled(True)
            self.result_page.add_button.setText("Add to library")

    def keep_result(self) -> None:
        """A finished model goes into the library however the wizard is left (closed, Back and another run, the
        app quitting): left out, it sat unlisted in the app's hidden models folder (the library's Remove takes it
        off the list, if unwanted)."""
        if self.result_path and self.added_name is None and self.result_path not in self._adding.values():
            self.add_to_library()
