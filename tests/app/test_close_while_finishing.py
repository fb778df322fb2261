"""Closing the window while the engine finishes an image (its VAE decode and PNG save, past the last step): the
image's row is committed before the database closes, nothing is shown after the window has gone, and the app exits.

It used to go on running, hidden: the image's ``image_saved``, queued while the window waited for the engine's
stop, was delivered after the database had closed; its error opened a dialog parented to the hidden window, which
is no "last window", so the event loop never returned (and the data folder's lock was already released)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

from tests.app.gui import refs_restored, window_without_engine
from tests.app.test_foreign_loras import _a1111_hash, _Hashing, _state

_DRIVER = """
import sys, threading
import diffusers
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
from app.engine_worker import EngineThread
from app.main_window import MainWindow, run_app

decoding, stopping = threading.Event(), threading.Event()
real_decode, real_stop = diffusers.AutoencoderKL.decode, EngineThread.stop

def held_decode(self, *args, **kwargs):  # the image's decode (previews are made from the latents) waits ...
    decoding.set()
    stopping.wait(120)  # ... for the window to close: the Qt thread then waits in the engine's stop
    return real_decode(self, *args, **kwargs)

def stop(self, *args, **kwargs):
    stopping.set()
    return real_stop(self, *args, **kwargs)

diffusers.AutoencoderKL.decode, EngineThread.stop = held_decode, stop

def when(ready, then):  # ``then()`` once ``ready()`` is true, looked at as the event loop runs
    if ready():
        then()
    else:
        QTimer.singleShot(10, lambda: when(ready, then))

def window():
    return next((w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)), None)

def dialog():
    return next((b for b in QApplication.topLevelWidgets() if isinstance(b, QMessageBox) and b.isVisible()), None)

def generate():
    state = window().controller.prompt
    state.prompt, state.width, state.height, state.steps, state.batch_count = "closed while finishing", 128, 128, 2, 1
    window().controller.generate()
    when(decoding.is_set, close)

def close():
    window().close()
    print("closed while decoding", flush=True)
    when(dialog, said)  # a dialog after the close kept the event loop running for good

def said():
    print("dialog after close:", dialog().text(), flush=True)
    QApplication.exit(3)

qt = QApplication(["nibble-studio"])
when(lambda: window() is not None and window().controller.model_info is not None, generate)
print("returned", run_app(["nibble-studio", "--data-dir", sys.argv[1]]), flush=True)
"""


def test_closing_while_an_image_is_finished_keeps_its_row_and_exits(tmp_path):
    root = tmp_path / "data"
    out = subprocess.run([sys.executable, "-c", _DRIVER, str(root)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})  # fmt: skip
    assert "closed while decoding" in out.stdout, out.stderr[-3000:]
    assert "dialog after close" not in out.stdout, out.stdout
    assert "returned 0" in out.stdout and out.returncode == 0, out.stderr[-3000:]
    pngs = sorted(p.relative_to(root / "images").as_posix() for p in (root / "images").rglob("*.png"))
    assert len(pngs) == 1  # the image was finished, after the close
    db = sqlite3.connect(root / "nibble.sqlite3")
    try:
        rows = db.execute("SELECT path, prompt FROM images").fetchall()
    finally:
        db.close()
    assert rows == [(pngs[0], "closed while finishing")]  # in the gallery now, not at the next start only


def test_closing_the_window_stops_the_search_of_an_images_loras(qtbot, data_root, tmp_path, monkeypatch):
    """A dropped image's LoRA looked for by hash when the window closes: the search stops after the file it reads,
    and nothing it finds is switched on or said (it read on for no one until the event loop ended, and what it
    said then came after the window had gone)."""
    from app.data_dir import resolve_data_dir

    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    hashing = _Hashing(monkeypatch, hold=True)
    loras = window.controller.loras
    found = _state(tmp_path, "renamed").entries[0]
    loras.add_files([found.path], enabled=False)
    renamed = next(e for e in loras.entries if e.path == found.path)
    shown: list = []
    window.controller.error.connect(shown.append)
    refs_restored(qtbot, loras, [{"name": "detail", "strength": 0.5, "hash": _a1111_hash(renamed.path)}],
                  lambda *args: shown.append(args))  # fmt: skip
    hashing.held()
    window.close()
    hashing.release()
    assert not renamed.enabled and shown == []
