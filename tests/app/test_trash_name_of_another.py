"""A gallery entry whose file is missing, deleted while the trash holds a file under its name: that file is its
picture only when no image in the trash has it (a delete whose commit failed left it there). The file of another
deleted image under that name was taken over: Undo then brought that picture back as this entry's, and the other
image came back without it. Paths in the database are unique only as written: on a file system that ignores case
(Windows, macOS, a USB drive's exFAT) "d/img.png" of one entry is the file "d/IMG.png" of another in the trash."""

from __future__ import annotations

import os

from PIL import Image

from app.data_dir import DataDir
from app.gallery_model import GalleryModel
from app.store import Store
from gpu.generation.png_metadata import write_png


def test_deleting_a_missing_entry_never_takes_the_picture_of_another_in_the_trash(qtbot, tmp_path):
    data = DataDir(tmp_path / "data").create()
    picture = write_png(data.images / "d" / "IMG.png", Image.new("RGB", (8, 8), (1, 0, 0)), {"prompt": "a"})
    first = picture.read_bytes()
    store = Store(data.database)
    store.add_images([("d/IMG.png", {"prompt": "a"}, 1.0, None, None), ("d/img.png", {"prompt": "b"}, 2.0, None, None)])
    gallery = GalleryModel(store, data)
    gallery.delete([gallery.row_of(1)])  # the first picture to the trash
    # Both names one file, as where case is ignored (the tests' file system keeps case: a second link to the file)
    os.link(data.trash / "d" / "IMG.png", data.trash / "d" / "img.png")
    gallery.delete([gallery.row_of(2)])  # the second entry, whose file is missing
    said: list = []
    gallery.notice.connect(said.append)
    assert gallery.undo_delete()
    assert not (data.images / "d" / "img.png").exists()  # was: the first entry's picture, shown as the second's
    # it comes back marked missing, as it went (its file was not found when it was deleted): nothing new to say
    assert said == [] and [r.missing for r in store.images() if r.id == 2] == [True]
    assert gallery.undo_delete()  # the first entry comes back with its picture (was: marked missing, no file)
    [back] = [r for r in store.images() if r.id == 1]
    assert not back.missing and (data.images / back.path).read_bytes() == first
    gallery.stop()  # as the window closes it: a listing of the trash ending later never reads a closed database
    store.close()


def test_a_deleted_image_follows_its_file_renamed_while_the_old_trash_is_gathered(qtbot, tmp_path):
    """images/ moved to another drive: the old trash is copied into images/.trash after the window shows. An image
    deleted meanwhile whose name is, to a case-blind file system, that of a deleted image's file already copied
    renamed that file out of its way; the other image's row kept the old name (its file was not yet in the undo
    list), so Undo later brought this picture back as the other's and Empty trash deleted the other's picture."""
    import shutil
    import tempfile
    from pathlib import Path

    import pytest

    from app.image_files import gather_trash
    from app.reconcile import FolderImport, check_folder

    other_disk = Path("/dev/shm")
    if not other_disk.is_dir() or os.stat(other_disk).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system")
    elsewhere = Path(tempfile.mkdtemp(dir=other_disk))
    try:
        root = tmp_path / "data"
        write_png(root / "trash" / "d" / "IMG.png", Image.new("RGB", (8, 8), (1, 0, 0)), {"prompt": "B"})
        (root / "images").symlink_to(elsewhere, target_is_directory=True)
        data = DataDir(root).create()
        write_png(data.images / "d" / "img.png", Image.new("RGB", (8, 8), (2, 0, 0)), {"prompt": "A"})
        store = Store(data.database)
        store.add_images([("d/IMG.png", {"prompt": "B"}, 1.0, None, None),
                          ("d/img.png", {"prompt": "A"}, 2.0, None, None)])  # fmt: skip
        store.set_trashed_many([(1, None, None)], True, when=1.0)
        report, new = check_folder(store, data)
        gallery = GalleryModel(store, data)
        gallery.wait_for_gather(FolderImport(store, data, new, report))
        gather_trash(data)  # the thread's copy, done; the Qt thread has not heard of its end yet
        os.link(data.trash / "d" / "IMG.png", data.trash / "d" / "img.png")  # one file, two spellings
        gallery.delete([gallery.row_of(2)])
        [b] = [r for batch in store.trash_batches() for r in batch if r.id == 1]
        assert b.path != "d/IMG.png" and (data.trash / b.path).read_bytes() != (data.trash / "d/img.png").read_bytes()
        gallery.stop()
        store.close()
    finally:
        shutil.rmtree(elsewhere)


def test_a_dangling_link_in_the_trash_does_not_block_a_delete(qtbot, tmp_path):
    """The trash refuses to replace anything under an image's name, a dangling link included (a linked picture
    deleted, its target since removed); the name checks looked with ``exists``, which a dangling link fails, so
    every delete of that image failed with "delete it again". The link is moved out of the way like a file."""
    data = DataDir(tmp_path / "data").create()
    write_png(data.images / "d" / "0.png", Image.new("RGB", (8, 8), (1, 0, 0)), {"prompt": "a"})
    (data.trash / "d").mkdir(parents=True)
    (data.trash / "d" / "0.png").symlink_to(tmp_path / "gone.png")
    store = Store(data.database)
    store.add_images([("d/0.png", {"prompt": "a"}, 1.0, None, None)])
    gallery = GalleryModel(store, data)
    gallery.delete([gallery.row_of(1)])
    assert gallery.rowCount() == 0 and (data.trash / "d" / "0.png").is_file()
    assert gallery.undo_delete() and (data.images / "d" / "0.png").is_file()
    gallery.stop()
    store.close()
