"""Work on threads of their own whose ends come back on the Qt thread: slow looks at folders (and deletions of
them) for the quantize wizard (a run's output name: ``free_output_path`` reads and hashes MiBs of a multi-GiB
source, 0.1-0.4 s for a FLUX-size one; the unfinished runs; the deletion of one, GiBs), the gallery's trash listing
(tens of thousands of files), the LoRA panel's folder scan and hash search, the import of new images. On the Qt
thread they froze the window meanwhile.

The threads are daemons, which a quit does not wait for. Two rules keep them from crashing the app:

- A thread never holds the last reference to a Qt object. A Python thread that let go of the last reference to
  a QObject's wrapper destroyed that QObject on its own thread, while the Qt thread could be using it: a
  segmentation fault (CI, 2026-11-23, in the trash tests: a listing thread held the gallery through its work,
  the window had closed). ``start_thread`` hands what the thread was given back to the Qt thread to let go of.
- A thread never emits on an object that the Qt thread may be destroying: it hands its calls to one relay that
  lives as long as the process (``to_qt_thread``), which calls them on the Qt thread only while their object
  lives.

``Lookups`` runs a single call on such a thread and hands its result back (``ended``): the caller keeps the
``Lookup`` it started and takes an end only while it is that one (one asked for since, or what asked for it
cancelled meanwhile: dropped)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, Signal

log = logging.getLogger(__name__)


class _Relay(QObject):
    """Calls handed over by threads, made on the Qt thread. One per process, never deleted: an emit on it never
    meets an object being destroyed."""

    call = Signal(object)  # list [callable or None, args], from any thread

    def __init__(self) -> None:
        super().__init__()
        self.call.connect(self._call)  # queued: emitted on other threads, this object is the Qt thread's

    @staticmethod
    def _call(handed: list[Any]) -> None:
        """On the Qt thread: ``handed[0](*handed[1])`` unless its QObject is gone (or it is None: only let go of);
        then let go of both here."""
        function, args = handed
        owner = getattr(function, "__self__", None)
        try:
            if function is not None and (not isinstance(owner, QObject) or shiboken6.isValid(owner)):
                function(*args)
        finally:
            handed.clear()


_relay: _Relay | None = None


def _the_relay() -> _Relay:
    """The relay, made on first use (``start_thread`` is called on the Qt thread) and moved there else."""
    global _relay
    if _relay is None:
        _relay = _Relay()
        app = QCoreApplication.instance()
        if app is not None and _relay.thread() is not app.thread():
            _relay.moveToThread(app.thread())
    return _relay


def start_thread(name: str, run: Callable[..., object], *args: Any) -> threading.Thread:
    """On the Qt thread: ``run(*args)`` on a daemon thread named ``name``. What it was given (``run``, its object,
    ``args``) is let go of on the Qt thread after it ended, so that it may hold Qt objects (the thread's last
    reference to one destroyed it on the wrong thread). An exception ``run`` lets out is logged."""
    handed: list[Any] = [run, args]
    relay = _the_relay()
    thread = threading.Thread(target=_thread_main, args=(relay, handed), name=name, daemon=True)
    thread.start()
    return thread


def _thread_main(relay: _Relay, handed: list[Any]) -> None:
    run, args = handed
    try:
        run(*args)
    except Exception:  # noqa: BLE001 - freed here, while ``handed`` still holds what its traceback's frames hold
        log.exception("%s failed", threading.current_thread().name)
    del run, args
    handed[0] = None  # nothing to call: the relay only lets go of the arguments, on the Qt thread
    relay.call.emit(handed)


def to_qt_thread(function: Callable[..., object], *args: Any) -> None:
    """From a thread of ``start_thread``'s: ``function(*args)`` called on the Qt thread, unless ``function`` is a
    bound method of a QObject that is gone by then. The relay keeps the call order of one thread's calls."""
    _the_relay().call.emit([function, args])


@dataclass(eq=False)
class Lookup:
    """One look (or deletion) under way: its work runs on its thread, which fills in its ``result``, or the
    ``error`` it raised, before it hands the lookup to the Qt thread (``Lookups.ended``)."""

    what: str  # in words, for the log: "naming the output", "listing the unfinished runs", ...
    result: Any = None
    error: Exception | None = None


class Lookups(QObject):
    """Runs lookups on threads (``start``); ``ended`` with each once done, on the Qt thread."""

    ended = Signal(object)  # Lookup, on the Qt thread

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        """``name``: whose lookups, for the threads' names (``"Quantize: naming the output"``)."""
        super().__init__(parent)
        self._name = name

    def start(self, what: str, work: Callable[[], Any]) -> Lookup:
        """Runs ``work`` on a thread of its own (``start_thread``); returns its ``Lookup``, which ``ended`` hands
        back unless this object is gone by then."""
        lookup = Lookup(what)
        # A daemon: a quit does not wait for a folder it lists or deletes (a deletion cut short leaves a parts
        # folder without its manifest, which resumes nothing and is listed, to delete).
        start_thread(f"{self._name}: {what}", _run_lookup, lookup, work, self._end)
        return lookup

    def _end(self, lookup: Lookup) -> None:
        self.ended.emit(lookup)


def _run_lookup(lookup: Lookup, work: Callable[[], Any], end: Callable[[Lookup], None]) -> None:
    """On the lookup's thread: ``work``'s result or error into ``lookup``, handed to the Qt thread (``end``)."""
    try:
        lookup.result = work()
    except Exception as exc:  # noqa: BLE001 - handed to the caller, which says it: the end is never lost
        log.info("%s failed", lookup.what, exc_info=True)
        lookup.error = exc
    to_qt_thread(end, lookup)
