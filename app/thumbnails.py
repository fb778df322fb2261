"""Lazy thumbnail loading for the gallery: decoded on a thread pool only when a row becomes visible.

The list view asks for DecorationRole only for rows it paints, so with 10,000 entries we decode a screenful,
not the folder. Decoded thumbnails live in a bounded LRU cache of QImages (QPixmap is GUI-thread only).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QImageReader

THUMB_SIZE = 160


class _Emitter(QObject):
    loaded = Signal(str, QImage)


class _LoadThumb(QRunnable):
    def __init__(self, path: str, emitter: _Emitter) -> None:
        super().__init__()
        self.path = path
        self.emitter = emitter

    def run(self) -> None:
        reader = QImageReader(self.path)
        size = reader.size()
        if size.isValid() and max(size.width(), size.height()) > THUMB_SIZE:
            reader.setScaledSize(size.scaled(QSize(THUMB_SIZE, THUMB_SIZE), Qt.AspectRatioMode.KeepAspectRatio))
        image = reader.read()
        self.emitter.loaded.emit(self.path, image)  # a null image marks an unreadable file


class ThumbnailCache(QObject):
    loaded = Signal(str)

    def __init__(self, capacity: int = 600, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cache: OrderedDict[str, QImage] = OrderedDict()
        self._pending: set[str] = set()
        self._capacity = capacity
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        self._emitter = _Emitter()
        self._emitter.loaded.connect(self._on_loaded)

    def get(self, path: Path) -> QImage | None:
        key = str(path)
        image = self._cache.get(key)
        if image is not None:
            self._cache.move_to_end(key)
            return image
        if key not in self._pending:
            self._pending.add(key)
            self._pool.start(_LoadThumb(key, self._emitter))
        return None

    def forget(self, path: Path) -> None:
        self._cache.pop(str(path), None)

    def _on_loaded(self, path: str, image: QImage) -> None:
        self._pending.discard(path)
        self._cache[path] = image
        while len(self._cache) > self._capacity:
            self._cache.popitem(last=False)
        self.loaded.emit(path)

    def wait(self, msecs: int = 5000) -> None:
        self._pool.waitForDone(msecs)
