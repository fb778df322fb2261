"""The gallery's rows imported by a version whose import took a picture's file time for its date, dated again once
by the date its settings give (``app.image_dates.import_date``, as the import takes it now): a gallery copied
without its file times (cp without -p, a cloud download) and imported then stayed listed in the order it was copied.

Which rows: those whose stored date is their file's modification time to the last digit (what that import stored)
and whose settings give another date; a picture made here was dated when its row was added, after its file was
written, and one whose file changed since is left as it is. No file is opened: the settings are the row's own,
and a stat per row is all, on a thread of its own after the window shows; the dates are written a batch per
commit on the Qt thread (the Store's), and the gallery reordered once at the end. The store says whether it is
still to be done (``Store.dates_to_check``, schema 10's step); a quit before it ended leaves the rest to the next
start (a row dated again no longer has its file's time)."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator

from PySide6.QtCore import QObject, Signal

from app.background import start_thread, to_qt_thread
from app.data_dir import DataDir
from app.image_dates import import_date
from app.image_files import absolute
from app.store import Store

log = logging.getLogger(__name__)

_BATCH = 500  # dates written per commit: 30,000 in one took 0.3 s of the window's thread

StoredRow = tuple[int, str, float, str]  # id, path, created, settings as stored: ``Store.dates_to_check``


def dates_read(data: DataDir, rows: list[StoredRow], stop: threading.Event) -> Iterator[list[tuple[int, float]]]:
    """On a thread: (id, date) of each of ``rows`` dated by its file's time whose settings give another date,
    ``_BATCH`` at a time; stops between two rows once ``stop`` is set (the window closes)."""
    dates: list[tuple[int, float]] = []
    for image_id, rel, created, stored in rows:
        if stop.is_set():
            return
        if (made := _date_to_take(data, rel, created, stored)) is not None:
            dates.append((image_id, made))
        if len(dates) >= _BATCH:
            yield dates
            dates = []
    if dates:
        yield dates


def _date_to_take(data: DataDir, rel: str, created: float, stored: str) -> float | None:
    """The date the import takes now for the row of ``rel`` dated ``created`` with the settings ``stored``, where
    that row was dated by its file's time and the settings give another; else None."""
    try:
        file_time = os.stat(absolute(data, rel)).st_mtime
    except (OSError, ValueError):  # gone since the start-up's check
        return None
    if file_time != created:  # dated when it was made here, or by its settings; or its file changed since
        return None
    try:
        settings = json.loads(stored)
    except ValueError:
        return None
    made = import_date(settings, file_time) if isinstance(settings, dict) else created
    return None if made == created else made


class ImportDates(QObject):
    """Dates again, once, the rows of ``store`` an earlier import dated by their file's time (see the module's
    text): ``start`` after the window shows, ``stop`` before the store closes. ``changed`` once rows were dated
    again: the gallery puts them where they now sort."""

    changed = Signal()

    def __init__(self, store: Store, data: DataDir, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._store, self._data = store, data
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._written = 0  # rows dated again so far
        self._failed = False  # a batch could not be written: done again at the next start

    def start(self) -> None:
        """The rows' files looked at on a thread, when this database still has rows to date again."""
        if self._thread is not None or (rows := self._store.dates_to_check()) is None:
            return
        self._thread = start_thread("Dating images imported earlier", self._run, rows)

    def stop(self) -> None:
        """Closing: nothing more is written (the next start dates the rest)."""
        self._stop.set()

    def _run(self, rows: list[StoredRow]) -> None:
        """On the thread: the dates read, handed to the Qt thread a batch at a time, then the end."""
        ended = False
        try:
            for dates in dates_read(self._data, rows, self._stop):
                to_qt_thread(self._write, dates)
            ended = not self._stop.is_set()
        finally:  # an error (logged by the thread) leaves the rest to the next start; what was written is shown
            to_qt_thread(self._end, ended)

    def _write(self, dates: list[tuple[int, float]]) -> None:
        """On the Qt thread: a batch of dates, in one commit."""
        if self._stop.is_set() or self._failed:
            return
        try:
            self._store.set_dates(dates)
        except sqlite3.Error:  # a full disk, a read-only database: the next start tries again
            log.exception("the dates of %d images imported earlier could not be written", len(dates))
            self._failed = True
            return
        self._written += len(dates)

    def _end(self, ended: bool) -> None:
        """On the Qt thread: every row looked at (``ended``), or the reading broke off; the gallery told once."""
        if self._stop.is_set():
            return
        if ended and not self._failed:
            try:
                self._store.end_import_dates()
            except sqlite3.Error:
                log.exception("the end of dating the images imported earlier could not be recorded")
        log.info("%d images imported earlier dated by their settings", self._written)
        if self._written:
            self.changed.emit()
