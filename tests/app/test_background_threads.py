"""The app's worker threads (``app.background``) never destroy a Qt object on their own thread: a thread that let
go of the last reference to a QObject destroyed it there while the Qt thread could be using it, a segmentation
fault (CI, 2026-11-23: a trash listing held the gallery, whose window had closed)."""

from __future__ import annotations

import gc
import threading
import weakref
from pathlib import Path

import shiboken6
from PySide6.QtCore import QObject

import app.lora_state
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
    listing = app.lora_state.list_lora_files

    def list_after_the_gate(folder: Path, cancelled):
        gate.wait(_WAIT_S)
        return listing(folder, cancelled)

    monkeypatch.setattr(app.lora_state, "list_lora_files", list_after_the_gate)
    state = LoraState()
    threads = _destroyed_on(state)
    assert state.scan_folder(tmp_path)
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
