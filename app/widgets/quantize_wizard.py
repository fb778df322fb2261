"""The "Quantize this model" wizard: source → method/precision → calibration and memory → run → result.

The wizard drives ``app.quantize_worker`` on its own thread and hands the new file to the library; each page is
a module of its own (``quantize_source_page``, ``quantize_method_page``, ``quantize_calibration_page``,
``quantize_run_page``, ``quantize_result_page``), and so is the Unfinished runs dialog
(``quantize_unfinished_runs_dialog``). The run itself (its job, how it ended, its result handed to the
library), its start, naming and turn behind earlier wizards' runs, and the unfinished runs counted, listed and
deleted are objects of their own (``app.quantize_run_state``, ``app.quantize_run_turns``,
``app.quantize_unfinished_runs``), which the pages and the dialog bind to. This module holds the wizard itself,
its pages, worker and states wired together, and its closing. What a run is named and leaves behind is
``app.quantize_outputs``'s.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QMessageBox, QWidget, QWizard

from app.controller import AppController
from app.engine_errors import EngineError
from app.quantize_outputs import not_deleted
from app.quantize_run_state import QuantizeRunState
from app.quantize_run_turns import QuantizeRunTurns
from app.quantize_source import QuantizeSource
from app.quantize_unfinished_runs import UnfinishedRuns
from app.quantize_worker import QuantizeThread
from app.widgets.attention import ask_attention
from app.widgets.error_dialog import show_error
from app.widgets.quantize_calibration_page import CalibrationPage
from app.widgets.quantize_method_page import MethodPage
from app.widgets.quantize_result_page import ResultPage
from app.widgets.quantize_run_page import RunPage
from app.widgets.quantize_source_page import SourcePage
from app.widgets.quantize_unfinished_runs_dialog import UnfinishedRunsDialog

if TYPE_CHECKING:
    from gpu.quantizer import QuantizeConfig

log = logging.getLogger(__name__)

# A run on the GPU while the engine generates (QuantizeWorker.run waits for it; the GPU holds one or the other).
GENERATION_WAIT = ("Waiting for the current generation job to finish (a batch may be several images): the GPU "
                   "cannot hold its model and this run at once. The run starts by itself then; to start it now, "
                   "cancel the job with Esc in the main window. Images you ask for meanwhile wait for this "
                   "run.")  # fmt: skip


class QuantizeWizard(QWizard):
    """Quantize this model: its pages, the run on the worker thread (``run_state``), the run's output name and its
    turn behind earlier wizards' runs (``turns``), and the model handed to the library."""

    # Closed, and nothing of it works any more: its run (and a naming it dropped) ended, its thread stopped, no
    # deletion of an unfinished run is under way (whose failure it still says). Its panel then lets go of it.
    let_go = Signal()

    def __init__(self, controller: AppController, parent: QWidget | None = None,
                 earlier: Sequence[QuantizeWizard] = ()) -> None:  # fmt: skip
        """``earlier``: wizards opened before this one, whose runs may still be stopping after they were closed;
        a run here waits for them (two runs would compete for memory, and for the output file's lock when
        they write the same name, which the engine then refuses as "being written by another quantize run")."""
        super().__init__(parent)
        self.setObjectName("quantizeWizard")
        self.setWindowTitle("Quantize this model")
        # The result page has Finish alone: its Cancel cancelled nothing (the model made is kept however the wizard
        # is left, ``keep_result``), yet added and selected it
        self.setOption(QWizard.WizardOption.NoCancelButtonOnLastPage, True)
        self.controller = controller
        self.run_state = QuantizeRunState(self)
        self._quitting = False
        controller.add_ended.connect(self.run_state.add_ended)
        self.error_dialog: QMessageBox | None = None
        self.compare_steps: int | None = None  # tests use few steps
        # The models folder is looked at on threads: the output name of a run by ``turns``, the unfinished runs
        # there, counted, listed and deleted, by ``unfinished_runs``.
        self.unfinished_runs = UnfinishedRuns(self.models_folder(), self._chosen_settings, self)
        self.unfinished_runs.deleted.connect(self._unfinished_run_deleted)
        # The worker thread first: the source page asks it to check a picked file as soon as it exists.
        self._thread = QuantizeThread(self)
        worker = self._thread.worker
        self.source_state = QuantizeSource(controller.entries, self)
        self.source_state.check_requested.connect(worker.check_file)  # queued: the worker's thread
        worker.file_checked.connect(self.source_state.engine_checked)
        self.turns = QuantizeRunTurns(controller, self.run_state, self.source_state,
                                      [wizard.run_state for wizard in earlier], config=self.config,
                                      models_folder=self.models_folder, keep_result=self.keep_result,
                                      compare_steps=lambda: self.compare_steps, parent=self)  # fmt: skip
        self.source_page = SourcePage(controller, self.source_state)
        self.method_page = MethodPage()
        self.calibration_page = CalibrationPage(self.unfinished_runs, self.source_still_ready)
        if controller.engine_started:
            self.calibration_page.show_gpu(controller.gpu)
        controller.engine_ready.connect(self._engine_ready)
        # While a run works, Back stays disabled: going back and pressing Next would queue a second job behind it.
        # QWizard greys Back on the page after a commit page, and re-applies that whenever it updates its buttons
        # (which a plain setEnabled(False) would not survive). It updates them after initializePage (which starts
        # the run) and on the run page's completeChanged, which every end of a run emits (RunPage.end) after this.
        self.run_state.running_changed.connect(self.calibration_page.setCommitPage)
        self.source_state.calibration_changed.connect(self.calibration_page.show_calibration)
        self.source_state.rank_limit_changed.connect(self.method_page.show_rank_limit)
        # The chosen library model's name went on to another folder while a later page showed (``relisted``):
        # Quantize shows the source page first, which says so, as the run would make a copy of that folder's model.
        self._relisted_unseen = False
        self.source_state.relisted_changed.connect(self._relisted)
        self.calibration_page.show_calibration(self.source_state.calibration)
        self.method_page.show_rank_limit(self.source_state.rank_limit)
        self.run_page = RunPage(self.run_state, self.turns)
        # After the run page's: its error text is set by the time the dialog opens over it
        self.run_state.failed.connect(self._show_failure)
        self.run_state.ended.connect(self._run_ended)
        self.result_page = ResultPage(self, self.run_state)
        for page in (self.source_page, self.method_page, self.calibration_page, self.run_page, self.result_page):
            self.addPage(page)
        self.calibration_page.unfinished_button.clicked.connect(self.show_unfinished_runs)
        self.currentIdChanged.connect(self._page_shown)
        self.unfinished_dialog: UnfinishedRunsDialog | None = None
        self.turns.handed.connect(worker.run)
        worker.progress.connect(self.run_page.on_progress)
        worker.comparisons.connect(self.run_state.take_comparisons)
        worker.quantized.connect(self.run_state.saved)
        worker.quantized.connect(self._saved)
        worker.compare_failed.connect(self.run_state.compare_failed)
        worker.finished.connect(self.run_state.finished)
        worker.cancelled.connect(self.run_state.cancelled)
        worker.failed.connect(self.run_state.failed_with)
        worker.unload_asked.connect(self._unload_engine)
        self._closed = False
        for ended in (self.run_state.run_ended, self.run_state.naming_let_go, self.unfinished_runs.deleting_changed,
                      self._thread.thread.finished):  # fmt: skip
            ended.connect(self._let_go_once_idle)
        self.resize(760, 600)

    def config(self) -> QuantizeConfig:
        """The run's settings as the pages hold them now."""
        from gpu.quantizer import QuantizeConfig

        calib = self.calibration_page
        return QuantizeConfig(
            method=self.method_page.method.currentData(), precision=self.method_page.precision.currentData(),
            rank=self.method_page.rank.value(), shared_smoothing=self.method_page.shared_smoothing.isChecked(),
            alpha_points=self.method_page.alpha_points.value(),
            calib_prompts=calib.count.value(),
            calib_steps=calib.steps.value() or None, gpu_budget_gib=calib.gpu_gib.value(),
            ram_budget_gib=calib.ram_gib.value(),
            base=self.source_state.base if self.source_state.is_file else None,
        )

    def models_folder(self) -> Path:
        """Where the wizard's runs write (the app's models folder)."""
        return self.controller.data.quantized

    def _chosen_settings(self) -> tuple[str, QuantizeConfig]:
        """The source and settings chosen now, which an Unfinished runs listing says whether they resume each run."""
        return self.source_state.source, self.config()

    def show_unfinished_runs(self) -> None:
        """Opens the Unfinished runs dialog."""
        self.unfinished_dialog = UnfinishedRunsDialog(self, self.unfinished_runs)
        self.unfinished_dialog.open()

    def _unfinished_run_deleted(self, error: BaseException | None, run: Any) -> None:
        """The deletion of an unfinished run ended (``UnfinishedRuns.deleted``): its failure said, the dialog's list
        and the page's count read again."""
        if not self.isVisible():
            # The wizard was closed meanwhile: none of its boxes pops up again (one did, over no window, minutes
            # later). A failure goes to the main window's error dialog instead (``AppController.error``, as other
            # background failures do): only logged, it left the user believing the GiBs freed.
            if error is not None:
                log.warning("deleting the unfinished run %s failed after its wizard was closed: %s",
                            run.parts, error)  # fmt: skip
                self.controller.error.emit(not_deleted(run, error))
            return
        dialog = self.unfinished_dialog
        shown = dialog is not None and dialog.isVisible()
        if error is not None:  # which run, that its folder is still there (the engine's words named neither)
            self.error_dialog = show_error(dialog if shown else self, not_deleted(run, error))
        if shown:
            dialog.refresh()
        self.unfinished_runs.count()

    def _engine_ready(self, status: Any) -> None:
        """The engine started (``AppController.engine_ready``): whether a run has a GPU to budget."""
        self.calibration_page.show_gpu(status.gpu)

    def _page_shown(self, _page_id: int) -> None:
        if self.currentPage() is self.calibration_page:
            self.unfinished_runs.count()
        elif self.currentPage() is self.source_page:
            self._relisted_unseen = False

    def _relisted(self, text: str) -> None:
        self._relisted_unseen = bool(text) and self.currentPage() is not self.source_page

    def source_still_ready(self) -> bool:
        """Whether the chosen source (and a single file's base) can still be quantized, as Quantize is pressed. When
        not (removed from the library since it was chosen, on a later page or before Back after a run), the source
        page is shown again, which says why: the run started on whatever was left, another model or none. So it is
        when its library name went on to another folder unseen (``QuantizeSource.relisted``): the run made a copy of
        another model than the one chosen, unsaid; Quantize pressed again then runs it."""
        if self.source_state.ready and not self._relisted_unseen:
            return True
        for _ in self.visitedIds()[1:]:
            if self.currentPage() is self.source_page:
                break
            self.back()
        return False

    def _unload_engine(self, unloaded: threading.Event, waits: bool, needed: Callable[[], bool]) -> None:
        """The run, started, asks for the memory the generation model holds (``QuantizeWorker.unload_asked``); one
        on the GPU ``waits`` for the job the engine runs to end and the model to be unloaded, which the page says:
        it started at once, and both worked on the GPU together. The model stays loaded if the run no longer
        ``needed`` it by the time the engine gets to it (cancelled or ended)."""
        self.controller.unload_model(unloaded, needed)
        if waits and not unloaded.is_set() and needed():
            self.run_state.log(GENERATION_WAIT)

    def _saved(self, _path: str) -> None:
        if not self.isVisible():
            # Closed while the model was being written (past the run's last cancel check): its close kept no
            # result yet, so the model waited for the app's quit or next start to be listed. Added now, as at a close,
            # but not selected (add_to_library): the user may be at work on another model since.
            self.keep_result()

    def _run_ended(self, _how: str, _with_model: bool) -> None:
        """The run ended (finished, cancelled or failed): flagged in the taskbar where the user works in another
        program meanwhile (a 12B model's run takes an hour); not the run the app's quit stopped."""
        if not self._quitting:
            ask_attention(self)

    def _show_failure(self, error: EngineError, _settings_can_fix: bool) -> None:
        if self.isVisible():  # a wizard the user closed mid-run: its run was cancelled, no dialog for it now
            self.error_dialog = show_error(self, error)

    def add_to_library(self) -> None:
        """Hands the result to the library. From the open wizard (Add, Finish, a close) the model is selected, as
        the user is there to use it; from a closed one (its run finished after the close) it is only added, and
        the status bar says so: minutes later, selecting it changed the model and the settings the user had set
        meanwhile, and their next Generate ran the new model."""
        path = self.run_state.result_path
        if path:
            self.run_state.adding(self.controller.add_model(path, select=self.isVisible()), path)

    def keep_result(self) -> None:
        """A finished model goes into the library however the wizard is left (``QuantizeRunState.result_to_keep``)."""
        if self.run_state.result_to_keep():
            self.add_to_library()

    def cancel(self) -> None:
        """Cancels the run (``QuantizeRunTurns.cancel``)."""
        self.turns.cancel()

    def back(self) -> None:
        """Back to the previous page, unless a run works."""
        if self.run_state.running:  # the button is greyed; callers of the slot itself are refused as well
            return
        super().back()

    def confirm_stop(self) -> bool:
        """Whether the running run may stop: asked ("Stop quantizing?") when a close (Esc, the window's X, the main
        window's) would end a run that works, which went silently with hours of work. True when nothing runs,
        the run is already stopping, or it only waits for an earlier wizard's run (nothing of it is done)."""
        run = self.run_state
        if run.job is None or not run.running or run.job.cancel.is_set() or run.waiting:
            return True
        # Asked while the run works, which a No lets go on: what stopping it now would leave, not "this run stopped".
        box = QMessageBox(QMessageBox.Icon.Question, "Stop quantizing?",
                          f"Stop quantizing? {run.kept_note(if_stopped_now=True)}",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)  # fmt: skip
        box.setTextFormat(Qt.TextFormat.PlainText)  # it names the run's files: never drawn as HTML (app.plain_text)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.exec()
        return box.clickedButton() is box.button(QMessageBox.StandardButton.Yes)

    def done(self, result: int) -> None:
        """Closes the wizard by any route, once a working run may stop; a finished model goes to the library."""
        # Closed by any route (Cancel, Finish, the window's X, Esc): a running job stops at its next check once the
        # user says so, and the thread ends once idle instead of waiting for the app's exit.
        if not self.confirm_stop():
            return  # the run goes on, and the wizard stays open with it
        self.cancel()
        self.keep_result()
        self.source_page.stop_following_library()  # it listed the library anew at every change, closed for good
        if self.run_state.running:
            # Its thread quits once the run has ended: a thread told to quit drops the calls queued to it, and the
            # run may still be queued there behind the check of a picked file; it would then never run nor end,
            # and a wizard opened next would wait for it for ever.
            self.run_state.run_ended.connect(self._thread.thread.quit)
        else:
            self._thread.thread.quit()
        self._closed = True
        super().done(result)
        self._let_go_once_idle()

    def _let_go_once_idle(self, *_: object) -> None:
        """Says ``let_go`` once the wizard is closed and nothing of it works any more (a closed wizard whose run
        still stops holds its name, which a later wizard's run waits for)."""
        if (self._closed and not self.run_state.holds_name() and self.unfinished_runs.deleting is None
                and self._thread.thread.isFinished()):  # fmt: skip
            self._closed = False  # said once
            self._thread.release()
            self.let_go.emit()

    def shutdown(self) -> None:
        """The app quits: a finished model goes to the library, and the worker thread stops."""
        self._quitting = True  # the run this stops ends without a flag in the taskbar
        # Asked of the engine before it stops; an add it never gets to (a job running, the quit queued ahead of it)
        # is made by its stop (app.owed_changes.OwedChanges), and a kill is made good by the next start
        self.keep_result()
        self._thread.stop(self.run_state.job)
