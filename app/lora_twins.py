"""Rows of the LoRA panel switched on that are the same LoRA (``LoraTwins``, composed by ``LoraState``): a file listed
twice, copied to another folder or name, or with its metadata alone edited. A job refuses such a pair (the LoRA
would count double), but only as it applies them, after its model loaded (a minute for FLUX.1); each such row now
says so as they are switched on, and Generate refuses them at the click, naming both files.

What tells files apart is ``gpu.lora.twins``'s (the engine's rule, from the files alone). Only rows switched on that
change something, and the same layers (``changed_layers``: as the engine names them, whatever the keys), can be the
same; a quick look at each (its header and first 64 KiB) tells most apart, and only files of one look are read
whole. The files are read on a thread of its own, never on the window's (Generate's check included), each version
once while a row lists it (kept by its path and stamp); the rows are marked when it ends. At each Generate click,
the thread also opens the file of each row switched on that a job would apply (its header read, milliseconds): one
that cannot be read now (its access taken away, held by another program) is refused at the click, not once its
model has loaded, lone rows' files included, which no copy check reads."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from PySide6.QtCore import QObject, Signal

from app.background import start_thread, to_qt_thread
from app.engine_errors import EngineError
from app.lora_entry import LoraEntry
from app.lora_header import read_stamp
from gpu.errors import FileProblem, UserError
from gpu.lora.fit import file_parts
from gpu.lora.twins import LoraContents, changed_layers, look_at, may_be_same, read_contents, same_lora
from gpu.safetensors_header import read_safetensors_header

if TYPE_CHECKING:
    from app.lora_state import LoraState

log = logging.getLogger(__name__)

# What a row's file is, as far as being the same LoRA as another goes: (the row, whether read whole) -> its contents
# (``look_at``, or ``read_contents`` when whole), None when it cannot be read, or is not known here.
Contents = Callable[[LoraEntry, bool], LoraContents | None]
_Key = tuple[Path, tuple[int, int] | None, bool]  # (the file, its stamp, read whole)
# What the thread made of each file it needed: its contents, or why it could not be read, in words
_Got = dict[_Key, LoraContents | str]
_Read = TypeVar("_Read")  # what a read of a file gives (``_read_now``)
_Opened = dict[_Key, str]  # each file a click had opened, by ``_opened_key``: "" where it opens, else why not


class Twin(NamedTuple):
    """Two rows switched on that are the same LoRA: ``first`` before ``second`` in the panel (as a job takes its
    LoRAs), and how (``same_lora_words``)."""

    first: LoraEntry
    second: LoraEntry
    how: str


def applied(rows: list[LoraEntry]) -> list[LoraEntry]:
    """The rows a job would apply: switched on, changing something at their strengths (a job skips a LoRA at
    strength 0, and nothing doubles), usable and fitting the model (a job refuses the others first), their header
    read (an added file's is read first: ``app.lora_adds``)."""
    return [e for e in rows if e.enabled and not (e.problem or e.misfit or e.reading)
            and file_parts(e.strength, e.text_strength, bool(e.text_encoders))]  # fmt: skip


def may_be_twins(rows: list[LoraEntry]) -> list[list[LoraEntry]]:
    """The rows that may be the same LoRA, in groups, each in the panel's order: those a job would apply
    (``applied``) changing the same layers (``changed_layers``: of one layout, or of layouts that name them by other
    keys); groups of two rows or more."""
    layers: dict[int, tuple[object, ...]] = {}  # by layout: the rows of one share their targets (``layout_targets``)
    groups: dict[tuple[object, ...], list[LoraEntry]] = {}
    for e in applied(rows):
        changed = layers.get(id(e.targets)) or layers.setdefault(id(e.targets), changed_layers(e.targets))
        groups.setdefault(changed, []).append(e)
    return [group for group in groups.values() if len(group) > 1]


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
    own; ``settle`` gives them at Generate, as far as that thread has read them (``busy`` while it reads, ``read`` at
    its end). No file is read on the window's thread: a FLUX.1 LoRA is hundreds of MB."""

    # The thread's read ended and none is needed after it: ``settle`` now gives the twins of the rows as they are
    read = Signal()

    def __init__(self, rows: LoraState) -> None:
        super().__init__(rows)
        # Each file version's contents, read once, kept while a row lists it (a pair switched off and on again is
        # not read again); changed on the Qt thread only, as the thread that read them ends (``_read_all``)
        self._read: dict[_Key, LoraContents] = {}
        # Files that could not be read (held by another program, gone), each with why: not known, until the next
        # look the user causes tries them again (the thread's own end does not: it would try them on and on)
        self._failed: dict[_Key, str] = {}
        # What the thread made of opening each file a job would apply, since the last Generate click: "" where it
        # opened, else why not. Forgotten at each click, which opens them again: access can be taken away any time
        self._opened: _Opened = {}
        # The rows switched on whose files the last look needed and could not be read, each with why (``not_read``)
        self._not_read: list[tuple[LoraEntry, str]] = []
        self._reading = False  # a thread reads files (its end looks again)
        self._showing = False  # rows being marked: their ``edited`` asks for no look
        rows.changed.connect(self.look)
        rows.edited.connect(self.look)

    @property
    def busy(self) -> bool:
        """Whether a thread reads files the rows need (marked, and known to ``settle``, once it ended)."""
        return self._reading

    @property
    def not_read(self) -> list[tuple[LoraEntry, str]]:
        """The rows switched on whose files could not be read (by ``settle``'s look, or the read that ended), each
        with why: whether they are the same LoRA as another one is not known, and a job would fail on them."""
        return self._not_read

    @property
    def _rows(self) -> LoraState:
        """The rows looked at, this object's Qt parent (held by Qt, not by a Python attribute: no reference cycle)."""
        return self.parent()  # type: ignore[return-value]

    def look(self, *_changed: object) -> None:
        """The rows switched on, their strengths or their files may have changed: the twins among them marked as far
        as the files read before tell (a row switched off is unmarked at once), the others once a thread has read
        the files they need (one thread at a time: its end looks again). A file that could not be read is tried
        again."""
        if not self._showing:  # a row being marked changes nothing looked at
            self._failed.clear()
            self._look()

    def settle(self, retry: bool = True) -> list[Twin]:
        """At Generate: the twins among the rows switched on now, as far as the files read tell, the rows marked
        (``look``). A file not read yet (Generate clicked as a row was switched on, or at start-up) is read on the
        thread, not here (``busy`` then: the click waits for its ``read``). ``retry``: a file that could not be read
        is tried again (not at the end of the read that tried it: it would be tried on and on), and each file a job
        would apply opened again (a lone LoRA's too: its access may have been taken away since)."""
        if retry:
            self._failed.clear()
            self._opened.clear()
        return self._look(opens=True)

    def _look(self, opens: bool = False) -> list[Twin]:
        """The twins among the rows switched on as far as the files read tell, the rows marked; a thread started
        for the files they need that are not read yet, unless one runs (its end looks again). ``opens``: the files
        a job would apply not opened since the click are opened by that thread too (``not_read`` where they fail)."""
        groups = may_be_twins(self._rows.entries)
        unread: list[_Key] = []
        self._not_read = []
        found = twins_of(groups, lambda row, whole: self._known(row, whole, unread))
        self._show(found)
        to_open = self._to_open() if opens else []
        if (unread or to_open) and not self._reading:
            self._reading = True
            # A daemon (it writes nothing); it holds the state too, let go of on the Qt thread (``start_thread``).
            # It is given copies of what is known: ``_read`` and ``_failed`` change on the Qt thread meanwhile.
            start_thread("LoRA twins", self._run, groups, dict(self._read), set(self._failed), to_open, self._rows)
        return found

    def _to_open(self) -> list[LoraEntry]:
        """The rows a job would apply (``applied``) whose file was not opened since the click; one that could not
        be opened is added to ``not_read``."""
        rows = []
        for row in applied(self._rows.entries):
            why = self._opened.get(_key(row, False))
            if why is None:
                rows.append(row)
            elif why:
                self._note_not_read(row, why)
        return rows

    def _known(self, row: LoraEntry, whole: bool, unread: list[_Key]) -> LoraContents | None:
        """``Contents`` as read before (a file read whole gives its look too); a file neither read yet nor failed to
        read is added to ``unread``, one that failed to ``not_read`` (and is None)."""
        known = _known_in(self._read, row, whole)
        if known is None:
            key = _key(row, whole)
            if key not in self._failed:
                unread.append(key)
            else:
                self._note_not_read(row, self._failed[key])
        return known

    def _note_not_read(self, row: LoraEntry, why: str) -> None:
        """``row``'s file could not be read (``why``): in ``not_read``, once (the first reason found)."""
        if all(e is not row for e, _why in self._not_read):
            self._not_read.append((row, why))

    def _run(self, groups: list[list[LoraEntry]], read: dict[_Key, LoraContents], failed: set[_Key],
             to_open: list[LoraEntry], rows: LoraState) -> None:  # fmt: skip
        """On the thread: the files ``groups`` need that are neither in ``read`` nor in ``failed`` (copies of what
        the Qt thread knew) read (``_contents``), and those of ``to_open`` opened (their header read), handed to the
        Qt thread as it ends (``_read_all``); after an error no file should raise, those not read yet taken as
        failed (not read again until the user's next look). ``rows`` is only held, for ``look``'s reason."""
        got: _Got = {}
        opened: _Opened = {}
        try:
            twins_of(groups, lambda row, whole: _contents(row, whole, read, failed, got))
            for row in to_open:
                found = _read_now(row, read_safetensors_header)
                opened[_key(row, False)] = found if isinstance(found, str) else ""
        except Exception as err:  # noqa: BLE001 - its end would find the files unread, and read them on and on
            log.exception("The LoRA copy check failed")
            why = (f"the copy check failed on it: an error Nibble Studio did not expect, {type(err).__name__}; the "
                   "log file has the details")  # fmt: skip
            for row in (row for group in groups for row in group):
                for whole in (False, True):
                    if _key(row, whole) not in failed and _known_in(read, row, whole) is None:
                        got.setdefault(_key(row, whole), why)
            for row in to_open:
                opened.setdefault(_key(row, False), why)
        finally:
            to_qt_thread(self._read_all, got, opened)

    def _read_all(self, got: _Got, opened: _Opened) -> None:
        """On the Qt thread, as the thread ends: what it read (``got``) kept, for the files of rows listed only
        (each version's: the older ones let go of), what it could not read taken as not known, with why, and what
        opening files made (``opened``) kept till the next click; the rows
        looked at again (marked, or another thread started for files that rows changed meanwhile need), ``read``
        when none is."""
        self._reading = False
        listed = {_key(e, whole) for e in self._rows.entries for whole in (False, True)}
        self._read = {key: c for key, c in (*self._read.items(), *got.items())
                      if isinstance(c, LoraContents) and key in listed}  # fmt: skip
        self._failed = {key: why for key, why in (*self._failed.items(), *got.items())
                        if isinstance(why, str) and key in listed}  # fmt: skip
        self._opened = {key: why for key, why in (*self._opened.items(), *opened.items()) if key in listed}
        self._look()
        if not self._reading:
            self.read.emit()

    def _show(self, found: list[Twin]) -> None:
        """Each row of ``found`` marked with the other row of its pair (the first one's with the second), every other
        row unmarked; ``edited`` for each that changed."""
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


def _known_in(read: dict[_Key, LoraContents], row: LoraEntry, whole: bool) -> LoraContents | None:
    """``row``'s file's contents in ``read`` (a file read whole gives its look too); None when not there."""
    return read.get(_key(row, whole)) or (None if whole else read.get(_key(row, True)))


def _contents(row: LoraEntry, whole: bool, read: dict[_Key, LoraContents], failed: set[_Key],
              got: _Got) -> LoraContents | None:  # fmt: skip
    """``Contents`` on the thread: as read before (``read``), None for a file that ``failed`` to be read, or read now
    into ``got`` (why not, where it could not be). A file changed since the row read its header (its stamp) is not
    read: the row's header is read again first (``LoraState.refresh``), and the file then."""
    key = _key(row, whole)
    if key in failed:
        return None
    if key not in got:
        got[key] = _known_in(read, row, whole) or _read_now(row, read_contents if whole else look_at)
    found = got[key]
    return found if isinstance(found, LoraContents) else None


def _read_now(row: LoraEntry, read: Callable[[Path], _Read]) -> _Read | str:
    """``row``'s file read now by ``read`` (read whole, its look, its header); why not, in words, where it cannot be
    (held by another program, its access taken away, damaged or changed since the row read it)."""
    if read_stamp(row.path) != row.stamp:
        return "it changed while it was being read"
    try:
        return read(row.path)
    except (OSError, UserError) as err:
        log.info("%s could not be read to tell it from the LoRAs on beside it", row.path, exc_info=True)
        if isinstance(err, FileProblem):  # the system's own words where it would not read it, else what is wrong
            return err.reason or err.problem
        return str(err)


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


def unread_loras_error(rows: list[tuple[LoraEntry, str]]) -> EngineError:
    """Why Generate queued no job: the rows a job would apply whose files the click could not read (``not_read``,
    each with why: a lone one's too, opened at each click), which a job would fail on only once its model loaded."""
    one = len(rows) == 1
    said = [f"{row.path} ({why})" for row, why in rows]
    message = (f"The LoRA file {rows[0][0].path} cannot be read ({rows[0][1]}). It is switched on, so no image was "
               "made." if one else f"{len(rows)} LoRA files switched on cannot be read, so no image was made: "
               f"{'; '.join(said)}.")  # fmt: skip
    it = "it" if one else "them"
    return EngineError("user", message, f"Check that you may read {it} and that no other program holds {it}, then "
                       f"click Generate again; or switch {it} off in the LoRA panel.")  # fmt: skip
