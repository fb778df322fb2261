"""The data folder moved, renamed or removed while the app runs: nothing is written at its old path (which split
images from their database), and the job, delete or undo that would have is refused in words that say what
happened and what to do."""

from __future__ import annotations

import time

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from app.data_dir import DataDir, DataDirMoved
from app.image_files import images_folder, move_to_trash, new_image_path, restore_from_trash
from gpu.generation.png_metadata import write_png


@pytest.fixture
def moved(tmp_path) -> tuple[DataDir, DataDir]:
    """A data folder as the app opened it, with one image in the gallery's folder and one in the trash, then
    renamed (as in a file manager): the DataDir the app holds, and the folder where the data is now."""
    data = DataDir(tmp_path / "nibble").create()
    for folder in (data.images, data.trash):
        write_png(folder / "d" / "x.png", Image.new("RGB", (8, 8)), {"prompt": "fox"})
    data.root.rename(tmp_path / "nibble-moved")
    return data, DataDir(tmp_path / "nibble-moved")


def test_no_write_makes_the_old_folder_again(moved):
    data, now = moved
    for write in (lambda: new_image_path(data, 7, 0), lambda: move_to_trash(data, "d/x.png"),
                  lambda: restore_from_trash(data, "d/x.png")):  # fmt: skip
        with pytest.raises(DataDirMoved) as refused:
            write()
        assert not data.root.exists()  # was: images/YYYY-MM-DD (or trash/d, images/d) made again under it
        assert f"The data folder {data.root} was moved or removed while Nibble Studio ran" in str(refused.value)
        assert "--data-dir" in str(refused.value)
    assert "The picture just generated was not saved." in str(pytest.raises(DataDirMoved, new_image_path, data, 7, 0))
    assert (now.images / "d" / "x.png").is_file() and (now.trash / "d" / "x.png").is_file()  # nothing moved

    data.root.mkdir()  # another folder made at the old path (by another program, or by hand): not the one opened
    with pytest.raises(DataDirMoved):
        images_folder(data)
    assert list(data.root.iterdir()) == []
    assert images_folder(DataDir(data.root).create()).is_dir()  # a restart on it uses it


def test_a_job_after_the_data_folder_was_renamed_is_refused(qtbot, window):
    controller = window.controller
    controller.prompt.prompt = "a yellow star"
    errors: list = []
    controller.error.connect(errors.append)  # emitted on the GUI thread (the controller's)
    root = controller.data.root
    root.rename(root.with_name("data-moved"))
    try:
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: bool(errors) or controller.gallery.rowCount() > 0, timeout=60000)
        qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
        # was: the job ran, made images/<day>/ again under the old path and saved its PNG there, its row in the
        # moved database: a restart there showed one image and no history, the moved folder lacked the image
        assert not root.exists()
        assert len(errors) == 1 and errors[0].kind == "user"
        assert f"The data folder {root} was moved or removed" in errors[0].message
        assert "--data-dir NEW_PATH" in errors[0].message and controller.gallery.rowCount() == 0
    finally:
        if not root.exists():
            root.with_name("data-moved").rename(root)  # moved back: the window closes on it (saving its settings)
    assert time.strftime("%Y-%m-%d") not in {p.name for p in controller.data.images.iterdir()}
