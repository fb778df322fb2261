"""Generate through the real window and engine; restart; cancel; a corrupt model; the start-up budget."""

from __future__ import annotations

import subprocess
import sys
import time

from PySide6.QtCore import Qt

from app.image_files import read_image_settings
from tests.app.gui import open_window, pane_text


def _generate(qtbot, window, prompt: str) -> list:
    window.prompt_panel.prompt_edit.setPlainText(prompt)
    with qtbot.waitSignal(window.controller.job_finished, timeout=120000) as blocker:
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
    return blocker.args[0]


def test_generate_then_restart(qtbot, data_root, window):
    progress = []
    window.controller.job.step_changed.connect(progress.append)
    records = _generate(qtbot, window, "a red circle on a blue background")
    assert len(records) == 1
    gallery = window.controller.gallery
    assert gallery.rowCount() == 1
    path = gallery.path_of(gallery.record(0))
    assert path.is_file() and path.is_relative_to(data_root / "images")
    settings = read_image_settings(path)
    assert settings["prompt"] == "a red circle on a blue background"
    assert settings["steps"] == 2 and settings["width"] == 128 and settings["model"] == "demo"
    assert settings["seed"] == window.controller.prompt.seed
    assert progress and max(progress) == 2
    window.gallery_panel.select_row(0)
    summary = pane_text(qtbot, window.gallery_panel)
    assert "Steps: 2" in summary and "Ran on: " in summary
    assert "memory_policy" not in summary and "Settings:" not in summary  # a summary, not the raw dict
    assert window.controller.history.rowCount() == 1

    window.controller.prompt.seed_locked = True
    window.close()
    again = open_window(qtbot, data_root)
    assert again.controller.gallery.rowCount() == 1
    assert again.controller.gallery.record(0).prompt == "a red circle on a blue background"
    assert again.controller.history.record(0).prompt == "a red circle on a blue background"
    assert again.controller.prompt.prompt == "a red circle on a blue background"  # panel state restored
    assert again.controller.prompt.seed_locked


def test_cancel_mid_run(qtbot, window):
    controller = window.controller
    controller.prompt.steps = 40
    controller.prompt.prompt = "a green square"
    with qtbot.waitSignal(controller.job.step_changed, timeout=120000, check_params_cb=lambda s: s >= 1):
        controller.generate()
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
    assert controller.job.status == "Cancelled"
    assert controller.job.step < 40
    assert controller.gallery.rowCount() == 0
    # the engine is still usable afterwards
    controller.prompt.steps = 2
    with qtbot.waitSignal(controller.job_finished, timeout=120000):
        controller.generate()
    assert controller.gallery.rowCount() == 1


def test_corrupt_model_shows_dialog_and_app_keeps_working(qtbot, tmp_path, window):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage" + b"\x00" * 100)
    with qtbot.waitSignal(window.controller.error, timeout=60000):
        window.controller.add_model(broken)
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    assert "broken" in window.error_dialog.text()
    window.error_dialog.accept()
    names = [e.name for e in window.controller.entries]
    assert "broken" not in names
    records = _generate(qtbot, window, "a yellow triangle")
    assert len(records) == 1


def test_empty_prompt_is_a_plain_error(qtbot, window):
    window.controller.prompt.prompt = "   "
    window.controller.generate()
    assert window.error_dialog is not None and "prompt" in window.error_dialog.text().lower()
    assert not window.controller.job.busy


