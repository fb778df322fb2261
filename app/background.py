"""Work on threads of their own whose ends come back on the Qt thread: slow looks at folders (and deletions of
them) for the quantize wizard (a run's output name: ``claim_output_path`` reads and hashes MiBs of a multi-GiB
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
  lives. A call that raises is reported there, keeping none of its arguments (``_report``).

``Lookups`` runs a single call on such a thread and hands its result back (``ended``): the caller keeps the
``Lookup`` it started and takes an end only while it is that one (one asked for since, or what asked for it
cancelled meanwhile: dropped)."""

from __future__ import annotations

import atexit
import contextlib
import inspect
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, Qt, Signal

log = logging.getLogger(__name__)


class _Relay(QObject):
    """Calls handed over by threads, made on the Qt thread. One per process, kept until the process ends: an emit
    on it never meets an object being destroyed (and none is made once the exit began: ``_closing``)."""

    call = Signal(object)  # list [callable or None, args], from any thread

    def __init__(self) -> None:
        super().__init__()
        # Queued also when emitted on the Qt thread: a call is never made in the middle of its caller.
        self.call.connect(self._call, Qt.ConnectionType.QueuedConnection)

    @staticmethod
    def _call(handed: list[Any]) -> None:
        """On the Qt thread: ``handed[0](*handed[1])`` unless its QObject is gone (or it is None: only let go of);
        then let go of both here. An exception it raises is reported here (``_report``), not let out to PySide.

        No local name holds the call or its arguments: when it raises, this frame outlives it (the frames of the
        traceback link back to it), holding its locals, and ``handed`` is emptied by then."""
        try:
            if _callable(handed[0]):
                handed[0](*handed[1])
        except Exception as exc:  # noqa: BLE001 - reported, and the relay serves every thread on
            _report(exc)
        finally:
            handed.clear()


def _callable(function: Callable[..., object] | None) -> bool:
    """Whether ``function`` is to be called: not None, nor a bound method of a QObject that is gone."""
    owner = getattr(function, "__self__", None)
    return function is not None and (not isinstance(owner, QObject) or shiboken6.isValid(owner))


def _report(exc: Exception) -> None:
    """``exc``, raised by a call made on the Qt thread, reported as an uncaught error is (``sys.excepthook``: the
    app's log, ``app.app_log``), then its frames' locals let go of here (``_clear_frames``), those of every error it
    was raised from or while handling too. Let out of the slot, PySide reported it the same way but left it in
    ``sys.last_traceback``, whose frames held the call's arguments (the gallery, a lookup's QObjects) until the next
    uncaught error replaced it: let go of then, on whatever thread that error was on."""
    try:
        sys.excepthook(type(exc), exc, exc.__traceback__)
    finally:
        for error in _chained(exc):
            _clear_frames(error.__traceback__)


def _chained(exc: BaseException) -> list[BaseException]:
    """``exc`` and every error chained to it, each once: its ``__cause__`` (``raise ... from``) and its
    ``__context__`` (the error being handled when it was raised), both, an exception group's errors too. Following
    only ``__cause__ or __context__`` skipped the error handled when one was raised ``from`` another, whose frames
    kept their locals."""
    found: list[BaseException] = []
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        error = pending.pop()
        if error is None or id(error) in seen:
            continue
        seen.add(id(error))
        found.append(error)
        pending += [error.__cause__, error.__context__]
        if isinstance(grouped := getattr(error, "exceptions", None), tuple):  # an exception group (3.11)
            pending += [each for each in grouped if isinstance(each, BaseException)]
    return found


# A frame of a generator or coroutine is left as it is: ``frame.clear()`` on one that is suspended closes it (its
# ``close``), and an error its code raised and handed on (a generator yielding the errors it caught) may reach a
# report here while other code still runs it. One that ended holds no locals any more.
_SUSPENDABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR


def _clear_frames(tb: TracebackType | None) -> None:
    """The locals of the frames of ``tb`` let go of (``traceback.clear_frames``), but for those still running (the
    relay's own) and those of generators and coroutines (``_SUSPENDABLE``)."""
    while tb is not None:
        if not tb.tb_frame.f_code.co_flags & _SUSPENDABLE:
            with contextlib.suppress(RuntimeError):  # still running
                tb.tb_frame.clear()
        tb = tb.tb_next


