"""A Generate click held while the LoRA copy check reads the files (``app.held_clicks``), as a user meets it beside
the jobs that run, the reads that fail and the keys that cancel: what the status line says, and that the click
ends, queued or refused with a message, never left waiting."""

from __future__ import annotations

from contextlib import contextmanager

from PySide6.QtCore import Qt

from app.held_clicks import CHECKING
from tests.app.gui import engine_held_at
from tests.app.test_lora_twins import _click_generate, _copies_being_read

PROMPT = "a red circle on a blue background"


def _dialog(window) -> str | None:
    """What the error dialog shows (its text and hint), None while none is shown."""
    dialog = window.error_dialog
    return None if dialog is None or not dialog.isVisible() else f"{dialog.text()} {dialog.informativeText()}"


@contextmanager
def _a_job_running(qtbot, window):
    """A job of ``PROMPT`` (no LoRA) held at its first step while the block runs, its step on the status line."""
    controller = window.controller
    window.prompt_panel.prompt_edit.setPlainText(PROMPT)
    with engine_held_at(controller, lambda _progress: True) as reached:
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(reached.is_set, timeout=60000)
        qtbot.waitUntil(lambda: controller.job.status.startswith("step"), timeout=60000)
        yield


def test_the_status_line_says_a_held_click_once_the_running_job_ends_and_never_goes_back_to_its_step(
        qtbot, window, tmp_path, monkeypatch):  # fmt: skip
    """Generate clicked while a job runs, as the copy check reads two copies of a LoRA just added: the click is held,
    said in passing (the line is the job's). The job ended: the line said "Done: 1 image" while the click still
    waited (Cancel usable, nothing said of it); a click then said "Checking LoRA files…", and when the read ended
    and the pair was refused, the line went back to the ended job's "step 1/2, ETA 0:00", as if it still ran. Now
    the line says the click waits once the job ended, and then the line it replaced."""
    controller = window.controller
    with _a_job_running(qtbot, window):
        held, _a, _b = _copies_being_read(qtbot, window, tmp_path, monkeypatch)
        _click_generate(qtbot, window, held)
        assert controller.job.status.startswith("step")  # the running job's line; the click said in passing
        finished = qtbot.waitSignal(controller.job_finished, timeout=60000)
    try:
        with finished:
            pass
        assert controller.job.status == CHECKING, controller.job.status  # was: "Done: 1 image", the click unsaid
        _click_generate(qtbot, window, held)  # clicked again, idle: the line as it was
        assert controller.job.status == CHECKING
    finally:
        held.release.set()
    qtbot.waitUntil(lambda: _dialog(window) is not None, timeout=60000)
    assert "are the same LoRA (identical files)" in _dialog(window)
    window.error_dialog.accept()
    assert controller.job.status == "Done: 1 image", controller.job.status  # was: "step 1/2, ETA 0:00"
    assert not window.prompt_panel.cancel_button.isEnabled()
