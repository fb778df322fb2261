"""Slow looks at folders (and deletions of them) on threads of their own, whose ends come back on the Qt thread:
the quantize wizard's (a run's output name: ``free_output_path`` reads and hashes MiBs of a multi-GiB source,
0.1-0.4 s for a FLUX-size one; the unfinished runs; the deletion of one, GiBs) and the gallery's trash listing
(tens of thousands of files). On the Qt thread they froze the window meanwhile. The threads are the LoRA panel's
folder scan's kind (``LoraState.scan_folder``): daemons, which a quit does not wait for, whose end is handed to the
Qt thread by a queued signal; the caller keeps the ``Lookup`` it started and takes an end only while it is that one
(one asked for since, or what asked for it cancelled meanwhile: dropped)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Lookup:
    """One look (or deletion) under way: its work runs on its thread, which fills in its ``result``, or the
    ``error`` it raised, before it hands the lookup to the Qt thread (``Lookups.ended``). It does not keep the work:
    a work that holds its owner (a bound method) would keep it alive, and its end delivered, after it is gone."""

    what: str  # in words, for the log: "naming the output", "listing the unfinished runs", ...
    result: Any = None
    error: Exception | None = None


class Lookups(QObject):
    """Runs lookups on threads (``start``); ``ended`` with each once done, on the Qt thread."""

    ended = Signal(object)  # Lookup, on the Qt thread
    _done = Signal(object)  # Lookup, from its thread

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        """``name``: whose lookups, for the threads' names (``"Quantize: naming the output"``)."""
        super().__init__(parent)
        self._name = name
        self._done.connect(self.ended)  # queued: from the lookup's thread to this object's

    def start(self, what: str, work: Callable[[], Any]) -> Lookup:
        """Runs ``work`` on a thread of its own; returns its ``Lookup``, which ``ended`` hands back."""
        lookup = Lookup(what)
        # A daemon, as the LoRA folder scan: a quit does not wait for a folder it lists or deletes (a deletion cut
        # short leaves a parts folder without its manifest, which resumes nothing and is listed, to delete).
        threading.Thread(target=self._run, args=(lookup, work), name=f"{self._name}: {what}", daemon=True).start()
        return lookup

    def _run(self, lookup: Lookup, work: Callable[[], Any]) -> None:
        try:
            lookup.result = work()
        except Exception as exc:  # noqa: BLE001 - handed to the caller, which says it: the end is never lost
            log.info("%s failed", lookup.what, exc_info=True)
            lookup.error = exc
        with contextlib.suppress(RuntimeError):  # this object is gone with its owner: no one to tell
            self._done.emit(lookup)