_relay: _Relay | None = None
_relay_lock = threading.Lock()  # the relay's making, and each hand-over against the exit's start
_closing = False  # the process exits: PySide deletes every QObject Python owns, the relay too
_kept: list[list[Any]] = []  # hand-overs after that: never freed on their thread, never emitted


def _the_relay() -> _Relay:
    """The relay, made on first use (``start_thread`` is called on the Qt thread) and moved there else."""
    global _relay
    with _relay_lock:
        if _relay is None:
            _relay = _Relay()
            app = QCoreApplication.instance()
            if app is not None and _relay.thread() is not app.thread():
                _relay.moveToThread(app.thread())
        return _relay


def _hand_over(handed: list[Any]) -> None:
    """``handed`` to the relay, or kept for good once the exit began: an emit on the relay PySide is deleting at
    exit (it lets the GIL go meanwhile) crashed the process."""
    relay = _the_relay()
    with _relay_lock:
        if _closing:
            _kept.append(handed)
        else:
            relay.call.emit(handed)


@atexit.register  # after PySide's own exit handler is registered (imported above): so run before it
def _close() -> None:
    global _closing
    with _relay_lock:
        _closing = True


def start_thread(name: str, run: Callable[..., object], *args: Any) -> threading.Thread:
    """On the Qt thread: ``run(*args)`` on a daemon thread named ``name``. What it was given (``run``, its object,
    ``args``) is let go of on the Qt thread after it ended, so that it may hold Qt objects (the thread's last
    reference to one destroyed it on the wrong thread). An exception ``run`` lets out is logged."""
    handed: list[Any] = [run, args]
    _the_relay()  # made here, on the Qt thread
    thread = threading.Thread(target=_thread_main, args=(handed,), name=name, daemon=True)
    thread.start()
    return thread


def _thread_main(handed: list[Any]) -> None:
    try:
        _run_logged(*handed)
    finally:
        handed[0] = None  # nothing to call: the relay only lets go of the arguments, on the Qt thread
        _hand_over(handed)


def _run_logged(run: Callable[..., object], args: tuple[Any, ...]) -> None:
    """``run(*args)``; an exception it lets out is logged and let go of here, its traceback's frames with it (while
    ``handed`` still holds what they hold)."""
    try:
        run(*args)
    except Exception:  # noqa: BLE001 - the thread's end is handed over all the same
        log.exception("%s failed", threading.current_thread().name)


def to_qt_thread(function: Callable[..., object], *args: Any) -> None:
    """From a thread of ``start_thread``'s (whose arguments keep alive what ``function`` and ``args`` hold, so that
    this thread never lets go of the last reference): ``function(*args)`` called on the Qt thread, unless
    ``function`` is a bound method of a QObject that is gone by then. One thread's calls keep their order."""
    _hand_over([function, args])


@dataclass(eq=False)
class Lookup:
    """One look (or deletion) under way: its work runs on its thread, which fills in its ``result``, or the
    ``error`` it raised, before it hands the lookup to the Qt thread (``Lookups.ended``)."""

    what: str  # in words, for the log: "naming the output", "listing the unfinished runs", ...
    result: Any = None
    error: BaseException | None = None
    # Set once ``result`` or ``error`` is filled in: for a quit that waits for a lookup (``wait``)
    done: threading.Event = field(default_factory=threading.Event, repr=False)

    def wait(self, timeout: float) -> bool:
        """Waits up to ``timeout`` seconds for the work to end -> whether it has (its end is still handed to the Qt
        thread: the caller takes it from here, or drops it there)."""
        return self.done.wait(timeout)


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
    except BaseException as exc:  # noqa: BLE001 - handed to the caller, which says it: the end is never lost (a
        log.info("%s failed", lookup.what, exc_info=True)  # SystemExit too: what waits for it stayed greyed for good)
        # Without its traceback: its frames hold this lookup, its work and its end (a reference cycle, which a
        # garbage collection on any thread would free, a Qt object with it)
        lookup.error = exc.with_traceback(None)
    lookup.done.set()
    to_qt_thread(end, lookup)
