"""Lazy thumbnail loading for the gallery: decoded on a thread pool only when a row becomes visible.

The list view asks for DecorationRole only for rows it paints, so with 10,000 entries we decode a screenful,
not the folder. Decoded thumbnails live in a bounded LRU cache of QImages (QPixmap is GUI-thread only).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal
from PySide6.QtGui import QImage

from app.image_decode import read_image

THUMB_SIZE = 160


class _Emitter(QObject):
    loaded = Signal(str, QImage)


def _decode(path: str) -> QImage:
    """The thumbnail of the file at ``path`` (a pool thread's work); a null image for an unreadable file."""
    return read_image(path, THUMB_SIZE)


class _Queue:
    """The files asked for and not yet being decoded, the latest asked last; shared with the pool's threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.paths: OrderedDict[str, None] = OrderedDict()

    def take(self) -> str | None:
        """The file asked for last (the rows on screen now), None when none is left."""
        with self.lock:
            return self.paths.popitem()[0] if self.paths else None


class _LoadThumb(QRunnable):
    """Decodes one file of the queue: the newest when it runs, not the one asked for when it was made."""

    def __init__(self, queue: _Queue, emitter: _Emitter) -> None:
        super().__init__()
        self.queue = queue
        self.emitter = emitter

    def run(self) -> None:
        path = self.queue.take()
        if path is not None:  # none: its file was dropped from the queue, or taken by an earlier one
            self.emitter.loaded.emit(path, _decode(path))  # a null image marks an unreadable file


class ThumbnailCache(QObject):
    """Thumbnails by path. Files are decoded newest request first, and at most ``capacity`` wait: flinging through
    60 pages queued the decodes of rows scrolled past ahead of the last screen's, which took 280 ms to fill."""

    loaded = Signal(str)

    def __init__(self, capacity: int = 600, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cache: OrderedDict[str, QImage] = OrderedDict()
        self._pending: set[str] = set()  # queued or being decoded
        self._queue = _Queue()
        # Forgotten while being decoded: the result may be of the file as it was, or null because it was moved
        # away mid-read (a delete); it must not be kept (a null one showed the image as "missing" after Undo).
        self._stale: set[str] = set()
        self._capacity = capacity
        self._stopped = False  # quitting: no load starts any more
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(2)
        # A child made after the pool: destroyed after it (the pool waits for its decodes), on the Qt thread; the
        # decodes hold it, and a pool thread that let go of it last destroyed it there.
        self._emitter = _Emitter(self)
        self._emitter.loaded.connect(self._on_loaded)

    def get(self, path: Path) -> QImage | None:
        """The thumbnail, or None while it is decoded (asked for again: decoded next). A file still queued when
        ``capacity`` newer ones are is dropped, no longer pending: rows scrolled past are not painted again, and
        a row that is (more than a screenful of rows cannot be on screen) asks again."""
        key = str(path)
        image = self._cache.get(key)
        if image is not None:
            self._cache.move_to_end(key)
            return image
        if self._stopped:
            return None
        with self._queue.lock:
            queued = self._queue.paths
            if key in queued:
                queued.move_to_end(key)
                return None
            if key in self._pending:  # being decoded
                return None
            queued[key] = None
            dropped = [queued.popitem(last=False)[0] for _ in range(len(queued) - self._capacity)]
        self._pending.add(key)
        self._pending.difference_update(dropped)
        # No decode of theirs will come back: left stale, the next one of the file now was thrown away and redone.
        self._stale.difference_update(dropped)
        self._pool.start(_LoadThumb(self._queue, self._emitter))
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
        with self._queue.lock:
            self._queue.paths.clear()
        self._pool.clear()
        self._pool.waitForDone(msecs)
