"""Ctrl+C on a gallery image whose file is missing or damaged: the clipboard is kept, and the user is told why."""

from __future__ import annotations

from PIL import Image
from PySide6.QtGui import QGuiApplication

from app.data_dir import resolve_data_dir
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
