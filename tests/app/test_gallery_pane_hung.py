"""The gallery's metadata pane read the selected image's file (its stat, its PNG's text) on the window's thread: a
gallery on a USB drive that sleeps or a network share that hangs froze the window at every click on an image. It is
read on a thread of its own now, "Reading …" said meanwhile, and only the image selected last is described.

A hung drive is simulated as ``tests.app.gui.held`` simulates one: the stat of what is under its folder waits, on a
thread, till the test sets an event; on the window's thread it is not held but noted (a freeze there)."""

from __future__ import annotations

from app.data_dir import resolve_data_dir
from tests.app.gui import gallery_images, stat_held_under, window_without_engine

WAIT_MS = 30_000  # generous: CI runs the suite on 2 cores in parallel


def test_the_pane_reads_the_selected_image_off_the_windows_thread(qtbot, data_root, monkeypatch):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red cat", "a blue dog"])  # newest first: row 0 is the dog
    window = window_without_engine(qtbot, data)
    panel = window.gallery_panel
    qtbot.waitUntil(lambda: window.controller.gallery.rowCount() == 2, timeout=WAIT_MS)
    release, on_gui = stat_held_under(monkeypatch, data.images / "d")
    try:
        panel.select_row(0)
        panel.select_row(1)  # another click before the first was read: only the last one is described
        assert on_gui == []  # was: ["stat", "stat"], the window frozen till the drive answered
        assert panel.metadata.toPlainText() == f"Reading {data.images / 'd' / '0.png'}…"
        assert panel.copy_button.isEnabled()  # the buttons act on the selection at once, as before
    finally:
        release.set()
    qtbot.waitUntil(lambda: panel.metadata.toPlainText().startswith("Prompt: a red cat"), timeout=WAIT_MS)
    qtbot.wait(300)  # the first click's read, ended too, does not replace it
    assert panel.metadata.toPlainText().startswith("Prompt: a red cat") and on_gui == []
    panel.view.clearSelection()
    assert panel.metadata.toPlainText() == ""


def test_images_gone_through_with_the_keys_on_a_hung_drive_are_read_one_at_a_time(qtbot, data_root, monkeypatch):
    import threading

    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from tests.app.gui import pane_text

    data = resolve_data_dir(data_root)
    gallery_images(data, [f"a fox number {i}" for i in range(12)])  # newest first: row 0 is d/11.png
    window = window_without_engine(qtbot, data)
    panel = window.gallery_panel
    qtbot.waitUntil(lambda: window.controller.gallery.rowCount() == 12, timeout=WAIT_MS)
    panel.select_row(0)
    pane_text(qtbot, panel)
    release, on_gui = stat_held_under(monkeypatch, data.images / "d")
    try:
        panel.view.setFocus()
        for _ in range(10):
            QTest.keyClick(panel.view, Qt.Key.Key_Right)
        reading = [t for t in threading.enumerate() if t.name.startswith("Gallery: describing the selected image")]
        assert len(reading) == 1  # was 20: two for each key (the selection, the current image), each left waiting
        assert panel.current_row() == 10 and on_gui == []
        assert panel.metadata.toPlainText() == f"Reading {data.images / 'd' / '1.png'}…"  # the last one's name
    finally:
        release.set()
    assert pane_text(qtbot, panel).startswith("Prompt: a fox number 1\n")
    qtbot.wait(300)  # no read of an image gone through ends after it and replaces it
    assert panel.metadata.toPlainText().startswith("Prompt: a fox number 1\n")
