"""A batch (images per job > 1) on the real window: its progress bar and ETA run over the whole job, not over each
image; and Cancel all (Shift+Esc) after some of its images were saved says they are kept, as Esc does."""

from __future__ import annotations

import re
import threading
import time
from types import SimpleNamespace

from PIL import Image
from PySide6.QtCore import QObject, Qt, Slot

from app.data_dir import DataDir
from app.engine_worker import EngineWorker, JobProgress, SavedImage
from tests.app.gui import TEST_STEPS


class _Shown(QObject):
    """What the window showed (the bar, the status line) after each of the engine's steps, noted on the Qt thread
    with the step (``JobProgress``) and the end-to-end times (``SavedImage.seconds``) of the images saved before it.
    Connected after the job queue, on the same thread: each signal comes here right after the queue took it."""

    def __init__(self, window) -> None:
        super().__init__()
        self._job, self._bar = window.controller.job, window.prompt_panel.progress
        self.steps: list[tuple[JobProgress, list[float], str, int, int]] = []
        self.seconds: list[float] = []
        worker = window.controller._engine.worker
        worker.progress.connect(self.on_progress)
        worker.image_saved.connect(self.on_image_saved)

    @Slot(object)
    def on_progress(self, progress: JobProgress) -> None:
        self.steps.append((progress, list(self.seconds), self._job.status, self._bar.value(), self._bar.maximum()))

    @Slot(int, object)
    def on_image_saved(self, _job_id: int, saved: SavedImage) -> None:
        self.seconds.append(saved.seconds)


def test_the_bar_and_the_eta_are_the_whole_batchs(qtbot, window):
    """The bar restarted at each image of a batch, and the ETA was the current image's: at image 1 of 4 the
    status said 0:12 left for a job with a minute to go; then the images left were counted at the first one's
    denoising, its decoding and saving left out. A batch of 3 on the real engine, its first image held for a second
    after its last step (as a slow decode): each step's bar and ETA checked against the engine's own figures.
    (The ETA's arithmetic on chosen figures: test_job_queue_eta_unit.py.)"""
    controller = window.controller
    state, count, steps = controller.prompt, 3, TEST_STEPS
    state.prompt, state.width, state.height, state.steps, state.batch_count = "a red circle", 64, 64, steps, count

    def slow_decode(progress: JobProgress) -> None:  # on the engine's thread: in the first image's time end to end
        if progress.image_index == 0 and progress.step == steps:
            time.sleep(1.0)

    controller._engine.worker.progress.connect(slow_decode, Qt.ConnectionType.DirectConnection)
    shown = _Shown(window)
    try:
        controller.generate()
        qtbot.waitUntil(lambda: not controller.job.busy, timeout=120000)
    finally:
        controller._engine.worker.progress.disconnect(slow_decode)
    assert controller.job.status == "Done: 3 images" and controller.gallery.rowCount() == count
    assert [(p.image_index, p.step) for p, *_ in shown.steps] == [
        (i, s) for i in range(count) for s in range(1, steps + 1)]  # fmt: skip
    assert shown.seconds[0] >= 1.0  # the held second is in the first image's time
    for progress, seconds, status, value, maximum in shown.steps:
        # over the whole batch (was: each image's steps, the bar back near its start at each image)
        assert (value, maximum) == (progress.image_index * steps + progress.step, count * steps), status
        found = re.fullmatch(rf"image {progress.image_index + 1}/{count}, step {progress.step}/{steps}, "
                             r"ETA (\d+):(\d\d)", status)  # fmt: skip
        assert found, status
        eta = int(found[1]) * 60 + int(found[2])
        # the current image's time left as the engine says, and each image after it at the time the images
        # saved so far took end to end (until one is: the current one's projected denoising)
        left = count - progress.image_index - 1
        each = sum(seconds) / len(seconds) if seconds else progress.elapsed_s + progress.eta_s
        assert eta == round(progress.eta_s + left * each), (status, progress, seconds)
        if seconds and left:  # at least the images left at the time the first one took (was: 0:00)
            assert eta >= int(left * min(seconds)) >= 1, status


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
