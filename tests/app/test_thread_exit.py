"""Stopping the workers' threads at quit (``app.thread_exit``): a worker still inside a step is kept, never
destroyed off the Qt thread; ``exit_now_if_threads_run`` in a windowed Windows executable, where
``sys.stdout``/``sys.stderr`` are None."""

from __future__ import annotations

import gc
import sys
import threading
import weakref

import pytest
from PySide6.QtCore import QObject, Signal, Slot

import app.engine_worker as engine_worker
import app.thread_exit as thread_exit
from app.data_dir import resolve_data_dir
from app.engine_worker import EngineThread, EngineWorker

_WAIT_S = 10.0


class _BusyThread:
    def isRunning(self) -> bool:  # noqa: N802 - QThread's name
        return True


class _Exited(Exception):
    pass


def test_leaves_with_os_exit_when_there_is_no_console(monkeypatch):
    # PyInstaller's console=False build (packaging/nibble_studio.spec) starts Python with no std streams.
    monkeypatch.setattr(sys, "stdout", None)
    monkeypatch.setattr(sys, "stderr", None)
    monkeypatch.setattr(thread_exit, "_still_running", [_BusyThread()])
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise _Exited

    monkeypatch.setattr(thread_exit.os, "_exit", fake_exit)
    with pytest.raises(_Exited):
        thread_exit.exit_now_if_threads_run(3)
    assert codes == [3]  # not an AttributeError on None.flush(), which left Qt to abort over the running thread


class _Asker(QObject):
    ask = Signal()


_entered, _gate = threading.Event(), threading.Event()


class _Stepping(EngineWorker):
    """The engine's worker with a step that cannot be interrupted (a 12B model's load), held until ``_gate``."""

    @Slot()
    def long_step(self) -> None:
        _entered.set()
        _gate.wait(_WAIT_S)


def test_a_worker_given_up_on_at_quit_is_kept_not_destroyed_on_its_own_thread(qtbot, monkeypatch, tmp_path):
    # stop_thread kept only the QThread: the worker, its owner (the window's controller) gone, lived only as long as
    # the call of its slot held it, and its thread let go of it as the slot returned, destroying it off the Qt thread.
    monkeypatch.setattr(thread_exit, "_still_running", [])
    monkeypatch.setattr(thread_exit, "_busy_workers", [], raising=False)
    monkeypatch.setattr(engine_worker, "EngineWorker", _Stepping)
    _entered.clear()
    _gate.clear()
    engine = EngineThread(resolve_data_dir(tmp_path / "data"))
    asker = _Asker()
    asker.ask.connect(engine.worker.long_step)  # queued: on the engine's thread
    asker.ask.emit()
    assert _entered.wait(_WAIT_S)
    released: list[threading.Thread] = []
    kept = weakref.ref(engine.worker, lambda _: released.append(threading.current_thread()))
    assert not engine.stop()  # given up on: still inside its step
    thread = engine.thread
    del engine, asker
    gc.collect()
    _gate.set()
    assert thread.wait(int(_WAIT_S * 1000))  # the step returned, and the thread ended
    gc.collect()
    assert released == [] and kept() is not None  # was: [the engine's thread]
