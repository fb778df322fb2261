"""Cancel all (Shift+Esc) when the running job does not end cancelled: it was past its last step (it is finished
all the same) or it failed. The queued jobs the same Cancel all stopped end after it, unrun, and each said a bare
"Cancelled" that took the place of "Done: 2 images" or "Failed; kept the image already made". They now keep the
first job's outcome, with the queued jobs said to be cancelled. On the real window and engine (the demo model), the
engine's thread held at a chosen step of the batch while Cancel all is pressed. (A batch that ends cancelled:
test_batch_progress.py, test_cancel_all_after_a_batch_saved_an_image_says_it_is_kept.)"""

from __future__ import annotations

from tests.app.gui import TEST_STEPS, engine_held_at

SIZE = 64


def _batch_of_two_and_queued(controller, queued: int):
    """Generate: a batch of 2 images of "a red circle" at 64x64, then ``queued`` jobs of 1 image behind it."""
    state = controller.prompt
    state.prompt, state.width, state.height, state.steps, state.batch_count = "a red circle", SIZE, SIZE, TEST_STEPS, 2
    controller.generate()
    state.batch_count = 1
    for _ in range(queued):
        controller.generate()


def _at_second_image(step: int):
    """Whether a ``JobProgress`` is the batch's second image at ``step``."""
    return lambda progress: progress.image_index == 1 and progress.step == step


def test_cancel_all_past_the_last_step_keeps_done_with_the_queued_jobs_cancelled(qtbot, window):
    controller = window.controller
    statuses: list[str] = []
    finished: list[list] = []
    controller.job_finished.connect(finished.append)
    # its second image's last step: the engine reads no cancel after it, it decodes and saves
    with engine_held_at(controller, _at_second_image(TEST_STEPS)) as reached:
        _batch_of_two_and_queued(controller, 2)
        qtbot.waitUntil(lambda: reached.is_set() and controller.job.step == 2 * TEST_STEPS, timeout=120000)
        assert controller.gallery.rowCount() == 1  # the first image is in
        window.cancel_all_action.trigger()  # Shift+Esc
        # as Esc says then (was: "Cancelling all 3 jobs…", and the image came all the same)
        assert controller.job.status == ("Too late to cancel: the image is being finished; the 2 queued jobs are "
                                         "cancelled")  # fmt: skip
        controller.job.status_changed.connect(statuses.append)
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
    said = "Done: 2 images; the 2 queued jobs were cancelled"
    assert controller.job.status == said, statuses  # was: "Cancelled", said by the last queued job to end
    assert statuses == [said]  # said once, as the batch ended: the queued jobs' ends (after it) said no other
    assert controller.gallery.rowCount() == 2  # the batch's two; the queued jobs ended unrun
    assert [len(records) for records in finished] == [2]  # the batch alone ended done


def test_cancel_all_when_the_running_job_fails_keeps_failed(qtbot, window):
    controller = window.controller
    shown: list = []
    controller.error.connect(shown.append)
    finished: list[list] = []
    controller.job_finished.connect(finished.append)
    # its second image's first step: the engine reads the cancel at the next one, unless that step fails first
    with engine_held_at(controller, _at_second_image(1)) as reached:
        _batch_of_two_and_queued(controller, 1)
        qtbot.waitUntil(lambda: reached.is_set() and controller.job.step == TEST_STEPS + 1, timeout=120000)
        transformer = controller._engine.worker._service.loaded.pipe.transformer
        real_forward = transformer.forward

        def fault(*args, **kwargs):  # once, as a CUDA error in the step would
            transformer.forward = real_forward
            raise RuntimeError("the GPU fell off the bus")

        transformer.forward = fault  # the engine's thread is held: it takes it at the next step
        controller.cancel_all()
        assert controller.job.status == "Cancelling all 2 jobs…"
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
    assert [e.kind for e in shown] == ["internal"]
    # was: "Cancelled", said by the queued job as it ended after it
    assert controller.job.status == "Failed; kept the image already made; the queued job was cancelled"
    assert controller.gallery.rowCount() == 1 and finished == []  # no job ended done, the queued one included