def test_window_shows_fast_without_torch(tmp_path):
    script = (
        "import sys, time; t = time.perf_counter();"
        "from PySide6.QtWidgets import QApplication; app = QApplication([]);"
        "from app.data_dir import resolve_data_dir; from app.main_window import MainWindow;"
        f"w = MainWindow(resolve_data_dir(__import__('pathlib').Path(r'{tmp_path}'))); w.show(); app.processEvents();"
        "print(time.perf_counter() - t, 'torch' in sys.modules); w.close()"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    shown_after, torch_loaded = out.stdout.split()[-2:]
    # torch alone takes seconds to import: what the bound is for. 2 s was passed (2.18) by a CI run beside other test
    # runs on its 2 cores; 0.5-0.9 s is usual there
    assert float(shown_after) < 4.0, f"window took {shown_after}s (total {time.perf_counter() - start:.1f}s)"
    assert torch_loaded == "False"


def test_a_batch_cancelled_at_its_second_image_keeps_the_first_and_shows_it(qtbot, window):
    """The images of a batch were saved only once all were done: a cancel (or an out-of-memory error) at the
    last image lost every one already made. And when a job ended, the progress area still showed the last
    step's rough latent preview instead of the image."""
    from PySide6.QtGui import QImage

    controller = window.controller
    controller.prompt.prompt, controller.prompt.batch_count, controller.prompt.steps = "a red square", 3, 6
    jobs: list = []
    # In the engine's thread, at the second image's first step: the cancel lands there every time.
    controller._engine.worker.progress.connect(lambda p: p.image_index == 1 and jobs[0].cancel.set(),
                                               Qt.ConnectionType.DirectConnection)
    jobs.append(controller.generate())
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=120000)
    assert controller.job.status == "Cancelled; kept the image already made"
    assert controller.gallery.rowCount() == 1
    record = controller.gallery.record(0)
    path = controller.gallery.path_of(record)
    assert read_image_settings(path)["seed"] == record.settings["seed"] == controller.prompt.seed
    shown = controller.job.preview.convertToFormat(QImage.Format.Format_RGBA8888)
    assert shown == QImage(str(path)).convertToFormat(QImage.Format.Format_RGBA8888)


def test_the_job_status_shows_once_in_the_status_bar_only_while_the_prompt_panel_is_closed(qtbot, data_root):
    """The status line was in the prompt panel and again in the status bar's corner ("Done: 1 image" twice).
    The panel's stays, beside Generate and Cancel; the prompt dock can be closed (its title bar, the View menu),
    and then the status bar carries the status, so a job is never silent."""
    window = open_window(qtbot, data_root)
    corner, panel_status = window.status_label, window.prompt_panel.status
    _generate(qtbot, window, "a blue circle")
    assert panel_status.text() == "Done: 1 image" and panel_status.isVisible()
    assert not corner.isVisible()
    window.prompt_dock.toggleViewAction().trigger()  # View > Prompt, unchecked
    qtbot.waitUntil(lambda: corner.isVisible(), timeout=5000)
    assert corner.text() == "Done: 1 image"
    window.controller.prompt.prompt = "a blue square"  # generating with the panel closed: Ctrl+Enter
    with qtbot.waitSignal(window.controller.job_finished, timeout=120000):
        window.generate_action.trigger()
    assert corner.text() == window.controller.job.status == "Done: 1 image"
    # closed when the app quit: restored closed, with the status in the status bar from the start
    window.close()
    again = open_window(qtbot, data_root)
    assert not again.prompt_dock.isVisible() and again.status_label.isVisible()
    assert again.status_label.text() == again.controller.job.status
    again.prompt_dock.toggleViewAction().trigger()
    qtbot.waitUntil(lambda: not again.status_label.isVisible(), timeout=5000)


def test_ctrl_enter_held_down_queues_one_job(qtbot, window):
    """The keys held a moment too long: the key repeats the system sends each queued a job (six for a short hold,
    each with a fresh random seed, up to 16 images each)."""
    from PySide6.QtCore import QEvent
    from PySide6.QtGui import QKeyEvent
    from PySide6.QtWidgets import QApplication

    controller, panel = window.controller, window.prompt_panel
    controller.prompt.prompt = "a red circle"
    window.activateWindow()
    panel.prompt_edit.setFocus()
    finished: list[object] = []
    controller.job_finished.connect(finished.append)
    qtbot.keyPress(panel.prompt_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    for _ in range(5):  # what the system sends while the keys stay down
        repeat = QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier, "", True, 1)
        QApplication.sendEvent(panel.prompt_edit, repeat)
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=120000)
    assert len(finished) == 1 and controller.job.status == "Done: 1 image"
    # Enter held on the Generate button, reached with Tab: one press clicks it once, its repeats nothing (each
    # queued a job, the button being the default one).
    panel.generate_button.setFocus(Qt.FocusReason.TabFocusReason)
    qtbot.keyPress(panel.generate_button, Qt.Key.Key_Return)
    for _ in range(5):
        repeat = QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Return, Qt.KeyboardModifier.NoModifier, "", True, 1)
        QApplication.sendEvent(panel.generate_button, repeat)
    qtbot.keyRelease(panel.generate_button, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=120000)
    assert len(finished) == 2 and controller.job.status == "Done: 1 image"
