"""Runs the engine's quantizer on its own QThread (same worker pattern as generation), then renders the
comparison images (original vs quantized, same seeds) and scores them with PSNR/SSIM for the result page.

A single-file checkpoint cannot be rendered at 16 bits (the generation service runs diffusers folders and
quantized models), so for one only the quantized model is rendered: comparing against the base pipeline would
show another model's images as "the original". The same thread also runs the engine's check of a picked single
file (``check_file``), which needs torch and so stays off the GUI thread."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtGui import QImage

from app.engine_errors import EngineError, classify, is_disk_full
from app.engine_worker import pil_to_qimage, quantize_runs
from app.quantize_outputs import new_told, running_output
from app.thread_exit import stop_thread
from gpu.output_folders import LinkLeadsNowhere, broken_link

log = logging.getLogger(__name__)

# Captions in the demo model's vocabulary (shapes, colours, places) so its comparison images mean something.
COMPARE_PROMPTS = [
    "a large red circle in the top left",
    "a small blue square on a yellow background",
    "a green triangle in the bottom right and a purple circle in the center",
    "a large orange square in the center",
]


def release_claim(claim: Any) -> None:
    """Lets a run's output claim (a gpu.output_lock.OutputClaim, or None) go; a failure is logged, not raised: the
    claim is let go of all the same (closing its lock file failed, EIO on a network mount), and raised, it kept
    the run's end (or the wizard's cancel) from being said, and the wizard stayed "running" for ever."""
    if claim is None:
        return
    try:
        claim.release()
    except Exception:  # noqa: BLE001 - the run's end must still be said
        log.exception("letting go of the lock on %s failed", getattr(claim, "target", "the output"))


@dataclass
class QuantizeJob:
    source: str  # library name or path
    out_path: Path
    config: Any  # gpu.quantizer.QuantizeConfig
    compare_prompts: list[str] = field(default_factory=lambda: list(COMPARE_PROMPTS))
    compare_steps: int | None = None
    compare_original: bool = True  # False: the source cannot be rendered at 16 bits (a single file)
    cancel: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)  # set by the run as it ends, however it ends
    # What the engine said of the output's parts folder, as far as the run got (a gpu.streaming.stopped.QuantizeTold,
    # written by the run's thread): what a stopped run left there, for the wizard to say (``stopped_note``).
    told: Any = field(default_factory=new_told)
    # The engine's lock on ``out_path`` (a gpu.output_lock.OutputClaim), taken as the wizard chose the name
    # (``claim_output_path``) and held until the run ends, when the worker releases it; None: taken by the run.
    claim: Any = None

    def needs_room(self) -> bool:
        """Whether the run still needs the memory the generation model holds: not once it was cancelled or ended.
        Read by the engine when it gets to the unload the run asked for, which waits behind the job it runs."""
        return not (self.cancel.is_set() or self.ended.is_set())


@dataclass(frozen=True)
class QuantizeProgress:
    kind: str
    message: str
    index: int
    total: int
    eta_s: float | None
    block: int = 0  # a layer's transformer block, 1-based, of ``blocks`` (0: not a layer of the quantizer)
    blocks: int = 0


@dataclass(frozen=True)
class Comparison:
    prompt: str
    original: QImage | None  # None: no 16-bit render (see the module's docstring); nor PSNR and SSIM then
    quantized: QImage
    psnr: float | None
    ssim: float | None


class QuantizeWorker(QObject):
    progress = Signal(object)  # QuantizeProgress
    comparisons = Signal(list)  # list[Comparison]
    quantized = Signal(str)  # output path: the model file is complete (the comparison renders follow)
    # The comparison could not be rendered (e.g. the 16-bit model does not fit in a 16 GB GPU): a warning, as the
    # model file is complete; ``finished`` follows.
    compare_failed = Signal(object)  # EngineError
    finished = Signal(str)  # output path
    cancelled = Signal()
    failed = Signal(object, bool)  # EngineError, whether a setting of the wizard can fix it
    file_checked = Signal(str, str)  # path, what is wrong with it in words ("" when nothing)
    # A threading.Event the engine sets with its model unloaded, after the job it runs (AppController.unload_model);
    # whether the run waits for a job for that (a run on the GPU waits, one on the CPU starts at once); and the
    # run's QuantizeJob.needs_room: a run cancelled or ended by then no longer needs the room, and the model stays.
    unload_asked = Signal(object, bool, object)

    @Slot(str)
    def check_file(self, path: str) -> None:
        """The engine's own reading of a single-file checkpoint, or of a pipeline folder's transformer: every
        tensor the transformer needs is there, of its shape, and none it does not know (an incomplete download, a
        scaled-FP8 file). Header reads only, plus a model skeleton on torch's meta device: a second or two, mostly
        the first import of torch."""
        try:
            from gpu.streaming.source import bfl_file_source, diffusers_folder_source

            (diffusers_folder_source if Path(path).is_dir() else bfl_file_source)(Path(path))
        except Exception as exc:  # noqa: BLE001 - any failure is the user's to read, never a crashed thread
            self.file_checked.emit(path, classify(exc).text)
        else:
            self.file_checked.emit(path, "")

    @Slot(object)
    def run(self, job: QuantizeJob) -> None:
        try:
            end, args = self._run_to_end(job)
        except BaseException as exc:  # it says every end itself: one escaping it must still reach the wizard
            log.exception("quantization failed")
            end, args = self.failed, run_error(exc, job.out_path.parent)
        try:
            # Before its end is sent: the wizard told of it may choose the name again at once (a run after Back)
            release_claim(job.claim)
        finally:  # unsent, the wizard stayed "running" for ever, and the wizards opened after it waited for it
            end.emit(*args)

    def _run_to_end(self, job: QuantizeJob) -> tuple[Any, tuple]:
        """Runs ``job`` -> the signal that says how it ended, and its arguments, for ``run`` to send."""
        from gpu.errors import Cancelled
        from gpu.generation.request import GenerationCancelled

        if job.cancel.is_set():  # its wizard was closed while the run waited here behind a file check
            return self.cancelled, ()
        # Every end is sent after the hold is released: a wizard told of it finds the generation jobs free to start.
        try:
            # Inside the try: the device is torch's answer, which a broken CUDA install raises; escaping the slot,
            # it left the wizard "running" for ever, and every wizard opened later waiting for it.
            device = self._device()
            self._check_output(job)  # refused now, not after waiting for the generation and unloading its model
            # The device quantize_model and the comparison renders take: on a GPU, generation jobs wait meanwhile.
            # Its parts are not deleted meanwhile (the wizard's Unfinished runs…), from before the engine locks them.
            with running_output(job.out_path, self._waiting_for_deletion), quantize_runs.holding(device) as hold:
                # Asked only now that the jobs not yet started wait for the run: asked before, one could start
                # loading its model between the engine's unload and the hold. Asked for a run on the CPU too: there
                # the model and the run share the RAM, which the run's RAM budget counts on.
                unloaded = threading.Event()
                self.unload_asked.emit(unloaded, hold.on_gpu and hold.behind_job, job.needs_room)
                try:
                    if hold.on_gpu:
                        self._wait_for(unloaded, job)
                    out = self._quantize(job)
                    self.quantized.emit(str(out))
                    self._compare_or_warn(job, out)
                finally:
                    job.ended.set()  # before its end is sent
        except (Cancelled, GenerationCancelled):
            return self.cancelled, ()
        except BaseException as exc:
            log.exception("quantization failed")
            return self.failed, run_error(exc, job.out_path.parent)
        return self.finished, (str(out),)

    def _waiting_for_deletion(self, parts: Path) -> None:
        """The run waits for the deletion of an unfinished run's folder (GiBs) to end, one a wizard closed since
        may have started: said in the wizard's log and the app's, where the run stood silent meanwhile."""
        message = f"Waiting for the deletion of the unfinished run {parts.name} to end…"
        log.info("%s", message)
        self.progress.emit(QuantizeProgress("stage", message, 0, 0, None))

    @staticmethod
    def _device() -> Any:
        """The ``torch.device`` the engine quantizes on (``default_device``, imported here: it imports torch)."""
        from gpu.generation.pipeline_loader import default_device

        return default_device()

    @staticmethod
    def _check_output(job: QuantizeJob) -> None:
        """The quantizer's quick refusals about the output, taken before the run waits for the generation and has
        its model unloaded: its folder cannot be made (a file where it goes, no permission), another run (a
        command-line quantize) writes the same file (``OutputBusy``), or its disk lacks the space the run needs
        (the engine's own estimate, ``check_disk_space``: headers and meta-device skeletons, about a second; the
        run checks again). The lock is let go at once: ``quantize_model`` takes it again, and makes the folders
        again, which are taken back here whatever the answer (a refused run, or one cancelled while it waits for the
        generation, leaves none)."""
        import gpu.quantizer  # noqa: F401 - before the engine, which imported first is a circular import
        from gpu.output_folders import make_output_folder, missing_folders, remove_empty_folders
        from gpu.output_lock import output_lock
        from gpu.streaming.space_needed import check_disk_space

        folder = job.out_path.parent
        made = missing_folders(folder)
        try:
            # The engine's folder-making (one level at a time: pathlib's mkdir(parents=True) recursed once per
            # level, a RecursionError the wizard's error path missed); a file in the way is said as one.
            make_output_folder(folder, "the model into")
            with output_lock(job.out_path, "quantize run", claim=job.claim):
                check_disk_space(job.source, job.out_path, job.config)
        finally:
            remove_empty_folders(made)

    @staticmethod
    def _wait_for(unloaded: threading.Event, job: QuantizeJob) -> None:
        """Until the engine has ended the job it runs and unloaded its model (the GPU holds a run or a generation
        model, not both), or the run is cancelled (``Cancelled``): looked at every 0.1 s, as the cancel is an
        Event of its own (the wizard's Cancel, the app's exit)."""
        from gpu.errors import Cancelled

        while not unloaded.wait(0.1):
            if job.cancel.is_set():
                raise Cancelled("cancelled while waiting for the generation to finish")

    def _quantize(self, job: QuantizeJob) -> Path:
        from gpu.quantizer import quantize_model

        def on_event(event: Any) -> None:
            job.told.heard(event)
            job.told.passed(event)  # nothing here stops the run between the two, as a Ctrl-C may the command's
            message = str(getattr(event, "message", "") or "")
            if getattr(event, "kind", "") == "layer" and getattr(event, "error", None) is not None:
                message = f"{message or event.layer}: relative error {event.error:.4f}"
            self.progress.emit(QuantizeProgress(
                str(getattr(event, "kind", "stage")), message,
                int(getattr(event, "index", 0) or 0), int(getattr(event, "total", 0) or 0),
                getattr(event, "eta_s", None), int(getattr(event, "block", 0) or 0),
                int(getattr(event, "blocks", 0) or 0)))

        # replace=False: the name was free when claimed, so a file there now is one the user put there meanwhile
        return Path(quantize_model(job.source, job.out_path, job.config, on_event=on_event,
                                   should_cancel=job.cancel.is_set, claim=job.claim, replace=False))

    def _compare_or_warn(self, job: QuantizeJob, out: Path) -> None:
        """The comparison renders, whose failure is no failure of the run: the model file is written and valid,
        and reported as failed the wizard greyed Next, so the model could not be added, and its hint sent the
        user to quantize again into a ``-2`` file. A cancel still ends the run as cancelled."""
        from gpu.errors import Cancelled
        from gpu.generation.request import GenerationCancelled

        try:
            self._compare(job, out)
        except (Cancelled, GenerationCancelled):
            raise
        except Exception as exc:  # noqa: BLE001 - the 16-bit model out of memory, a missing base file, ...
            log.exception("the comparison renders failed; the quantized model %s is complete", out)
            self.compare_failed.emit(classify(exc))

    def _compare(self, job: QuantizeJob, out: Path) -> None:
        from app.image_metrics import psnr_ssim
        from gpu.generation.request import GenerationRequest
        from gpu.generation.service import GenerationService

        service = GenerationService()
        prompts = job.compare_prompts
        models = (job.source, str(out)) if job.compare_original else (str(out),)
        total = len(models) * len(prompts)
        rendered: dict[str, list[Any]] = {}
        try:
            for pass_index, model in enumerate(models):
                self.progress.emit(QuantizeProgress("stage", f"Rendering comparison images with {Path(model).name}",
                                                    pass_index * len(prompts), total, None))
                service.load(model)
                rendered[model] = []
                for i, prompt in enumerate(prompts):
                    request = GenerationRequest(prompt=prompt, model=model, seed=1000 + i, steps=job.compare_steps)
                    images = service.generate(request, should_cancel=job.cancel.is_set)
                    rendered[model].append(images[0].image)
                    self.progress.emit(QuantizeProgress("compare", f"{Path(model).name}: {prompt}",
                                                        pass_index * len(prompts) + i + 1, total, None))
        finally:  # a render that failed (out of memory) or was cancelled frees the model's memory as well
            service.unload()
        quantized = rendered[str(out)]
        if job.compare_original:
            results = [Comparison(p, pil_to_qimage(a), pil_to_qimage(b), *psnr_ssim(a, b))
                       for p, a, b in zip(prompts, rendered[job.source], quantized, strict=True)]  # fmt: skip
        else:
            results = [Comparison(p, None, pil_to_qimage(b), None, None)
                       for p, b in zip(prompts, quantized, strict=True)]  # fmt: skip
        self.comparisons.emit(results)


def run_error(exc: BaseException, models: Path) -> tuple[EngineError, bool]:
    """``exc`` in words for the wizard, and whether one of its settings can fix it. The wizard writes into the
    app's ``models`` folder, which it has no setting for: the engine's hint for a write error there ("choose
    another folder", "--out") named a remedy the wizard does not offer."""
    from gpu.errors import (
        CheckpointError,
        ModelLoadError,
        OutOfMemory,
        OutputAppeared,
        OutputBusy,
        OutputError,
        OutputIsInput,
        QuantizeOutOfMemory,
    )  # fmt: skip

    error = classify(exc)
    if error.kind == "oom" and not isinstance(exc, OutOfMemory):
        # Out of memory outside the run itself (the run says its own, ``quantize_out_of_memory``): in a quantize run's
        # words too, not a generation job's (a smaller image size, fewer images per batch)
        from gpu.streaming.memory import RunStage, quantize_out_of_memory

        exc = quantize_out_of_memory(exc, RunStage("preparing the run")) or exc
        error = classify(exc)
    if isinstance(exc, QuantizeOutOfMemory):  # the RAM budget is the one setting of the wizard's that can help
        return error, exc.ram_budget_helps
    full = is_disk_full(exc)
    if isinstance(exc, OutputBusy):  # another run (a command-line quantize) writes that file: no folder's fault
        return EngineError("user", error.message, "Wait for that run to finish, or stop it, then run again."), False
    if isinstance(exc, OutputAppeared):  # the engine's hint is the remedy: move that file, run again to resume
        return error, False
    another = "start Nibble Studio with another data folder (--data-dir FOLDER, or the NIBBLE_DATA_DIR environment " \
        "variable)"  # fmt: skip
    if isinstance(exc, OutputIsInput):  # the models folder lies in that model's folder: no --out in the wizard
        return EngineError("user", error.message, f"The wizard saves models in the app's models folder, {models}: "
                           f"{another}, or quantize a copy of the model kept outside it."), False  # fmt: skip
    if not (full or isinstance(exc, OutputError)):
        # Neither an internal error nor a damaged or missing model file (the engine's hint says what to do about
        # the file) is any setting's doing: "Go back to change the settings" sent the user looking for one.
        unfixable = isinstance(exc, (ModelLoadError, CheckpointError, FileNotFoundError))
        return error, error.kind != "internal" and not unfixable
    fix = ("free some space on its disk" if full else
           "plug in or mount the drive its link leads to" if isinstance(broken_link(models), LinkLeadsNowhere) else
           "make it a folder you can write to, move aside what is in the way")  # fmt: skip
    return EngineError("user", error.message,
                       f"The wizard saves models in the app's models folder, {models}: {fix}, or {another}. "
                       "Then run again.", kept_said=error.kept_said), False


class QuantizeThread:
    """A wizard's worker thread and the worker on it. The thread is a child of ``parent`` (the wizard), deleted
    with it on the Qt thread; the worker, which lives on the thread, is deleted by ``release`` once it stopped."""

    def __init__(self, parent: QObject | None = None) -> None:
        self.thread = QThread(parent)
        self.thread.setObjectName("quantize")
        self.worker = QuantizeWorker()
        self.worker.moveToThread(self.thread)
        self.thread.start()

    def release(self) -> None:
        """Deletes the worker of a thread that has finished, here on the Qt thread: left to its Python wrapper, it
        was destroyed by whichever thread happened to collect it (a segmentation fault's pattern, app.background)."""
        if self.thread.isFinished() and shiboken6.isValid(self.worker):
            shiboken6.delete(self.worker)

    def stop(self, job: QuantizeJob | None = None) -> None:
        if job is not None:
            job.cancel.set()
        stop_thread(self.thread, self.worker)
