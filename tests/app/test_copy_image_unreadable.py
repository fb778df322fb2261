"""Ctrl+C on a gallery image whose file is missing or damaged: the clipboard is kept, and the user is told why; a
large picture the gallery shows is copied."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest

from app.data_dir import resolve_data_dir
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import gallery_images, window_without_engine


def test_copying_an_image_that_cannot_be_read_keeps_the_clipboard_and_says_why(qtbot, data_root):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red fox", "an owl"])
    window = window_without_engine(qtbot, data)
    panel, gallery = window.gallery_panel, window.controller.gallery
    errors = []
    window.controller.error.connect(errors.append)
    clipboard = QGuiApplication.clipboard()
    clipboard.setText("what the user copied before")
    missing, damaged = (gallery.path_of(gallery.record(row)) for row in (0, 1))
    missing.unlink()
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n cut short")

    for row, path, problem in ((0, missing, "its file is missing"), (1, damaged, "could not be read as an image")):
        panel.select_row(row)
        panel.copy_image()
        assert clipboard.text() == "what the user copied before"  # was: emptied, and nothing said
        assert str(path) in errors[-1].message and problem in errors[-1].message
        assert "clipboard was left as it was" in errors[-1].hint
    assert len(errors) == 2

    Image.new("RGB", (16, 16), (200, 0, 0)).save(missing)  # the file put back: copied as before
    panel.select_row(0)
    panel.copy_image()
    assert clipboard.image().pixelColor(3, 3).getRgb()[:3] == (200, 0, 0) and len(errors) == 2


def test_ctrl_c_copies_a_large_picture_the_gallery_shows(qtbot, data_root):
    data = resolve_data_dir(data_root)
    data.images.mkdir(parents=True, exist_ok=True)
    # 8200x8200 (an upscaler's output): 269 MB as Qt holds it, past QImageReader's 256 MB default limit. One
    # colour, so it is written in about a second.
    write_png(data.images / "upscaled.png", Image.new("RGB", (8200, 8200), (10, 200, 30)), {"prompt": "huge"})
    store = Store(data.database)
    store.add_image("upscaled.png", {"prompt": "huge"})
    store.close()
    window = window_without_engine(qtbot, data)
    panel, gallery = window.gallery_panel, window.controller.gallery
    decoration = Qt.ItemDataRole.DecorationRole
    gallery.data(gallery.index(0), decoration)  # as the grid paints it
    gallery.thumbnails.wait()
    qtbot.waitUntil(lambda: gallery.data(gallery.index(0), decoration).pixelColor(80, 80).getRgb()
                    == (10, 200, 30, 255))  # fmt: skip  # the gallery shows it: it is no damaged file
    errors: list = []
    window.controller.error.connect(errors.append)
    QGuiApplication.clipboard().setText("copied before")
    window.activateWindow()
    panel.select_row(0)
    panel.view.setFocus()
    qtbot.waitUntil(panel.view.hasFocus)
    QTest.keyClick(panel.view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    # Was: "The image …/upscaled.png could not be copied: its file could not be read as an image", with the
    # hint to replace a damaged file with a good copy; the clipboard kept "copied before".
    assert [e.message for e in errors] == []
    assert QGuiApplication.clipboard().image().size().width() == 8200
