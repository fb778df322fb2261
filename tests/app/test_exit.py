"""Quitting while the engine is inside a step it cannot interrupt (a long model load, a big image's step):
the app exits cleanly instead of Qt aborting the process over a running QThread, and what it owns is saved."""

from __future__ import annotations

import os
import subprocess
import sys

from app.settings import load_settings

_DRIVER = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
import app.thread_exit as thread_exit
from app.main_window import MainWindow, run_app

thread_exit.STOP_WAIT_MS = 1  # far shorter than one step: the engine is surely still busy when the window closes
QMessageBox.exec = lambda box: box.button(QMessageBox.StandardButton.Yes).click()  # "Quit and cancel it?": Yes

def drive():
    windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
    if not windows or windows[0].controller.model_info is None:
        QTimer.singleShot(100, drive)
        return
    window = windows[0]
    state = window.controller.prompt
    state.prompt, state.width, state.height, state.steps = "a red circle, quit mid-step", 1024, 1024, 50
    window.controller.job.step_changed.connect(lambda step: window.close())
    window.controller.generate()

qt = QApplication(["nibble-studio"])
QTimer.singleShot(100, drive)
code = run_app(["nibble-studio", "--data-dir", sys.argv[1]])
print("returned", code)  # not reached when a worker is still running: the app leaves with os._exit
"""


def test_quitting_mid_step_exits_cleanly_and_keeps_the_settings(tmp_path):
    out = subprocess.run([sys.executable, "-c", _DRIVER, str(tmp_path / "data")], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Destroyed while thread" not in out.stderr
    assert "still busy" in out.stderr  # the engine really was inside its step when the window closed
    assert load_settings(tmp_path / "data" / "settings.json").last_job.prompt == "a red circle, quit mid-step"


_CLOSE_AT_ONCE = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from app.main_window import MainWindow, run_app

def close_while_starting():
    windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
    if not windows:
        QTimer.singleShot(10, close_while_starting)
        return
    windows[0].controller.prompt.prompt = "closed at once"
    QTimer.singleShot(50, windows[0].close)  # after window.start: the engine thread is importing torch by then

qt = QApplication(["nibble-studio"])
QTimer.singleShot(0, close_while_starting)
run_app(["nibble-studio", "--data-dir", sys.argv[1]])
"""


def test_closing_right_after_launch_does_not_wait_for_the_engine_start_up(tmp_path):
    # Closing within seconds of launch waited for the engine thread's first imports (2.6 s once), which it would
    # then throw away; the engine holds nothing of the user's before it is ready.
    out = subprocess.run([sys.executable, "-c", _CLOSE_AT_ONCE, str(tmp_path / "data")], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Destroyed while thread" not in out.stderr
    assert "engine thread is still starting" in out.stderr, out.stderr[-2000:]
    assert load_settings(tmp_path / "data" / "settings.json").last_job.prompt == "closed at once"
