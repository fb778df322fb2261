"""The hash search run when an image's LoRAs are restored (``LoraHashSearch``, composed by ``LoraState``): the rows
an image names switched on at once (``restore_used`` for ours, ``restore_refs`` for another program's), and the rows
whose contents must be hashed to tell which file is the image's searched on a thread of their own, the rows found
switched on when it ends. The matching itself is ``app.lora_reuse``'s."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QCoreApplication, QObject

from app.background import start_thread, to_qt_thread
from app.lora_entry import LoraEntry
from app.lora_reuse import (
    HashSearch,
    Match,
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


class LoraHashSearch(QObject):
    """An image's LoRAs switched on in the rows of ``LoraState`` (its Qt parent), searched by hash where the names
    leave it open, one image at a time."""

    def __init__(self, rows: LoraState) -> None:
        super().__init__(rows)
        self._search: HashSearch | None = None  # the search for the last dropped image's LoRAs, while it runs
        app = QCoreApplication.instance()
        if app is not None:  # a search left running at quit would read files for no one
            app.aboutToQuit.connect(self.cancel_search)

    @property
    def _rows(self) -> LoraState:
        """The rows the search switches on, its Qt parent: held by Qt, not by a Python attribute, so that no
        reference cycle keeps the state alive after it is let go."""
        return self.parent()  # type: ignore[return-value]

    def restore_used(self, used: Any, settled: RefsSettled | None = None) -> list[str]:
        """Switch on exactly the LoRAs an image was made with (``lora_list`` of its settings), at its strengths
        (``text_strength`` where the image has one apart; an entry without it, as every image made before it
        existed, is "the same"), and every other one off, so "reuse settings" gives the same image back. A file
        that moved is found by its name among the listed LoRAs; returns a sentence for each one that cannot be
        found. A search still running for an image dropped before is dropped (``cancel_search``).

        Several usable rows of the image's file name (diffusers and PEFT name every LoRA
        pytorch_lora_weights.safetensors; two versions kept in two folders) are told apart by the hash the image
        recorded, as ``restore_refs`` does: the first is on at once, the one whose file has the hash replaces it
        when the search of their contents ends, on a thread of its own, unless the panel was changed or another
        image came meanwhile; ``settled`` (``restore_refs``'s) is told when it ends (the panel changed or not), or
        before this returns when no file is read. A row at the image's very path is on at once, searched first,
        before the other rows of its file name; so is the one row of its file name: another LoRA saved over the
        file since was switched on unsaid. When none has the hash, the row on stays on (the LoRA of that name) and
        ``settled`` says new images may differ (unless the user switched it off or removed it meanwhile).

        ``used`` comes from a PNG (any program can write one, and claim to be us): entries that are no LoRA
        (not a mapping, a name no file can have, a strength that is no number) are said, never raised on."""
        self.cancel_search()
        notices: list[str] = []
        match = match_by_file(used, self._find, notices)
        return self._switch_then_search(match, notices, settled or told_nothing)

    def restore_refs(self, refs: Any, settled: RefsSettled) -> list[str]:
        """``restore_used`` for an image of another program, whose LoRAs are named by file stem and, where it gives
        one, a short hash (``lora_refs``: A1111/Forge tags and ``Lora hashes``, ComfyUI LoRA nodes): exactly those
        rows are switched on, at the image's strengths, every other row off, as for our images. Returns a sentence
        for each thing not restored as saved (a file that cannot be used now, a strength outside the engine's range,
        clamped to it; ``refs`` comes from a file: anything else in it is said).

        A LoRA is the row of its stem in any case (A1111 and ComfyUI find LoRAs by name too: a file of that name in
        another version is still the user's LoRA of that name), switched on at once, no file read. Only a LoRA with
        a hash and no row of its stem (a renamed file), or several rows of its stem (the one with the hash is
        preferred; the first is on meanwhile), needs contents: each hash reads a whole file, and 150 LoRAs of
        100-300 MB hashed on this thread froze the window for minutes. So they are hashed on a thread of their own
        (kept per file version: the next search is instant), and the rows found are switched on when it ends,
        unless the panel was changed or another image dropped meanwhile: the late rows stay off then.
        ``settled`` is called on this thread with the names of the LoRAs not in the panel once they are known:
        before this returns when no file is read, else when the search ends, the panel changed or not (not at all
        when another image came or the app quits meanwhile)."""
        self.cancel_search()
        notices: list[str] = []
        return self._switch_then_search(match_by_stem(refs, self._rows.entries, notices), notices, settled)

    def _switch_then_search(self, match: Match, notices: list[str], settled: RefsSettled) -> list[str]:
        """The rows of ``match.now`` switched on at the image's strengths, every other off, what was not restored
        as saved added to ``notices`` (returned); then the rows of ``match.jobs`` searched for the refs' hashes on a
        thread of their own (``_run_search``), or, with nothing to search, ``settled`` told at once of the refs
        without a row."""
        refs, now, jobs = match
        self._rows.switch_to(wanted_strengths(refs, now, notices, self._rows.show_refused))
        if not jobs:
            settled([ref.name for index, ref in enumerate(refs) if index not in now], [])
            return notices
        self._search = search = HashSearch(refs, now, jobs, self._rows.panel_state(), settled)
        # A daemon: a quit does not wait for the file it reads (it writes nothing); no QThread Qt could abort on.
        # It holds the state too, which this search reaches through Qt only: a state let go of meanwhile lives until
        # the search ended, then goes on the Qt thread (``start_thread``), as while the search was its own method.
        start_thread("LoRA hashes", self._run_search, search, self._rows)
        return notices

    def cancel_search(self) -> None:
        """Drops the running search (another image dropped, the app quits): it stops after the file it reads, and
        nothing it found is switched on or said."""
        if self._search is not None:
            self._search.cancel.set()
            self._search = None

    def _run_search(self, search: HashSearch, rows: LoraState) -> None:
        """On the search's thread: the rows found (``search_hashes``), handed to the Qt thread (``_on_searched``)
        unless the search was cancelled. ``rows`` (this search's parent) is only held, for ``_switch_then_search``'s
        reason."""
        found = search_hashes(search)
        if not search.cancel.is_set():
            to_qt_thread(self._on_searched, search, found)

    def _on_searched(self, search: HashSearch, found: dict[int, LoraEntry]) -> None:
        """The search's result, on the Qt thread: the rows found switched on with those of the drop, then
        ``settled``; dropped when another image came since. When the user changed the panel meanwhile, their choice
        wins: the rows found are left off, but ``settled`` is still told of the LoRAs not in the panel, of the
        rows still on whose file none has the hash (saved over since: every one-row reuse hashes a whole file,
        seconds in which the user may well set a strength), and of the rows found but left off while another
        version of the LoRA is on (``found_left_off``)."""
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
                                                      said=set(late)))  # fmt: skip
            notices += unmatched_hashes(search, found)
        search.settled([ref.name for index, ref in enumerate(search.refs)
                        if index not in search.now and index not in found], notices)  # fmt: skip

    def _find(self, path: Path) -> list[LoraEntry] | str:
        """The rows an image's LoRA file ``path`` may be (``rows_for_file``): the file added (off) where none is
        listed and it is there, if it is a LoRA a job could use, as "Add LoRA…" requires (any program can write a
        PNG: one named an SDXL LoRA, or /etc/passwd, and each was added, for good, as a row that said why it could
        not be used); else the sentence saying why it was not added. [] for none."""
        return rows_for_file(self._rows.entries, path, self._add_usable)

    def _add_usable(self, path: Path) -> LoraEntry | str:
        """``add_files`` of ``path``, off: its row, or why it was refused."""
        added, refused, _listed = self._rows.add_files([path], enabled=False)
        return added[0] if added else refused[0]
