"""A first start with many images in the folder and none in the database (a gallery copied from another machine,
a fresh database): the window opens before they are read, and they are imported while it is in use. Measured, the
import of 30,000 before the window showed was 90 s of nothing on screen, as if the app hung."""

from __future__ import annotations

import math
import os
import threading

import pytest
from PIL import Image
from PySide6.QtCore import QCoreApplication, Qt

import app.reconcile
from app.data_dir import DataDir, resolve_data_dir
from app.main_window import MainWindow
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import open_windows

COUNT, BATCH = 25, 10


class _SlowDisk:
    """Lets the import's thread read ``allowed`` files, then holds it before the next (a slow disk)."""

    def __init__(self) -> None:
        self.allowed, self.reads, self.held = BATCH, 0, False
        self._changed = threading.Condition()
        self._read = getattr(app.reconcile, "read_new_file", None)  # none before the import left the start-up

    def read(self, rel: str, path: str):
        with self._changed:
            while self.reads >= self.allowed:
                self.held = True
                self._changed.notify_all()
                self._changed.wait(30)
            self.held = False
            self.reads += 1
        return self._read(rel, path)

    def allow(self, reads: int) -> None:
        with self._changed:
            self.allowed = reads
            self._changed.notify_all()

    def wait_held(self) -> None:
        """Until the thread is held again, every file allowed read and handed over: Qt's event loop does not run,
        so the last batch is not committed yet."""
        with self._changed:
            assert self._changed.wait_for(lambda: self.held and self.reads == self.allowed, 30)


@pytest.fixture
def disk(data_root, monkeypatch) -> _SlowDisk:
    """A data folder of ``COUNT`` new images, picture ``i`` dated ``i`` (the newest the last), imported ``BATCH`` a
    commit (never fewer for the time a read took: a test holding the disk decides what a batch holds), on a slow
    disk that lets the first batch be read."""
    _pictures(resolve_data_dir(data_root), COUNT)
    monkeypatch.setattr(app.reconcile, "_IMPORT_BATCH", BATCH)
    monkeypatch.setattr(app.reconcile, "_BATCH_SECONDS", math.inf)
    slow = _SlowDisk()
    monkeypatch.setattr(app.reconcile, "read_new_file", slow.read, raising=False)
    return slow


def _pictures(data: DataDir, count: int) -> None:
    """``count`` new images in the images folder, picture ``i`` of prompt "p{i}" dated ``i`` (the newest the last)."""
    for i in range(count):
        path = write_png(data.images / "2026-01-01" / f"{i:02d}.png", Image.new("RGB", (8, 8)), {"prompt": f"p{i}"})
        os.utime(path, (1000 + i, 1000 + i))


def _window(qtbot, data: DataDir) -> MainWindow:
    """The window as ``run_app`` opens it, the import started as ``MainWindow.start`` does (the engine is not
    started: it is not needed here)."""
    window = MainWindow(data)
    qtbot.addWidget(window)
    open_windows.append(window)
    window.show()
    return window


def _prompts(window: MainWindow) -> list[str]:
    gallery = window.controller.gallery
    return [gallery.record(r).prompt for r in range(gallery.rowCount())]


def test_the_window_opens_before_the_images_are_imported_and_is_usable_while_they_are(qtbot, data_root, disk):
    window = _window(qtbot, resolve_data_dir(data_root))
    controller = window.controller
    # was: every image read and committed before the window was made
    assert controller.store.images() == [] and _prompts(window) == [] and controller.folder_import.running
    controller.folder_import.start()
    qtbot.waitUntil(lambda: controller.gallery.rowCount() == BATCH)
    assert _prompts(window) == [f"p{i}" for i in range(COUNT - 1, COUNT - BATCH - 1, -1)]  # the newest first
    assert controller.folder_import.running and window.import_label.isVisible()
    assert window.import_label.text() == f"Importing {COUNT} images from the images folder… ({BATCH} done)"
    controller.gallery.set_favorite([1], True)  # the window is in use meanwhile
    controller.history.add("typed while importing", "")
    disk.allow(COUNT)
    qtbot.waitUntil(lambda: not controller.folder_import.running)
    assert _prompts(window) == [f"p{i}" for i in range(COUNT - 1, -1, -1)]
    assert [r.prompt for r in controller.store.images(favorites_only=True)] == [f"p{COUNT - 2}"]
    assert controller.reconcile_report.imported == COUNT
    assert window.import_label.text() == f"{COUNT} images imported from the images folder."


def test_closing_during_the_import_keeps_whole_batches_and_the_next_start_imports_the_rest(qtbot, data_root, disk):
    data = resolve_data_dir(data_root)
    window = _window(qtbot, data)
    folder_import = window.controller.folder_import
    folder_import.start()
    disk.allow(2 * BATCH)
    qtbot.waitUntil(lambda: window.controller.gallery.rowCount() == 2 * BATCH)  # two batches committed
    disk.allow(COUNT)
    folder_import._thread.join()  # the last one is handed over, not committed yet
    window.close()
    with qtbot.assertNotEmitted(window.controller.error):  # was: a batch committed into the closed database
        QCoreApplication.processEvents()  # what the thread handed over: dropped
    store = Store(data.database)
    # both whole batches kept (not only the first), the one not committed not half-recorded
    assert sorted(r.prompt for r in store.images()) == sorted(f"p{i}" for i in range(COUNT - 2 * BATCH, COUNT))
    store.close()

    disk.allow(2 * COUNT)  # as many as both starts read
    again = _window(qtbot, data)  # the next start finishes it, each picture once
    again.controller.folder_import.start()
    qtbot.waitUntil(lambda: not again.controller.folder_import.running)
    assert _prompts(again) == [f"p{i}" for i in range(COUNT - 1, -1, -1)]
    assert again.controller.reconcile_report.imported == COUNT - 2 * BATCH


def test_a_search_typed_while_the_images_come_in_lists_only_those_it_finds(qtbot, data_root, disk):
    window = _window(qtbot, resolve_data_dir(data_root))
    folder_import = window.controller.folder_import
    search = window.gallery_panel.search
    search.setText("p2")
    qtbot.keyClick(search, Qt.Key.Key_Return)
    folder_import.start()
    qtbot.waitUntil(lambda: folder_import.report.imported == BATCH)  # p24 … p15
    assert _prompts(window) == ["p24", "p23", "p22", "p21", "p20"]
    disk.allow(COUNT)
    qtbot.waitUntil(lambda: not folder_import.running)
    assert _prompts(window) == ["p24", "p23", "p22", "p21", "p20", "p2"]
    search.clear()
    assert _prompts(window) == [f"p{i}" for i in range(COUNT - 1, -1, -1)]
