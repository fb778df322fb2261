"""Undo delete says nothing: a delete says how many images went to the trash ("the images only vanished from the
grid"), but the images an Undo brings back come back without a word, and under a search or the "★ only" view that
does not show them they do not come back into sight either. The user, seeing nothing happen, clicks Undo again,
and an older deletion comes back too, also unseen."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.data_dir import resolve_data_dir
from app.gallery_model import GalleryModel
from app.store import Store
from app.trash_actions import TrashActions
from tests.app.gui import gallery_images, window_without_engine


def test_an_undo_says_what_came_back_also_when_the_search_hides_it(qtbot, data_root):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red fox", "an owl at night", "a cat on a roof"])
    window = window_without_engine(qtbot, data)
    panel, gallery = window.gallery_panel, window.controller.gallery
    said: list[str] = []
    window.controller.status_message.connect(said.append)
    for prompt in ("a cat on a roof", "an owl at night"):  # two deletions
        panel.select_row(next(r for r in range(gallery.rowCount()) if gallery.record(r).prompt == prompt))
        panel.delete_selected()
    assert said == ["1 image moved to the trash (Undo delete brings it back)."] * 2
    panel.search.setText("fox")
    qtbot.keyClick(panel.search, Qt.Key.Key_Return)
    said.clear()
    panel.undo_button.click()  # the owl is back, out of the search's sight
    assert [gallery.record(r).prompt for r in range(gallery.rowCount())] == ["a red fox"]
    assert window.controller.store.image(2) is not None and len(window.controller.store.images()) == 2
    # was: nothing said; the grid unchanged
    assert len(said) == 1 and "1 image" in said[0] and "search" in said[0]


def test_an_undo_says_how_many_of_the_images_back_the_star_only_view_hides(qtbot, data_root):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red fox", "an owl at night"])
    store = Store(data.database)
    gallery = GalleryModel(store, data)
    told: list[str] = []
    actions = TrashActions(gallery, data, store.path, lambda error: told.append(error.message), told.append)
    gallery.set_favorite([0], True)  # the owl
    actions.delete_images([0, 1])
    gallery.set_filter(favorites_only=True)
    told.clear()
    actions.undo_delete()
    assert told == ["2 images brought back from the trash (1 hidden by the ★ only view)."]
    assert [gallery.record(r).prompt for r in range(gallery.rowCount())] == ["an owl at night"]
    gallery.stop()
    store.close()
