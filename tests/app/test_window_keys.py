"""Copy, Save and Undo keys act on the panel that has the focus: the gallery's were window-wide, so Ctrl+C in the
prompt history or the LoRA panel copied the gallery's picture, and Ctrl+S anywhere saved its selected image."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from app.data_dir import resolve_data_dir
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import window_without_engine

LONG = "a red fox,\nin deep snow " + "at dawn, " * 40  # cut with "…" in the list, a line break in it


def _window(qtbot, data_root):
    """The window with one picture in the gallery (selected, the focus in the grid) and two prompts in the
    history, ``LONG`` used twice (its list line ends with "×2")."""
    data = resolve_data_dir(data_root)
    write_png(data.images / "d" / "0.png", Image.new("RGB", (16, 16), (200, 0, 0)), {"prompt": "a cat"})
    store = Store(data.database)
    store.add_image("d/0.png", {"prompt": "a cat"}, created=1)
    for when, prompt in enumerate(("an owl", LONG, LONG)):
        store.record_prompt(prompt, "", when=when)
    store.close()
    window = window_without_engine(qtbot, data)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)  # shortcuts act in the active window only
    window.gallery_panel.view.setFocus()
    window.gallery_panel.select_row(0)
    return window


def _ctrl(qtbot, widget, key: Qt.Key) -> None:
    widget.setFocus()
    qtbot.keyClick(widget, key, Qt.KeyboardModifier.ControlModifier)
    # A press taken by a shortcut leaves QTest's Ctrl down in the application's modifier state: a later test's
    # selection then read as a Ctrl+click (toggled off). Released here, as a user's key is.
    qtbot.keyRelease(widget, Qt.Key.Key_Control)


def test_ctrl_c_copies_from_the_focused_panel(qtbot, data_root):
    window = _window(qtbot, data_root)
    clipboard = QGuiApplication.clipboard()
    history = window.history_panel.view
    history.setCurrentIndex(window.controller.history.index(0))
    clipboard.clear()
    _ctrl(qtbot, history, Qt.Key.Key_C)
    # was: the gallery's picture; the list's own Ctrl+C would give its cut line with "×2", not the prompt
    assert clipboard.image().isNull() and clipboard.text() == LONG.strip()
    history.selectAll()
    _ctrl(qtbot, history, Qt.Key.Key_C)
    assert clipboard.text() == f"{LONG.strip()}\nan owl"  # the selected prompts, in the list's order

    clipboard.clear()
    _ctrl(qtbot, window.lora_panel.add_button, Qt.Key.Key_C)
    assert clipboard.image().isNull()  # was: the gallery's picture

    _ctrl(qtbot, window.gallery_panel.view, Qt.Key.Key_C)  # the grid's Ctrl+C: the pixels, decoded on a thread
    qtbot.waitUntil(lambda: clipboard.image().pixelColor(3, 3).getRgb()[:3] == (200, 0, 0), timeout=10000)


def test_ctrl_s_and_ctrl_z_belong_to_the_gallery(qtbot, data_root, monkeypatch):
    window = _window(qtbot, data_root)
    asked: list[object] = []  # the widgets a Save dialog was shown over
    monkeypatch.setattr("app.widgets.gallery_panel.ask_png_name", lambda parent, suggested: asked.append(parent) or "")
    for widget in (window.prompt_panel.prompt_edit, window.history_panel.view):
        _ctrl(qtbot, widget, Qt.Key.Key_S)
    assert asked == []  # was: a "Save image as" dialog for a gallery picture the user may not even see
    _ctrl(qtbot, window.gallery_panel.view, Qt.Key.Key_S)
    assert asked == [window.gallery_panel]

    gallery, panel = window.controller.gallery, window.gallery_panel
    qtbot.keyClick(panel.view, Qt.Key.Key_Delete)
    assert gallery.rowCount() == 0
    panel.search.setFocus()
    qtbot.keyClicks(panel.search, "cat")
    _ctrl(qtbot, panel.search, Qt.Key.Key_Z)  # the typing is undone, not the delete
    assert panel.search.text() == "" and gallery.rowCount() == 0
    _ctrl(qtbot, window.prompt_panel.prompt_edit, Qt.Key.Key_Z)
    assert gallery.rowCount() == 0
    _ctrl(qtbot, panel.view, Qt.Key.Key_Z)
    assert gallery.rowCount() == 1


def test_home_and_end_go_to_the_newest_and_oldest_prompt(qtbot, data_root):
    """The history list became a one-column table (a122e7d): Home and End moved along the row, so they did
    nothing; in a list they go to the first and the last entry, Shift extending the selection."""
    window = _window(qtbot, data_root)
    history = window.history_panel.view
    history.setFocus()
    history.setCurrentIndex(window.controller.history.index(0))
    qtbot.keyClick(history, Qt.Key.Key_End)
    assert history.currentIndex().row() == window.controller.history.rowCount() - 1
    qtbot.keyClick(history, Qt.Key.Key_Home, Qt.KeyboardModifier.ShiftModifier)
    assert history.currentIndex().row() == 0
    assert len(history.selectionModel().selectedRows()) == window.controller.history.rowCount()
