"""The generator: a QObject living on its own QThread that owns the engine's ``GenerationService``.

Rules that keep the window responsive: the worker never touches widgets, every slot catches every exception
and turns it into a ``failed`` signal, and torch is imported here (on the worker thread, after the window is
up). Cancellation is a ``threading.Event`` read by the engine between denoising steps, so it takes effect at
the next step without waiting for the queued-signal machinery of a busy thread.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtGui import QImage

from app.data_dir import DataDir
from app.engine_errors import EngineError, classify, is_disk_full
from app.image_files import image_not_saved, images_folder, new_image_path, save_new_image
from app.owed_changes import ADD, OWED_CHANGES, REMOVE, OwedChanges, library_writes, make_change, make_changes_now
from app.thread_exit import stop_thread
from gpu.errors import OutputError
from gpu.library import ModelLibrary
from gpu.torch_check import require_torch

log = logging.getLogger(__name__)
_job_ids = itertools.count(1)


@dataclass
class Job:
    request: Any  # gpu.generation.request.GenerationRequest
    id: int = field(default_factory=lambda: next(_job_ids))
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class JobProgress:
    job_id: int
    image_index: int
    image_count: int
    step: int
    total_steps: int
    elapsed_s: float
    eta_s: float
    preview: QImage | None


@dataclass(frozen=True)
class SavedImage:
    path: Path
    settings: dict[str, Any]
    image: QImage | None = field(default=None, compare=False)  # the finished image, for the progress area
    # Seconds the image took end to end: denoised, decoded (the engine's duration_s) and saved; None when the
    # engine did not say. A batch's ETA counts the images left at it (denoising alone left the rest out).
    seconds: float | None = None


@dataclass(frozen=True)
class EngineStatus:
    """What the model panel shows about the machine."""

    gpu: Any  # gpu.system_info.GpuInfo | None
    entries: list[Any]  # gpu.library.ModelEntry


def pil_to_qimage(image: Any) -> QImage:
    """QImage is safe to build off the GUI thread (QPixmap is not); copy() detaches it from the bytes."""
    rgba = image.convert("RGBA")
    data = rgba.tobytes()
    return QImage(data, rgba.width, rgba.height, rgba.width * 4, QImage.Format.Format_RGBA8888).copy()


@dataclass(frozen=True)
class Hold:
    """What a quantize run learns as it takes its turn (``QuantizeRuns.holding``)."""

    on_gpu: bool  # counted: the jobs not started by then wait for the run
    behind_job: bool  # a generation job had taken its turn by then: the engine's unload comes after it


class QuantizeRuns(QObject):
    """The quantize runs working on a CUDA device in this process (the wizard's, each on its own thread), and the
    generation jobs they take turns with. Their GPU memory budget (``gpu.streaming.memory.gpu_memory_budget``) is
    process-wide, and a 16 GB card holds a run or a generation model, not both: a job started meanwhile was capped
    at the run's budget (an out-of-memory error at best) and its pipeline's memory plan was made for that budget
    until it was loaded again. Jobs wait for the runs instead (``EngineWorker.generate``) and start by themselves
    when the last one ends; a run started while a job runs waits for it (``QuantizeWorker.run``). Both turns are
    taken under one lock, so a run is told exactly whether it is behind a job: the engine's own record of its job,
    read beside the hold, missed a job that had been let through and was not yet marked running."""

    ended = Signal()  # the last run ended (finished, failed or cancelled)

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._count = 0
        self._jobs = 0  # generation jobs that took their turn and have not ended (one per engine; tests open more)

    def active(self) -> bool:
        with self._lock:
            return self._count > 0

    @contextmanager
    def holding(self, device: Any) -> Iterator[Hold]:
        """A run on ``device`` (a ``torch.device`` or its type, e.g. "cuda") counted while the block runs; yields
        whether it is, and whether a job runs. A run on the CPU is not counted: it sets no budget and takes no GPU
        memory. (Tests on CPU-only machines hold "cuda".)"""
        on_gpu = getattr(device, "type", device) == "cuda"
        with self._lock:
            self._count += on_gpu
            hold = Hold(on_gpu, self._jobs > 0)
        try:
            yield hold
        finally:
            if on_gpu:
                with self._lock:
                    self._count -= 1
                    last = self._count == 0
                if last:
                    self.ended.emit()

    @contextmanager
    def generating(self) -> Iterator[bool]:
        """A generation job's turn: yields False, and counts nothing, while a run on the GPU is counted; else True,
        and the job is counted as running until the block ends."""
        with self._lock:
            free = self._count == 0
            self._jobs += free
        try:
            yield free
        finally:
            if free:
                with self._lock:
                    self._jobs -= 1


quantize_runs = QuantizeRuns()  # one per process, as the GPU budget it stands for

class NotedLibrary(ModelLibrary):
    """The engine's model library, noting which entries' files were missing at its last reading: a failure on one
    of them is worth asking again once its file is back (``EngineWorker._file_after``); a failure on a file that was
    there (a damaged file, an unresolvable base) is not."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.missing: set[str] = set()  # names of the entries whose file was not there at the last reading

    def entries(self) -> list[Any]:
        entries = super().entries()
        self.missing = {e.name for e in entries if e.missing}
        return entries


class EngineWorker(QObject):
    ready = Signal(object)  # EngineStatus
    library_changed = Signal(list)  # list[ModelEntry]
    library_read = Signal(int, list)  # the read_library request's number, list[ModelEntry]
    removal_ended = Signal(str)  # name of a model asked to be removed: taken off (library_changed before) or failed
    # An add's end, each with the number the add was asked with (``add_model``): the caller knows its own add's
    # from another's (one the user made meanwhile) and from any other request's failure.
    model_added = Signal(str, int)  # name the library gave a model just added (it may differ from the file's)
    models_found = Signal(list)  # names of the models found unlisted in the models folder at start-up, added
    already_in_library = Signal(str, int)  # name of the listed entry a model added again is (nothing was written)
    add_failed = Signal(int, object)  # EngineError: the library refused the model
    model_described = Signal(object)  # ModelInfo
    # The number the describe was asked with, EngineError, whether its model's file is there again (it was missing
    # for a moment: worth asking once more).
    describe_failed = Signal(int, object, bool)
    # model as asked for, gpu.generation.prompt_length.PromptMeter | None, whether guidance is an input of the model
    prompt_meter_ready = Signal(str, object, bool)
    model_loaded = Signal(object)  # ModelInfo
    started = Signal(int, int, bool)  # job id, image count, whether its model is loaded first
    waiting = Signal(int)  # job id: it waits for a quantize run on the GPU to end (QuantizeRuns)
    progress = Signal(object)  # JobProgress
    image_saved = Signal(int, object)  # job id, SavedImage: each image of a batch as soon as its PNG is written
    noted = Signal(int, str)  # job id, a note of the engine on its images (a guidance run as another): with its first
    finished = Signal(int)  # job id: every image of it was sent by image_saved
    cancelled = Signal(int)  # job id
    failed = Signal(int, object)  # job id (0: not a generation job), EngineError
    start_failed = Signal(object)  # EngineError: the engine could not start (sent in place of ``ready``)
    busy_changed = Signal(bool)
    _start_next = Signal()  # queued to itself: the next job that waited for a quantize run

    def __init__(self, data: DataDir) -> None:
        super().__init__()
        self._data = data
        self._service: Any = None
        self._library: Any = None
        self._loaded: str | None = None
        self._gpu_logged: tuple[Any, ...] | None = None  # the GPU last written to the log (None: not yet)
        self.preview_every = 2
        # Set once the first start-up ended (ready or failed), read by the Qt thread when the app closes.
        self.start_up_done = threading.Event()
        # The id of the last generation job this worker ended, read by the Qt thread: its own record of the queue
        # is told of an end by a queued signal, which arrives after the next job has started.
        self.ended_through = 0
        self._waiting: list[Job] = []  # jobs held back by a quantize run on the GPU, in their order
        # put by the GUI thread before it queues add_model or remove_model; with the changes the last session
        # could not make, made at start-up (``_make_carried_changes``)
        self.owed = OwedChanges(data.root / OWED_CHANGES)
        self._found_checked = False  # the models folder was searched for unlisted models (once per start)
        quantize_runs.ended.connect(self.start_waiting)
        self._start_next.connect(self.start_waiting, Qt.ConnectionType.QueuedConnection)

    # ---- engine objects, created lazily on the worker thread ----------------------------------------------

    def _ensure_service(self) -> Any:
        if self._service is None:
            require_torch()  # a torch that cannot be loaded said as such, not as "Something went wrong: ImportError"
            from gpu.generation.service import GenerationService

            self._library = NotedLibrary(self._data.root)
            self._service = GenerationService(self._library)
        return self._service

    def _status(self) -> EngineStatus:
        from gpu.system_info import detect_gpu

        try:
            gpu = detect_gpu()
        except Exception:  # a broken driver must not stop the app; the panel shows "no GPU"
            log.exception("GPU detection failed")
            gpu = None
        # A problem report's first question, logged at start and whenever the answer changes (a driver
        # restarted, an external GPU plugged in), not at every status refresh: free memory alone moves every time.
        key = (gpu.name, gpu.sm, gpu.total_bytes) if gpu is not None else ()
        if key != self._gpu_logged:
            log.info("GPU: %s", gpu or "none usable (CPU only)")
            self._gpu_logged = key
        return EngineStatus(gpu=gpu, entries=list(self._library.entries()))

    def _tell_library_notices(self) -> None:
        """What the model library kept aside (a library.json it cannot parse, a newer version's before
        rewriting it), shown as notices: the user saw their models vanish without a word."""
        if self._library is None:
            return
        for notice in self._library.take_notices():
            self.failed.emit(0, EngineError("notice", str(notice), notice.hint))

    @Slot()
    def initialize(self) -> None:
        status = None
        try:
            self._ensure_service()
            status = self._status()
            self.ready.emit(status)
        except BaseException as exc:
            self.start_failed.emit(self._logged(exc, "engine start-up failed"))
        finally:
            self.start_up_done.set()
        self._tell_library_notices()
        if status is not None:
            # After ``ready``: one that never ends (a file on a hung drive) must not hold back the app's start
            self._make_carried_changes()
            self._add_found_models([Path(e.path) for e in self._library.entries()])

    def _make_carried_changes(self) -> None:
        """The adds and removals the last session asked for and could not make (the app quit, or was killed, while
        the engine was inside one, or the quit's wait ran out), made in order once the list was sent (sent again
        after them), each failure shown as a notice: the panel had said the model was added, or was being
        removed."""
        carried = self.owed.carried()
        if not carried:
            return
        try:
            for kind, value in carried:
                self.owed.discard(kind, value)  # off the record before it is tried: tried at this start only
                make_change(self._library, self.owed, kind, value,
                            failed=lambda message, hint: self.failed.emit(0, EngineError("notice", message, hint)))
            self.library_changed.emit(list(self._library.entries()))
        except BaseException as exc:
            self._fail(exc, "making the model library changes of the last session failed")
        self._tell_library_notices()

    def _add_found_models(self, listed: list[Path]) -> None:
        """Once per start, after the list was sent: the finished SVDQ models in the app's models folder that the
        library neither lists (``listed``) nor left out on purpose are added (``gpu.library_found``), and the
        controller is told by ``models_found``: a model written there and never asked to be added (a run cut short
        by a crash after its file was written). An add asked is recorded until made, and made before, at this start,
        also after a crash or a kill (``_make_carried_changes``)."""
        if self._found_checked:
            return
        self._found_checked = True
        from gpu.library_found import add_found_models

        try:
            with library_writes:
                added = add_found_models(self._library, self._data.quantized, listed)
            if added:
                self.library_changed.emit(list(self._library.entries()))
                self.models_found.emit([e.name for e in added])
        except BaseException as exc:
            self._fail(exc, "adding the models found in the models folder failed")
        self._tell_library_notices()

    @Slot()
    def refresh_status(self) -> None:
        self.initialize()

    @Slot(str, int)
    def describe(self, model: str, asked: int = 0) -> None:
        """The model's facts, then its prompt meter: the first meter imports transformers and reads a tokenizer
        (seconds), which must not hold back the Models panel at start-up. A failure is sent with ``asked``, the
        request's number: the controller drops one asked for a selection made since (see _on_describe_failed)."""
        try:
            service = self._ensure_service()
            info = service.describe(model)
            self.model_described.emit(info)
            self.prompt_meter_ready.emit(model, service.prompt_meter(model), info.takes_guidance)
        except BaseException as exc:
            file = self._file_after(model, exc)
            if file != "gone":  # if it is, the controller says so as it falls back
                error = self._logged(exc, f"describing the model {model} failed")
                self.describe_failed.emit(asked, error, file == "back")

    @Slot(str, int)
    def add_model(self, path: str, request: int = 0) -> None:
        """Adds the model at ``path`` to the library; its end (``model_added``, ``already_in_library`` or
        ``add_failed``) carries ``request``, the caller's number for this add."""
        try:
            try:
                self._ensure_service()
                with library_writes:
                    entry = self._library.add(Path(path))
            finally:
                # Made, or failed and said: not to be made again. Owed until then: an add that never ends (a file
                # on a drive that hangs) is made at quit, or at the next start.
                self.owed.discard(ADD, path)
            # Also when it was listed already: a file put back since the list was read is no longer "(missing)"
            # there, and the controller then selects it rather than refusing it as gone.
            self.library_changed.emit(list(self._library.entries()))
            if entry.already_added:
                self.already_in_library.emit(entry.name, request)
            else:
                self.model_added.emit(entry.name, request)
        except BaseException as exc:
            self.add_failed.emit(request, self._logged(exc, f"adding the model {path} failed"))
        self._tell_library_notices()

    @Slot(str)
    def remove_model(self, name: str) -> None:
        """Takes the model ``name`` off the library (not its file): the list sent, then ``removal_ended``, which
        also ends one that failed (said by ``failed``), as the panel says it is pending till then. It stays owed
        (``OwedChanges``) until this ends: a quit that cannot wait for it makes it, or leaves it to the next start."""
        try:
            try:
                self._ensure_service()
                if self._loaded == name:
                    self._service.unload()
                    self._loaded = None
                with library_writes:
                    self._library.remove(name)
            finally:
                # Made, or failed and said (the model listed still): not to be made again. A failure before the
                # write (the engine's start, the unload) left it owed, and the quit, or the next start, took the
                # model off without a word; only a step that never ends (a hung drive) leaves it owed.
                self.owed.discard(REMOVE, name)
            self.library_changed.emit(list(self._library.entries()))
        except BaseException as exc:
            self._fail(exc)
        self.removal_ended.emit(name)
        self._tell_library_notices()

    @Slot(int)
    def read_library(self, asked: int = 0) -> None:
        """The model list read again (each entry's file looked at anew) and sent with ``asked``, the request's
        number, by ``library_read``: a file back on a drive that was away opens again."""
        try:
            self._ensure_service()
            self.library_read.emit(asked, list(self._library.entries()))
        except BaseException as exc:
            self._fail(exc)
        self._tell_library_notices()

    @Slot(object, object)
    def unload(self, unloaded: threading.Event | None = None, needed: Callable[[], bool] | None = None) -> None:
        """The model unloaded, then ``unloaded`` set: a quantize run on the GPU waits for it (``QuantizeWorker.run``).
        Queued, this runs after the job running when it was asked; the jobs not started by then wait for the run
        (``QuantizeRuns``), which holds them before asking. Set after a failure too (reported as any): a run
        waiting for ever would be worse than one short of memory. The model stays loaded when ``needed``, the
        run's, says no by then (it was cancelled, or it ended): a request queued behind a job cannot be withdrawn,
        and the next job reloaded the model for a run that had ended (a minute for a 12B model)."""
        try:
            if self._service is not None and (needed is None or needed()):
                self._service.unload()
                self._loaded = None
        except BaseException as exc:
            self._fail(exc)
        finally:
            if unloaded is not None:
                unloaded.set()

    def _file_after(self, model: str, exc: BaseException) -> str:
        """What the library, read again, says of ``model``'s file after ``exc``, a missing file's error: "gone" when
        ``model`` is a library entry whose file was moved or deleted while the app ran (the list, read again, is
        sent by ``library_changed``: the list read at start-up still had the file, so the entry was shown as usable
        and picked, and every later job failed on it without a word of why); "back" when it opens again and the
        failure was its file being away (a ``FileNotFoundError``, or missing at the reading the failure made: a
        network or removable drive away for a moment), as asking again can then work, where it cannot for another
        error on a file that was there; "" for any other error, or no answer.
        """
        from gpu.errors import ModelLoadError

        if self._library is None or not isinstance(exc, (ModelLoadError, FileNotFoundError)):
            return ""
        away = isinstance(exc, FileNotFoundError) or model in self._library.missing
        try:
            entries = list(self._library.entries())
        except Exception:  # noqa: BLE001 - the failure itself is still reported by the caller
            log.exception("reading the model library again failed")
            return ""
        entry = next((e for e in entries if e.name == model), None)
        if entry is None:
            return ""
        if entry.facts is not None:
            return "back" if away else ""
        log.warning("the model %s cannot be opened any more: %s", model, entry.problem)
        self.library_changed.emit(entries)
        return "gone"

    def _fail(self, exc: BaseException, what: str = "engine request failed") -> None:
        """``exc`` logged (``_logged``) and reported to the GUI as a ``failed`` signal with job id 0."""
        self.failed.emit(0, self._logged(exc, what))

    @staticmethod
    def _logged(exc: BaseException, what: str) -> EngineError:
        """``exc`` in words, logged with its traceback unless it is the user's error: the log file is all a
        windowed app's user can send."""
        error = classify(exc)
        if error.kind == "user":  # a wrong file or a missing model: the message says it all
            log.warning("%s: %s", what, error.message)
        else:
            log.error(what, exc_info=exc)
        return error

    # ---- generation ---------------------------------------------------------------------------------------

    @Slot(object)
    def generate(self, job: Job) -> None:
        """Runs ``job``, or holds it back while a quantize run works on the GPU (``QuantizeRuns``), and behind the
        jobs held already: the queue keeps its order."""
        if self._waiting or not self._generate(job):
            self._waiting.append(job)
            self.waiting.emit(job.id)

    @Slot()
    def start_waiting(self) -> None:
        """The first job held back by a quantize run, once the runs ended or it was cancelled (it ends at once,
        not when the run does); the next one in a call queued here, so a describe asked meanwhile is answered
        between jobs as in the queue."""
        if not self._waiting:
            return
        job = self._waiting.pop(0)
        if not self._generate(job):
            self._waiting.insert(0, job)
            self.waiting.emit(job.id)  # still, or again: another run started
            return
        if self._waiting:
            self._start_next.emit()

    def _generate(self, job: Job) -> bool:
        """Runs ``job`` unless a quantize run on the GPU holds it back (False, nothing done); a job cancelled while
        it waited in the queue ends at once, run or not."""
        if job.cancel.is_set():
            self.ended_through = job.id
            self.cancelled.emit(job.id)
            return True
        with quantize_runs.generating() as turn:
            if not turn:
                return False
            self.busy_changed.emit(True)
            try:
                self._run(job)
            finally:
                self.busy_changed.emit(False)
                self._tell_library_notices()  # a job resolves its model through the library, which may keep it aside
        return True

    def _run(self, job: Job) -> None:
        from gpu.errors import Cancelled
        from gpu.generation.request import GenerationCancelled

        request = job.request
        loading = self._needs_load(request.model)
        self.started.emit(job.id, request.batch_count, loading)
        broken = False  # the job failed in a way the pipeline may not have survived
        try:
            images_folder(self._data)  # refused now, not after the work, if its images could not be saved
            service = self._ensure_service()
            if loading:
                info = service.load(request.model)  # unloads the previous model first
                self._loaded = request.model
                self.model_loaded.emit(info)
            index = itertools.count()

            def keep(generated: Any) -> None:
                # Written as each image is done, not after the batch: a cancel, an out-of-memory error or a crash
                # at image 4 of 4 lost the three already made.
                number = next(index)
                self.image_saved.emit(job.id, self._save(generated, number))
                if number == 0:  # every image of a job carries the job's notes: sent with its first
                    for note in generated.extras.get("notes", ()):
                        self.noted.emit(job.id, note)

            service.generate(
                request,
                on_progress=lambda event: self._on_progress(job, event),
                should_cancel=job.cancel.is_set,
                on_image=keep,
                preview_every=self.preview_every,  # 0 or less: none
            )
        except (GenerationCancelled, Cancelled):
            self.ended_through = job.id  # each end is recorded before its signal: the Qt thread may read it first
            self.cancelled.emit(job.id)
        except BaseException as exc:
            log.exception("generation failed")
            error = classify(exc)
            if error.kind == "internal" and self._loaded is not None:
                # The pipeline may be in a broken state after an unexpected error: reload on the next job. Dropped
                # (below), not only marked: the service's load kept a pipeline whose files were unchanged.
                self._loaded = None
                broken = True
            if self._file_after(request.model, exc) == "gone":
                self._loaded = None  # the panel is told of the model loaded again when its file is back
            self.ended_through = job.id
            self.failed.emit(job.id, error)
        else:
            self.ended_through = job.id
            self.finished.emit(job.id)
            self._describe_after_job(request.model)
        if broken:  # out of the handler: the traceback it held kept the pipeline's memory
            self._drop_pipeline()

    def _drop_pipeline(self) -> None:
        """The loaded pipeline dropped and its memory freed, after a failure it may not have survived intact."""
        try:
            self._service.unload()
        except Exception:  # noqa: BLE001 - the job's own failure is what is reported; the next load tries again
            log.exception("unloading the model after a failed job failed")

    def _needs_load(self, model: str) -> bool:
        """Whether a job on ``model`` loads it first: another model is loaded, or its files changed since it was
        (rewritten, replaced, put back: the service loads it again, and the panel is told). True when that cannot
        be told (the service not started yet, the model unreadable): the load then says why."""
        if self._loaded != model or self._service is None:
            return True
        try:
            return not self._service.is_loaded(model)
        except Exception:  # noqa: BLE001 - loading it reports the problem
            return True

    def _describe_after_job(self, model: str) -> None:
        """The model's facts as the job left them: its LoRAs can change the execution path and the memory plan."""
        try:
            self.model_described.emit(self._ensure_service().describe(model))
        except Exception:  # the images are saved; a stale model panel is not worth a failed job
            log.exception("describing %s after a job failed", model)

    def _on_progress(self, job: Job, event: Any) -> None:
        preview = None
        if event.preview is not None:  # every ``preview_every`` steps (the engine makes them: ``generate``)
            try:
                preview = pil_to_qimage(event.preview)
            except Exception:  # a preview is a nicety; never fail a job over it
                preview = None
        self.progress.emit(JobProgress(job.id, event.image_index, event.image_count, event.step,
                                       event.total_steps, event.elapsed_s, event.eta_s, preview))

    def _save(self, generated: Any, index: int) -> SavedImage:
        """The PNG is written (atomically, under a name no other file has: ``save_new_image``) here, before the GUI
        thread commits its database row under the name written."""
        from gpu.generation.png_metadata import encode_png

        settings = dict(generated.settings)
        settings.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
        path = new_image_path(self._data, int(settings.get("seed", 0)), index)
        started = time.perf_counter()
        try:
            # A plain write into the scratch file, which save_new_image makes durable and publishes; its errors
            # name the image (write_png there wrote into a scratch folder of its own, and named its temp file)
            written = save_new_image(self._data, path, lambda tmp: encode_png(tmp, generated.image, settings))
        except (OSError, OutputError) as exc:  # another error (a bug in the PNG's encoding) is reported as one
            if not is_disk_full(exc):
                raise image_not_saved(path, exc) from exc
            # Said plainly, naming the PNG the user expects (a failed write names no file, or the temp file).
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from exc
        made = settings.get("duration_s")
        seconds = made + time.perf_counter() - started if isinstance(made, (int, float)) else None
        try:
            image = pil_to_qimage(generated.image)
        except Exception:  # only the progress area's picture: the PNG is saved
            log.exception("showing the finished image failed")
            image = None
        return SavedImage(written, settings, image, seconds)


class EngineThread:
    """Owns the QThread and the worker; ``stop()`` waits for the current step so nothing is half-written."""

    def __init__(self, data: DataDir) -> None:
        self._data = data
        self.thread = QThread()
        self.thread.setObjectName("engine")
        self.worker = EngineWorker(data)
        self.worker.moveToThread(self.thread)
        self.thread.start()

    def add_model(self, path: str) -> None:
        """Notes ``path`` as an add the engine owes (``OwedChanges``); the caller queues the call itself."""
        self.worker.owed.put(ADD, path)

    def remove_model(self, name: str, path: Path | None = None) -> None:
        """Notes ``name`` (listed at ``path``) as a removal the engine owes (``OwedChanges``); the caller queues the
        call itself."""
        self.worker.owed.put(REMOVE, name, "" if path is None else str(path))

    def stop(self, current: Job | None = None) -> bool:
        """Stops the thread (``stop_thread``), then makes here the library changes it was asked for and never got
        to (``make_changes_now``): the calls still queued to it are dropped with its event loop, and the panel said
        the model is added, or is being removed."""
        if current is not None:
            current.cancel.set()
        stopped = stop_thread(self.thread, self.worker, starting=not self.worker.start_up_done.is_set())
        make_changes_now(self._data, self.worker.owed)
        return stopped


def request_with(request: Any, **changes: Any) -> Any:
    return replace(request, **changes)


__all__ = ["EngineError", "EngineThread", "EngineWorker", "Job", "JobProgress", "SavedImage"]
