"""An image added to, deleted from or brought back to a large gallery costs what it changes, not what the
gallery holds: each laid out every thumbnail of the grid again, and the grid asked the model for the index of
every row (two calls into Python per image: about 100 ms per generated image with 30,000 images). Counted here
(calls from the grid into the model, until the grid is laid out again), not timed."""

from __future__ import annotations

from PySide6.QtCore import QPersistentModelIndex, Qt
from PySide6.QtWidgets import QApplication

from app.data_dir import resolve_data_dir
from app.gallery_model import GalleryModel
from app.store import Store
from tests.app.gui import window_without_engine
from tests.app.scale import calls_into, methods

_COUNT = 2000


def test_adding_deleting_and_undoing_in_a_large_gallery_leaves_the_other_rows_alone(qtbot, data_root):
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    (data.images / "d").mkdir(parents=True)
    rows = []
    for i in range(_COUNT):
        (data.images / "d" / f"{i}.png").write_bytes(b"png")  # nothing here decodes them
        rows.append((f"d/{i}.png", {"prompt": f"{'owl' if i % 2 else 'fox'} {i}"}, float(i), 3, None))
    store.add_images(rows)
    store.close()
    window = window_without_engine(qtbot, data)
    gallery, panel = window.controller.gallery, window.gallery_panel
    view = panel.view
    qtbot.waitUntil(lambda: not window.controller.folder_import.running)

    def laid_out() -> bool:
        """Whether the grid has placed its last image (it lays out a batch at a time while events run)."""
        return view.visualRect(gallery.index(gallery.rowCount() - 1)).isValid()

    qtbot.waitUntil(laid_out)
    panel.select_row(5)
    selected = QPersistentModelIndex(gallery.index(5))

    def then_laid_out(action) -> None:
        action()
        qtbot.waitUntil(laid_out)
        QApplication.processEvents()  # and painted

    def add() -> None:
        (data.images / "d" / "new.png").write_bytes(b"png")
        gallery.add("d/new.png", {"prompt": "a new owl"})

    # was: 2 calls of rowCount per image (4,100 here), at each add, delete and undo; now those of the rows painted
    grid_calls = methods(GalleryModel)
    assert calls_into(grid_calls, lambda: then_laid_out(add)) < _COUNT / 4
    assert gallery.record(0).path == "d/new.png" and gallery.rowCount() == _COUNT + 1
    assert selected.row() == view.currentIndex().row() == 6 and panel.current() == gallery.record(6)
    deleted = panel.current()
    assert calls_into(grid_calls, lambda: then_laid_out(panel.delete_selected)) < _COUNT / 4
    assert gallery.rowCount() == _COUNT and deleted not in [gallery.record(r) for r in range(4, 9)]
    assert calls_into(grid_calls, lambda: then_laid_out(window.controller.undo_delete)) < _COUNT / 4
    shown = [gallery.record(r).path for r in range(gallery.rowCount())]
    assert shown == [r.path for r in window.controller.store.images()] and shown[6] == deleted.path
    # The grid shows the rows as they are now: the new image first, and the arrow keys go through them in order.
    assert view.indexAt(view.visualRect(gallery.index(0)).center()).row() == 0
    view.setFocus()
    panel.select_row(6)
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.currentIndex().row() == 7 and panel.current() == gallery.record(7)


def test_the_string_list_underneath_cannot_be_edited_or_reordered(qtbot, tmp_path):
    """The gallery model keeps one placeholder string per row so that Qt counts its rows in C++; a string list's
    own edit, move and sort calls changed those strings or their order without ``_rows`` following: after a sort,
    the selection pointed at other images (and a Delete would have trashed them)."""
    from PIL import Image

    from app.data_dir import DataDir
    from gpu.generation.png_metadata import write_png

    data = DataDir(tmp_path / "data").create()
    store = Store(data.database)
    rows = 40  # a string list's sort leaves a few equal rows in place: with 40 it moved every one
    for i in range(rows):
        write_png(data.images / f"{i}.png", Image.new("RGB", (8, 8)), {"prompt": f"cat {i}"})
    store.add_images([(f"{i}.png", {"prompt": f"cat {i}"}, float(i), None, None) for i in range(rows)])
    gallery = GalleryModel(store, data)
    before = [gallery.record(r).path for r in range(rows)]
    first = QPersistentModelIndex(gallery.index(0))
    assert not gallery.setData(gallery.index(0), "zzz")
    assert not gallery.setItemData(gallery.index(0), {Qt.ItemDataRole.EditRole: "zzz"})
    assert not gallery.moveRows(gallery.index(0).parent(), 0, 1, gallery.index(0).parent(), 3)
    gallery.sort(0, Qt.SortOrder.DescendingOrder)
    assert first.row() == 0 and [gallery.record(r).path for r in range(rows)] == before
    assert gallery.itemData(gallery.index(0))[Qt.ItemDataRole.DisplayRole] == gallery.data(gallery.index(0))
    store.close()
