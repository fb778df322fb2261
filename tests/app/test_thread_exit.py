"""``exit_now_if_threads_run`` in a windowed Windows executable, where ``sys.stdout``/``sys.stderr`` are None."""

from __future__ import annotations

import sys

import pytest

import app.thread_exit as thread_exit


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
