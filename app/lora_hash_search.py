"""The hash search run when an image's LoRAs are restored (``LoraHashSearch``, composed by ``LoraState``): the rows
an image names switched on once the files they touch are looked at on a thread of their own (``restore_used`` for
ours, ``restore_refs`` for another program's: ``app.lora_files_read``), and the rows whose contents must be hashed
to tell which file is the image's searched on a thread of their own, the rows found switched on when it ends. The
matching itself is ``app.lora_reuse``'s, on the Qt thread, from what the threads read."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QObject, Signal

from app.background import start_thread, to_qt_thread
from app.lora_entry import LoraEntry
from app.lora_files_read import FilesRead, look_used, rows_of_stems
from app.lora_reuse import (
    HashSearch,
    Match,
    PanelState,
    RefsSettled,
    found_left_off,
    match_by_file,
    match_by_stem,
    rows_for_file,
    search_hashes,
    told_nothing,
    unmatched_hashes,
    wanted_strengths,
)

if TYPE_CHECKING:
    from app.lora_state import LoraState

log = logging.getLogger(__name__)

# Given what was not restored as saved among an image's LoRAs, once its files were read (``restore_used``)
Told = Callable[[list[str]], None]

# Said (``RefsSettled``) when the user changed the LoRA panel while an image's LoRA files were read: their panel wins
PANEL_CHANGED = ("The LoRA panel changed while the LoRA files of the image were read, so its LoRAs were not switched "
                 "on: the panel is as you set it. Drop the image again to use its LoRAs.")  # fmt: skip


@dataclass(eq=False)
class PendingRestore:
    """An image's restore whose LoRA files are read on a thread (``LoraHashSearch._read_then``): the panel at the
    drop (a change meanwhile is the user's, and wins), the matching to run once they are read, and whom to tell."""

    panel: PanelState
    match: Callable[[FilesRead, list[str]], Match]
    told: Told
    settled: RefsSettled
    cancel: threading.Event = field(default_factory=threading.Event)


class LoraHashSearch(QObject):
    """An image's LoRAs switched on in the rows of ``LoraState`` (its Qt parent), searched by hash where the names
    leave it open, one image at a time."""

    read = Signal()  # the files of a restore read, its rows switched on (or it was dropped): a click held goes on
    # A restore whose files were read dropped for another image's (or for one whose LoRAs could not be read): a click
    # held for it is that image's (its prompt, its seed), and would run with LoRAs it did not use (``HeldClicks``)
    replaced = Signal()

    def __init__(self, rows: LoraState) -> None:
        super().__init__(rows)
        self._search: HashSearch | None = None  # the search for the last dropped image's LoRAs, while it runs
        self._restore: PendingRestore | None = None  # the last dropped image's restore, while its files are read
        app = QCoreApplication.instance()
        if app is not None:  # a search left running at quit would read files for no one
            app.aboutToQuit.connect(self.cancel_search)

    @property
    def _rows(self) -> LoraState:
        """The rows the search switches on, its Qt parent: held by Qt, not by a Python attribute, so that no
        reference cycle keeps the state alive after it is let go."""
        return self.parent()  # type: ignore[return-value]

    @property
    def restoring(self) -> bool:
        """Whether the LoRA files an image's restore looks at are being read (``_read_then``): no job may take the
        rows until they are switched on as the image says (a Generate click waits: ``HeldClicks``)."""
        return self._restore is not None

    def restore_used(self, used: Any, told: Told, settled: RefsSettled | None = None) -> None:
        """Switch on exactly the LoRAs an image was made with (``lora_list`` of its settings), at its strengths
        (``text_strength`` where the image has one apart; an entry without it, as every image made before it
        existed, is "the same"), and every other one off, so "reuse settings" gives the same image back. A file
        that moved is found by its name among the listed LoRAs; ``told`` is given a sentence for each one that
        cannot be found. A search still running, or files still read, for an image dropped before are dropped
        (``cancel_search``). The files are looked at on a thread of their own first (``_read_then``): the rows are
        switched on, and ``told``, once they are read.

        Several usable rows of the image's file name (diffusers and PEFT name every LoRA
        pytorch_lora_weights.safetensors; two versions kept in two folders) are told apart by the hash the image
        recorded, as ``restore_refs`` does: the first is on at once, the one whose file has the hash replaces it
        when the search of their contents ends, on a thread of its own, unless the panel was changed or another
        image came meanwhile; ``settled`` (``restore_refs``'s) is told when it ends (the panel changed or not), or
        before ``told`` when no file is hashed. A row at the image's very path is on at once, searched first,
        before the other rows of its file name; so is the one row of its file name: another LoRA saved over the
        file since was switched on unsaid. When none has the hash, the row on stays on (the LoRA of that name) and
        ``settled`` says new images may differ (unless the user switched it off or removed it meanwhile).

        ``used`` comes from a PNG (any program can write one, and claim to be us): entries that are no LoRA
        (not a mapping, a name no file can have, a strength that is no number) are said, never raised on."""
        rows = [(e.path, e.resolved) for e in self._rows.entries]
        # An image made without LoRAs (or whose list names none) touches no file: its rows are switched off at once
        names_one = any(isinstance(item, dict) for item in (used if isinstance(used, list) else [used]))
        self._read_then((lambda: look_used(used, rows)) if names_one else None,
                        lambda files, notices: self._match_used(used, files, notices),
                        told, settled or told_nothing)  # fmt: skip

    def _match_used(self, used: Any, files: FilesRead, notices: list[str]) -> Match:
        """``match_by_file`` of ``used`` (``restore_used``'s) to the rows, their files as ``files`` found them."""
        return match_by_file(used, lambda path: self._find(path, files), notices, files)

    def restore_refs(self, refs: Any, told: Told, settled: RefsSettled) -> None:
        """``restore_used`` for an image of another program, whose LoRAs are named by file stem and, where it gives
        one, a short hash (``lora_refs``: A1111/Forge tags and ``Lora hashes``, ComfyUI LoRA nodes): exactly those
        rows are switched on, at the image's strengths, every other row off, as for our images. ``told`` is given a
        sentence for each thing not restored as saved (a file that cannot be used now, a strength outside the
        engine's range, clamped to it; ``refs`` comes from a file: anything else in it is said).

        A LoRA is the row of its stem in any case (A1111 and ComfyUI find LoRAs by name too: a file of that name in
        another version is still the user's LoRA of that name), switched on once the rows of its stem are looked
        at (on a thread, ``_read_then``). Only a LoRA with a hash and no row of its stem (a renamed file), or
        several rows of its stem (the one with the hash is preferred; the first is on meanwhile), needs contents:
        each hash reads a whole file, and 150 LoRAs of 100-300 MB hashed on this thread froze the window for
        minutes. So they are hashed on a thread of their own (kept per file version: the next search is instant),
        and the rows found are switched on when it ends, unless the panel was changed or another image dropped
        meanwhile: the late rows stay off then. ``settled`` is called on this thread with the names of the LoRAs
        not in the panel once they are known: before ``told`` when no file is hashed, else when the search ends,
        the panel changed or not (not at all when another image came or the app quits meanwhile)."""
        rows = rows_of_stems(refs, [e.path for e in self._rows.entries])
        self._read_then((lambda: FilesRead().look_all(rows)) if rows else None,
                        lambda files, notices: match_by_stem(refs, self._rows.entries, notices, files),
                        told, settled)  # fmt: skip

    def _read_then(self, look: Callable[[], FilesRead] | None, match: Callable[[FilesRead, list[str]], Match],
                   told: Told, settled: RefsSettled) -> None:  # fmt: skip
        """An image's restore: the files it looks at read on a thread of their own (``look``, given the panel's rows
        as they are now), then matched to the rows on this thread (``match``, ``_on_read``); at once where it looks
        at none (``look`` None: a Generate right after the drop of an image made without LoRAs is not held). A
        search or a restore still under way for an image dropped before is dropped (``replaced``)."""
        if self.cancel_search():
            self.replaced.emit()
        self._restore = restore = PendingRestore(self._rows.panel_state(), match, told, settled)
        if look is None:
            self._on_read(restore, FilesRead())
            return
        # A daemon, as the hash search: a quit does not wait for the files it reads; ``_run_search`` says why it holds
        # the state.
        start_thread("LoRA restore", self._run_read, restore, look, self._rows)

    def _run_read(self, restore: PendingRestore, look: Callable[[], FilesRead], rows: LoraState) -> None:
        """On the restore's thread: the files looked at, handed to the Qt thread (``_on_read``) unless dropped;
        ``rows`` is only held. A look that fails is taken as nothing found (a restore never stays pending)."""
        try:
            files = look()
        except Exception:  # noqa: BLE001 - Generate would wait for it for good
            log.exception("looking at the LoRA files of an image failed")
            files = FilesRead()
        if not restore.cancel.is_set():
            to_qt_thread(self._on_read, restore, files)

    def _on_read(self, restore: PendingRestore, files: FilesRead) -> None:
        """The files of the restore read, on the Qt thread: its LoRAs matched and switched on
        (``_switch_then_search``), what was not restored as saved ``told``; dropped when another image came since.
        When the user changed the panel meanwhile, their choice wins: nothing is switched, and ``settled`` says so.
        ``read`` tells a Generate click held for the files that they are."""
        if restore is not self._restore:
            return
        self._restore = None
        try:
            if self._rows.panel_state() != restore.panel:
                log.info("the LoRAs of the restored image are left as they are: the LoRA panel changed since")
                restore.settled([], [PANEL_CHANGED])
                return
            notices: list[str] = []
            match = restore.match(files, notices)
            restore.told(self._switch_then_search(match, files, notices, restore.settled))
        finally:
            self.read.emit()

    def _switch_then_search(self, match: Match, files: FilesRead, notices: list[str],
                            settled: RefsSettled) -> list[str]:  # fmt: skip
        """The rows of ``match.now`` switched on at the image's strengths (their files as ``files`` found them),
        every other off, what was not restored as saved added to ``notices`` (returned); then the rows of
        ``match.jobs`` searched for the refs' hashes on a thread of their own (``_run_search``), or, with nothing to
        search, ``settled`` told at once of the refs without a row."""
        refs, now, jobs = match
        self._rows.switch_to(wanted_strengths(refs, now, notices, self._rows.show_refused, files))
        if not jobs:
            settled([ref.name for index, ref in enumerate(refs) if index not in now], [])
            return notices
        self._search = search = HashSearch(refs, now, jobs, self._rows.panel_state(), settled)
        # A daemon: a quit does not wait for the file it reads (it writes nothing); no QThread Qt could abort on.
        # It holds the state too, which this search reaches through Qt only: a state let go of meanwhile lives until
        # the search ended, then goes on the Qt thread (``start_thread``), as while the search was its own method.
        start_thread("LoRA hashes", self._run_search, search, self._rows)
        return notices

    def cancel_search(self) -> bool:
        """Drops the running search and the restore whose files are read (another image dropped, the app quits):
        each stops after the file it reads, and nothing it found is switched on or said. Returns whether a restore
        was dropped. A Generate click held for it is not told (a quit drops it): ``_read_then`` and ``keep_panel``
        tell it (``replaced``)."""
        if self._search is not None:
            self._search.cancel.set()
            self._search = None
        restore, self._restore = self._restore, None
        if restore is not None:
            restore.cancel.set()
        return restore is not None

    def keep_panel(self) -> None:
        """An image whose LoRAs could not be read (a ComfyUI graph of custom nodes): the panel stays as it is, none
        switched off for it, nor on for an image dropped before (``cancel_search``); a Generate click held for that
        image's files is dropped (``replaced``: it went on with the panel's LoRAs, the earlier image's prompt)."""
        if self.cancel_search():
            self.replaced.emit()

    def _run_search(self, search: HashSearch, rows: LoraState) -> None:
        """On the search's thread: the rows found (``search_hashes``), handed to the Qt thread (``_on_searched``)
        unless the search was cancelled. ``rows`` (this search's parent) is only held, for ``_switch_then_search``'s
        reason."""
        found = search_hashes(search)
        # The rows ``_on_searched`` may switch on, read here: on the Qt thread, a hung share froze the window
        files = FilesRead().look_all(e.path for e in [*search.now.values(), *found.values()])
        if not search.cancel.is_set():
            to_qt_thread(self._on_searched, search, found, files)

    def _on_searched(self, search: HashSearch, found: dict[int, LoraEntry], files: FilesRead) -> None:
        """The search's result, on the Qt thread: the rows found switched on with those of the drop, then
        ``settled``; dropped when another image came since. When the user changed the panel meanwhile, their choice
        wins: the rows found are left off, but ``settled`` is still told of the LoRAs not in the panel, of the
        rows still on whose file none has the hash (saved over since: every one-row reuse hashes a whole file,
        seconds in which the user may well set a strength), and of the rows found but left off while another
        version of the LoRA is on (``found_left_off``). ``files``: the files of those rows, read on the search's
        thread."""
        if search is not self._search:
            return
        self._search = None
        notices: list[str] = []
        if self._rows.panel_state() != search.panel:
            log.info("the LoRAs found by content for the dropped image are left off: the LoRA panel changed since")
            rows_on = {id(e) for e in self._rows.entries if e.enabled}
            notices += unmatched_hashes(search, found, rows_on) + found_left_off(search, found, rows_on)
        else:
            late = {index: entry for index, entry in found.items() if search.now.get(index) is not entry}
            if late:
                self._rows.switch_to(wanted_strengths(search.refs, search.now | late, notices, self._rows.show_refused,
                                                      files, said=set(late)))  # fmt: skip
            notices += unmatched_hashes(search, found)
        search.settled([ref.name for index, ref in enumerate(search.refs)
                        if index not in search.now and index not in found], notices)  # fmt: skip

    def _find(self, path: Path, files: FilesRead) -> list[LoraEntry] | str:
        """The rows an image's LoRA file ``path`` may be (``rows_for_file``, as ``files`` found them): the file added
        (off) where none is listed and it is there, if it is a LoRA a job could use, as "Add LoRA…" requires (any
        program can write a PNG: one named an SDXL LoRA, or /etc/passwd, and each was added, for good, as a row that
        said why it could not be used); else the sentence saying why it was not added. [] for none."""
        return rows_for_file(self._rows.entries, path, lambda given: self._add_usable(given, files), files)

    def _add_usable(self, path: Path, files: FilesRead) -> LoraEntry | str:
        """``add_files`` of ``path``, off, as ``files`` read it: its row, or why it was refused."""
        added, refused, _listed = self._rows.take_reads([(files.read(path), None)], enabled=False)
        return added[0] if added else refused[0]
