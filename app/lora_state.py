"""Observable state of the LoRA panel: the LoRA files the user added, each enabled or not, with a strength (and,
for a file with a CLIP or T5 part, a text strength of its own or "the same") and editable trigger words. Only the
header of a file is read for it (metadata, key names: ``app.lora_header``); the engine reads and checks the weights
when it applies them, and reports problems as errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from PySide6.QtCore import QCoreApplication, QObject, Signal

from app.background import start_thread, to_qt_thread
from app.lora_entry import LoraEntry, fit_strength, fit_text_strength
from app.lora_examples import example_name, examples_folder
from app.lora_folder_scan import LoraFolderScan
from app.lora_header import FileRead, LoraHeader, read_file, read_header, read_stamp
from app.lora_reuse import (
    HashSearch,
    Match,
    PanelState,
    RefsSettled,
    Wanted,
    found_left_off,
    match_by_file,
    match_by_stem,
    rows_for_file,
    search_hashes,
    told_nothing,
    unmatched_hashes,
    wanted_strengths,
)
from app.lora_scan import skipped_details, skipped_files
from app.settings import LoraSetting, Settings
from gpu.lora.folder import list_lora_files
from gpu.lora.metadata import LoraRequest
from gpu.paths import named_path
from gpu.paths import resolved as resolve_path

log = logging.getLogger(__name__)


class PickedFiles(NamedTuple):
    """What ``LoraState.add_files`` did with the files picked: the row of each readable one (new, or the row listed
    already), a sentence naming each refused file and why, and the rows of files listed already."""

    added: list[LoraEntry]
    refused: list[str]
    listed: list[LoraEntry]


def _take_read(entry: LoraEntry, stamp: tuple[int, int] | None, header: LoraHeader) -> None:
    """The entry as its file reads now (``stamp``, ``header``): its info line, text encoders and problem, and its
    trigger words, which follow the file unless the user edited them."""
    entry.stamp, entry.info, entry.text_encoders = stamp, header.info, header.text_encoders
    entry.problem, entry.missing = header.problem, header.missing
    if not header.problem:  # a file gone for now keeps the words, for when it is back
        if entry.trigger_words == entry.header_words:
            entry.trigger_words = header.words
        entry.header_words = header.words


class LoraState(QObject):
    changed = Signal()  # the list changed (rows added, removed, or shown anew): the panel updates its rows
    # One row's own setting changed (on/off, strength, text strength, trigger words), through its widgets or a
    # reused image: what the settings keep, the rows left as they are (``changed`` would look at every one).
    edited = Signal(object)  # the LoraEntry
    cost_changed = Signal(str)  # a sentence about the measured cost of the LoRAs of the last image

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[LoraEntry] = []
        self.removed_examples: list[str] = []  # ``Settings.removed_examples``: from ``add_shipped``, and ``remove``
        self.folder_scan = LoraFolderScan(self)  # a folder the user picks, read on a thread of its own
        self._search: HashSearch | None = None  # the search for the last dropped image's LoRAs, while it runs
        app = QCoreApplication.instance()
        if app is not None:  # a search left running at quit would read files for no one
            app.aboutToQuit.connect(self.cancel_search)

    def add_file(self, path: str | Path, enabled: bool = False, strength: float = 1.0) -> LoraEntry:
        entry = self._add(path, enabled, strength)
        self.changed.emit()
        return entry

    def _add(self, path: str | Path, enabled: bool, strength: float, read: FileRead | None = None) -> LoraEntry:
        """``add_file`` without the signal: each ``changed`` rebuilds the panel's rows, so adding one by one
        made a folder of 150 LoRAs freeze the window for most of a minute (150 rebuilds of up to 150 rows).
        ``read``: ``read_file(path)`` when the caller has read it already. A file listed already (by any path to
        it: a link, a relative path) is that row."""
        path = named_path(path)
        resolved = resolve_path(path) if read is None else read.resolved
        for e in self.entries:
            if e.resolved == resolved:
                return e
        return self._append(path, enabled, strength, read or read_file(path))

    def _append(self, path: Path, enabled: bool, strength: float, read: FileRead) -> LoraEntry:
        """A row for ``path`` (``named_path``, its file not listed yet), as ``read``, named by the name it was
        picked by."""
        stamp, header, resolved = read
        entry = LoraEntry(path, path.stem, enabled, fit_strength(strength), header.words, header.info, stamp=stamp,
                          header_words=header.words, text_encoders=header.text_encoders, problem=header.problem,
                          missing=header.missing, resolved=resolved)  # fmt: skip
        self.entries.append(entry)
        return entry

    def add_files(self, paths: list[str | Path], enabled: bool = True) -> PickedFiles:
        """Files the user picked: each readable one added (switched on), the panel rebuilt once. A file that is
        no readable LoRA (a pickle, empty, truncated, not safetensors) is not added, since every job would fail
        on it while it is on. A file listed already (by any path to it) is that row, switched on too where
        ``enabled`` (it stayed off, and the pick seemed to do nothing). Returns the rows (``added``), a sentence
        naming each refused file and why, and the rows that were listed already, each shown as its file reads now.
        The name's suffix is not asked for: the header says what the file is (``.SafeTensors`` is one too)."""
        picked = PickedFiles([], [], [])
        listed = {id(e) for e in self.entries}
        for path in paths:
            path = named_path(path)
            read = read_file(path)
            if read.header.problem:
                picked.refused.append(f"{path} is not a LoRA that can be used: {read.header.problem}.")
                continue
            entry = self._add(path, enabled, 1.0, read)
            picked.added.append(entry)
            if id(entry) in listed:
                picked.listed.append(entry)
                # Its file may be back (restored from an image, or at start, while missing), or another LoRA now:
                # the row said "file not found", and no job would take it, until the next Generate's ``refresh``.
                _take_read(entry, read.stamp, read.header)
                if enabled:
                    self.set_enabled(entry, True)
        if picked.added:
            self.changed.emit()
        return picked

    def add_folder(self, folder: str | Path, leave_out: Callable[[Path], bool] = lambda path: False) -> list[LoraEntry]:
        """The FLUX.1 LoRAs of ``folder`` and its subfolders (``list_lora_files``), but those ``leave_out`` says
        of, switched off, read here, on this thread: for the few files the app ships. A folder the user picks is
        read on a thread of its own (``LoraFolderScan.scan_folder``): 2,000 files took 8 s, the window frozen.
        Files that are no usable FLUX.1 LoRA are skipped, and logged. Raises ``OSError`` when it cannot be
        listed."""
        folder = Path(folder).expanduser()
        reads = [(named_path(p), read_file(p)) for p in list_lora_files(folder).files if not leave_out(p)]
        added = [self._add(p, False, 1.0, read) for p, read in reads if not read.header.problem]
        if skipped := skipped_files(reads):
            log.info("LoRA files of %s skipped:\n%s", folder, skipped_details(resolve_path(folder), skipped))
        self.changed.emit()
        return added

    def add_reads(self, reads: list[tuple[Path, FileRead]]) -> list[LoraEntry]:
        """Rows, switched off, for the files of ``reads`` (each ``named_path`` and its ``FileRead``, as a folder's
        scan gives them) not listed yet, one ``changed`` for all; returns them."""
        listed = {e.resolved for e in self.entries}  # looked up in a set: 2,000 rows' in turn took a second
        added = []
        for path, read in reads:
            if read.resolved not in listed:
                listed.add(read.resolved)
                added.append(self._append(path, False, 1.0, read))
        if added:
            self.changed.emit()
        return added

    def remove(self, entry: LoraEntry) -> None:
        """Takes the row out of the panel; an example LoRA's stays out at the next starts (``removed_examples``)."""
        self.entries = [e for e in self.entries if e is not entry]
        example = example_name(entry.resolved or entry.path)
        if example is not None and example not in self.removed_examples:
            self.removed_examples.append(example)
        self.changed.emit()

    def set_enabled(self, entry: LoraEntry, enabled: bool) -> None:
        self._edit(entry, "enabled", bool(enabled))

    def set_strength(self, entry: LoraEntry, strength: float) -> None:
        self._edit(entry, "strength", fit_strength(strength))

    def set_text_strength(self, entry: LoraEntry, strength: float | None) -> None:
        """The strength of the entry's CLIP/T5 parts; None: the same as its strength, wherever that goes."""
        self._edit(entry, "text_strength", fit_text_strength(strength))

    def set_trigger_words(self, entry: LoraEntry, words: str) -> None:
        self._edit(entry, "trigger_words", words)

    def _edit(self, entry: LoraEntry, name: str, value: Any) -> None:
        """Sets one of the entry's settings; ``edited`` only when it changed (a reused image sets every row)."""
        if getattr(entry, name) != value:
            setattr(entry, name, value)
            self.edited.emit(entry)

    def requests(self) -> list[LoraRequest]:
        """What a generation request carries: enabled LoRAs with their strengths. The engine re-reads a file
        that changed on disk for the job; so does this, for the rows' info lines (``refresh``)."""
        self.refresh()
        return [e.request() for e in self.entries if e.enabled]

    def unusable(self) -> list[LoraEntry]:
        """The enabled rows whose file no job could apply as it was read last (``requests`` reads a changed one
        again): gone, unreadable, or no FLUX.1 LoRA now."""
        return [e for e in self.entries if e.enabled and e.problem]

    def refresh(self) -> bool:
        """Reads again the header of each enabled file whose size or modification time changed since it was read
        (another LoRA saved over it, deleted): its info line said what the old file was, and so did its trigger
        words, which follow the new file unless the user edited them. Enabled rows only: this runs on the Qt
        thread at each Generate, where a stat of every listed file (150 LoRAs on a network share) stalled the
        window; a row switched off is looked at once it is on. A row whose file was there but could not be read
        or used is read again whatever its stamp: a file held for a moment by another program (a sharing
        violation, a OneDrive placeholder offline) or given read permission keeps its size and time, and stayed
        refused until removed and added again. Returns whether any file changed."""
        stale = [(e, stamp) for e in self.entries
                 if e.enabled
                 and ((stamp := read_stamp(e.path)) != e.stamp or (e.problem and not e.missing))]  # fmt: skip
        for entry, stamp in stale:
            _take_read(entry, stamp, read_header(entry.path))
        if stale:
            self.changed.emit()
        return bool(stale)

    def trigger_text(self) -> str:
        return ", ".join(e.trigger_words for e in self.entries if e.enabled and e.trigger_words.strip())

    def to_settings(self) -> list[LoraSetting]:
        return [LoraSetting(str(e.path), e.enabled, e.strength, e.trigger_words, e.header_words, e.text_strength)
                for e in self.entries]  # fmt: skip

    def save_to(self, settings: Settings) -> None:
        """What ``settings`` keeps of the panel: its rows (``to_settings``) and the examples removed from it."""
        settings.loras = self.to_settings()
        settings.removed_examples = list(self.removed_examples)

    def restore(self, saved: list[LoraSetting]) -> list[str]:
        """The list as the last session left it. A file that is gone (moved, a drive not plugged in) or that is
        no LoRA a job could use (replaced by another model's, damaged: every job would fail on it while it is on)
        keeps its row, switched off, so nothing the user set up is forgotten; returns a sentence for each one
        that was on.

        Trigger words the user had not edited (equal to the header's words saved with them) follow the file as it
        is now: one replaced while the app was closed brings its own words, where the old file's looked edited
        and went into every prompt. A row whose file cannot be read keeps the saved words and header words, so
        ``refresh`` tells the same apart once the file is back. A settings file saved before the header's words
        were kept says nothing of them: the saved words are taken as the user's unless the header gives the same
        (an edit is never lost; a file replaced before that first start keeps its old words until edited).

        A path listed twice (a hand-edited file, an older version) keeps its first row: the second overwrote the
        first's trigger words; it is dropped and logged."""
        notices = []
        listed = {e.resolved for e in self.entries}
        for s in saved:
            try:
                path = named_path(s.path)
                read = read_file(path)
                if read.resolved in listed:
                    log.warning("the LoRA list in the settings names %s more than once; its first row is kept", path)
                    continue
                header = read.header
                entry = self._add(path, s.enabled, s.strength, read)
                entry.text_strength = fit_text_strength(s.text_strength)  # kept while the file cannot be read too
                listed.add(read.resolved)
            except (OSError, ValueError) as exc:  # e.g. a NUL byte in a hand-edited path: no file can have it
                notices.append(f"The LoRA list in your settings names a file that cannot exist ({s.path[:80]!r}: "
                               f"{exc}); it was left out.")  # fmt: skip
                continue
            if header.problem or s.trigger_words != s.header_words:
                entry.trigger_words = s.trigger_words
            if header.problem:
                entry.header_words = s.header_words or ""
                entry.enabled = False
                if not s.enabled:
                    continue
                if header.missing:
                    notices.append(f"The LoRA file {entry.path} (on in your last session) is missing; it is "
                                   "switched off.")  # fmt: skip
                else:
                    notices.append(f"The LoRA file {entry.path} (on in your last session) cannot be used: "
                                   f"{header.problem}. It is switched off, so jobs run without it.")  # fmt: skip
        return notices

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
        return self._switch_then_search(match_by_stem(refs, self.entries, notices), notices, settled)

    def _switch_then_search(self, match: Match, notices: list[str], settled: RefsSettled) -> list[str]:
        """The rows of ``match.now`` switched on at the image's strengths, every other off, what was not restored
        as saved added to ``notices`` (returned); then the rows of ``match.jobs`` searched for the refs' hashes on a
        thread of their own (``_run_search``), or, with nothing to search, ``settled`` told at once of the refs
        without a row."""
        refs, now, jobs = match
        self._switch_to(wanted_strengths(refs, now, notices))
        if not jobs:
            settled([ref.name for index, ref in enumerate(refs) if index not in now], [])
            return notices
        self._search = search = HashSearch(refs, now, jobs, self._panel(), settled)
        # A daemon: a quit does not wait for the file it reads (it writes nothing); no QThread Qt could abort on.
        start_thread("LoRA hashes", self._run_search, search)
        return notices

    def cancel_search(self) -> None:
        """Drops the running search (another image dropped, the app quits): it stops after the file it reads, and
        nothing it found is switched on or said."""
        if self._search is not None:
            self._search.cancel.set()
            self._search = None

    def _run_search(self, search: HashSearch) -> None:
        """On the search's thread: the rows found (``search_hashes``), handed to the Qt thread (``_on_searched``)
        unless the search was cancelled."""
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
        if self._panel() != search.panel:
            log.info("the LoRAs found by content for the dropped image are left off: the LoRA panel changed since")
            rows_on = {id(e) for e in self.entries if e.enabled}
            notices += unmatched_hashes(search, found, rows_on) + found_left_off(search, found, rows_on)
        else:
            late = {index: entry for index, entry in found.items() if search.now.get(index) is not entry}
            if late:
                self._switch_to(wanted_strengths(search.refs, search.now | late, notices, said=set(late)))
            notices += unmatched_hashes(search, found)
        search.settled([ref.name for index, ref in enumerate(search.refs)
                        if index not in search.now and index not in found], notices)  # fmt: skip

    def _panel(self) -> PanelState:
        """What the panel sets for jobs (its rows, each on or off, strengths): to tell whether the user changed it."""
        return tuple((id(e), e.enabled, e.strength, e.text_strength) for e in self.entries)

    def _switch_to(self, wanted: Wanted) -> None:
        """Exactly the entries in ``wanted`` (by id) on, at their (strength, text strength); the others off.
        ``changed`` only when that changed something: reusing one of our images with the panel as it was is
        common, and each ``changed`` updates every row of the panel."""
        before = self._panel()
        for e in self.entries:
            e.enabled = id(e) in wanted
            if e.enabled:
                self.set_strength(e, wanted[id(e)][0])
                self.set_text_strength(e, wanted[id(e)][1])
        if self._panel() != before:
            self.changed.emit()

    def _find(self, path: Path) -> list[LoraEntry] | str:
        """The rows an image's LoRA file ``path`` may be (``rows_for_file``): the file added (off) where none is
        listed and it is there, if it is a LoRA a job could use, as "Add LoRA…" requires (any program can write a
        PNG: one named an SDXL LoRA, or /etc/passwd, and each was added, for good, as a row that said why it could
        not be used); else the sentence saying why it was not added. [] for none."""
        return rows_for_file(self.entries, path, self._add_usable)

    def _add_usable(self, path: Path) -> LoraEntry | str:
        """``add_files`` of ``path``, off: its row, or why it was refused."""
        added, refused, _listed = self.add_files([path], enabled=False)
        return added[0] if added else refused[0]

    def add_shipped(self, removed: list[str]) -> None:
        """The example LoRAs in resources/loras (off until the user enables them), but those the user removed from
        the panel (``removed``: ``Settings.removed_examples``), which stay removed."""
        self.removed_examples = list(removed)
        folder = examples_folder()
        try:
            if folder.is_dir():
                self.add_folder(folder, leave_out=lambda path: example_name(path) in self.removed_examples)
        except OSError:  # the app runs without its examples (a damaged install): said in the log, not a crash
            log.exception("the example LoRAs in %s cannot be listed", folder)
