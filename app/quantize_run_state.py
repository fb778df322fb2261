"""One quantize wizard's run as state (``QuantizeRunState``): whether it runs or waits for its turn, its job and
output, how it ended (the worker's reports turned into the words the run and result pages show), what a stopped run
leaves, and its model handed to the library. The pages bind to it; later wizards' runs wait on it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.engine_errors import EngineError
from app.observable import Prop
from app.quantize_outputs import kept_note, saved_words
from app.quantize_source import no_comparison_reason
from app.quantize_worker import Comparison
from app.wording import sentence

# How a run ended (``QuantizeRunState.ended``)
FINISHED, CANCELLED, FAILED = "finished", "cancelled", "failed"


class QuantizeRunState(QObject):
    """The wizard's run: ``running`` from Quantize until it ended (``run_ended``), ``waiting`` meanwhile for an earlier
    run's name or turn; its ``job`` and output (``out_path``), the model it wrote (``result_path``, the user's from
    then on) and the library's name for it once added (``added_name``)."""

    running = Prop(False)  # a job is on the worker thread, or waiting for an earlier wizard's to stop
    running_changed = Signal(bool)
    waiting = Prop(False)  # ... waiting, not yet handed to the worker
    waiting_changed = Signal(bool)
    job = Prop(None)  # QuantizeJob, once the output is named
    job_changed = Signal(object)
    out_path = Prop(None)  # Path of the output, once named
    out_path_changed = Signal(object)
    result_path = Prop(None)  # str: the model written, whatever happens to its comparison
    result_path_changed = Signal(object)
    added_name = Prop(None)  # str: the library's name for the result (not always its file's stem)
    added_name_changed = Signal(object)
    comparisons = Prop([])  # list[Comparison]: the comparison images, once rendered
    comparisons_changed = Signal(object)
    # A naming dropped by a cancel (a ``Lookup``): its thread goes on (it cannot be stopped inside a read of the
    # source) and claims a name, let go of once the naming ends (``naming_let_go``). Until then that name (the one a
    # run of these settings resumes) is held, and a run named meanwhile would skip it: the next runs wait for it.
    dropped = Prop(None)
    dropped_changed = Signal(object)
    # The result page's words on the result (saved where, its scores, why no comparison) and on the parts folder it
    # kept with the user's files in it (the engine's)
    summary = Prop("")
    summary_changed = Signal(str)
    parts_left = Prop("")
    parts_left_changed = Signal(str)
    # The result's add to the library: "" (offered), "adding", "added"
    add_step = Prop("")
    add_step_changed = Signal(str)

    run_ended = Signal()  # the run (or the wait for an earlier wizard's) is over: finished, cancelled or failed
    naming_let_go = Signal()  # the ``dropped`` naming ended and let go of its name
    logged = Signal(str)  # a line for the run page's log
    compared = Signal(list)  # the comparison images (``comparisons``) to lay out
    started_over = Signal()  # a new run (``start_over``): the result page empties its grid of the earlier run's
    left = Signal(str)  # what a run that ended unfinished left for the next one (``left_note``)
    ended = Signal(str, bool)  # how the run ended (FINISHED, CANCELLED, FAILED), and whether with a model
    # EngineError, and whether a setting of the wizard may fix it: said before ``ended``, so that whatever reacts to
    # the end (the run page's completeChanged, the wizard's buttons) finds the run page's error text set already
    failed = Signal(object, bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # The adds that handed this run's results to the library (AppController.add_model), by number, until each
        # ends: the result each hands over. Only those adds' ends are this wizard's (not another add's, nor any
        # error, which the controller sends too), and only the add of the result shown now marks it "added": an
        # earlier run's, ending while the run after Back works, marked that run's model added, and it was left out.
        self._adding: dict[int, str] = {}

    def log(self, line: str) -> None:
        """Says ``line`` in the run page's log."""
        self.logged.emit(line)

    def start_over(self) -> None:
        """A new run: nothing of the earlier one may pass for this one's (a cancelled run would offer the earlier
        model as "complete", and the result page would show both runs' words)."""
        self.job, self.out_path = None, None
        self.result_path, self.added_name = None, None
        self.comparisons = []
        self.summary, self.parts_left, self.add_step = "", "", ""
        self.started_over.emit()

    def set_running(self, running: bool) -> None:
        """The run started or (False) ended: ``run_ended``, each time it is said to end."""
        self.running = running
        if not running:
            self.run_ended.emit()

    def holds_name(self) -> bool:
        """Whether a name a later run may take (or resume) is held: by this run, or a naming it dropped."""
        return self.running or self.dropped is not None

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

    def saved_note(self) -> str:
        """What the run made, in words: its model file, size and folder, and what it is (``saved_words``)."""
        job, path = self.job, self.result_path or self.out_path
        return saved_words(Path(path), job.source, job.config) if job is not None and path else ""

    def take_comparisons(self, items: list[Comparison]) -> None:
        """The comparison images came (``QuantizeWorker.comparisons``): laid out, and summed up in ``summary``."""
        self.comparisons = items
        self.compared.emit(items)
        scored = [i for i in items if i.psnr is not None and i.ssim is not None]
        if scored:
            mean_psnr = sum(i.psnr or 0.0 for i in scored) / len(scored)
            mean_ssim = sum(i.ssim or 0.0 for i in scored) / len(scored)
            self.summary = (f"{self.saved_note()} Mean PSNR {mean_psnr:.1f} dB, "
                            f"mean SSIM {mean_ssim:.3f} (higher is closer to the original).")  # fmt: skip
        elif items:
            self.summary = f"{self.saved_note()} {self.no_original_reason()}"

    def saved(self, path: str) -> None:
        """The model is written (``QuantizeWorker.quantized``); its comparison images are rendered next."""
        self.result_path = path  # from here on the model is the user's, whatever happens to the comparison
        self.log(f"Saved {path}; rendering the comparison images…")
        self.parts_left = sentence(self.job.told.parts_left if self.job is not None else "")

    def compare_failed(self, error: EngineError) -> None:
        """The model is complete; only its comparison images could not be made (``finished`` follows)."""
        # The engine's hint is for a generation job (a smaller size, fewer images), none of which the wizard has.
        why = sentence(error.message, capital=False)
        if error.kind == "oom":
            why += " The comparison runs the 16-bit model too, which needs about 3.5 times the 4-bit model's memory."
        self.log(f"Warning: the comparison images could not be rendered: {why} The model is complete "
                 f"({self.result_path}); the next page adds it to the library.")  # fmt: skip
        self.summary = (f"{self.saved_note()} No comparison images: {why} The model itself is complete "
                        "and can be added to the library.")  # fmt: skip

    def finished(self, path: str) -> None:
        """The run ended with its model and comparison (``QuantizeWorker.finished``)."""
        self.result_path = path
        self.set_running(False)
        self.log("Done.")
        self.ended.emit(FINISHED, True)

    def cancelled(self) -> None:
        """The run ended cancelled (``QuantizeWorker.cancelled``), or was never started."""
        self.set_running(False)
        if self.result_path:  # cancelled during the comparison: the finished model stays offered, not orphaned
            self.log(f"Comparison stopped. The model is complete ({self.result_path}); the next page adds it to "
                     "the library.")  # fmt: skip
            self.summary = f"{self.saved_note()} The comparison was stopped."
            self.ended.emit(CANCELLED, True)
            return
        note = self.left_note()
        self.log(f"Stopped. Nothing was added. {note}")
        self.left.emit(note)
        self.ended.emit(CANCELLED, False)

    def failed_with(self, error: EngineError, settings_can_fix: bool = True) -> None:
        """The run failed (``QuantizeWorker.failed``), or could not start: ``settings_can_fix`` False for what no page
        of the wizard changes (the models folder, an internal error)."""
        self.set_running(False)
        self.log(f"Failed: {error.text}")
        # Refused before the run looked at its folder, the error says all there is; a full disk's says what is kept
        if self.job is not None and self.job.told.anything:
            # The log has the engine's words of what stays of a replaced folder already: only the kept note goes
            # there; under the error, the whole note
            kept = "" if error.kept_said else self.kept_note()
            if kept:
                self.log(kept)
            self.left.emit(self.left_note(kept=not error.kept_said))
        self.failed.emit(error, settings_can_fix)
        self.ended.emit(FAILED, False)

    def result_to_keep(self) -> str | None:
        """The result still to hand to the library however the wizard is left (closed, Back and another run, the
        app quitting): left out, it sat unlisted in the app's hidden models folder (the library's Remove takes it
        off the list, if unwanted). None when there is none, or it is added or being added."""
        path = self.result_path
        return path if path and self.added_name is None and path not in self._adding.values() else None

    def adding(self, request: int, path: str) -> None:
        """The result ``path`` is being added to the library by the add ``request`` (``AppController.add_model``)."""
        self._adding[request] = path
        self.add_step = "adding"

    def add_ended(self, request: int, outcome: str | EngineError) -> None:
        """An add ended (``AppController.add_ended``): this run's own (``adding``) gives the library's name for
        the result, or the library refused it (e.g. the file was moved meanwhile; the main window's dialog says
        why), and the add is offered again rather than "added" for a model that is not listed. The add of an
        earlier run's result (made as a run after Back started) leaves the run shown now as it is: its result is
        another file."""
        path = self._adding.pop(request, None)
        if path is None or path != self.result_path:
            return  # another add's (the Models panel's, another wizard's), or an earlier run's
        if isinstance(outcome, str):
            self.added_name = outcome
            self.add_step = "added"
        else:
            self.add_step = ""
