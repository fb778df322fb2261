"""The app's worker threads (``app.background``) never destroy a Qt object on their own thread: a thread that let
go of the last reference to a QObject destroyed it there while the Qt thread could be using it, a segmentation
fault (CI, 2026-11-23: a trash listing held the gallery, whose window had closed)."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import weakref
from pathlib import Path

import pytest
import shiboken6
from PySide6.QtCore import QObject
from PySide6.QtGui import QImage

import app.lora_scan
from app.background import Lookups, start_thread, to_qt_thread
from app.lora_state import LoraState

_WAIT_S = 10.0


def _destroyed_on(obj: QObject) -> list[threading.Thread]:
    """The threads on which ``obj``'s wrapper is let go of for good, which destroys the QObject it owns (filled in
    when it is: a weak reference's callback runs on the thread that let go of the last reference; ``destroyed``
    is not emitted to Python then)."""
    threads: list[threading.Thread] = []
    _refs.append(weakref.ref(obj, lambda _: threads.append(threading.current_thread())))
    return threads


_refs: list[weakref.ref] = []  # the weak references live on, so that their callbacks do


def _dropped_on_the_qt_thread(qtbot, threads: list[threading.Thread], gate: threading.Event) -> None:
    """The test's last reference to the object gone, the thread still holding it: it lives until the thread ends,
    then is destroyed on the Qt thread."""
    gc.collect()
    assert threads == []  # the thread keeps it
    gate.set()
    qtbot.waitUntil(lambda: bool(threads), timeout=int(_WAIT_S * 1000))
    assert threads == [threading.main_thread()]


def test_a_lookup_whose_owner_was_let_go_of_destroys_it_on_the_qt_thread(qtbot):
    gate = threading.Event()
    lookups = Lookups("Test")  # no parent: the Python reference owns it
    threads = _destroyed_on(lookups)
    lookups.start("waiting", lambda: gate.wait(_WAIT_S))
    del lookups
    _dropped_on_the_qt_thread(qtbot, threads, gate)


def test_a_lora_folder_scan_whose_state_was_let_go_of_destroys_it_on_the_qt_thread(qtbot, monkeypatch, tmp_path):
    gate = threading.Event()
    listing = app.lora_scan.list_lora_files

    def list_after_the_gate(folder: Path, cancelled):
        gate.wait(_WAIT_S)
        return listing(folder, cancelled)

    monkeypatch.setattr(app.lora_scan, "list_lora_files", list_after_the_gate)
    state = LoraState()
    threads = _destroyed_on(state)
    assert state.folder_scan.scan_folder(tmp_path)
    del state
    _dropped_on_the_qt_thread(qtbot, threads, gate)


class _Told(QObject):
    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.calls: list[int] = []

    def tell(self, value: int) -> None:
        self.calls.append(value)


def test_a_call_handed_to_the_qt_thread_reaches_a_live_object_in_order_and_never_a_destroyed_one(qtbot):
    parent, other_parent = QObject(), QObject()
    live, gone = _Told(parent), _Told(other_parent)
    gate, done = threading.Event(), threading.Event()

    def run() -> None:
        gate.wait(_WAIT_S)
        for value in range(5):
            to_qt_thread(live.tell, value)
            to_qt_thread(gone.tell, value)
        done.set()

    start_thread("Test", run)
    shiboken6.delete(other_parent)  # its child goes with it, on the Qt thread, while the thread still holds it
    gate.set()
    qtbot.waitUntil(lambda: live.calls == [0, 1, 2, 3, 4], timeout=int(_WAIT_S * 1000))
    assert done.is_set()
    assert not shiboken6.isValid(gone)  # and its calls were dropped, not raised nor crashed on


def test_a_failed_lookup_leaves_no_reference_cycle_that_a_collection_on_another_thread_would_free(qtbot, caplog):
    # Its error kept its traceback, whose frames held the lookup, the work and the Lookups: a cycle, which the next
    # collection freed on whatever thread ran it (the engine's collect on a model load).
    # The failure's INFO record holds the traceback too, kept by pytest's capture for the report wherever an earlier
    # test's window set the level to INFO: not made here (a test's hold, not the app's).
    caplog.set_level(logging.WARNING, logger="app.background")
    ended: list[Exception | None] = []
    gc.collect()
    gc.disable()  # no automatic collection on this thread meanwhile, which would hide the cycle
    try:
        lookups = Lookups("Test")
        threads = _destroyed_on(lookups)
        lookups.ended.connect(lambda lookup: ended.append(lookup.error))
        lookups.start("failing", lambda: 1 / 0)
        qtbot.waitUntil(lambda: bool(ended), timeout=int(_WAIT_S * 1000))
        assert isinstance(ended[0], ZeroDivisionError)  # the error itself is handed over
        ended.clear()  # the test's own hold on the error
        del lookups
        collector = threading.Thread(target=gc.collect, name="Collector")
        collector.start()
        collector.join(_WAIT_S)
        qtbot.waitUntil(lambda: bool(threads), timeout=int(_WAIT_S * 1000))
        assert threads == [threading.main_thread()]
    finally:
        gc.enable()


def test_once_the_exit_began_a_hand_over_is_kept_not_emitted_on_the_relay_pyside_deletes(qtbot, monkeypatch):
    # At exit PySide deletes every QObject Python owns, the relay too, letting the GIL go meanwhile: a daemon
    # thread's emit on it then crashed the process.
    import app.background as background

    told: list[int] = []
    kept: list[list] = []
    monkeypatch.setattr(background, "_kept", kept)
    monkeypatch.setattr(background, "_closing", True)
    start_thread("Test", lambda: to_qt_thread(told.append, 1)).join(_WAIT_S)
    qtbot.wait(50)
    assert told == []
    assert [handed[1] for handed in kept] == [(1,), ()]  # the call's and the thread's end, both held for good


def test_a_thumbnail_decode_still_running_when_the_gallery_stops_never_destroys_its_emitter_on_the_pool_thread(
    qtbot, monkeypatch, tmp_path
):
    # GalleryModel.stop waits 1 s for the decodes; one of a huge PNG takes longer, and its task held the emitter.
    import app.thumbnails as thumbnails

    started, gate = threading.Event(), threading.Event()

    def slow_decode(path: str) -> QImage:
        started.set()
        gate.wait(_WAIT_S)
        return QImage()

    monkeypatch.setattr(thumbnails, "_decode", slow_decode)
    cache = thumbnails.ThumbnailCache()
    threads = _destroyed_on(cache._emitter)
    assert cache.get(tmp_path / "huge.png") is None
    assert started.wait(_WAIT_S)
    cache.stop(msecs=0)  # given up on: the decode runs on
    releaser = threading.Timer(0.2, gate.set)  # while the cache below is destroyed, which waits for its decode
    releaser.start()
    del cache
    gc.collect()
    releaser.join(_WAIT_S)
    qtbot.waitUntil(lambda: bool(threads), timeout=int(_WAIT_S * 1000))
    assert threads == [threading.main_thread()]


def test_a_lookup_ended_by_any_exception_is_handed_back_with_it(qtbot):
    # Only Exception was caught: a SystemExit raised by a lookup's work skipped its end, and what waited for it
    # (Empty trash's buttons) stayed greyed for the session.
    lookups = Lookups("Test")
    ended: list[BaseException | None] = []
    lookups.ended.connect(lambda lookup: ended.append(lookup.error))

    def leave() -> None:
        raise SystemExit(3)

    lookups.start("leaving", leave)
    qtbot.waitUntil(lambda: bool(ended), timeout=int(_WAIT_S * 1000))
    assert isinstance(ended[0], SystemExit) and ended[0].code == 3


class _Failing(QObject):
    def fail(self, held: QObject) -> None:
        raise ValueError(f"could not use {held.objectName()}")

    def fail_while_handling(self, held: QObject) -> None:
        try:
            _look_up(held)
        except KeyError:  # the error handled (``__context__``), beside the one it is raised from (``__cause__``)
            raise ValueError(f"could not use {held.objectName()}") from OSError("the cause")


def _look_up(held: QObject) -> None:
    raise KeyError(held.objectName())  # this frame, in the handled error's traceback only, holds ``held``


@pytest.mark.parametrize("call", ["fail", "fail_while_handling"])
def test_a_call_handed_to_the_qt_thread_that_raises_is_reported_and_keeps_none_of_its_arguments(qtbot, call):
    # Let out to PySide, the error was reported (sys.excepthook: the app's log) and kept in sys.last_traceback,
    # whose frames held the call's arguments until the next uncaught error, on any thread, let go of them there.
    # Raised ``from`` another while handling a third, the handled one's frames were not let go of (only
    # ``__cause__ or __context__`` was followed).
    failing = _Failing()
    held, gate = QObject(), threading.Event()
    held.setObjectName("the gallery")
    threads = _destroyed_on(held)

    def run(held: QObject) -> None:
        gate.wait(_WAIT_S)
        to_qt_thread(getattr(failing, call), held)

    with qtbot.captureExceptions() as reported:  # what sys.excepthook was given, in the test's stead
        start_thread("Test", run, held)
        del held
        _dropped_on_the_qt_thread(qtbot, threads, gate)  # was: kept by sys.last_traceback, never let go of
    assert [str(error) for _, error, _ in reported] == ["could not use the gallery"]
    assert "could not use" not in str(getattr(sys, "last_value", ""))


def test_the_report_of_a_failing_call_leaves_a_generator_its_error_came_from_running(qtbot):
    # Each frame of a reported error's tracebacks was cleared, and clearing the frame of a suspended generator
    # closes it: a generator still used by other code, whose error the failing call was raised from, was ended.
    def attempts():
        while True:
            try:
                raise TimeoutError("try again")
            except TimeoutError as error:
                yield error

    tries = attempts()
    last = next(tries)

    def give_up() -> None:
        raise RuntimeError("gave up") from last

    with qtbot.captureExceptions() as reported:
        start_thread("Test", lambda: to_qt_thread(give_up))
        qtbot.waitUntil(lambda: bool(reported), timeout=int(_WAIT_S * 1000))
    assert [str(error) for _, error, _ in reported] == ["gave up"]
    assert str(next(tries)) == "try again"  # was: StopIteration, the generator closed
