"""The jobs sent to the engine and what the status line says of them: each job queued, its progress (step, image of
a batch, ETA over the whole job) and its end (done, cancelled or failed, with the images a batch kept); Cancel
(Esc) and Cancel all (Shift+Esc); each finished image added to the gallery as soon as it is saved."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.data_dir import DataDir
from app.engine_errors import EngineError, database_error
from app.engine_worker import EngineWorker, Job, JobProgress, SavedImage
from app.gallery_model import GalleryModel
from app.generation_state import JobState, QueueCount
from app.image_files import relative
from app.lora_cost import cost_sentence
from app.lora_entry import LoraEntry
from app.lora_state import LoraState
from app.store import ImageRecord
from app.wording import counted, were
from gpu.generation.request import GenerationRequest

log = logging.getLogger(__name__)

# Esc once the last step is done: the engine only decodes and saves then, and the image comes anyway.
TOO_LATE = "Too late to cancel: the image is being finished"

# A job held back by a quantize run on the GPU (app.engine_worker.QuantizeRuns), which it starts after by itself.
QUANTIZE_WAIT = ("Waiting for the quantize run to end: the GPU cannot hold the run and the image model at once. "
                 "Stop the run in the Quantize wizard to start now, or press Esc to drop this job")  # fmt: skip


class JobQueue(QObject):
    """The jobs sent to the engine that have not ended, in the order it runs them (ids rising), shown in
    ``state`` (``JobState``: busy, progress, preview, status line). The engine's answers come in by the ``on_*``
    slots the controller connects to the worker's signals: a QObject, so that they are delivered on the thread it
    lives on (its parent's, the Qt thread), not on the engine's."""

    ended = Signal()  # a job ended (done, cancelled or failed): what was asked of the engine after it is nearer

    def __init__(self, state: JobState, gallery: GalleryModel, loras: LoraState, data: DataDir, database: Path,
                 worker: EngineWorker, submit: Callable[[Job], None], start_waiting: Callable[[], None],
                 say: Callable[[EngineError], None], finished: Callable[[list[ImageRecord]], None],
                 parent: QObject | None = None) -> None:  # fmt: skip
        """``worker``: read for the jobs it has ended (``ended_through``); ``submit`` sends it a job and
        ``start_waiting`` ends the wait of jobs held back by a quantize run (the controller's queued signals);
        ``say`` shows an error, ``finished`` gives the gallery records of a job that ended done; ``database``: the
        gallery database's path, named when it refuses an image."""
        super().__init__(parent)
        self._state = state
        self._gallery = gallery
        self._loras = loras
        self._data = data
        self._database = database
        self._worker = worker
        self._submit = submit
        self._start_waiting = start_waiting
        self._say = say
        self._finished = finished
        self._jobs: dict[int, Job] = {}
        self._finishing = 0  # the job whose last image's denoising is done (decode and save left), 0 for none
        self._kept: dict[int, list[ImageRecord]] = {}  # per job: its images in the gallery so far
        self._unlisted: set[int] = set()  # jobs with an image the gallery could not take (said once per job)
        self._job_line = ""  # the running job's status, before the count of the jobs queued behind it
        # How long each finished image of the running job took, end to end (denoised, decoded and saved)
        self._image_seconds: list[float] = []
        # The jobs the last Cancel all stopped that have not ended, and what the first of them to end said ("Done: 2
        # images; the queued job was cancelled", "Cancelled; kept the image already made"): said again as the
        # others end, unrun, after it ("" until it ended)
        self._stopped_together: set[int] = set()
        self._together_said = ""
        self._store_closed = False  # ``close``: what the engine still sends is not written

    @property
    def idle(self) -> bool:
        """Whether no job is queued or running."""
        return not self._jobs

    @property
    def unfinished(self) -> list[Job]:
        """The jobs a quit would cut short, in their order: queued or running, not cancelled, and not one past its
        last step (its image is decoded and saved all the same)."""
        return [job for job in self._jobs.values() if not job.cancel.is_set() and job.id != self._finishing]

    def place(self) -> int:
        """Where a request sent to the engine now waits in its queue: behind the last job queued (its id; 0 when
        none is), which ``jobs_before`` counts down as the jobs end."""
        return max(self._jobs, default=0)

    def jobs_before(self, place: int) -> int:
        """How many of the jobs a request sent at ``place`` (``place``) waits behind are still to run: those queued
        up to it that are not cancelled, the one decoding and saving its last image too (not ``unfinished``: a quit
        does not cut it short, but the engine finishes it first); none queued after it, which the engine runs after
        it."""
        return sum(job.id <= place and not job.cancel.is_set() for job in self._jobs.values())

    def job(self, job_id: int) -> Job | None:
        """The job ``job_id`` if it has not ended."""
        return self._jobs.get(job_id)

    def add(self, request: GenerationRequest) -> Job:
        """A job for ``request``, counted as queued; ``submit`` sends it."""
        job = Job(request)
        self._jobs[job.id] = job
        return job

    def submit(self, job: Job) -> None:
        """Sends ``job`` (``add``) to the engine; the status line says it waits, or keeps the running job's step."""
        queue, images = self._state.queue, job.request.batch_count
        if len(self._jobs) == 1:  # the queue was idle: the title's percent counts from here
            self._state.clear_steps()
            self._state.queue = QueueCount(images=images)
        else:
            self._state.queue = replace(queue, images=queue.images + images)
        self._state.busy = True
        # Behind a running job: its step and ETA stay, with the queue's length after them.
        self._show_job("Waiting for the engine…" if len(self._jobs) == 1 else self._job_line)
        self._submit(job)

    def stop(self) -> None:
        """The app quits: every job is cancelled, without a word."""
        for job in self._jobs.values():
            job.cancel.set()

    def close(self) -> None:
        """The gallery's database is closed: an image the engine still saves is left to the next start's check."""
        self._store_closed = True

    def fail(self, job_id: int) -> None:
        """Job ``job_id`` failed; the error is said by the caller."""
        self._job_done(job_id, "Failed" + self._kept_sentence(job_id))

    def cancel(self) -> None:
        """Cancel (Esc): the running job stops at its next denoising step and the jobs queued behind it go on,
        as in ComfyUI, Forge or Krita's AI plugin (it cancelled the whole queue); ``cancel_all`` stops them too."""
        running = self._running_job()
        if running is None or running.cancel.is_set():
            return  # a second Esc while it stops: not a reason to cancel the next job
        running.cancel.set()
        self._start_waiting()  # held back by a quantize run: ends now, not when the run does
        # After the last image's last step the engine only decodes and saves: Esc then said "Cancelling…" and
        # the image came all the same ("Done"), the key seemingly ignored.
        last = self._finishing == running.id
        self._job_line = TOO_LATE if last else "Cancelling…"
        waiting = self._waiting()
        self._state.status = (f"{self._job_line}; {self._go_on(waiting)} (Shift+Esc cancels "
                              f"{'it' if waiting == 1 else 'them'} too)") if waiting else self._job_line  # fmt: skip

    def cancel_all(self) -> None:
        """Cancel all (Shift+Esc): the running job stops at its next step, and the queued ones never start. After
        the running job's last step, it is finished all the same, and said so, as after Esc."""
        jobs = [job for job in self._jobs.values() if not job.cancel.is_set()]
        if not jobs:
            return
        for job in jobs:
            job.cancel.set()
        self._stopped_together, self._together_said = set(self._jobs), ""
        self._start_waiting()
        queued = len(self._jobs) - 1
        too_late = self._finishing in self._jobs  # the first one: decoding and saving its last image, or ended
        # The running job's line, as Esc sets it: a Generate before it ends showed its step and ETA from before.
        self._job_line = TOO_LATE if too_late else "Cancelling…"
        if too_late:
            self._state.status = TOO_LATE + (
                f"; {_the_queued(queued)} {'is' if queued == 1 else 'are'} cancelled" if queued else "")  # fmt: skip
        else:
            self._state.status = "Cancelling…" if not queued else f"Cancelling all {len(self._jobs)} jobs…"

    def _running_job(self) -> Job | None:
        """The job the engine runs (or starts next). Jobs run in the order they were queued (ids rising), but the
        first one listed may have ended already, its signal not yet here while the engine runs the next: Esc then
        hit the ended job, and the next ran on."""
        ended = self._worker.ended_through
        return next((job for job in self._jobs.values() if job.id > ended), None)

    def _waiting(self) -> int:
        """How many jobs wait behind the running one and will still run (not cancelled)."""
        running = self._running_job()
        return sum(not job.cancel.is_set() for job in self._jobs.values() if running and job.id > running.id)

    def _show_job(self, line: str) -> None:
        """``line`` for the running job, and how many jobs wait behind it: a new Generate replaced the running
        job's step and ETA with "Queued (2)" until its next step."""
        self._job_line = line
        waiting = self._waiting()
        self._state.status = f"{line}; {waiting} more queued" if waiting else line

    @staticmethod
    def _go_on(waiting: int) -> str:
        """'1 queued job goes on', '2 queued jobs go on'."""
        return f"{counted(waiting, 'queued job')} {'goes' if waiting == 1 else 'go'} on"

    def on_started(self, job_id: int, _count: int, loads: bool) -> None:
        """The engine started job ``job_id`` (``loads``: it loads its model first)."""
        self._state.step = 0
        self._image_seconds = []
        # Until its first preview: the last job's image stayed, read as this one's while its steps counted up.
        self._state.set_preview(None)
        job = self._jobs.get(job_id)
        # Said only when the engine loads it: "Loading demo…" at every job's start, with the model loaded, read
        # as if each job reloaded it.
        self._show_job(f"Loading {job.request.model}…" if job is not None and loads else "Starting…")

    def on_waiting(self, job_id: int) -> None:
        """Job ``job_id`` waits for a quantize run to end before it starts (the engine runs one job at a time: none
        runs now, and the one queued before it, ended, left its step and total, read as this one's for the run's
        hour)."""
        self._state.clear_steps()
        job = self._jobs.get(job_id)
        if job is not None and not job.cancel.is_set():  # a cancelled one says "Cancelling…" till it ends
            self._show_job(QUANTIZE_WAIT)

    def on_progress(self, progress: JobProgress) -> None:
        """A denoising step of a job done: the bar, the status line's step and ETA, and the preview."""
        if progress.job_id not in self._jobs:
            return
        image_done = progress.step == progress.total_steps
        at_end = progress.image_index + 1 == progress.image_count and image_done
        self._finishing = progress.job_id if at_end else 0
        self._state.queue = replace(self._state.queue, running=progress.image_count)
        # The bar runs over the whole batch: it went back to its start at each image.
        self._state.total_steps = progress.total_steps * progress.image_count
        self._state.step = progress.image_index * progress.total_steps + progress.step
        eta = self._batch_eta(progress)
        if self._jobs[progress.job_id].cancel.is_set():
            return
        image = f"image {progress.image_index + 1}/{progress.image_count}, " if progress.image_count > 1 else ""
        self._show_job(f"{image}step {progress.step}/{progress.total_steps}, ETA {_eta_text(eta)}")
        if progress.preview is not None:
            self._state.set_preview(progress.preview)

    def _batch_eta(self, progress: JobProgress) -> float:
        """Seconds left in the whole job: the engine's for the current image, and the images after it at the mean
        time the finished ones took end to end, decoded and saved too (the current one's projected denoising while
        none has finished). The current image's alone said 0:12 left at the first of 4 images, for a job with a
        minute to go; the denoising alone left out each image's decoding and saving."""
        left = progress.image_count - progress.image_index - 1
        if not left:
            return progress.eta_s
        finished = self._image_seconds
        per_image = sum(finished) / len(finished) if finished else progress.elapsed_s + progress.eta_s
        return progress.eta_s + left * per_image

    def on_image_saved(self, job_id: int, saved: SavedImage) -> None:
        """One image of a job is on disk: into the gallery now, so a batch stopped later keeps it in view."""
        if saved.image is not None:
            self._state.set_preview(saved.image)  # the finished picture, not the last step's rough preview
        if saved.seconds is not None:  # for the ETA of the images left (_batch_eta)
            self._image_seconds.append(saved.seconds)
        if job_id in self._unlisted:
            return
        if self._store_closed:  # an engine busy past the stop's wait: the next start's check imports the file
            log.info("%s was saved after the database was closed; it is added to the gallery at the next start",
                     saved.path)
            return
        try:
            record = self._gallery.add(relative(self._data, saved.path), saved.settings)
        except Exception as exc:  # the PNG is on disk; the job goes on, and the user learns why once
            log.exception("adding a finished image to the gallery failed")
            self._unlisted.add(job_id)
            self._say(database_error(exc, self._database, self._data.images))
            return
        self._kept.setdefault(job_id, []).append(record)
        self._loras.cost_changed.emit(cost_sentence(saved.settings))

    def on_finished(self, job_id: int) -> None:
        """Job ``job_id`` made all its images: its records go to ``finished``, unless the gallery refused one."""
        records = self._kept.pop(job_id, [])
        if job_id in self._unlisted:
            self._unlisted.discard(job_id)
            self._job_done(job_id, "Images saved, but not added to the gallery")
            return
        self._job_done(job_id, f"Done: {counted(len(records), 'image')}")
        self._finished(records)

    def on_cancelled(self, job_id: int) -> None:
        """Job ``job_id`` stopped at a cancel, keeping the images it made before."""
        self._job_done(job_id, "Cancelled" + self._kept_sentence(job_id), cancelled=True)

    def _kept_sentence(self, job_id: int) -> str:
        """'; kept the 2 images already made' for a batch cut short after some of its images ('' if none)."""
        self._unlisted.discard(job_id)
        kept = len(self._kept.pop(job_id, []))
        if not kept:
            return ""
        return "; kept the image already made" if kept == 1 else f"; kept the {kept} images already made"

    def _job_done(self, job_id: int, status: str, cancelled: bool = False) -> None:
        """Job ``job_id`` ended, as ``status`` says (``cancelled``: by a cancel)."""
        status = self._said_together(job_id, status, cancelled)
        if (job := self._jobs.pop(job_id, None)) is not None:  # counted whole, not by the steps the bar keeps
            queue = self._state.queue
            self._state.queue = replace(queue, ended=queue.ended + job.request.batch_count, running=0)
        self._state.busy = bool(self._jobs)
        # Jobs cancelled with it (Cancel all) are not said to go on: they end at once, unrun.
        waiting = sum(not job.cancel.is_set() for job in self._jobs.values())
        self._state.status = f"{status}; {self._go_on(waiting)}" if waiting else status
        self._job_line = "Waiting for the engine…"  # until the next job starts
        self.ended.emit()

    def _said_together(self, job_id: int, status: str, cancelled: bool) -> str:
        """What a job the last Cancel all stopped says as it ends (``status``, ``cancelled``: its own end). The
        jobs it stopped unrun end after the one that ran, each with a bare "Cancelled" that took the place of how
        that one ended: the images it kept, that it was done (past its last step) or failed. The first of them to
        end says how it ended, and that the queued ones were cancelled (unless it was cancelled itself: its
        "Cancelled" says it); the others say the same."""
        if job_id not in self._stopped_together:
            return status
        self._stopped_together.discard(job_id)
        if not self._together_said:
            queued = len(self._stopped_together)
            if queued and not cancelled:
                status += f"; {_the_queued(queued)} {were(queued)} cancelled"
            self._together_said = status
        return self._together_said


def _eta_text(seconds: float) -> str:
    """``seconds`` as the status line's ETA: "1:05"."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _the_queued(n: int) -> str:
    """'the queued job', 'the 2 queued jobs'."""
    return "the queued job" if n == 1 else f"the {n} queued jobs"


def unusable_loras_error(entries: list[LoraEntry]) -> EngineError:
    """Why Generate queued no job: the LoRA rows ``entries`` (``LoraEntry``), switched on, whose files no job
    could apply (``LoraState.unusable``), each named with its problem, or with why the selected model cannot take
    it (``LoraEntry.misfit``, which its row shows too)."""
    one = len(entries) == 1

    def why(e: LoraEntry) -> str:
        if e.missing:
            return f"{e.path} is missing"
        if e.problem:
            return f"{e.path}{' cannot be used' if one else ''}: {e.problem}"
        return f"{e.path} {e.misfit}"

    said = [why(e) for e in entries]
    message = (f"The LoRA file {said[0]}. It is switched on, so no image was made." if one else
               f"{len(entries)} LoRA files that are switched on cannot be used, so no image was made: "
               f"{'; '.join(said)}.")  # fmt: skip
    them, file = ("it", "the file") if one else ("them", "the files")
    misfits = sum(not e.problem for e in entries)  # the others' files are gone or no usable LoRA
    back = (f"put {file} back (or reconnect {'its' if one else 'their'} drive)" if all(e.missing for e in entries)
            else f"select a model {'it was' if one else 'they were'} made for" if misfits == len(entries)
            else "put a usable FLUX.1 LoRA back at that path" if one
            else "put usable FLUX.1 LoRAs back at those paths" + (", or select a model they were made for"
                                                                  if misfits else ""))  # fmt: skip
    return EngineError("user", message, f"Switch {them} off or remove {them} in the LoRA panel, or {back}, then "
                       "click Generate again.")  # fmt: skip
