"""Lazy thumbnail loading for the gallery: decoded on a thread pool only when a row becomes visible.

The list view asks for DecorationRole only for rows it paints, so with 10,000 entries we decode a screenful,
not the folder. Decoded thumbnails live in a bounded LRU cache of QImages (QPixmap is GUI-thread only).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QSize, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QImageReader

THUMB_SIZE = 160

log = logging.getLogger(__name__)


class _Emitter(QObject):
    loaded = Signal(str, QImage)


def _read_with_pillow(path: str) -> QImage:
    """The thumbnail decoded by Pillow, for what Qt refuses: its reader will not allocate more than 256 MB, and a
    16-bit RGBA PNG of 6000x6000 pixels (an upscaler's output) needs 288 MB at full size. Pillow reduces to 8 bits
    per channel while it decodes. A null QImage when Pillow cannot read it either."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.thumbnail((THUMB_SIZE, THUMB_SIZE))
            rgba = image.convert("RGBA")
    except Exception as exc:  # any file can be in the folder: "unreadable" is all the view needs to know
        log.info("no thumbnail for %s: %s", path, exc)
        return QImage()
    data = rgba.tobytes()
    return QImage(data, rgba.width, rgba.height, rgba.width * 4, QImage.Format.Format_RGBA8888).copy()


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
        if image.isNull() and size.isValid():  # a header Qt reads, pixels it would not decode (too large)
            image = _read_with_pillow(self.path)
        self.emitter.loaded.emit(self.path, image)  # a null image marks an unreadable file


class ThumbnailCache(QObject):
    loaded = Signal(str)

    def __init__(self, capacity: int = 600, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cache: OrderedDict[str, QImage] = OrderedDict()
        self._pending: set[str] = set()
        # Forgotten while being decoded: the result may be of the file as it was, or null because it was moved
        # away mid-read (a delete); it must not be kept (a null one showed the image as "missing" after Undo).
        self._stale: set[str] = set()
        self._capacity = capacity
        self._stopped = False  # quitting: no load starts any more
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
        if key not in self._pending and not self._stopped:
            self._pending.add(key)
            self._pool.start(_LoadThumb(key, self._emitter))
        return None

    def forget(self, path: Path) -> None:
        key = str(path)
        self._cache.pop(key, None)
        if key in self._pending:
            self._stale.add(key)

    def _on_loaded(self, path: str, image: QImage) -> None:
        self._pending.discard(path)
        if path in self._stale:
            self._stale.discard(path)  # announced all the same: a row showing it asks again, for the file now
        else:
            self._cache[path] = image
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        self.loaded.emit(path)

    def wait(self, msecs: int = 5000) -> None:
        self._pool.waitForDone(msecs)

    def stop(self, msecs: int = 1000) -> None:
        """On quit: the loads still queued are dropped and none starts after, so that quitting does not wait for
        a screenful of decodes (it waited up to 2 s). The ones running, at most one per pool thread, are waited
        for, ``msecs`` at most: a decode cannot be interrupted, and a pool thread still running Python while the
        interpreter shuts down could crash the exit."""
        self._stopped = True
        self._pool.clear()
        self._pool.waitForDone(msecs)
