"""Two Nibble Studios on one data folder (a double double-click): the second says so and does not start; a lock
left by a killed app does not stop the next start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from PIL import Image

import app.instance_handoff
from app.data_dir import resolve_data_dir
from app.instance_lock import AlreadyRunning
from app.main_window import MainWindow, run_app
from gpu.generation.png_metadata import write_png
from tests.app import gui
from tests.app.gui import accept_dialog_later, open_window


def test_a_second_app_on_the_same_data_folder_says_so_and_does_not_start(qtbot, data_root, tmp_path, monkeypatch):
    """Where the app open does not answer a second start (busy; here, this very thread) within its wait: said."""
    monkeypatch.setattr(app.instance_handoff, "ANSWER_WAIT_MS", 300)
    first = open_window(qtbot, data_root)
    first.controller.prompt.prompt = "the first window's careful prompt"
    data = resolve_data_dir(data_root)
    with pytest.raises(AlreadyRunning) as raised:
        MainWindow(data)  # was: a second window, whose exit overwrote the first one's settings.json
    assert str(data.root) in str(raised.value) and f"process {os.getpid()}" in str(raised.value)
    seen: list[str] = []
    accept_dialog_later(seen)
    assert run_app(["nibble-studio"], data_root) == 1
    assert len(seen) == 1 and "cannot start" in seen[0] and "already running" in seen[0]
    # Started with an image to open ("Open with" on a PNG): said what became of it and where to drop it instead
    accept_dialog_later(seen)
    png = write_png(tmp_path / "a lake.png", Image.new("RGB", (8, 8)), {"prompt": "a lake at dawn", "seed": 9})
    assert run_app(["nibble-studio", str(png)], data_root, [str(png)]) == 1
    assert len(seen) == 2 and f"already running with the data folder {data.root}" in seen[1] and "The image " \
        "'a lake.png' was not opened in a second window" in seen[1] and "Drop the image on the prompt panel of " \
        "the Nibble Studio window that is open" in seen[1], seen[1]  # fmt: skip
    # ... and the refusal itself as without the image: the app that holds the folder, another data folder, and the
    # remedy for a lock no app holds (it was a new message without them)
    assert f"(process {os.getpid()} on " in seen[1] and "another data folder (--data-dir PATH)" in seen[1] \
        and f"If no Nibble Studio is running, delete {data.root / 'nibble.lock'} and open the image again" \
        in seen[1], seen[1]  # fmt: skip
    qtbot.wait(300)  # the first window reads the request it did not answer in time: given up on, it opens nothing
    assert first.controller.prompt.prompt == "the first window's careful prompt"
    gui.open_windows.remove(first)
    first.close()
    again = open_window(qtbot, data_root)  # closing the first frees the folder
    assert again.controller.prompt.prompt == "the first window's careful prompt"


def test_a_lock_left_by_a_killed_app_does_not_stop_the_next_start(qtbot, data_root):
    code = ("import sys, time; from PySide6.QtCore import QCoreApplication; app = QCoreApplication([]); "
            "from app.data_dir import resolve_data_dir; from app.instance_lock import lock_data_dir; "
            f"lock = lock_data_dir(resolve_data_dir(__import__('pathlib').Path(r'{data_root}'))); "
            "print('locked', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(AlreadyRunning):
            MainWindow(resolve_data_dir(data_root))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert (data_root / "nibble.lock").exists()
    window = open_window(qtbot, data_root)
    assert window.controller.gallery.rowCount() == 0


def test_a_start_refused_by_its_database_lets_the_folder_go_while_it_says_so(qtbot, data_root):
    """While the refusal's dialog was up, the refused window (kept by the exception's traceback) held the lock: a
    second start then was told an app runs, the app being the very one that does not start. (R45)"""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    from app.instance_lock import lock_data_dir

    data = resolve_data_dir(data_root)
    data.database.mkdir()  # a folder where the database file goes: it cannot be opened (as in test_damaged_data)
    held: list = []

    def check() -> None:
        box = next((w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()), None)
        if box is None:
            QTimer.singleShot(50, check)
            return
        try:
            lock_data_dir(data).unlock()
            held.append(False)
        except AlreadyRunning:
            held.append(True)
        box.accept()

    QTimer.singleShot(50, check)
    assert run_app(["nibble-studio"], data_root) == 1
    assert held == [False]
