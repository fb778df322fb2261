"""A word-wrapped label whose minimum height follows its width, so that docks scroll instead of squeezing it."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QLabel


class WrappedLabel(QLabel):
    """A word-wrapped label never squeezed below the height its text needs at its width. A plain one's minimum
    is its height at some other width: in a short dock the layout squeezed the details under the next label
    ("Size on disk" and "Estimated VRAM" hidden at 1000x700), where the dock should scroll instead. Plain text:
    what it shows (a prompt's ignored end, a model's name and path) is never drawn as HTML (``app.plain_text``)."""

    def __init__(self, text: str = "") -> None:
        super().__init__(text)
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(True)

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(hint.width(), max(hint.height(), self.heightForWidth(self.width())))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.updateGeometry()  # its minimum height follows its width
