"""A delete or an undo refused because the data folder was renamed under the running window says so, and what to
do: it said "An image could not be moved to the trash folder: The data folder … was moved …", with a hint to check
that the image is not open in another program and to try again, which cannot help."""

from __future__ import annotations

from PIL import Image

from app.data_dir import resolve_data_dir
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import window_without_engine


def test_a_delete_and_an_undo_after_the_data_folder_was_renamed_say_what_happened(qtbot, data_root):
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    for i in range(2):
        store.add_image(write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (8, 8)), {"prompt": "fox"})
                        .relative_to(data.images).as_posix(), {"prompt": "fox"})  # fmt: skip
    store.close()
    window = window_without_engine(qtbot, data)
    controller = window.controller
    errors: list = []
    controller.error.connect(errors.append)
    window.gallery_panel.select_row(0)
    window.gallery_panel.delete_selected()  # in the trash: an undo has something to bring back
    moved = data.root.with_name("data-moved")
    data.root.rename(moved)
    try:
        window.gallery_panel.select_row(0)
        window.gallery_panel.delete_selected()
        window.gallery_panel.undo_button.click()
    finally:
        moved.rename(data.root)  # the window closes on it (saving its settings)
    assert len(errors) == 2 and controller.gallery.rowCount() == 1
    for error in errors:
        # was: "An image could not be …: The data folder … ." and "Check that the image is not open in another program"
        assert error.message.startswith(f"The data folder {data.root} was moved or removed while Nibble Studio ran")
        assert error.hint.startswith("Its images, gallery database and settings stay together only in one folder")
