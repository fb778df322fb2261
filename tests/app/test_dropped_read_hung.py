"""A picture dropped on the prompt panel (or opened with the app) had its metadata read on the window's thread: one
dropped from a network share that hangs froze the window till the share answered. It is read on a thread of its own
now, "Reading <file>…" said in the status bar meanwhile; a second drop meanwhile wins, and a Generate click meanwhile
is refused with words (its job would have run with the settings of before the drop).

The hung share is simulated as ``tests.app.gui.held`` does: the read of a file under its folder waits, on a thread,
till the test sets an event; on the window's thread it is not held but noted (a freeze there)."""

from __future__ import annotations

import threading
import time

from PIL import Image

import app.dropped_read
import app.settings_restore
from app.data_dir import resolve_data_dir
from app.settings import load_settings
from gpu.generation.png_metadata import write_png
from tests.app import gui
from tests.app.gui import held

WAIT_MS = 30_000  # generous: CI runs the suite on 2 cores in parallel


def _hung_reads(monkeypatch) -> tuple[threading.Event, list[str]]:
    """Every dropped file's read held till the returned event is set -> (that event, the reads made on the window's
    thread)."""
    release, on_gui = threading.Event(), []
    monkeypatch.setattr(app.settings_restore, "inspect_image_settings",
                        held(app.settings_restore.inspect_image_settings, release, on_gui))  # fmt: skip
    return release, on_gui


def test_a_dropped_picture_is_read_off_the_windows_thread_and_the_last_drop_wins(qtbot, window, tmp_path,
                                                                                  monkeypatch):  # fmt: skip
    controller = window.controller
    shown: list = []
    controller.error.connect(shown.append)
    cat = write_png(tmp_path / "cat.png", Image.new("RGB", (16, 16)), {"prompt": "a red cat", "seed": 3})
    dog = write_png(tmp_path / "dog.png", Image.new("RGB", (16, 16)), {"prompt": "a blue dog", "seed": 4})
    controller.prompt.prompt = "before the drop"
    release, on_gui = _hung_reads(monkeypatch)
    try:
        controller.restore_from_files([cat])
        assert on_gui == []  # was: ["inspect_image_settings"], the window frozen till the share answered
        assert window.statusBar().currentMessage() == f"Reading {cat}…"
        assert controller.prompt.prompt == "before the drop"
        assert controller.generate() is None  # would have run "before the drop" for the image dropped
        [refused] = [e for e in shown if e.message.startswith("Not generated: the settings of cat.png are still")]
        assert "once they are restored" in refused.hint and controller.queue.idle
        controller.restore_from_files([dog])  # dropped before the cat was read: the dog's settings win
    finally:
        release.set()
    qtbot.waitUntil(lambda: controller.prompt.prompt == "a blue dog", timeout=WAIT_MS)
    qtbot.wait(300)  # the cat's read, ended too, does not replace it
    assert controller.prompt.prompt == "a blue dog" and controller.prompt.seed == 4 and on_gui == []
    assert window.statusBar().currentMessage().startswith("Restored: ")
    assert not controller.dropped.reading


def test_a_picture_dropped_just_before_the_close_is_in_the_settings_it_saves(qtbot, bare_window, data_root, tmp_path,
                                                                             monkeypatch):  # fmt: skip
    """Dropped (or handed on by a second start as the window closes) and the window closed before it was read: the
    read's end came after the settings were saved, and the process ended before it was delivered, the drop lost.
    The close now waits for the read (``DroppedRead.finish``), as it did when it was read on the window's thread."""
    controller = bare_window.controller
    lake = write_png(tmp_path / "lake.png", Image.new("RGB", (16, 16)), {"prompt": "a lake at dawn", "seed": 9})
    controller.prompt.prompt = "before the drop"
    release, _ = _hung_reads(monkeypatch)
    controller.restore_from_files([lake])
    threading.Timer(0.5, release.set).start()  # the share answers a moment into the close
    gui.open_windows.remove(bare_window)
    bare_window.close()
    saved = load_settings(resolve_data_dir(data_root).settings)
    assert saved.last_job.prompt == "a lake at dawn" and saved.last_job.seed == 9, saved.last_job


def test_a_close_waits_for_a_dropped_picture_on_a_hung_share_a_bounded_time(qtbot, bare_window, data_root, tmp_path,
                                                                           monkeypatch):  # fmt: skip
    """A read that never answers holds the close ``QUIT_WAIT_S`` at most: the settings of before the drop are saved,
    and the read's end, come after, fills nothing (the window is gone)."""
    monkeypatch.setattr(app.dropped_read, "QUIT_WAIT_S", 0.3)
    controller = bare_window.controller
    lake = write_png(tmp_path / "lake.png", Image.new("RGB", (16, 16)), {"prompt": "a lake at dawn", "seed": 9})
    controller.prompt.prompt = "before the drop"
    release, _ = _hung_reads(monkeypatch)
    controller.restore_from_files([lake])
    gui.open_windows.remove(bare_window)
    started = time.monotonic()
    try:
        bare_window.close()
    finally:
        release.set()
    assert time.monotonic() - started < 20  # generous: CI's 2 loaded cores
    assert load_settings(resolve_data_dir(data_root).settings).last_job.prompt == "before the drop"
    qtbot.wait(500)  # the read's end, delivered now: dropped (it raised here when it was said in the closed window)
    assert controller.prompt.prompt == "before the drop"
