"""The Delete key in the gallery and in the prompt history: each removes its own list's selection."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import Qt

from app.data_dir import resolve_data_dir
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import open_window


def test_delete_removes_the_selection_of_the_focused_list(qtbot, data_root):
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    for i in range(2):
        write_png(data.images / f"d/{i}.png", Image.new("RGB", (16, 16)), {"prompt": f"cat {i}"})
        store.add_image(f"d/{i}.png", {"prompt": f"cat {i}"}, created=float(i))
    store.close()
    window = open_window(qtbot, data_root)
    gallery, history = window.controller.gallery, window.controller.history
    for prompt in ("a fox", "a cat"):
        history.add(prompt, "")
    window.activateWindow()

    # Was: both panels' Delete shortcuts were window-wide, Qt found the key ambiguous and ran neither.
    view = window.gallery_panel.view
    view.setFocus()
    window.gallery_panel.select_row(0)
    deleted = gallery.record(0)
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert gallery.rowCount() == 1 and (data.trash / deleted.path).exists()
    assert history.rowCount() == 2  # the history's selection is not the gallery's business

    history_view = window.history_panel.view
    history_view.setFocus()
    history_view.setCurrentIndex(history.index(1))
    qtbot.keyClick(history_view, Qt.Key.Key_Delete)
    assert [history.record(r).prompt for r in range(history.rowCount())] == ["a cat"]
    assert gallery.rowCount() == 1
    # Ctrl+Z outside the gallery is not the gallery's Undo (it took Ctrl+Z meant for a replaced prompt).
    qtbot.keyClick(history_view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert gallery.rowCount() == 1

    view.setFocus()
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # undoable, as the button's delete
    assert gallery.rowCount() == 2 and (data.images / deleted.path).exists()
