"""Rows of the LoRA panel switched on that are the same LoRA (``LoraTwins``, composed by ``LoraState``): a file listed
twice, copied to another folder or name, or with its metadata alone edited. A job refuses such a pair (the LoRA
would count double), but only as it applies them, after its model loaded (a minute for FLUX.1); each such row now
says so as they are switched on, and Generate refuses them at the click, naming both files.

What tells files apart is ``gpu.lora.twins``'s (the engine's rule, from the files alone). Only rows switched on that
change something, of one layout (the same targets: ``gpu.lora.fit.layout_targets``), can be the same; a quick look
at each (its header and first 64 KiB) tells most apart, and only files of one look are read whole. The files are
read on a thread of its own, each version once (kept by its path and stamp); the rows are marked when it ends."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from PySide6.QtCore import QObject

from app.background import start_thread, to_qt_thread
from app.engine_errors import EngineError
from app.lora_entry import LoraEntry
from app.lora_header import read_stamp
from gpu.errors import UserError
from gpu.lora.fit import file_parts
from gpu.lora.twins import LoraContents, look_at, may_be_same, read_contents, same_lora

if TYPE_CHECKING:
    from app.lora_state import LoraState

log = logging.getLogger(__name__)

# What a row's file is, as far as being the same LoRA as another goes: (the row, whether read whole) -> its contents
# (``look_at``, or ``read_contents`` when whole), None when it cannot be read, or is not known here.
Contents = Callable[[LoraEntry, bool], LoraContents | None]
_Key = tuple[Path, tuple[int, int] | None, bool]  # (the file, its stamp, read whole)


class Twin(NamedTuple):
    """Two rows switched on that are the same LoRA: ``first`` before ``second`` in the panel (as a job takes its
    LoRAs), and how (``same_lora_words``)."""

    first: LoraEntry
    second: LoraEntry
    how: str


def may_be_twins(rows: list[LoraEntry]) -> list[list[LoraEntry]]:
    """The rows that may be the same LoRA, in groups, each in the panel's order: switched on, changing something at
    their strengths (a job skips a LoRA at strength 0, and nothing doubles), usable and fitting the model (a job
    refuses the others first), of one layout; groups of two rows or more."""
    layouts: dict[int, list[LoraEntry]] = {}
    for e in rows:
        if e.enabled and not (e.problem or e.misfit) and file_parts(e.strength, e.text_strength, bool(e.text_encoders)):
            layouts.setdefault(id(e.targets), []).append(e)
    return [group for group in layouts.values() if len(group) > 1]


def twins_of(groups: list[list[LoraEntry]], contents: Contents) -> list[Twin]:
    """Each row of ``groups`` (``may_be_twins``) that is the same LoRA as a row before it in its group, with the first
    such row: files of other looks are told apart by their looks alone, only files of one look are read whole."""
    found = []
    for group in groups:
        looks = [contents(e, False) for e in group]
        for at, (row, look) in enumerate(zip(group, looks, strict=True)):
            for first, first_look in zip(group[:at], looks[:at], strict=True):
                if look is None or first_look is None or not may_be_same(first_look, look):
                    continue
                a, b = contents(first, True), contents(row, True)
                how = same_lora(a, b) if a is not None and b is not None else None
                if how is not None:
                    found.append(Twin(first, row, how))
                    break
    return found


class LoraTwins(QObject):
    """The twins among the rows of ``LoraState`` (its Qt parent) switched on, looked for whenever the rows may have
    changed (``look``), each row marked (``LoraEntry.twin``) once the files they need are read, on a thread of its
    own; ``settle`` gives them at Generate, reading there what that thread has not read yet."""

    def __init__(self, rows: LoraState) -> None:
        super().__init__(rows)
        self._read: dict[_Key, LoraContents | None] = {}  # each file version's contents, read once
        self._reading = False  # a thread reads files (its end looks again)
        self._showing = False  # rows being marked: their ``edited`` asks for no look
        rows.changed.connect(self.look)
        rows.edited.connect(self.look)

    @property
    def busy(self) -> bool:
        """Whether a thread reads files the rows need (marked, and known to ``settle``, once it ended)."""
        return self._reading

    @property
    def _rows(self) -> LoraState:
        """The rows looked at, this object's Qt parent (held by Qt, not by a Python attribute: no reference cycle)."""
        return self.parent()  # type: ignore[return-value]

    def look(self, *_changed: object) -> None:
        """The rows switched on, their strengths or their files may have changed: the twins among them marked as far
        as the files read before tell (a row switched off is unmarked at once), the others once a thread has read
        the files they need (one thread at a time: its end looks again)."""
        if self._showing:
            return  # a row being marked changes nothing looked at
        groups = may_be_twins(self._rows.entries)
        unread: list[_Key] = []
        self._show(twins_of(groups, lambda row, whole: self._known(row, whole, unread)), groups)
        if unread and not self._reading:
            self._reading = True
            # A daemon (it writes nothing); it holds the state too, let go of on the Qt thread (``start_thread``)
            start_thread("LoRA twins", self._run, groups, self._rows)

    def settle(self) -> list[Twin]:
        """At Generate: the twins among the rows switched on now, the rows marked; a file the thread has not read
        yet (Generate clicked as a row was switched on) is read here, its look first."""
        groups = may_be_twins(self._rows.entries)
        found = twins_of(groups, self._contents)
        self._show(found, groups)
        return found

    def _known(self, row: LoraEntry, whole: bool, unread: list[_Key]) -> LoraContents | None:
        """``Contents`` as read before; a file not read yet is added to ``unread`` (and is None)."""
        key = _key(row, whole)
        if key in self._read:
            return self._read[key]
        if not whole and (known := self._read.get(_key(row, True))) is not None:
            return known
        unread.append(key)
        return None

    def _contents(self, row: LoraEntry, whole: bool) -> LoraContents | None:
        """``Contents``, read here where it was not before. A file changed since the row read its header (its stamp)
        is not read: the row's header is read again first (``LoraState.refresh``), and the file then."""
        key = _key(row, whole)
        if (known := self._known(row, whole, [])) is not None or key in self._read:
            return known
        contents = None
        if read_stamp(row.path) == row.stamp:
            try:
                contents = read_contents(row.path) if whole else look_at(row.path)
            except (OSError, UserError):  # gone or damaged since: the job says what is wrong with it
                log.info("%s could not be read to tell it from the LoRAs on beside it", row.path, exc_info=True)
        self._read[key] = contents
        return contents

    def _run(self, groups: list[list[LoraEntry]], rows: LoraState) -> None:
        """On the thread: the files ``groups`` need read (``_contents``), then the rows looked at again on the Qt
        thread. ``rows`` is only held, for ``look``'s reason."""
        try:
            twins_of(groups, self._contents)
        finally:
            to_qt_thread(self._read_all)

    def _read_all(self) -> None:
        self._reading = False
        self.look()

    def _show(self, found: list[Twin], groups: list[list[LoraEntry]]) -> None:
        """Each row of ``found`` marked with the other row of its pair (the first one's with the second), every other
        row unmarked; ``edited`` for each that changed. What was read of files not in ``groups`` (the rows that may
        be twins now) is let go of."""
        said: dict[int, str] = {}
        for first, second, how in found:
            said[id(second)] = _twin_words(first, how)
            said.setdefault(id(first), _twin_words(second, how))
        self._showing = True
        try:
            for e in self._rows.entries:
                if e.twin != (twin := said.get(id(e), "")):
                    e.twin = twin
                    self._rows.edited.emit(e)
        finally:
            self._showing = False
        if not self._reading:
            kept = {_key(e, whole) for group in groups for e in group for whole in (False, True)}
            self._read = {key: contents for key, contents in self._read.items() if key in kept}


def _twin_words(other: LoraEntry, how: str) -> str:
    """A row's ``LoraEntry.twin``: the row ``other`` switched on beside it is the same LoRA (``how``)."""
    return f"the same LoRA as {other.path} ({how}), switched on too: switch one of them off"


def _key(row: LoraEntry, whole: bool) -> _Key:
    """What the contents of ``row``'s file are kept by: the file, as the row last read it (its stamp), read whole."""
    return (row.resolved or row.path, row.stamp, bool(whole))


def twin_loras_error(twins: list[Twin]) -> EngineError:
    """Why Generate queued no job: the rows of ``twins`` (``LoraTwins.settle``) switched on, each pair the same LoRA,
    which a job refuses (it would count double) only once its model has loaded."""
    pairs = [f"{first.path} and {second.path} are the same LoRA ({how})" for first, second, how in twins]
    message = (f"The LoRA files {pairs[0]}, and both are switched on, so no image was made." if len(pairs) == 1
               else f"LoRA files switched on are the same LoRA, so no image was made: {'; '.join(pairs)}.")  # fmt: skip
    return EngineError("user", message, "Switch one of each pair off in the LoRA panel (the other can take the "
                       "strength you want), then click Generate again.")  # fmt: skip
