"""The "Quantize this model" wizard: source → method/precision → calibration and memory → run → result.

The wizard drives ``app.quantize_worker`` on its own thread and hands the new file to the library; each page is
a module of its own (``quantize_source_page``, ``quantize_method_page``, ``quantize_calibration_page``,
``quantize_run_page``, ``quantize_result_page``), and so is the Unfinished runs dialog
(``quantize_unfinished_runs_dialog``). What a run is named and leaves behind is ``app.quantize_outputs``'s.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QMessageBox, QWidget, QWizard

from app.background import Lookup, Lookups
from app.controller import AppController
from app.engine_errors import EngineError, classify
from app.quantize_outputs import (
    Deletion,
    Named,
    delete_unfinished_run,
    kept_note,
    name_run_output,
    not_deleted,
    output_name,
    unfinished_runs,
    unfinished_summary,
)
from app.quantize_source import QuantizeSource, no_comparison_reason, output_stem
from app.quantize_worker import Comparison, QuantizeJob, QuantizeThread, release_claim, run_error
from app.widgets.error_dialog import show_error
from app.widgets.quantize_calibration_page import CalibrationPage
from app.widgets.quantize_method_page import MethodPage
from app.widgets.quantize_result_page import ResultPage
from app.widgets.quantize_run_page import RunPage
from app.widgets.quantize_source_page import SourcePage
from app.widgets.quantize_unfinished_runs_dialog import UnfinishedRunsDialog
from app.wording import sentence
from gpu.errors import UserError

if TYPE_CHECKING:
    from gpu.quantizer import QuantizeConfig

log = logging.getLogger(__name__)

# A run on the GPU while the engine generates (QuantizeWorker.run waits for it; the GPU holds one or the other).
GENERATION_WAIT = ("Waiting for the current generation job to finish (a batch may be several images): the GPU "
                   "cannot hold its model and this run at once. The run starts by itself then; to start it now, "
                   "cancel the job with Esc in the main window. Images you ask for meanwhile wait for this "
                   "run.")  # fmt: skip


class QuantizeWizard(QWizard):
    """Quantize this model: its pages, the run on the worker thread, the run's output name and its turn behind
    earlier wizards' runs, and the model handed to the library."""

    _run = Signal(object)  # queued to the worker thread
    run_ended = Signal()  # the run (or the wait for an earlier wizard's) is over: finished, cancelled or failed
    # A naming dropped by a cancel (``_dropped``) let go of the name it claimed: later wizards' runs wait for it
    naming_let_go = Signal()

    def __init__(self, controller: AppController, parent: QWidget | None = None,
                 earlier: Sequence[QuantizeWizard] = ()) -> None:  # fmt: skip
        """``earlier``: wizards opened before this one, whose runs may still be stopping after they were closed;
        a run here waits for them (two runs would compete for memory, and for the output file's lock when
        they write the same name, which the engine then refuses as "being written by another quantize run")."""
        super().__init__(parent)
        self.setObjectName("quantizeWizard")
        self.setWindowTitle("Quantize this model")
        self.controller = controller
        self.job: QuantizeJob | None = None
        self.out_path: Path | None = None
        self.result_path: str | None = None
        self.added_name: str | None = None  # the library's name for the result (not always its file's stem)
        # The adds that handed this wizard's results to the library (AppController.add_model), by number, until
        # each ends: the result each hands over. Only those adds' ends are this wizard's (not another add's, nor any
        # error, which the controller sends too), and only the add of the result shown now marks it "Added": an
        # earlier run's, ending while the run after Back works, marked that run's model added, and it was left out.
        self._adding: dict[int, str] = {}
        controller.add_ended.connect(self._on_add_ended)
        self.comparisons: list[Comparison] = []
        self.error_dialog: QMessageBox | None = None
        self.compare_steps: int | None = None  # tests use few steps
        self.running = False  # a job is on the worker thread, or waiting for an earlier wizard's to stop
        self._waiting = False  # ... waiting, not yet handed to the worker
        self._earlier = list(earlier)
        # The models folder is looked at on threads (``Lookups``): the output name of a run (``_naming``),
        # the calibration page's count of unfinished runs (``_summary``), the deletion of one (``deleting``).
        self.lookups = Lookups("Quantize", self)
        self.lookups.ended.connect(self._on_lookup_ended)
        self._naming: Lookup | None = None
        self._name: Callable[[], None] | None = None  # the naming of a run that waits for an earlier wizard's
        # A naming cancelled while it ran: its thread goes on (it cannot be stopped inside a read of the source)
        # and claims a name, which this wizard lets go of once the naming ends. Until then that name (the one a
        # run of these settings resumes) is held, and a run named meanwhile skips it and starts over under the
        # next one: this wizard's next run and later wizards' wait for it (``_name_held``).
        self._dropped: Lookup | None = None
        self._summary: Lookup | None = None
        self.deleting: Deletion | None = None
        for wizard in self._earlier:
            wizard.run_ended.connect(self._start_when_free)
            wizard.naming_let_go.connect(self._start_when_free)
        # The worker thread first: the source page asks it to check a picked file as soon as it exists.
        self._thread = QuantizeThread()
        worker = self._thread.worker
        self.source_state = QuantizeSource(controller.entries)
        self.source_state.check_requested.connect(worker.check_file)  # queued: the worker's thread
        worker.file_checked.connect(self.source_state.engine_checked)
        self.source_page = SourcePage(controller, self.source_state)
        self.method_page = MethodPage()
        self.calibration_page = CalibrationPage()
        self.source_state.calibration_changed.connect(self.calibration_page.show_calibration)
        # The chosen library model's name went on to another folder while a later page showed (``relisted``):
        # Quantize shows the source page first, which says so, as the run would make a copy of that folder's model.
        self._relisted_unseen = False
        self.source_state.relisted_changed.connect(self._relisted)
        self.calibration_page.show_calibration(self.source_state.calibration)
        self.run_page = RunPage(self)
        self.result_page = ResultPage(self)
        for page in (self.source_page, self.method_page, self.calibration_page, self.run_page, self.result_page):
            self.addPage(page)
        self.calibration_page.unfinished_button.clicked.connect(self.show_unfinished_runs)
        self.currentIdChanged.connect(self._page_shown)
        self.unfinished_dialog: UnfinishedRunsDialog | None = None
        self._run.connect(worker.run)
        worker.progress.connect(self.run_page.on_progress)
        worker.comparisons.connect(self._on_comparisons)
        worker.quantized.connect(self._on_quantized)
        worker.compare_failed.connect(self._on_compare_failed)
        worker.finished.connect(self._on_finished)
        worker.cancelled.connect(self._on_cancelled)
        worker.failed.connect(self._on_failed)
        worker.unload_asked.connect(self._unload_engine)
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

    def _on_lookup_ended(self, lookup: Lookup) -> None:
        """A lookup of the wizard's ended: used while it is the one asked for last (the dialog takes its own)."""
        if lookup is self._summary:
            self._summary = None
            if self.deleting is None:  # else the page says the deletion, and lists again after it
                self._show_summary(lookup)
        elif self.deleting is not None and lookup is self.deleting.lookup:
            run = self.deleting.run
            self.deleting = None
            self._deleted(lookup, run)
        elif lookup is self._naming:
            self._naming = None
            self._named(lookup)
        elif lookup is self._dropped:  # a naming cancelled while it ran: its name is free again
            self._dropped = None
            if isinstance(lookup.result, Named):
                release_claim(lookup.result.claim)
            self.naming_let_go.emit()  # later wizards' runs that wait for it
            self._start_when_free()  # this wizard's next run, if one waits for it

    def show_unfinished_runs(self) -> None:
        """Opens the Unfinished runs dialog."""
        self.unfinished_dialog = UnfinishedRunsDialog(self)
        self.unfinished_dialog.open()

    def _page_shown(self, _page_id: int) -> None:
        if self.currentPage() is self.calibration_page:
            self.show_unfinished_summary()
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

    def start(self) -> None:
        """Starts a run of the chosen source and settings (the run page shown): its output is named on a thread,
        once no earlier run or dropped naming holds a name it may take."""
        state = self.source_state
        source = state.source
        config = self.config()
        entry = self.controller.library.entry(source)
        stem = output_name(output_stem(source, Path(entry.path) if entry is not None else Path(source)), config)
        # A run after Back: nothing of the earlier run may pass for this one's (a cancelled run would offer
        # the earlier model as "complete", and the result page would show both runs' images). The earlier
        # model goes into the library first: forgotten here, it stayed unlisted in the hidden models folder.
        self.keep_result()
        self.job, self.out_path = None, None
        self.result_path, self.added_name = None, None
        self.comparisons = []
        self.result_page.clear()
        try:
            state.recheck_file()
        except UserError as err:
            self._on_failed(classify(err))
            return
        self._set_running(True)
        folder = self.models_folder()

        # As the run was started: the source page may change while the name is chosen (``_named``).
        compare_original = not state.is_file

        name = functools.partial(name_run_output, folder, stem, source, config, compare_original)  # on a thread
        self._name = functools.partial(self._choose_name, source, name)
        if self._name_held():
            # Named once that run stopped: it holds its name until then, and a run this one would resume (the
            # closed run's, reopened to go on with it) is skipped while held; named now, this run started over
            # under the next free name, its parts folder unsaid.
            self._waiting = True
            self.run_page.log.appendPlainText(
                "Waiting for the quantize run of the wizard you closed to stop…" if self._earlier_name_held() else
                "Waiting for the cancelled run to finish choosing its output's name…")  # fmt: skip
            return
        self._start_when_free()

    def _earlier_name_held(self) -> bool:
        """Whether an earlier wizard's run is running, or a naming it dropped still holds its name."""
        return any(w.running or w._dropped is not None for w in self._earlier)

    def _name_held(self) -> bool:
        """Whether a name this wizard's run may take (or resume) is held by a run or a dropped naming that ends
        soon: an earlier wizard's (``_earlier_name_held``), or this wizard's own cancelled naming (``_dropped``)."""
        return self._dropped is not None or self._earlier_name_held()

    def _choose_name(self, source: str, name: Callable[[], Named]) -> None:
        """Chooses and claims the run's output name on a thread (``name``); ``_named`` takes it from there."""
        self.run_page.log.appendPlainText(f"Quantizing {source}: choosing the output's name…")
        self._naming = self.lookups.start("choosing the output's name", name)

    def _named(self, lookup: Lookup) -> None:
        """The run's output is named (``start``): the run goes to the worker, or waits for an earlier wizard's."""
        if lookup.error is not None:  # the models folder cannot be listed (a name is taken only when it can)
            # or the chosen name's lock not taken there (its lock file's place is a folder): said as the run's
            # write errors are, with the remedy the wizard has (no --out, no other folder)
            self._on_failed(run_error(lookup.error, self.models_folder())[0], settings_can_fix=False)
            return
        named: Named = lookup.result
        self.out_path, source = named.claim.target, named.source
        # The claim goes with the job: the worker releases it as the run ends, ``cancel`` if it never starts
        self.job = QuantizeJob(source, self.out_path, named.config, compare_steps=self.compare_steps,
                               compare_original=named.compare_original, claim=named.claim)  # fmt: skip
        for note in named.notes:
            self.run_page.log.appendPlainText(note)
        self.run_page.log.appendPlainText(f"Quantizing {source} → {self.out_path.name}")
        if any(w.running for w in self._earlier):
            self._waiting = True
            self.run_page.log.appendPlainText("Waiting for the quantize run of the wizard you closed to stop…")
            return
        self._hand_over()

    def _start_when_free(self) -> None:
        """Names the run ``start`` began, or hands the named one over, once no earlier wizard's run is running
        and no dropped naming holds a name (``_name_held``)."""
        if self._name_held():
            return  # another earlier run still stopping, or a dropped naming still holding its name
        if self._name is not None:
            name, self._name = self._name, None
            self._waiting = False
            name()
        elif self._waiting:  # not cancelled while waiting, nor started already
            self._hand_over()

    def _hand_over(self) -> None:
        assert self.job is not None
        self._waiting = False
        if self.job.config.base:
            self.run_page.log.appendPlainText(
                f"Text encoders, tokenizers and calibration prompts from {self.job.config.base}")
        self._run.emit(self.job)

    def _unload_engine(self, unloaded: threading.Event, waits: bool, needed: Callable[[], bool]) -> None:
        """The run, started, asks for the memory the generation model holds (``QuantizeWorker.unload_asked``); one
        on the GPU ``waits`` for the job the engine runs to end and the model to be unloaded, which the page says:
        it started at once, and both worked on the GPU together. The model stays loaded if the run no longer
        ``needed`` it by the time the engine gets to it (cancelled or ended)."""
        self.controller.unload_model(unloaded, needed)
        if waits and not unloaded.is_set() and needed():
            self.run_page.log.appendPlainText(GENERATION_WAIT)

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

    def back(self) -> None:
        """Back to the previous page, unless a run works."""
        if self.running:  # the button is greyed; callers of the slot itself are refused as well
            return
        super().back()

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

    def confirm_stop(self) -> bool:
        """Whether the running run may stop: asked ("Stop quantizing?") when a close (Esc, the window's X, the main
        window's) would end a run that works, which went silently with hours of work. True when nothing runs,
        the run is already stopping, or it only waits for an earlier wizard's run (nothing of it is done)."""
        if self.job is None or not self.running or self.job.cancel.is_set() or self._waiting:
            return True
        # Asked while the run works, which a No lets go on: what stopping it now would leave, not "this run stopped".
        box = QMessageBox(QMessageBox.Icon.Question, "Stop quantizing?",
                          f"Stop quantizing? {self.kept_note(if_stopped_now=True)}",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)  # fmt: skip
        box.setTextFormat(Qt.TextFormat.PlainText)  # it names the run's files: never drawn as HTML (app.plain_text)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.exec()
        return box.clickedButton() is box.button(QMessageBox.StandardButton.Yes)

    def cancel(self) -> None:
        """Cancels the run: a naming under way is dropped, a waiting run let go of, a working one told to stop."""
        if self._naming is not None or self._name is not None:  # not named yet: dropped, nothing was started
            # Said cancelled at once, but a naming under way still claims a name: held until it ended (``_dropped``)
            if self._naming is not None:
                assert self._dropped is None  # a run is named only once the earlier dropped naming ended
                self._dropped = self._naming
            self._naming = self._name = None
            self._waiting = False
            self.run_page.cancel_button.setEnabled(False)
            self._on_cancelled()
            return
        if self.job is None or not self.running:
            return  # nothing is running: a finished or failed run's page keeps its words
        self.job.cancel.set()
        self.run_page.cancel_button.setEnabled(False)  # pressed: the run stops at its next check
        if self._waiting:  # never handed to the worker: nothing to stop there, and its name is free again
            self._waiting = False
            release_claim(self.job.claim)
            self._on_cancelled()
            return
        self.run_page.log.appendPlainText("Cancelling…")

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

    def done(self, result: int) -> None:
        """Closes the wizard by any route, once a working run may stop; a finished model goes to the library."""
        # Closed by any route (Cancel, Finish, the window's X, Esc): a running job stops at its next check once the
        # user says so, and the thread ends once idle instead of waiting for the app's exit.
        if not self.confirm_stop():
            return  # the run goes on, and the wizard stays open with it
        self.cancel()
        self.keep_result()
        self.source_page.stop_following_library()  # it listed the library anew at every change, closed for good
        if self.running:
            # Its thread quits once the run has ended: a thread told to quit drops the calls queued to it, and the
            # run may still be queued there behind the check of a picked file; it would then never run nor end,
            # and a wizard opened next would wait for it for ever.
            self.run_ended.connect(self._thread.thread.quit)
        else:
            self._thread.thread.quit()
        super().done(result)

    def keep_result(self) -> None:
        """A finished model goes into the library however the wizard is left (closed, Back and another run, the
        app quitting): left out, it sat unlisted in the app's hidden models folder (the library's Remove takes it
        off the list, if unwanted)."""
        if self.result_path and self.added_name is None and self.result_path not in self._adding.values():
            self.add_to_library()

    def shutdown(self) -> None:
        """The app quits: a finished model goes to the library, and the worker thread stops."""
        # Asked of the engine before it stops; an add it never gets to (a job running, the quit queued ahead of it)
        # is made by its stop (app.engine_worker.OwedChanges), and a kill is made good by the next start
        self.keep_result()
        self._thread.stop(self.job)
