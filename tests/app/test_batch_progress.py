"""A batch (images per job > 1) on the real window: its progress bar and ETA run over the whole job, not over each
image; and Cancel all (Shift+Esc) after some of its images were saved says they are kept, as Esc does."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from PIL import Image
from PySide6.QtCore import Qt

from app.data_dir import DataDir, resolve_data_dir
from app.engine_worker import EngineWorker, Job, JobProgress, SavedImage
from gpu.generation.png_metadata import write_png
from tests.app.gui import window_without_engine


def test_the_bar_and_the_eta_are_the_whole_batchs(qtbot, data_root):
    """The bar restarted at each image of a batch, and the ETA was the current image's: at image 1 of 4 the
    status said 0:12 left for a job with a minute to go."""
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    controller, bar = window.controller, window.prompt_panel.progress
    controller.prompt.prompt, controller.prompt.batch_count = "a red circle", 4
    job = Job(controller.prompt.build_request())  # as queued, not handed to the (unstarted) engine
    controller.queue._jobs[job.id] = job
    controller.queue.on_started(job.id, 4, False)
    # image 1, a quarter done in 4 s: 12 s to its end, then 3 images of about 16 s each
    controller.queue.on_progress(JobProgress(job.id, 0, 4, 4, 16, 4.0, 12.0, None))
    assert controller.job.status == "image 1/4, step 4/16, ETA 1:00"  # was: ETA 0:12
    assert (bar.value(), bar.maximum()) == (4, 64)  # was: (4, 16)
    controller.queue.on_progress(JobProgress(job.id, 0, 4, 16, 16, 16.0, 0.0, None))  # denoised in 16 s
    assert controller.job.status == "image 1/4, step 16/16, ETA 0:48"
    settings = {"prompt": "a red circle", "seed": 1}
    path = write_png(controller.data.images / "d" / "1.png", Image.new("RGB", (8, 8)), settings)
    controller.queue.on_image_saved(job.id, SavedImage(path, settings, seconds=20.0))  # decoded and saved: 20 s in all
    controller.queue.on_progress(JobProgress(job.id, 1, 4, 3, 16, 3.0, 13.0, None))
    # the images left are counted at the time image 1 took end to end, the current one as the engine says
    assert controller.job.status == "image 2/4, step 3/16, ETA 0:53"  # was: 0:45, its denoising alone
    assert (bar.value(), bar.maximum()) == (19, 64)  # was: (3, 16), the bar back near its start
    controller.queue._job_done(job.id, "Cancelled")


def test_a_saved_image_says_how_long_it_took_end_to_end(qapp, tmp_path):
    """The engine's time for an image (denoised and decoded: ``duration_s``), and its saving, go with it to the
    ETA: the denoising alone (the steps' ``elapsed_s``) left the rest out of the time each image left takes."""
    worker = EngineWorker(DataDir(tmp_path / "data").create())
    saved = worker._save(SimpleNamespace(image=Image.new("RGB", (8, 8)), settings={"seed": 3, "duration_s": 12.5}), 0)
    assert saved.seconds is not None and saved.seconds >= 12.5  # its saving on top
    assert worker._save(SimpleNamespace(image=Image.new("RGB", (8, 8)), settings={"seed": 3}), 1).seconds is None


def test_cancel_all_after_a_batch_saved_an_image_says_it_is_kept(qtbot, window):
    """Shift+Esc during a batch's second image: the job ended "Cancelled; kept the image already made", then the job
    queued behind it, cancelled with it, ended and replaced that by a bare "Cancelled"."""
    controller, bar = window.controller, window.prompt_panel.progress
    controller.prompt.prompt, controller.prompt.batch_count, controller.prompt.steps = "a red square", 3, 4
    at_second, go = threading.Event(), threading.Event()

    def hold(progress: JobProgress) -> None:  # in the engine's thread: the batch waits at its second image
        if progress.image_index == 1 and not at_second.is_set():
            at_second.set()
            go.wait(60)

    bars: list[tuple[int, int]] = []
    controller.job.step_changed.connect(lambda step: step and bars.append((bar.value(), bar.maximum())))
    controller._engine.worker.progress.connect(hold, Qt.ConnectionType.DirectConnection)
    try:
        controller.generate()
        controller.prompt.batch_count = 1
        controller.generate()  # queued behind the batch
        qtbot.waitUntil(lambda: at_second.is_set() and controller.gallery.rowCount() == 1, timeout=120000)
        qtbot.keyClick(window, Qt.Key.Key_Escape, Qt.KeyboardModifier.ShiftModifier)
        assert controller.job.status == "Cancelling all 2 jobs…"
    finally:
        go.set()
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
    assert controller.job.status == "Cancelled; kept the image already made"  # was: "Cancelled"
    assert controller.gallery.rowCount() == 1
    assert bars[:5] == [(1, 12), (2, 12), (3, 12), (4, 12), (5, 12)], bars  # was: back to 1 of 4 at image 2
