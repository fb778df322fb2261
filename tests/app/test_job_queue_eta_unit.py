"""A unit test of the job queue's arithmetic (``app.job_queue.JobQueue``): the bar and the ETA of a batch, on
figures chosen so that each sum can be checked by hand. No window and no engine: the queue is built from the
objects it is given in the app (its job state, gallery, LoRA state, data folder, an engine worker not started), and
its slots are called as the engine's signals call them. The same on the real window and engine, with the engine's
own figures: test_batch_progress.py, test_the_bar_and_the_eta_are_the_whole_batchs."""

from __future__ import annotations

from PIL import Image

from app.data_dir import DataDir
from app.engine_worker import EngineWorker, JobProgress, SavedImage
from app.gallery_model import GalleryModel
from app.generation_state import JobState, QueueCount
from app.job_queue import QUANTIZE_WAIT, JobQueue
from app.lora_state import LoraState
from app.store import Store
from gpu.generation.png_metadata import write_png
from gpu.generation.request import GenerationRequest


def _queue(tmp_path) -> tuple[DataDir, Store, JobState, JobQueue]:
    """A data folder, its gallery database (closed by the caller), and the job queue over them with its state."""
    data = DataDir(tmp_path / "data").create()
    store = Store(data.database)
    state = JobState()
    queue = JobQueue(state, GalleryModel(store, data), LoraState(), data, data.database, EngineWorker(data),
                     submit=lambda job: None, start_waiting=lambda: None, say=lambda error: None,
                     finished=lambda records: None)  # fmt: skip
    return data, store, state, queue


def test_unit_the_eta_counts_the_images_left_at_the_time_the_finished_ones_took_end_to_end(qapp, tmp_path):
    """At image 1 of 4 the status said 0:12 left (the current image's) for a job with a minute to go, the bar ran
    to 16 of 16 and back, and after an image was saved the images left were counted at its denoising alone."""
    data, store, state, queue = _queue(tmp_path)
    job = queue.add(GenerationRequest("a red circle", batch_count=4))
    try:
        queue.on_started(job.id, 4, False)
        # image 1, a quarter done in 4 s: 12 s to its end, then 3 images of about 16 s each
        queue.on_progress(JobProgress(job.id, 0, 4, 4, 16, 4.0, 12.0, None))
        assert state.status == "image 1/4, step 4/16, ETA 1:00"  # was: ETA 0:12
        assert (state.step, state.total_steps) == (4, 64)  # was: (4, 16)
        queue.on_progress(JobProgress(job.id, 0, 4, 16, 16, 16.0, 0.0, None))  # denoised in 16 s
        assert state.status == "image 1/4, step 16/16, ETA 0:48"
        settings = {"prompt": "a red circle", "seed": 1}
        path = write_png(data.images / "d" / "1.png", Image.new("RGB", (8, 8)), settings)
        queue.on_image_saved(job.id, SavedImage(path, settings, seconds=20.0))  # decoded and saved: 20 s in all
        queue.on_progress(JobProgress(job.id, 1, 4, 3, 16, 3.0, 13.0, None))
        # the images left are counted at the time image 1 took end to end, the current one as the engine says
        assert state.status == "image 2/4, step 3/16, ETA 0:53"  # was: 0:45, its denoising alone
        assert (state.step, state.total_steps) == (19, 64)  # was: (3, 16), the bar back near its start
        path = write_png(data.images / "d" / "2.png", Image.new("RGB", (8, 8)), settings)
        queue.on_image_saved(job.id, SavedImage(path, settings, seconds=30.0))
        queue.on_progress(JobProgress(job.id, 2, 4, 8, 16, 8.0, 8.0, None))
        assert state.status == "image 3/4, step 8/16, ETA 0:33"  # 8 s, then one image at the mean of 20 and 30 s
        queue.on_progress(JobProgress(job.id, 3, 4, 8, 16, 8.0, 8.0, None))
        assert state.status == "image 4/4, step 8/16, ETA 0:08"  # the last image: its own time left only
        assert (state.step, state.total_steps) == (56, 64)
    finally:
        store.close()


def test_unit_a_job_waiting_for_a_quantize_run_behind_an_ended_one_shows_not_its_100_percent(qapp, tmp_path):
    """The job queued behind a finished one waits for a quantize run (an hour): the title and the bar said the ended
    job's 100% all along (``JobState.percent``). (R48)"""
    _data, store, state, queue = _queue(tmp_path)
    try:
        first = queue.add(GenerationRequest("a red circle"))
        queue.submit(first)
        queue.on_started(first.id, 1, False)
        queue.on_progress(JobProgress(first.id, 0, 1, 8, 8, 8.0, 0.0, None))
        assert state.percent() == 100
        second = queue.add(GenerationRequest("a red circle"))
        queue.submit(second)  # behind the running job: its bar stays; the percent counts the queued job too
        assert (state.step, state.total_steps) == (8, 8) and state.percent() == 50
        queue.on_finished(first.id)
        queue.on_waiting(second.id)  # a quantize run took the GPU
        assert state.status == QUANTIZE_WAIT and (state.step, state.total_steps) == (0, 0)
        assert state.percent() == 50  # the ended job's image of the two queued: not its 100%
    finally:
        store.close()


def test_unit_the_percent_runs_over_every_job_queued_since_the_queue_was_idle(qapp, tmp_path):
    """Jobs queued behind each other showed "[100%]" at the end of each, and counted again from nothing at the next:
    the percent now runs over the images of all the jobs queued since the queue was last idle, the ended ones counted
    whole (a cancelled or failed one too), the running one by its steps."""
    _data, store, state, queue = _queue(tmp_path)
    try:
        first = queue.add(GenerationRequest("a red circle"))
        queue.submit(first)
        second = queue.add(GenerationRequest("a red circle", batch_count=2))
        queue.submit(second)
        assert state.percent() is None  # nothing done yet
        queue.on_started(first.id, 1, False)
        queue.on_progress(JobProgress(first.id, 0, 1, 2, 4, 2.0, 2.0, None))
        assert state.percent() == 16  # half of 1 image of 3; was: 50
        queue.on_progress(JobProgress(first.id, 0, 1, 4, 4, 4.0, 0.0, None))
        assert state.percent() == 33  # was: 100
        queue.on_finished(first.id)
        queue.on_started(second.id, 2, False)
        assert state.percent() == 33  # between the jobs: the ended one, not nothing
        queue.on_progress(JobProgress(second.id, 1, 2, 2, 4, 6.0, 2.0, None))  # image 2, step 2 of 4
        assert state.percent() == 83  # 1 + 2 * 6/8 of 3 images; was: 75, the second job's alone
        third = queue.add(GenerationRequest("a red circle"))
        queue.submit(third)  # queued behind: more to do
        assert state.percent() == 62
        queue.on_cancelled(second.id)
        queue.fail(third.id)  # ended unrun: counted whole
        assert not state.busy and state.percent() is None
        again = queue.add(GenerationRequest("a red circle"))
        queue.submit(again)  # from an idle queue: counted from nothing
        assert state.percent() is None and state.queue == QueueCount(images=1)
    finally:
        store.close()
