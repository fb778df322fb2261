"""The prompt panel's preview: the image fits the area it has, whatever the window's size."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage


def _fits(label, ratio: float) -> bool:
    """The label's pixmap fills its area along one side, within it along the other, at ``ratio`` (w/h)."""
    pixmap, area = label.pixmap(), label.contentsRect()
    if pixmap is None or pixmap.isNull():
        return False
    inside = pixmap.width() <= area.width() and pixmap.height() <= area.height()
    fills = abs(pixmap.width() - area.width()) <= 1 or abs(pixmap.height() - area.height()) <= 1
    return inside and fills and abs(pixmap.width() / pixmap.height() - ratio) < 0.05


def test_the_preview_is_scaled_to_its_area_and_again_on_resize(qtbot, window):
    """The preview was always scaled to 192 px: cut off in an area 160 px high, small in a wider one."""
    preview = window.prompt_panel.preview
    square = QImage(256, 256, QImage.Format.Format_RGB32)
    square.fill(QColor("red"))
    window.resize(1000, 600)  # the preview's area at its minimum height, 160 px
    window.controller.job.set_preview(square)
    qtbot.waitUntil(lambda: _fits(preview, 1.0), timeout=5000)
    wide = QImage(600, 200, QImage.Format.Format_RGB32)
    wide.fill(QColor("blue"))
    window.controller.job.set_preview(wide)
    assert _fits(preview, 3.0)
    window.resize(1400, 860)
    window.resizeDocks([window.prompt_dock], [300], Qt.Orientation.Horizontal)
    qtbot.waitUntil(lambda: window.prompt_dock.width() == 300 and _fits(preview, 3.0), timeout=5000)
    narrow = preview.pixmap().width()
    window.resizeDocks([window.prompt_dock], [520], Qt.Orientation.Horizontal)  # wider: the image grows with it
    qtbot.waitUntil(lambda: _fits(preview, 3.0) and preview.pixmap().width() > max(narrow, 192), timeout=5000)
    window.controller.job.set_preview(None)
    assert preview.pixmap() is None or preview.pixmap().isNull()
