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
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app import gui
from tests.app.gui import open_window

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
