"""The gallery's grid on a drive that sleeps or a network share that hangs: painting a row whose thumbnail could not
be decoded looked at its file (is it there? "unreadable" or "missing") on the window's thread, at every paint, and a
drag out of the grid looked at each dragged file there: the window froze at each. Both go by what the thumbnail's
thread found, and by the rows flagged missing, now.

A hung drive is simulated as ``tests.app.gui.stat_held_under`` simulates one: the stat of what is under its folder
waits, on a thread, till the test sets an event; on the window's thread it is not held but noted (a freeze there)."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.data_dir import resolve_data_dir
from tests.app.gui import gallery_images, stat_held_under, window_without_engine

WAIT_MS = 30_000  # generous: CI runs the suite on 2 cores in parallel


def _thumbnails(qtbot, gallery) -> list:
    """Each row's thumbnail, as the grid asks while painting, once none is still being decoded."""

    def shown() -> list:
        return [gallery.data(gallery.index(row), Qt.ItemDataRole.DecorationRole) for row in range(gallery.rowCount())]

    qtbot.waitUntil(lambda: all(thumb is not gallery._loading for thumb in shown()), timeout=WAIT_MS)
    return shown()


def test_painting_an_unreadable_thumbnail_never_looks_at_the_drive(qtbot, data_root, monkeypatch):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red cat", "a blue dog"])  # newest first: row 1 is the cat's, d/0.png
    (data.images / "d" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a picture")  # there, but no picture
    window = window_without_engine(qtbot, data)
    gallery = window.controller.gallery
    qtbot.waitUntil(lambda: gallery.rowCount() == 2, timeout=WAIT_MS)
    assert _thumbnails(qtbot, gallery)[1] is gallery._unreadable
    release, on_gui = stat_held_under(monkeypatch, data.images)
    try:
        for _ in range(3):  # each paint of the grid
            window.gallery_panel.view.viewport().repaint()
            thumbs = [gallery.data(gallery.index(row), Qt.ItemDataRole.DecorationRole) for row in range(2)]
        assert on_gui == []  # was: ["stat", "stat", ...], the window frozen at each paint till the drive answered
        assert thumbs[1] is gallery._unreadable and thumbs[0] not in (gallery._unreadable, gallery._missing)
    finally:
        release.set()


def test_a_drag_out_of_the_grid_never_looks_at_the_drive(qtbot, data_root, monkeypatch):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red cat", "a blue dog", "a green owl"])
    (data.images / "d" / "1.png").unlink()  # deleted by hand before the start: its row flagged missing
    window = window_without_engine(qtbot, data)
    gallery = window.controller.gallery
    qtbot.waitUntil(lambda: gallery.rowCount() == 3, timeout=WAIT_MS)
    assert [gallery.record(row).missing for row in range(3)] == [False, True, False]
    release, on_gui = stat_held_under(monkeypatch, data.images)
    try:
        urls = gallery.mimeData([gallery.index(row) for row in range(3)]).urls()
        assert on_gui == []  # was: ["stat", "stat", "stat"], the window frozen till the drive answered
    finally:
        release.set()
    # the files themselves, but for the one flagged missing
    assert [url.toLocalFile() for url in urls] == [str(data.images / "d" / name) for name in ("2.png", "0.png")]
