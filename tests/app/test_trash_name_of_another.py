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
    assert len(said) == 1 and "no longer in the trash folder" in said[0].message  # it comes back marked missing
    assert gallery.undo_delete()  # the first entry comes back with its picture (was: marked missing, no file)
    [back] = [r for r in store.images() if r.id == 1]
    assert not back.missing and (data.images / back.path).read_bytes() == first
    store.close()
