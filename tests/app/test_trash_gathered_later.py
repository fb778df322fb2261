"""The old trash on another drive than today's (images/ moved to another drive, or back, since the last start): its
files are copied across, which took minutes for gigabytes on a USB drive before the window showed, with nothing on
screen. The window now shows first and the copy runs on the start-up import's thread, said in the status bar;
Undo delete and Empty trash wait for it (refused with a word), deleting goes on and is never undone by the copy,
and a close stops it between two files, the next start gathering the rest. The real window, without the engine."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest
from PIL import Image

import app.image_files
from app.data_dir import IMAGES_TRASH, DataDir
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app import gui
from tests.app.gui import pane_text, window_without_engine

OTHER_DISK = Path("/dev/shm")  # tmpfs: another file system than the tests' temporary folder


class _SlowCopy:
    """Holds the first copy across drives until ``go`` is set (a slow USB drive), after its name was checked free."""

    def __init__(self) -> None:
        self.held, self.go = threading.Event(), threading.Event()
        self._copy = app.image_files.atomic_write_with
        self._first = True

    def __call__(self, target, writer):
        if self._first:
            self._first = False
            self.held.set()
            assert self.go.wait(30)
        return self._copy(target, writer)


@pytest.fixture
def moved(tmp_path, monkeypatch):
    """A data folder whose images/ is a link to another drive, its trash images/.trash there, and the trash of an
    earlier start in data/trash: d/0.png, a stray file (no entry) under the name of an image in the gallery;
    d/1.png, a deleted image (undoable); d/3.png, the picture of an entry in the gallery (a failed delete left it
    there). The gallery also shows d/0.png, in the images folder. Copies across drives are held (``_SlowCopy``)."""
    if not OTHER_DISK.is_dir() or os.stat(OTHER_DISK).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system")
    elsewhere = Path(tempfile.mkdtemp(dir=OTHER_DISK))
    root = tmp_path / "data"
    old = root / "trash"
    for rel, colour in (("d/0.png", 1), ("d/1.png", 2), ("d/3.png", 3)):
        write_png(old / rel, Image.new("RGB", (8, 8), (colour, 0, 0)), {"prompt": f"p{rel[2]}"})
    (root / "images").symlink_to(elsewhere, target_is_directory=True)
    data = DataDir(root).create()
    assert data.trash == data.images / IMAGES_TRASH and data.other_trash == old
    write_png(data.images / "d" / "0.png", Image.new("RGB", (8, 8), (9, 9, 9)), {"prompt": "p0"})
    store = Store(data.database)
    store.add_images([(f"d/{i}.png", {"prompt": f"p{i}"}, float(i), None, None) for i in (0, 1, 3)])
    store.set_trashed_many([(2, None, None)], True, when=1.0)  # d/1.png
    store.close()
    slow = _SlowCopy()
    monkeypatch.setattr(app.image_files, "atomic_write_with", slow)
    yield data, slow
    slow.go.set()
    shutil.rmtree(elsewhere)


def test_the_window_shows_before_the_old_trash_is_copied_and_undo_waits_for_it(qtbot, moved):
    data, slow = moved
    picture = (data.images / "d" / "0.png").read_bytes()
    window = window_without_engine(qtbot, data)
    controller, gallery, panel = window.controller, window.controller.gallery, window.gallery_panel
    folder_import = controller.folder_import
    assert folder_import.gathering and (data.other_trash / "d" / "1.png").is_file()  # was: copied before the window
    assert gallery.rowCount() == 2 and not any(r.missing for r in map(gallery.record, range(2)))  # d/3.png: waits
    folder_import.start()
    assert slow.held.wait(30)
    qtbot.waitUntil(lambda: window.import_label.text() == "Moving the old trash: 0 of 3 files…")
    assert not panel.undo_button.isEnabled() and not panel.empty_trash_button.isEnabled()
    with qtbot.waitSignal(gallery.notice) as said:
        controller.undo_delete()  # Ctrl+Z: the button is greyed
    assert "Undo delete waits until the old trash folder" in said.args[0].message and gallery.undo_count == 0
    with qtbot.waitSignal(gallery.notice):
        gallery.list_trash_to_empty(lambda _listing: pytest.fail("listed while the old trash is gathered"))

    panel.select_row(gallery.row_of(1))  # d/0.png, its name held by the stray file being copied
    panel.delete_selected()
    assert (data.trash / "d" / "0.png").read_bytes() == picture and gallery.rowCount() == 1
    slow.go.set()
    qtbot.waitUntil(lambda: not folder_import.running)

    # the copy did not replace the picture just deleted: the stray file stays in the old trash, said once
    assert (data.trash / "d" / "0.png").read_bytes() == picture and (data.other_trash / "d" / "0.png").is_file()
    assert "1 file in the old trash folder" in window.error_dialog.text()
    assert "a different file of the same name is already there" in window.error_dialog.text()
    assert (data.trash / "d" / "1.png").is_file() and (data.images / "d" / "3.png").is_file()  # moved back
    store = Store(data.database)
    assert store.all_paths()["d/3.png"] == (3, False, False)  # not flagged missing
    store.close()
    assert gallery.undo_count == 2 and panel.undo_button.isEnabled() and panel.empty_trash_button.isEnabled()
    controller.undo_delete()
    assert (data.images / "d" / "0.png").read_bytes() == picture
    controller.undo_delete()
    assert (data.images / "d" / "1.png").is_file() and gallery.rowCount() == 3 and gallery.undo_count == 0


def test_a_close_during_the_copy_stops_between_two_files_and_the_next_start_goes_on(qtbot, moved):
    data, slow = moved
    window = window_without_engine(qtbot, data)
    folder_import = window.controller.folder_import
    folder_import.start()
    assert slow.held.wait(30)
    gui.open_windows.remove(window)
    window.close()  # waits a moment for the file being copied, then leaves it to its thread
    slow.go.set()
    folder_import._thread.join(30)
    assert not folder_import._thread.is_alive()
    assert (data.trash / "d" / "0.png").is_file()  # the file being copied was finished, the next not begun
    assert sorted(p.name for p in (data.other_trash / "d").iterdir()) == ["1.png", "3.png"]

    again = window_without_engine(qtbot, DataDir(data.root).create())  # the next start
    again.controller.folder_import.start()
    qtbot.waitUntil(lambda: not again.controller.folder_import.running)
    assert (data.trash / "d" / "1.png").is_file() and (data.images / "d" / "3.png").is_file()
    assert again.controller.gallery.undo_count == 1


def test_the_repairs_after_the_copy_list_no_folder_on_the_qt_thread_and_keep_the_selection(qtbot, moved,
                                                                                           monkeypatch):  # fmt: skip
    """The repairs after the copy listed images/ and the trash on the Qt thread (seconds at 30,000 images, the
    window frozen), then reloaded the gallery: the image the user had selected meanwhile was no longer selected."""
    import app.reconcile

    data, slow = moved
    window = window_without_engine(qtbot, data)
    controller, gallery, panel = window.controller, window.controller.gallery, window.gallery_panel
    listed_by: list[str] = []
    list_folder = app.reconcile.png_paths
    monkeypatch.setattr(app.reconcile, "png_paths",
                        lambda folder, **kw: listed_by.append(threading.current_thread().name)
                        or list_folder(folder, **kw))  # fmt: skip
    controller.folder_import.start()
    assert slow.held.wait(30)
    panel.select_row(gallery.row_of(1))  # d/0.png
    slow.go.set()
    qtbot.waitUntil(lambda: not controller.folder_import.running)
    assert (data.images / "d" / "3.png").is_file()  # moved back by the repairs: the gallery changed
    assert listed_by and threading.main_thread().name not in listed_by, listed_by
    assert [gallery.record(row).id for row in panel.selected_rows()] == [1]  # was: [], the selection reset


def test_the_repairs_after_the_copy_leave_alone_images_deleted_or_saved_after_the_listing(tmp_path):
    """The folders are listed on the copy's thread, and the repairs made on the Qt thread after: an image deleted
    in between was listed in images/ and not in the trash (taken for a delete undone by a crash: brought back, its
    file in the trash), and an image saved in between was not listed (flagged missing)."""
    from app.image_files import move_to_trash
    from app.reconcile import list_folders, repair_after_gather

    data = DataDir(tmp_path / "data").create()
    store = Store(data.database)
    for i in range(2):
        write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (8, 8), (i, 0, 0)), {"prompt": f"p{i}"})
        store.add_image(f"d/{i}.png", {"prompt": f"p{i}"}, created=float(i))
    listed = list_folders(data)
    move_to_trash(data, "d/0.png")  # deleted, as the gallery does: the file moves, then its row says so
    store.set_trashed_many([(1, None, None)], True, when=1.0)
    write_png(data.images / "d" / "2.png", Image.new("RGB", (8, 8)), {"prompt": "p2"})  # a new image is saved
    store.add_image("d/2.png", {"prompt": "p2"}, created=2.0)
    assert repair_after_gather(store, data, listed) == (False, [])
    assert store.all_paths() == {"d/0.png": (1, False, True), "d/1.png": (2, False, False),
                                 "d/2.png": (3, False, False)}  # fmt: skip
    assert (data.trash / "d" / "0.png").is_file() and not (data.images / "d" / "0.png").exists()
    store.close()


def test_the_pane_of_the_selected_image_says_its_file_is_back(qtbot, moved):
    """The picture of a selected entry came back with the gathering, its row brought up to date in place: the pane
    was written only when the selection changed, and still said "⚠ File missing" of a picture that was back."""
    data, slow = moved
    window = window_without_engine(qtbot, data)
    controller, gallery, panel = window.controller, window.controller.gallery, window.gallery_panel
    controller.folder_import.start()
    assert slow.held.wait(30)
    panel.select_row(gallery.row_of(3))  # d/3.png, its picture in the old trash, on its way back
    picture = data.images / "d" / "3.png"
    assert pane_text(qtbot, panel).startswith(f"⚠ File missing: {picture}")
    slow.go.set()
    qtbot.waitUntil(lambda: not controller.folder_import.running)
    assert picture.is_file() and [gallery.record(row).id for row in panel.selected_rows()] == [3]
    said = pane_text(qtbot, panel)
    assert "File missing" not in said and said.endswith(f"File: {picture}")  # was: still "⚠ File missing: …"
