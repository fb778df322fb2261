"""Closing the window while jobs run or wait asks first, and the log says what the quit cancelled: it dropped them
without a word, a long batch and the jobs queued behind it gone with no trace."""

from __future__ import annotations

import logging

from PySide6.QtWidgets import QMessageBox

from app.engine_worker import Job
from app.quit_jobs import cancelled_on_quit, quit_question
from gpu.generation.request import GenerationRequest
from tests.app.gui import TEST_STEPS, answer_stop

QUESTION = ("3 jobs (9 images) are running or queued. Quit and cancel them? The images already made are kept, and "
            "the prompts stay in the prompt history.")  # fmt: skip


def _long_job_and_two_batches(qtbot, controller) -> None:
    """A job of 150 steps, running, and two jobs of 4 images queued behind it."""
    controller.prompt.prompt, controller.prompt.steps = "a lighthouse at dusk", 150
    with qtbot.waitSignal(controller.job.step_changed, timeout=120000, check_params_cb=lambda s: s >= 1):
        controller.generate()
    controller.prompt.prompt, controller.prompt.steps, controller.prompt.batch_count = "a fox", TEST_STEPS, 4
    controller.generate()
    controller.generate()


def test_closing_with_jobs_running_or_queued_asks_and_logs_what_it_cancels(qtbot, window, monkeypatch, caplog):
    controller = window.controller
    _long_job_and_two_batches(qtbot, controller)
    seen: list[str] = []
    answer_stop(monkeypatch, QMessageBox.StandardButton.No, seen)
    window.close()
    assert seen == [QUESTION]
    # No: the window stays, and so do the jobs: the long one goes on stepping, nothing is cancelled.
    assert window.isVisible() and controller.job.busy and "Cancel" not in controller.job.status
    step = controller.job.step
    qtbot.waitUntil(lambda: controller.job.step > step, timeout=60000)

    answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, seen)
    with caplog.at_level(logging.INFO, logger="app.main_window"):
        window.close()
    assert seen == [QUESTION, QUESTION] and not window.isVisible()
    (dropped,) = [r.getMessage() for r in caplog.records if "cancelled by the quit" in r.getMessage()]
    assert "3 jobs (9 images)" in dropped and "a lighthouse at dusk" in dropped and dropped.count("a fox") == 2
    assert "150 steps" in dropped and "4 images" in dropped


def test_jobs_already_cancelled_are_not_asked_about(qtbot, window, monkeypatch):
    controller = window.controller
    _long_job_and_two_batches(qtbot, controller)
    seen: list[str] = []
    answer_stop(monkeypatch, QMessageBox.StandardButton.No, seen)
    controller.cancel_all()  # Shift+Esc: nothing a quit would still cancel
    window.close()
    assert seen == [] and not window.isVisible()


def test_one_job_is_asked_about_as_one_and_the_log_cuts_long_prompts():
    job = Job(GenerationRequest("a very long prompt " * 20, steps=None, batch_count=1))
    assert quit_question([job]) == ("1 job (1 image) is running or queued. Quit and cancel it? The images already "
                                    "made are kept, and the prompts stay in the prompt history.")  # fmt: skip
    line = cancelled_on_quit([job])
    assert line.startswith(f"1 job (1 image) cancelled by the quit: job {job.id}, 1 image of the model's steps, "
                           "on demo: 'a very long prompt")
    assert line.endswith("…'") and len(line) < 200
