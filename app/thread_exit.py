"""Stopping worker threads when the app closes, and exiting when one will not stop.

A worker stops between steps, but one step can run for minutes (loading a 12B model from a slow disk,
quantizing one of its layers) and cannot be interrupted. Qt aborts the whole process when a running
``QThread`` is destroyed, so instead of letting interpreter shutdown destroy it, the app leaves with
``os._exit`` once everything it owns is saved: all user data is written atomically (PNG, settings, model
files) or transactionally (SQLite), and what a killed worker leaves behind is repaired at the next start
(gallery reconciliation, quantizer resume). A ``QThreadPool`` whose task does not end is the same: destroyed at the
exit, it waits for it without end (a thumbnail's check of a picture on a network share that stopped answering kept
the process running for good after its window had gone)."""

from __future__ import annotations

import logging
import os
import sys

import shiboken6
from PySide6.QtCore import QObject, QThread, QThreadPool

log = logging.getLogger(__name__)

STOP_WAIT_MS = 30_000  # how long closing waits for a worker's current step
# How long closing waits for a worker still starting (importing torch, reading the model list): it holds nothing
# of the user's yet, and a window closed right after launch waited seconds for imports it would then discard.
STARTING_WAIT_MS = 100

_still_running: list[QThread] = []  # referenced here so that nothing destroys them before the exit
# The workers of those threads, inside a slot when they were given up on: referenced here for the same reason. Left
# to their owners (a window closed, a wizard let go of), a worker's wrapper lived only as long as its slot ran (the
# call holds it) and was let go of by its own thread when the slot returned, which destroyed it off the Qt thread.
_busy_workers: list[QObject] = []
_busy_pools: list[QThreadPool] = []  # thread pools whose tasks did not end when waited for at the close


def stop_thread(thread: QThread, worker: QObject, starting: bool = False) -> bool:
    """Asks ``thread``'s event loop to quit and waits up to ``STOP_WAIT_MS`` (``STARTING_WAIT_MS`` for a worker
    that is still ``starting``); False if it is still running, its ``worker`` (the object moved to it, whose slot
    still runs there) then kept with it until the process exits."""
    thread.quit()
    wait_ms = STARTING_WAIT_MS if starting else STOP_WAIT_MS
    if thread.wait(wait_ms):
        return True
    log.warning("the %s thread is still %s after %d ms; the app will exit without waiting for it",
                thread.objectName() or "worker", "starting" if starting else "busy", wait_ms)
    _still_running.append(thread)
    _busy_workers.append(worker)
    return False


def stop_pool(pool: QThreadPool, what: str, wait_ms: int) -> bool:
    """Waits up to ``wait_ms`` for the tasks running on ``pool`` (``what`` they do, for the log); False if some still
    run, the pool then left for ``exit_now_if_threads_run`` (its destructor would wait for them without end)."""
    if pool.waitForDone(wait_ms):
        return True
    log.warning("%s did not end within %d ms (a file on a drive that does not answer?); the app will exit without "
                "waiting for them", what, wait_ms)  # fmt: skip
    _busy_pools.append(pool)
    return False


def _running(pool: QThreadPool) -> bool:
    """Whether a task still runs on ``pool``; not once it is gone (a window closed in a test, run in the process)."""
    return shiboken6.isValid(pool) and pool.activeThreadCount() > 0


def exit_now_if_threads_run(code: int) -> None:
    """Leaves the process with ``code`` at once when a worker, or a pool's task, did not stop (see the module's
    docstring)."""
    if not any(t.isRunning() for t in _still_running) and not any(_running(pool) for pool in _busy_pools):
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:  # None in a windowed Windows executable (no console): nothing to flush
            stream.flush()
    os._exit(code)
