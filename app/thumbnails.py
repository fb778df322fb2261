"""Lazy thumbnail loading for the gallery: decoded on a thread pool only when a row becomes visible.

The list view asks for DecorationRole only for rows it paints, so with 10,000 entries we decode a screenful,
not the folder. Decoded thumbnails live in a bounded LRU cache of QImages (QPixmap is GUI-thread only), each with the
file's state (``_stamp``: size, modification time, file id) taken on the pool's thread before it was decoded: a file
replaced under its name (by hand, or by Save as into the images folder) showed its old picture for the session. A
thumbnail painted ``RECHECK_AFTER_S`` after its file was last looked at is served as it is, and the file's state taken
again on the pool's thread; decoded again only where it changed. The GUI thread never touches the disk for it.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QImage, QPainter

from app.image_decode import TooLarge, decode_image
from app.thread_exit import stop_pool

THUMB_SIZE = 160
# How long a thumbnail is shown without looking at its file again: a row painted later has its file's state taken
# again (off the GUI thread). Seconds, so that scrolling costs no more than a stat per row in sight every few seconds.
RECHECK_AFTER_S = 2.0

# A file's state, by which a file replaced under its name is told from the one decoded: size, modification time (ns)
# and file id (a file written beside and renamed over it, which may keep the time, is another file).
Stamp = tuple[int, int, int]
_NO_FILE: Stamp = (-1, -1, -1)


def _stamp(path: str) -> Stamp:
    """The state of the file at ``path`` now (a pool thread's work); ``_NO_FILE`` for none that can be read."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return _NO_FILE
    return stat.st_size, stat.st_mtime_ns, stat.st_ino


def placeholder(text: str) -> QImage:
    """A thumbnail that says ``text`` instead of a picture ("missing", "unreadable"); on the Qt thread (its text
    is drawn with the app's fonts)."""
    image = QImage(THUMB_SIZE, THUMB_SIZE, QImage.Format.Format_ARGB32)
    image.fill(QColor(128, 128, 128, 60))
    painter = QPainter(image)
    painter.drawText(image.rect(), Qt.AlignmentFlag.AlignCenter, text)
    painter.end()
    return image


class _Emitter(QObject):
    # path, thumbnail, "" or the picture's size in words when it is too large to decode on this machine (the
    # thumbnail then null: a placeholder saying so is drawn on the Qt thread), the file's ``Stamp`` taken before
    loaded = Signal(str, QImage, str, object)
    unchanged = Signal(str)  # path: a re-check found the file as it was decoded


def _decode(path: str) -> QImage:
    """The thumbnail of the file at ``path`` (a pool thread's work); a null image for an unreadable file.
    Raises ``TooLarge`` for a picture too large for this machine to decode."""
    return decode_image(path, THUMB_SIZE)


@dataclass(slots=True)
class _Thumb:
    image: QImage
    stamp: Stamp  # the file's state when it was decoded
    checked: float  # when the file was last found so (``time.monotonic``)


class _Queue:
    """The files asked for and not yet being decoded, the latest asked last, each with the ``Stamp`` of the
    thumbnail held of it (None for none: decoded whatever its state); shared with the pool's threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.paths: OrderedDict[str, Stamp | None] = OrderedDict()

    def take(self) -> tuple[str, Stamp | None] | None:
        """The file asked for last (the rows on screen now) and its held stamp, None when none is left."""
        with self.lock:
            return self.paths.popitem() if self.paths else None


class _LoadThumb(QRunnable):
    """Decodes one file of the queue: the newest when it runs, not the one asked for when it was made."""

    def __init__(self, queue: _Queue, emitter: _Emitter) -> None:
        super().__init__()
        self.queue = queue
        self.emitter = emitter

    def run(self) -> None:
        taken = self.queue.take()
        if taken is None:  # none: its file was dropped from the queue, or taken by an earlier one
            return
        path, held = taken
        stamp = _stamp(path)  # before the decode: a file replaced meanwhile differs at the next check
        if stamp == held:
            self.emitter.unchanged.emit(path)
        else:
            try:
                image, too_large = _decode(path), ""  # a null image marks an unreadable file
            except TooLarge as exc:
                image, too_large = QImage(), exc.size_said
            self.emitter.loaded.emit(path, image, too_large, stamp)


class ThumbnailCache(QObject):
    """Thumbnails by path, each of the file as it was when decoded (see the module's text). Files are decoded newest
    request first, and at most ``capacity`` wait: flinging through 60 pages queued the decodes of rows scrolled past
    ahead of the last screen's, which took 280 ms to fill."""

    loaded = Signal(str)

    def __init__(self, capacity: int = 600, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._cache: OrderedDict[str, _Thumb] = OrderedDict()
        self._pending: set[str] = set()  # queued, being decoded or re-checked
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
        self._emitter.unchanged.connect(self._on_unchanged)

    def get(self, path: Path) -> QImage | None:
        """The thumbnail, or None while it is decoded (asked for again: decoded next). One whose file was last
        looked at ``RECHECK_AFTER_S`` ago is returned as it is, its file checked again on the pool (``recheck``).
        A file still queued when ``capacity`` newer ones are is dropped, no longer pending: rows scrolled past are not
        painted again, and a row that is (more than a screenful of rows cannot be on screen) asks again."""
        key = str(path)
        thumb = self._cache.get(key)
        if thumb is not None:
            self._cache.move_to_end(key)
            if time.monotonic() - thumb.checked >= RECHECK_AFTER_S:
                self._ask(key, thumb.stamp)
            return thumb.image
        self._ask(key, None)
        return None

    def file_gone(self, path: Path) -> bool:
        """Whether the thumbnail held of ``path`` found no file there (its state, taken on the pool's thread before
        the decode, was none): its null image is of a missing file, not of one that cannot be decoded. Known without
        a look at the disk, so that the grid's painting never waits for a drive that sleeps or a share that hangs;
        False for none held (not known)."""
        thumb = self._cache.get(str(path))
        return thumb is not None and thumb.stamp == _NO_FILE

    def recheck(self, path: Path) -> None:
        """The file at ``path`` may have changed (the pane read it, Save as wrote it): its state is taken again on
        the pool, and a thumbnail held of it replaced once the new one is decoded, where it differs. A check or a
        decode already under way may have looked at the file before the change: its result is not kept, and the
        row that asks again has it checked anew."""
        key = str(path)
        thumb = self._cache.get(key)
        if thumb is None:
            return  # none held: the row that paints it has it decoded as it is
        thumb.checked = float("-inf")  # due: a result thrown away below leaves it to be checked at the next paint
        if key in self._pending:
            self._stale.add(key)
        else:
            self._ask(key, thumb.stamp)

    def _ask(self, key: str, held: Stamp | None) -> None:
        """Queues the file ``key`` for a decode, or for a check of the thumbnail of state ``held``; nothing while
        it is pending already or the cache has stopped."""
        if self._stopped:
            return
        with self._queue.lock:
            queued = self._queue.paths
            if key in queued:
                queued.move_to_end(key)
                return
            if key in self._pending:  # being decoded
                return
            queued[key] = held
            dropped = [queued.popitem(last=False)[0] for _ in range(len(queued) - self._capacity)]
        self._pending.add(key)
        self._pending.difference_update(dropped)
        # No decode of theirs will come back: left stale, the next one of the file now was thrown away and redone.
        self._stale.difference_update(dropped)
        self._pool.start(_LoadThumb(self._queue, self._emitter))

    def forget(self, path: Path) -> None:
        key = str(path)
        self._cache.pop(key, None)
        if key in self._pending:
            self._stale.add(key)

    def _on_loaded(self, path: str, image: QImage, too_large: str, stamp: Stamp) -> None:
        if too_large:  # said in the grid, where "unreadable" sent the user looking for a damaged file
            image = placeholder(f"too large to show\n{too_large}")
        if self._kept(path):
            self._cache[path] = _Thumb(image, stamp, time.monotonic())
            self._cache.move_to_end(path)
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
        self.loaded.emit(path)

    def _on_unchanged(self, path: str) -> None:
        if self._kept(path):
            if (thumb := self._cache.get(path)) is not None:
                thumb.checked = time.monotonic()
            return  # the row shows the file as it is: nothing to paint again
        self.loaded.emit(path)  # a row showing it asks again, for the file now

    def _kept(self, path: str) -> bool:
        """Whether the result of the decode or check of ``path`` that came back is kept: not when the file was
        forgotten or re-checked meanwhile (``_stale``), as it may be of the file as it was."""
        self._pending.discard(path)
        if path in self._stale:
            self._stale.discard(path)
            return False
        return True

    def wait(self, msecs: int = 5000) -> None:
        self._pool.waitForDone(msecs)

    def stop(self, msecs: int = 1000) -> None:
        """On quit: the loads still queued are dropped and none starts after, so that quitting does not wait for
        a screenful of decodes (it waited up to 2 s). The ones running, at most one per pool thread, are waited
        for, ``msecs`` at most: a decode cannot be interrupted, and a pool thread still running Python while the
        interpreter shuts down could crash the exit. One that does not end in time (its file on a share that stopped
        answering) is left to ``thread_exit``: the pool, destroyed at the exit, waited for it without end."""
        self._stopped = True
        with self._queue.lock:
            self._queue.paths.clear()
        self._pool.clear()
        stop_pool(self._pool, "the thumbnails' decodes", msecs)
