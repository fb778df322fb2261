"""The gallery's rows against the files: a delete while thumbnails load, a new image under the name of a missing
one, and favorites (several at once, kept across a restart, a database that refuses the change)."""

from __future__ import annotations

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from app.data_dir import resolve_data_dir
from app.gallery_errors import FavoritesNotSaved
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app import gui
from tests.app.gui import open_window, pane_text


def _images(data_root, count: int, size: int = 16) -> None:
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    for i in range(count):
        write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (size, size), (200, 0, 0)), {"prompt": f"owl {i}"})
        store.add_image(f"d/{i}.png", {"prompt": f"owl {i}"}, created=float(i))
    store.close()


def test_thumbnails_loading_while_images_are_deleted_or_the_window_closes(qtbot, data_root, tmp_path):
    _images(data_root, 16, size=256)
    window = open_window(qtbot, data_root)
    gallery, panel = window.controller.gallery, window.gallery_panel
    decoration = Qt.ItemDataRole.DecorationRole
    for row in range(gallery.rowCount()):
        gallery.data(gallery.index(row), decoration)  # the loads start, as when the grid is painted
    panel.view.selectAll()
    panel.delete_selected()  # at once: most files leave while (or before) their thumbnail is decoded
    gallery.thumbnails.wait()
    qtbot.wait(20)  # the loads' results arrive
    panel.undo_button.click()
    assert gallery.rowCount() == 16
    # was: the thumbnails read as the files moved away were kept, null: the images showed as "missing"
    qtbot.waitUntil(lambda: all(gallery.data(gallery.index(r), decoration).pixelColor(80, 80).getRgb()
                                == (200, 0, 0, 255) for r in range(16)))  # fmt: skip
    # A grid of large images just scrolled to, then the window closed: closing waited for every queued decode
    # (up to 2 s); now they are dropped, and none starts after.
    Image.effect_noise((1024, 1024), 60).convert("RGB").save(tmp_path / "big.png", compress_level=1)
    for i in range(100):  # the same large file under 100 names: 100 decodes of ~20 ms each, cheaply made
        (tmp_path / f"{i}.png").symlink_to(tmp_path / "big.png")
    loaded: list[str] = []
    gallery.thumbnails.loaded.connect(loaded.append)
    for i in range(100):
        gallery.thumbnails.get(tmp_path / f"{i}.png")  # as the grid asks while it paints
    gui.open_windows.remove(window)
    window.close()
    gallery.thumbnails.wait()
    qtbot.wait(20)  # the decodes that did run are announced
    assert len(loaded) < 20  # was: all 100
    ran = len(loaded)
    gallery.thumbnails.get(tmp_path / "big.png")  # a paint after the close starts no decode
    gallery.thumbnails.wait()
    qtbot.wait(20)
    assert len(loaded) == ran


def test_a_new_image_under_the_name_of_a_missing_one_is_listed_once(qtbot, data_root):
    _images(data_root, 2)
    data = resolve_data_dir(data_root)
    (data.images / "d" / "0.png").unlink()  # gone by hand: flagged missing at the start
    window = open_window(qtbot, data_root)
    gallery = window.controller.gallery
    assert [gallery.record(r).missing for r in range(2)] == [False, True]
    write_png(data.images / "d" / "0.png", Image.new("RGB", (16, 16)), {"prompt": "a new owl"})
    gallery.add("d/0.png", {"prompt": "a new owl"})  # as a finished job adds its image
    listed = [(gallery.record(r).path, gallery.record(r).prompt, gallery.record(r).missing)
              for r in range(gallery.rowCount())]  # fmt: skip
    assert listed == [("d/0.png", "a new owl", False), ("d/1.png", "owl 1", False)]  # was: d/0.png twice
    gallery.reload()
    assert [(gallery.record(r).path, gallery.record(r).prompt) for r in range(gallery.rowCount())] == [
        (path, prompt) for path, prompt, _missing in listed
    ]


def test_favorites_of_a_mixed_selection_are_all_set_and_kept_across_a_restart(qtbot, data_root):
    _images(data_root, 3)
    window = open_window(qtbot, data_root)
    panel, gallery = window.gallery_panel, window.controller.gallery
    panel.select_row(0)
    panel.favorite_button.click()
    panel.view.selectAll()
    panel.favorite_button.click()  # one starred, two not: all three starred (was: the starred one lost its star)
    assert [gallery.record(r).favorite for r in range(3)] == [True, True, True]
    panel.favorite_button.click()  # all starred: all unstarred
    assert [gallery.record(r).favorite for r in range(3)] == [False, False, False]
    panel.select_row(2)
    panel.favorite_button.click()
    errors = []
    window.controller.error.connect(errors.append)
    window.controller.store._db.execute("PRAGMA query_only = ON")  # a database that refuses every change
    panel.view.selectAll()
    panel.favorite_button.click()
    assert [gallery.record(r).favorite for r in range(3)] == [False, False, True]  # as the database has them
    assert len(errors) == 1 and "Starring 3 images failed" in errors[0].message
    assert str(window.controller.store.path) in errors[0].message and "readonly" in errors[0].message
    with pytest.raises(FavoritesNotSaved) as failed:  # the model says what failed, the panel only shows it
        gallery.set_favorite([0], False)
    assert failed.value.error.message == (f"Unstarring 1 image failed: the gallery database "
                                          f"{window.controller.store.path} could not be changed (attempt to write "
                                          "a readonly database).")  # fmt: skip
    assert gallery.record(0).favorite is False
    window.controller.store._db.execute("PRAGMA query_only = OFF")
    gui.open_windows.remove(window)
    window.close()
    window = open_window(qtbot, data_root)
    gallery = window.controller.gallery
    assert [gallery.record(r).prompt for r in range(3) if gallery.record(r).favorite] == ["owl 0"]
    window.gallery_panel.favorites_only.setChecked(True)
    assert gallery.rowCount() == 1


def test_unstarred_images_leave_the_star_view_at_once_and_the_next_is_selected(qtbot, data_root):
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    for i, prompt in enumerate(("a cat", "a dog", "a black cat", "a cat asleep")):
        write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (16, 16)), {"prompt": prompt})
        store.add_image(f"d/{i}.png", {"prompt": prompt}, created=float(i))
    store.set_favorites([2, 3, 4], True)  # all but "a cat"
    store.close()
    window = open_window(qtbot, data_root)
    panel, gallery = window.gallery_panel, window.controller.gallery

    def shown() -> list[str]:
        return [gallery.record(r).prompt for r in range(gallery.rowCount())]

    panel.search.setText("cat")
    qtbot.keyClick(panel.search, Qt.Key.Key_Return)
    panel.favorites_only.setChecked(True)
    assert shown() == ["a cat asleep", "a black cat"]
    panel.select_row(0)
    panel.favorite_button.click()  # was: it stayed, "★"-less, in the "★ only" view until the filter was applied
    assert shown() == ["a black cat"] == [r.prompt for r in window.controller.store.images("cat", True)]
    assert panel.current() is not None and panel.current().prompt == "a black cat"  # the next image is selected
    panel.favorite_button.click()
    assert shown() == [] and pane_text(qtbot, panel) == "" and not panel.favorite_button.isEnabled()
    panel.favorites_only.setChecked(False)
    assert shown() == ["a cat asleep", "a black cat", "a cat"]
    panel.view.selectAll()
    panel.favorite_button.click()  # starred under a search: the rows stay those the search finds
    assert (
        shown() == ["a cat asleep", "a black cat", "a cat"] == [r.prompt for r in window.controller.store.images("cat")]
    )
