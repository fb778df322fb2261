"""Work that ends while the user is in another program (a job's images, a quantize run of an hour) flags its window
in the taskbar: nothing said so, and the user had to keep looking. And the window's title says how far a job is."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication, QMessageBox

from app.engine_errors import EngineError
from app.widgets.error_dialog import show_error
from tests.app.gui import answer_stop, record_alerts, user_elsewhere


def _small_job(controller, steps: int = 2, batch: int = 1) -> None:
    controller.prompt.prompt, controller.prompt.width, controller.prompt.height = "a red circle", 64, 64
    controller.prompt.steps, controller.prompt.batch_count = steps, batch


def _generate(qtbot, controller) -> None:
    controller.generate()
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=120000)


def test_the_window_is_flagged_when_its_jobs_end_while_the_user_is_elsewhere(qtbot, window, monkeypatch):
    alerted = record_alerts(monkeypatch)
    controller = window.controller
    _small_job(controller)
    user_elsewhere(qtbot)
    _generate(qtbot, controller)
    assert alerted == [window]
    window.activateWindow()  # the user watching it: not flagged
    qtbot.waitUntil(window.isActiveWindow)
    _generate(qtbot, controller)
    assert alerted == [window]
    # Nor while the user reads a dialog of the app (an earlier job's error box): the window is not the active one,
    # the app is (R47)
    box = show_error(window, EngineError("user", "An earlier job failed", "read me"))
    qtbot.waitUntil(lambda: QApplication.activeWindow() is box)
    _generate(qtbot, controller)
    box.accept()
    assert alerted == [window]


def test_the_wizard_is_not_flagged_while_its_stop_question_is_open(qtbot, window, monkeypatch):
    """The user pressed Stop: "Stop quantizing?" is open over the wizard when the run ends. (R47)"""
    alerted = record_alerts(monkeypatch)
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    box = QMessageBox(QMessageBox.Icon.Question, "Stop quantizing?", "Stop quantizing?",
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, wizard)  # fmt: skip
    box.open()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is box)
    wizard.run_state.cancelled()  # the run ends (here, as cancelled) while the question is open
    box.close()
    assert alerted == []


def test_a_wizard_is_not_flagged_by_the_quit_that_stopped_its_run(qtbot, window, monkeypatch):
    """The user quits with a run working and says Yes to "Stop quantizing?": the run's end flagged the wizard of an
    app going away. (R47)"""
    alerted = record_alerts(monkeypatch)
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.next()
    wizard.next()
    wizard.calibration_page.count.setValue(64)
    wizard.next()  # starts quantizing
    qtbot.waitUntil(lambda: wizard.run_state.running, timeout=60000)
    qtbot.wait(1000)  # into the run's work
    user_elsewhere(qtbot)  # as flagged as it could be: only the quit keeps it from it
    answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, [])
    thread = wizard._thread.thread
    try:
        window.close()
        qtbot.waitUntil(lambda: not wizard.run_state.running, timeout=60000)  # the run's end, as the quit stopped it
        assert alerted == []
    finally:
        thread.quit()
        thread.wait(60000)


def test_the_window_title_says_how_far_the_job_is(qtbot, window):
    """The taskbar entry of a window minimized or behind others said nothing of the job running: its title now does,
    over the whole batch and the jobs queued behind it, and is the app's name again once they ended."""
    titles: list[str] = []
    window.windowTitleChanged.connect(titles.append)
    controller = window.controller
    _small_job(controller, steps=2, batch=2)
    _generate(qtbot, controller)
    shown = [t for t in titles if t.startswith("[")]
    assert shown[-1] == "[100%] Nibble Studio" and "[50%] Nibble Studio" in shown, titles  # step 2 of 4
    assert shown == sorted(shown, key=lambda t: int(t[1:t.index("%")])), titles  # never back
    assert window.windowTitle() == "Nibble Studio"
    # The next job does not start at the last one's 100% (its model loading, or waiting for a quantize run, for as
    # long as that takes), nor at a cancelled job's figure (R47)
    titles.clear()
    _small_job(controller, steps=8)
    controller.generate()
    assert window.windowTitle() == "Nibble Studio"
    qtbot.waitUntil(lambda: controller.job.step >= 2, timeout=120000)
    controller.cancel()
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=120000)
    controller.generate()
    assert window.windowTitle() == "Nibble Studio"
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=120000)
    assert titles[0] == "[12%] Nibble Studio" and "[100%] Nibble Studio" not in titles[:2], titles
    # Two jobs queued: one run of the title over both, not 100% at the end of the first and back to nothing
    titles.clear()
    _small_job(controller, steps=2)
    controller.generate()
    controller.generate()
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=120000)
    shown = [t for t in titles if t.startswith("[")]
    assert shown == [f"[{p}%] Nibble Studio" for p in (25, 50, 75, 100)], titles
    assert titles[-1] == "Nibble Studio"
