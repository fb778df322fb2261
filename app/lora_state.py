"""Observable state of the LoRA panel: the LoRA files the user added, each enabled or not, with a strength (and,
for a file with a CLIP or T5 part, a text strength of its own or "the same") and editable trigger words. Only the
header of a file is read for it (metadata, key names, shapes: ``app.lora_header``), and each row is judged against
the selected model's layers by its shapes (``gpu.lora.fit``, the engine's rule); the engine reads and checks the
weights when it applies them, and reports problems as errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from PySide6.QtCore import QObject, Signal

from app.lora_adds import READING, LoraAdds
from app.lora_entry import LoraEntry, fit_strength, fit_text_strength, folders_apart, saved_strengths
from app.lora_examples import example_name, examples_folder, saved_example_path
from app.lora_folder_scan import LoraFolderScan
from app.lora_hash_search import LoraHashSearch
from app.lora_header import FileRead, LoraHeader, read_file, read_header, read_stamp
from app.lora_reuse import PanelState, Wanted
from app.lora_scan import skipped_details, skipped_files
from app.lora_twins import LoraTwins
from app.settings import LoraSetting, Settings
from gpu.lora.fit import ModelFit, ModelLayers
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


class NotRestored(NamedTuple):
    """A row of the settings that ``LoraState.restore`` could not restore as it was saved: what happened
    (``text``), and what to do (``hint``)."""

    text: str
    hint: str = "Once a usable FLUX.1 LoRA file is back at that path, switch it on again; or remove it from the list."


class ModelJudge(NamedTuple):
    """A model the rows are judged against (``LoraState.judge``): its name, and its linears a LoRA may change
    (None: not known yet, no row judged)."""

    model: str
    fit: ModelFit | None


class LoraState(QObject):
    """The LoRA panel's rows (``entries``), and its three collaborators, each its Qt child, whose work runs on a
    thread of its own: a folder the user picks, read into rows (``folder_scan``), an image's LoRAs switched on, found
    by hash where their names leave it open (``hash_search``), and the rows switched on that are the same LoRA, a
    copy listed twice, found by their files' contents (``twins``)."""

    changed = Signal()  # the list changed (rows added, removed, or shown anew): the panel updates its rows
    # One row's own setting changed (on/off, strength, text strength, trigger words), through its widgets or a
    # reused image: what the settings keep, the rows left as they are (``changed`` would look at every one).
    edited = Signal(object)  # the LoraEntry
    cost_changed = Signal(str)  # a sentence about the measured cost of the LoRAs of the last image

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[LoraEntry] = []
        # The model jobs run on (the selected one) and its linears LoRAs may change (``ModelInfo.lora_layers``; None
        # until it is described), which each row is judged against (``use_model``)
        self.model = ""
        self._fit: ModelFit | None = None  # None: not known yet
        self.removed_examples: list[str] = []  # ``Settings.removed_examples``: from ``add_shipped``, and ``remove``
        self.folder_scan = LoraFolderScan(self)  # a folder the user picks, read on a thread of its own
        self.hash_search = LoraHashSearch(self)  # an image's LoRAs switched on, searched by hash where needed
        self.twins = LoraTwins(self)  # rows switched on that are the same LoRA, found by their files' contents
        self.adds = LoraAdds(self)  # files added ("Add LoRA…"), their headers read on a thread of their own

    @property
    def reading(self) -> bool:
        """Whether files of the rows switched on are being read on a thread (added, or by the copy check), or those
        of an image restored, whose rows are switched on once read (``LoraHashSearch.restoring``): no job may take
        them until they are (a Generate click waits: ``HeldClicks``; one right after a drop took the old LoRAs). A
        file added whose row was switched off or removed meanwhile is no job's: a click waited for it all the same,
        as long as its share hung."""
        return (self.twins.busy or self.hash_search.restoring
                or any(e.reading and e.enabled for e in self.entries))  # fmt: skip

    def add_file(self, path: str | Path, enabled: bool = False, strength: float = 1.0) -> LoraEntry:
        entry = self._add(enabled, strength, read_file(Path(path)))
        self._listed_anew()
        return entry

    def _add(self, enabled: bool, strength: float, read: FileRead) -> LoraEntry:
        """``add_file`` without the signal: each ``changed`` rebuilds the panel's rows, so adding one by one
        made a folder of 150 LoRAs freeze the window for most of a minute (150 rebuilds of up to 150 rows).
        ``read``: the file as read (``read_file``: on a thread, where the caller reads it there; nothing of the file
        is looked at here, its folder's lookup included). A file listed already (by any path to it: a link, a
        relative path) is that row."""
        return self._row_of(read.resolved) or self._append(enabled, strength, read)

    def _listed_anew(self) -> None:
        """Rows added or removed: each row's name told apart from the others' of that name (``_tell_apart``), then
        ``changed``."""
        self._tell_apart()
        self.changed.emit()

    def _tell_apart(self) -> None:
        """Each row shows as much of its folder as tells it from the rows of its name (``LoraEntry.folder``): two
        versions in loras/a/ and loras/b/ read the same, told apart only by their tooltips."""
        for entry, folder in zip(self.entries, folders_apart([e.path for e in self.entries]), strict=True):
            entry.folder = folder

    def _row_of(self, resolved: Path) -> LoraEntry | None:
        """The row of the file ``resolved`` (its path resolved), None when it is not listed."""
        return next((e for e in self.entries if e.resolved == resolved), None)

    def _append(self, enabled: bool, strength: float, read: FileRead) -> LoraEntry:
        """A row for the file ``read`` (not listed yet), as read, named by the name it was picked by
        (``FileRead.named``)."""
        path, header = read.named, read.header
        entry = LoraEntry(path, path.stem, enabled, fit_strength(strength), header.words, header.info,
                          stamp=read.stamp, header_words=header.words, text_encoders=header.text_encoders,
                          problem=header.problem, missing=header.missing, targets=header.targets,
                          resolved=read.resolved)  # fmt: skip
        self._judge(entry)
        self.entries.append(entry)
        return entry

    def _read_into(self, entry: LoraEntry, stamp: tuple[int, int] | None, header: LoraHeader) -> None:
        """The entry as its file reads now (``stamp``, ``header``): its info line, text encoders, shapes and problem,
        judged against the model anew, and its trigger words, which follow the file unless the user edited them."""
        entry.stamp, entry.info, entry.text_encoders = stamp, header.info, header.text_encoders
        entry.problem, entry.missing, entry.targets = header.problem, header.missing, header.targets
        self._judge(entry)
        if not header.problem:  # a file gone for now keeps the words, for when it is back
            if entry.trigger_words == entry.header_words:
                entry.trigger_words = header.words
            entry.header_words = header.words

    def use_model(self, model: str, layers: ModelLayers | None = None) -> None:
        """The model the next jobs run on, and its linears a LoRA may change (``ModelInfo.lora_layers``: as its
        files' headers give them); None: not known yet (selected, and not described yet), so no row is judged (the
        last model's layers would judge them wrongly), but for the same model picked again, which keeps what is
        known of it. Each row shows anew whether the model can take its LoRA (``LoraEntry.misfit``), switched on or
        off, before any Generate: a LoRA for another FLUX size was found only when a job failed on it. The same
        layers again (the model described after each job) judge nothing anew."""
        if model == self.model and (layers is None or (self._fit is not None and layers == self._fit.layers)):
            return
        self.model, self._fit = model, None if layers is None else ModelFit(layers)
        changed = [e for e in self.entries if self._judge(e)]
        if changed:
            self.changed.emit()

    @property
    def judge(self) -> ModelJudge:
        """The selected model, as the rows are judged against it now (a held Generate click keeps its own)."""
        return ModelJudge(self.model, self._fit)

    def _judge(self, entry: LoraEntry) -> bool:
        """Sets ``entry.misfit`` (``_misfit``) against the selected model. Returns whether that changed."""
        said = _misfit(entry, self.judge)
        changed, entry.misfit = said != entry.misfit, said
        return changed

    def add_files(self, paths: list[str | Path], enabled: bool = True) -> PickedFiles:
        """Files the user picked: each readable one added (switched on), the panel rebuilt once. A file that is
        no readable LoRA (a pickle, empty, truncated, not safetensors) is not added, since every job would fail
        on it while it is on. A file listed already (by any path to it) is that row, switched on too where
        ``enabled`` (it stayed off, and the pick seemed to do nothing). Returns the rows (``added``), a sentence
        naming each refused file and why, and the rows that were listed already, each shown as its file reads now.
        A refused file that is listed (replaced since by another model's LoRA, or damaged) has its row show why,
        switched off: it kept the old file's info, on, as if it were fine. The name's suffix is not asked for: the
        header says what the file is (``.SafeTensors`` is one too). Read here, on this thread: "Add LoRA…" reads
        them on a thread of its own (``LoraAdds``, ``add_reading`` and ``take_reads``)."""
        return self.take_reads([(read_file(Path(path)), None) for path in paths], enabled)

    def add_reading(self, paths: list[Path]) -> list[LoraEntry | None]:
        """A row for each of ``paths`` (absolute, as picked: ``LoraAdds.add``) not listed by that name, switched on,
        saying its file is being read (``LoraEntry.reading``: no job takes it); None for the others (their row is
        known once read). A file picked again while an earlier pick still reads it is that pick's row, switched on
        (a pick of a listed row switches it on): with a row of its own, or None, the read that ended first added a
        second row for it, and the other then took out the row the user had set meanwhile (``take_reads``: each
        read fills it, the first to end)."""
        rows: list[LoraEntry | None] = []
        for path in paths:
            listed = next((e for e in self.entries if e.path == path), None)
            if listed is not None and listed.reading:
                self.set_enabled(listed, True)
                rows.append(listed)
                continue
            picked = listed is not None or any(r and r.path == path for r in rows)
            rows.append(None if picked else _being_read(path))
        self.entries += [row for row in rows if row is not None and all(row is not e for e in self.entries)]
        self._listed_anew()
        return rows

    def take_reads(self, reads: list[tuple[FileRead, LoraEntry | None]], enabled: bool = True) -> PickedFiles:
        """``add_files`` of the files of ``reads`` (each as read, and its row being read by ``add_reading``, or
        None): a row being read filled in where its file is a LoRA not listed by another row, else taken out
        (removed by the user meanwhile: nothing added). A row being read that gives way to another row of its file
        (through a link, or added by "Add folder…" meanwhile) hands it what the user set on it meanwhile
        (``_handed_over``)."""
        picked = PickedFiles([], [], [])
        listed = {id(e) for e in self.entries if not e.reading}
        for read, reading in reads:
            gave_way = None
            if reading is not None:
                if not reading.reading or all(e is not reading for e in self.entries):
                    continue  # filled in by another read of its file (picked again), or removed while it was read
                if not read.header.problem and self._row_of(read.resolved) is None:
                    self._filled(reading, read)
                    picked.added.append(reading)
                    continue
                # refused, or listed by another path to it (that row is the one switched on): its own row goes
                self.entries, gave_way = [e for e in self.entries if e is not reading], reading
            if read.header.problem:
                refused = f"{read.named} is not a LoRA that can be used: {read.header.problem}."
                row = self._row_of(read.resolved)
                if row is not None:
                    self.show_refused(row, read)
                    refused += " Its row in the LoRA panel now says why, and is switched off."
                picked.refused.append(refused)
                continue
            entry = self._add(enabled, 1.0, read)
            picked.added.append(entry)
            if id(entry) in listed:
                picked.listed.append(entry)
                # Its file may be back (restored from an image, or at start, while missing), or another LoRA now:
                # the row said "file not found", and no job would take it, until the next Generate's ``refresh``.
                self._read_into(entry, read.stamp, read.header)
                if enabled:
                    self.set_enabled(entry, True)
            if gave_way is not None:
                self._handed_over(gave_way, entry)
        if picked.added or any(reading is not None for _read, reading in reads):
            self._listed_anew()
        return picked

    def _handed_over(self, reading: LoraEntry, row: LoraEntry) -> None:
        """What the user set on ``reading`` (a row being read, now gone) while it was read, set on ``row``, the
        row of its file that stays: the settings it has other than as ``add_reading`` made it (``_being_read``),
        its being switched off included. The other row's own settings are kept where the user left the pick's
        alone; the user's were lost."""
        made = _being_read(reading.path)
        for name in ("enabled", "strength", "text_strength", "trigger_words"):
            if getattr(reading, name) != getattr(made, name):
                self._edit(row, name, getattr(reading, name))

    def _filled(self, row: LoraEntry, read: FileRead) -> None:
        """``row``, being read, as its file reads (``read``), where it is: as the user set it meanwhile (on or off,
        strengths); named by its folder resolved (``FileRead.named``), as the thread looked it up."""
        row.reading, row.resolved, row.path = False, read.resolved, read.named
        self._read_into(row, read.stamp, read.header)

    def show_refused(self, row: LoraEntry, read: FileRead) -> None:
        """``row``, whose file reads as ``read`` now and is refused (replaced since by another model's LoRA, or
        damaged), shows why and is switched off: it kept the old file's info, as if it were fine."""
        self._read_into(row, read.stamp, read.header)
        row.enabled = False
        self.edited.emit(row)  # the row shown anew (on or off before), laid out again for its longer info line

    def add_folder(self, folder: str | Path, leave_out: Callable[[Path], bool] = lambda path: False) -> list[LoraEntry]:
        """The FLUX.1 LoRAs of ``folder`` and its subfolders (``list_lora_files``), but those ``leave_out`` says
        of, switched off, read here, on this thread: for the few files the app ships. A folder the user picks is
        read on a thread of its own (``LoraFolderScan.scan_folder``): 2,000 files took 8 s, the window frozen.
        Files that are no usable FLUX.1 LoRA are skipped, and logged. Raises ``OSError`` when it cannot be
        listed."""
        folder = Path(folder).expanduser()
        reads = [(read.named, read) for read in map(read_file, list_lora_files(folder).files)
                 if not leave_out(read.named)]  # fmt: skip
        added = [self._add(False, 1.0, read) for _path, read in reads if not read.header.problem]
        if skipped := skipped_files(reads):
            log.info("LoRA files of %s skipped:\n%s", folder, skipped_details(resolve_path(folder), skipped))
        self._listed_anew()
        return added

    def add_reads(self, reads: list[tuple[Path, FileRead]]) -> list[LoraEntry]:
        """Rows, switched off, for the files of ``reads`` (each ``named_path`` and its ``FileRead``, as a folder's
        scan gives them) not listed yet, one ``changed`` for all; returns them."""
        listed = {e.resolved for e in self.entries}  # looked up in a set: 2,000 rows' in turn took a second
        added = []
        for _path, read in reads:
            if read.resolved not in listed:
                listed.add(read.resolved)
                added.append(self._append(False, 1.0, read))
        if added:
            self._listed_anew()
        return added

    def remove(self, entry: LoraEntry) -> None:
        """Takes the row out of the panel; an example LoRA's stays out at the next starts (``removed_examples``)."""
        self.entries = [e for e in self.entries if e is not entry]
        example = example_name(entry.resolved or entry.path)
        if example is not None and example not in self.removed_examples:
            self.removed_examples.append(example)
        self._listed_anew()

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
        """Sets one of the entry's settings; ``edited`` only when it changed (a reused image sets every row). A
        strength judges it anew: a part set to 0, or from 0, is left out of the model, or put on it."""
        if getattr(entry, name) != value:
            setattr(entry, name, value)
            if name in ("strength", "text_strength"):
                self._judge(entry)
            self.edited.emit(entry)

    def requests(self) -> list[LoraRequest]:
        """What a generation request carries: enabled LoRAs with their strengths. The engine re-reads a file
        that changed on disk for the job; so does this, for the rows' info lines (``refresh``)."""
        self.refresh()
        return [e.request() for e in self.entries if e.enabled]

    def unusable(self, judge: ModelJudge | None = None) -> list[LoraEntry]:
        """The enabled rows whose file no job could apply as it was read last (``requests`` reads a changed one
        again): gone, unreadable, no FLUX.1 LoRA now, or one the selected model cannot take (``LoraEntry.misfit``);
        ``judge``: one that model cannot take, a Generate click's held while another was selected (the rows given
        as copies, saying so in their ``misfit``)."""
        if judge is not None and judge.model != self.model:
            judged = (replace(e, misfit=_misfit(e, judge)) for e in self.entries if e.enabled)
            return [e for e in judged if e.problem or e.misfit]
        return [e for e in self.entries if e.enabled and (e.problem or e.misfit)]

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
                 if e.enabled and not e.reading
                 and ((stamp := read_stamp(e.path)) != e.stamp or (e.problem and not e.missing))]  # fmt: skip
        for entry, stamp in stale:
            self._read_into(entry, stamp, read_header(entry.path))
        if stale:
            self.changed.emit()
        return bool(stale)

    def trigger_text(self) -> str:
        return ", ".join(e.trigger_words for e in self.entries if e.enabled and e.trigger_words.strip())

    def to_settings(self) -> list[LoraSetting]:
        """The rows as ``settings.json`` keeps them; an example the app ships by its name too (``example``)."""
        shipped = resolve_path(examples_folder())  # once: at each autosave, for every row
        return [LoraSetting(str(e.path), e.enabled, e.strength, e.trigger_words, e.header_words, e.text_strength,
                            (example_name(e.resolved, shipped) or "") if e.resolved else "")
                for e in self.entries]  # fmt: skip

    def save_to(self, settings: Settings) -> None:
        """What ``settings`` keeps of the panel: its rows (``to_settings``) and the examples removed from it."""
        settings.loras = self.to_settings()
        settings.removed_examples = list(self.removed_examples)

    def restore(self, saved: list[LoraSetting]) -> list[NotRestored]:
        """The list as the last session left it. A file that is gone (moved, a drive not plugged in) or that is
        no LoRA a job could use (replaced by another model's, damaged: every job would fail on it while it is on)
        keeps its row, switched off, so nothing the user set up is forgotten; returns what is said of each one
        that was on. A strength that is no number (inf, NaN) is refused as the engine refuses it, the row kept,
        switched off, and said (of a row that was off, as what it takes, not "switched off … switch it on again");
        one beyond what the engine applies is the nearest it applies, said (``saved_strengths``): both went on
        silently, inf at 2.0, switched on. An example LoRA the app ships is
        found where this app has it (``saved_example_path``), kept on or off at its strength: its saved path was
        the app folder's at that session; unless the example has a row already, where it keeps its saved path.

        Trigger words the user had not edited (equal to the header's words saved with them) follow the file as it
        is now: one replaced while the app was closed brings its own words, where the old file's looked edited
        and went into every prompt. A row whose file cannot be read keeps the saved words and header words, so
        ``refresh`` tells the same apart once the file is back. A settings file saved before the header's words
        were kept says nothing of them: the saved words are taken as the user's unless the header gives the same
        (an edit is never lost; a file replaced before that first start keeps its old words until edited).

        A path listed twice (a hand-edited file, an older version) keeps its first row: the second overwrote the
        first's trigger words; it is dropped and logged."""
        notices: list[NotRestored] = []
        listed = {e.resolved for e in self.entries}
        for s in saved:
            try:
                path = named_path(s.path)
                example = saved_example_path(s.path, s.example)
                # a row taken for the example while the example is listed already stays at its own path, said as
                # its file is: merged into the example's row, the user's own file (a look-alike) was lost for good
                if example is not None and resolve_path(example) not in listed:
                    path = example
                read = read_file(path)
                if read.resolved in listed:
                    log.warning("the LoRA list in the settings names %s more than once; its first row is kept", path)
                    continue
                header = read.header
            except (OSError, ValueError) as exc:  # e.g. a NUL byte in a hand-edited path: no file can have it
                notices.append(NotRestored(f"The LoRA list in your settings names a file that cannot exist "
                                           f"({s.path[:80]!r}: {exc}); it was left out."))  # fmt: skip
                continue
            strengths = saved_strengths(s.strength, s.text_strength, s.enabled)
            entry = self._add(s.enabled and not strengths.refused, strengths.strength, read)
            entry.text_strength = strengths.text_strength  # kept while the file cannot be read too
            listed.add(read.resolved)
            if strengths.said:
                again = ", then switch it on again" if strengths.refused and s.enabled else ""
                notices.append(NotRestored(f"The LoRA file {entry.path} has {'; and '.join(strengths.said)}.",
                                           f"Set the strength you want in the LoRA panel{again}."))
            if header.problem or s.trigger_words != s.header_words:
                entry.trigger_words = s.trigger_words
            if header.problem:
                entry.header_words = s.header_words or ""
                entry.enabled = False
                if not s.enabled:
                    continue
                if header.missing:
                    notices.append(NotRestored(f"The LoRA file {entry.path} (on in your last session) is missing; "
                                               "it is switched off."))  # fmt: skip
                else:
                    notices.append(NotRestored(f"The LoRA file {entry.path} (on in your last session) cannot be "
                                               f"used: {header.problem}. It is switched off, so jobs run without "
                                               "it."))  # fmt: skip
        self._tell_apart()
        self.twins.look()  # two rows of one LoRA on in the last session (no ``changed`` here: the panel comes later)
        return notices

    def panel_state(self) -> PanelState:
        """What the panel sets for jobs (its rows, each on or off, strengths): to tell whether the user changed it."""
        return tuple((id(e), e.enabled, e.strength, e.text_strength) for e in self.entries)

    def switch_to(self, wanted: Wanted) -> None:
        """Exactly the entries in ``wanted`` (by id) on, at their (strength, text strength); the others off.
        ``changed`` only when that changed something: reusing one of our images with the panel as it was is
        common, and each ``changed`` updates every row of the panel."""
        before = self.panel_state()
        for e in self.entries:
            e.enabled = id(e) in wanted
            if e.enabled:
                self.set_strength(e, wanted[id(e)][0])
                self.set_text_strength(e, wanted[id(e)][1])
        if self.panel_state() != before:
            self.changed.emit()

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


def _being_read(path: Path) -> LoraEntry:
    """The row of a file picked whose header is being read (``LoraState.add_reading``): switched on, at strength 1,
    saying so."""
    return LoraEntry(path, path.stem, True, info=READING, reading=True)


def _misfit(entry: LoraEntry, judge: ModelJudge) -> str:
    """Why ``judge``'s model cannot take ``entry``'s file at its strengths (``gpu.lora.fit``, the rule the engine
    applies: its parts at strength 0 are not judged, nor the parts whose layers are not known), from its header's
    shapes alone, once per layout of files (``ModelFit``); "" where it can, or that is not known."""
    if judge.fit is None or entry.problem:
        return ""
    wrong = judge.fit.misfit_text(entry.targets, entry.strength, entry.text_strength)
    return wrong and f"does not fit the model '{judge.model}': {wrong}"
