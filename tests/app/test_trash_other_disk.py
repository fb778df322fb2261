"""An images folder on another disk than the data folder (a link or junction to a bigger one): every delete failed
with "Invalid cross-device link", since a file goes to the trash by one rename (crash-safe: it is in one place or
the other). The trash is then kept on the images' own disk, and delete, undo and the start-up repair work as on one
disk."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from PIL import Image

from app.data_dir import IMAGES_TRASH, DataDir
from app.gallery_model import GalleryModel
from app.image_files import TrashGathered, gather_trash
from app.reconcile import reconcile
from app.store import Store
from gpu.atomic import scratch_prefix
from gpu.generation.png_metadata import write_png
from tests.app import gui
from tests.app.gui import open_window, trash_listing

OTHER_DISK = Path("/dev/shm")  # tmpfs: another file system than the tests' temporary folder


@pytest.fixture
def images_elsewhere(data_root):
    """images/ as a link to a folder on another file system, holding one image in the gallery."""
    if not OTHER_DISK.is_dir() or os.stat(OTHER_DISK).st_dev == os.stat(data_root).st_dev:
        pytest.skip("needs a second file system")
    elsewhere = Path(tempfile.mkdtemp(dir=OTHER_DISK))
    (data_root / "images").symlink_to(elsewhere, target_is_directory=True)
    data = DataDir(data_root).create()
    write_png(data.images / "d" / "0.png", Image.new("RGB", (8, 8)), {"prompt": "fox"})
    store = Store(data.database)
    store.add_image("d/0.png", {"prompt": "fox"}, created=1.0)
    store.close()
    yield data
    shutil.rmtree(elsewhere)


def test_delete_and_undo_work_with_the_images_on_another_disk(qtbot, data_root, images_elsewhere):
    data = images_elsewhere
    window = open_window(qtbot, data_root)
    window.gallery_panel.select_row(0)
    window.gallery_panel.delete_selected()
    assert window.error_dialog is None  # was: "[Errno 18] Invalid cross-device link" at every delete
    assert data.trash == data.images / IMAGES_TRASH  # hidden: the images folder's listing leaves it out
    assert window.controller.gallery.rowCount() == 0 and (data.trash / "d" / "0.png").is_file()
    gui.open_windows.remove(window)
    window.close()
    window = open_window(qtbot, data_root)  # the trash is found where it was, still undoable
    assert window.controller.gallery.rowCount() == 0 and window.controller.data.trash == data.trash
    window.gallery_panel.undo_button.click()
    assert window.error_dialog is None and window.controller.gallery.rowCount() == 1
    assert (data.images / "d" / "0.png").is_file() and not (data.trash / "d" / "0.png").exists()


def test_the_trash_of_an_earlier_start_is_moved_to_the_images_drive(qtbot, data_root):
    """images/ moved to another drive (and linked back) after a delete: the next start keeps the trash in
    images/.trash, and the file deleted before, still in data/trash, was out of reach: no Undo, Empty trash forgot
    its row and left the file for good, and a file a failed delete left there never came back. It is copied over
    (the other drive: no rename), its row's Undo works, and the picture of an entry shown in the gallery is back."""
    if not OTHER_DISK.is_dir() or os.stat(OTHER_DISK).st_dev == os.stat(data_root).st_dev:
        pytest.skip("needs a second file system")
    data = DataDir(data_root).create()
    assert data.trash == data_root / "trash"
    for i in range(2):
        write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (8, 8)), {"prompt": f"fox{i}"})
    store = Store(data.database)
    store.add_images([(f"d/{i}.png", {"prompt": f"fox{i}"}, float(i), None, None) for i in range(2)])
    gallery = GalleryModel(store, data)
    gallery.delete([0])  # d/1.png: in data/trash, its row trashed
    (data.trash / "d" / "0.png").write_bytes((data.images / "d" / "0.png").read_bytes())  # as a failed delete
    (data.images / "d" / "0.png").unlink()  # left it: in the trash, its row shown (DeleteNotSaved)
    store.close()

    elsewhere = Path(tempfile.mkdtemp(dir=OTHER_DISK))
    try:
        shutil.move(data.images, elsewhere / "images")
        data.images.symlink_to(elsewhere / "images", target_is_directory=True)
        data = DataDir(data_root).create()
        assert data.trash == data.images / IMAGES_TRASH
        store = Store(data.database)
        report = reconcile(store, data)  # all at once: the app copies after its window shows (FolderImport)
        assert (data.images / "d" / "0.png").is_file()  # was: left in data/trash, its entry without a picture
        assert not (data_root / "trash").exists()  # emptied, then removed: no second trash
        assert report.gather_later and report.notices == [] and report.missing == 0  # d/0.png waited, not missing
        assert store.all_paths()["d/0.png"] == (1, False, False)
        gallery = GalleryModel(store, data)
        assert gallery.undo_count == 1 and trash_listing(qtbot, gallery).size[0] == 1  # was: 0 and (0, 0)
        assert gallery.undo_delete() and (data.images / "d" / "1.png").is_file()
        assert sorted(r.path for r in store.images()) == ["d/0.png", "d/1.png"]
        store.close()
    finally:
        shutil.rmtree(elsewhere)


def test_a_copy_to_the_other_drive_cut_short_is_finished_at_the_next_start(tmp_path):
    """Killed after the copy was in place but before the original went: the next start finds the same bytes in
    place and lets the original go. Killed during the copy: its scratch copy never took the file's name, and is
    removed when the copy is made again."""
    if not OTHER_DISK.is_dir() or os.stat(OTHER_DISK).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system")
    elsewhere = Path(tempfile.mkdtemp(dir=OTHER_DISK))
    try:
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "images").symlink_to(elsewhere, target_is_directory=True)
        data = DataDir(tmp_path / "data").create()
        old = data.other_trash
        (old / "d").mkdir(parents=True)
        for name in ("copied.png", "half.png"):
            (old / "d" / name).write_bytes(name.encode() * 1000)
        (data.trash / "d").mkdir()
        (data.trash / "d" / "copied.png").write_bytes(b"copied.png" * 1000)  # in place, the original not removed
        scratch = data.trash / "d" / f"{scratch_prefix(data.trash / 'd' / 'half.png')}abcdefgh.tmp"
        scratch.mkdir()
        (scratch / "new.png").write_bytes(b"half")  # a copy cut short
        assert gather_trash(data) == TrashGathered(moved=2)
        assert sorted(p.relative_to(data.trash).as_posix() for p in data.trash.rglob("*")) == [
            "d", "d/copied.png", "d/half.png"]  # fmt: skip
        assert (data.trash / "d" / "half.png").read_bytes() == b"half.png" * 1000 and not old.exists()
    finally:
        shutil.rmtree(elsewhere)
