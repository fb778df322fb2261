"""The window's layout is kept whole: the gallery's grid/details splitter across a restart, and a dock resized by
dragging its edge or the splitter dragged saved about a second later, as every other change of the layout."""

from __future__ import annotations

import json

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QSplitter

from app.data_dir import resolve_data_dir
from tests.app.gui import gallery_images, open_windows, window_without_engine


def _saved(window) -> dict:
    try:
        return json.loads(window.data.settings.read_text())
    except FileNotFoundError:
        return {}


def _encoded(state) -> str:
    return bytes(state.toBase64()).decode()


def _drag_splitter(qtbot, splitter: QSplitter, by: int) -> None:
    """The handle between the grid and the details pane dragged ``by`` pixels sideways, as with the mouse."""
    handle = splitter.handle(1)
    middle = handle.rect().center()
    qtbot.mousePress(handle, Qt.MouseButton.LeftButton, pos=middle)
    qtbot.mouseMove(handle, middle + QPoint(by, 0))
    qtbot.mouseRelease(handle, Qt.MouseButton.LeftButton, pos=middle + QPoint(by, 0))


def _splitter(window) -> QSplitter:
    return window.gallery_panel.findChild(QSplitter, "gallerySplitter")


def _close(window) -> None:
    open_windows.remove(window)
    window.close()  # saves the settings, as a quit does


def test_a_dock_resized_or_the_splitter_dragged_is_saved_soon(qtbot, data_root):
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    qtbot.waitExposed(window)
    window.settings_state.autosave.setInterval(10)  # the debounce's length is not what is tested
    qtbot.waitUntil(lambda: _saved(window).get("window_state") == _encoded(window.saveState()))

    window.resizeDocks([window.prompt_dock], [window.prompt_dock.width() + 120], Qt.Orientation.Horizontal)
    assert _saved(window)["window_state"] != _encoded(window.saveState())  # the dock's new width, not saved yet
    # was: never saved until some other change or the quit (lost on a crash)
    qtbot.waitUntil(lambda: _saved(window)["window_state"] == _encoded(window.saveState()))

    splitter = _splitter(window)
    before = splitter.sizes()
    _drag_splitter(qtbot, splitter, -80)
    assert splitter.sizes() != before
    qtbot.waitUntil(lambda: _saved(window).get("gallery_splitter") == _encoded(splitter.saveState()))


def test_the_gallery_splitter_is_restored_at_the_next_start(qtbot, data_root):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red fox"])
    window = window_without_engine(qtbot, data)
    window.resize(780, 560)  # on offscreen's own screen (800x800) too: a larger window shrinks to it at the next start
    qtbot.waitExposed(window)
    splitter = _splitter(window)
    made = splitter.sizes()
    _drag_splitter(qtbot, splitter, -100)
    dragged = splitter.sizes()
    assert dragged[1] > made[1] + 50  # the details pane wider
    _close(window)

    again = window_without_engine(qtbot, data)
    qtbot.waitExposed(again)
    assert _splitter(again).sizes() == dragged  # was: back to the grid at three quarters
    _close(again)

    # a file of an older version has no such field, a hand-edited one may hold anything: the splitter as made
    as_made = None
    for value in (None, 12, "not a saved state", "AAAA"):
        saved = json.loads(data.settings.read_text())
        if value is None:
            del saved["gallery_splitter"]
        else:
            saved["gallery_splitter"] = value
        data.settings.write_text(json.dumps(saved))
        started = window_without_engine(qtbot, data)
        qtbot.waitExposed(started)
        as_made = as_made or _splitter(started).sizes()  # without the field: as the panel makes it
        assert _splitter(started).sizes() == as_made != dragged, value
        assert not started.notices  # the rest of the file was read
        _close(started)
