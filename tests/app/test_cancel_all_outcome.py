"""Cancel all (Shift+Esc) when the running job does not end cancelled: it was past its last step (it is finished
all the same) or it failed. The queued jobs the same Cancel all stopped end after it, unrun, and each said a bare
"Cancelled" that took the place of "Done: 2 images" or "Failed; kept the image already made". They now keep the
first job's outcome, with the queued jobs said to be cancelled. The real window, the engine not started: the
engine's signals are played to the controller in the order the engine sends them."""

from __future__ import annotations

from PIL import Image

from app.data_dir import DataDir
from app.engine_errors import EngineError
from app.engine_worker import Job, JobProgress, SavedImage
from gpu.generation.png_metadata import write_png
from tests.app.gui import window_without_engine


def _batch_running(qtbot, tmp_path, queued: int) -> tuple:
    """(window, data folder, a batch of 2 images running with its first saved, the ``queued`` jobs behind it),
    queued as Generate queues them (not handed to the engine, which is not started)."""
    data = DataDir(tmp_path / "data").create()
    window = window_without_engine(qtbot, data)
    controller = window.controller
    controller.prompt.prompt = "a red circle"
    jobs = []
    for count in (2, *[1] * queued):
        controller.prompt.batch_count = count
        job = Job(controller.prompt.build_request())
        controller.queue._jobs[job.id] = job
        jobs.append(job)
    controller.job.busy = True
    controller.queue.on_started(jobs[0].id, 2, False)
    _saved(controller, data, jobs[0], 0)
    return window, data, jobs[0], jobs[1:]


def _saved(controller, data: DataDir, job: Job, index: int) -> None:
    """Image ``index`` of ``job`` written and told, as the engine's image_saved does."""
    settings = {"prompt": "a red circle", "seed": 7 + index}
    path = write_png(data.images / "d" / f"{job.id}-{index}.png", Image.new("RGB", (8, 8)), settings)
    controller.queue.on_image_saved(job.id, SavedImage(path, settings))


def test_cancel_all_past_the_last_step_keeps_done_with_the_queued_jobs_cancelled(qtbot, tmp_path):
    window, data, batch, queued = _batch_running(qtbot, tmp_path, 2)
    controller = window.controller
    controller.queue.on_progress(JobProgress(batch.id, 1, 2, 4, 4, 4.0, 0.0, None))  # its last step: decoding, saving
    window.cancel_all_action.trigger()  # Shift+Esc
    # as Esc says then (was: "Cancelling all 3 jobs…", and the image came all the same)
    assert controller.job.status == "Too late to cancel: the image is being finished; the 2 queued jobs are cancelled"
    _saved(controller, data, batch, 1)
    controller.queue.on_finished(batch.id)
    said = "Done: 2 images; the 2 queued jobs were cancelled"
    assert controller.job.status == said
    for job in queued:  # ended unrun, after it
        controller.queue.on_cancelled(job.id)
        assert controller.job.status == said  # was: "Cancelled"
    assert not controller.job.busy and controller.gallery.rowCount() == 2


def test_cancel_all_when_the_running_job_fails_keeps_failed(qtbot, tmp_path):
    window, _data, batch, [queued] = _batch_running(qtbot, tmp_path, 1)
    controller = window.controller
    controller.queue.on_progress(JobProgress(batch.id, 1, 2, 2, 4, 2.0, 2.0, None))
    controller.cancel_all()
    assert controller.job.status == "Cancelling all 2 jobs…"
    controller._on_failed(batch.id, EngineError("internal", "the GPU fell off the bus"))  # before its next step
    said = "Failed; kept the image already made; the queued job was cancelled"
    assert controller.job.status == said
    controller.queue.on_cancelled(queued.id)
    assert controller.job.status == said  # was: "Cancelled"


def test_cancel_all_of_a_cancelled_batch_still_says_what_it_kept(qtbot, tmp_path):
    window, _data, batch, [queued] = _batch_running(qtbot, tmp_path, 1)
    controller = window.controller
    controller.cancel_all()
    controller.queue.on_cancelled(batch.id)
    controller.queue.on_cancelled(queued.id)
    assert controller.job.status == "Cancelled; kept the image already made"  # its own "Cancelled" says it all
    assert not controller.queue._stopped_together
