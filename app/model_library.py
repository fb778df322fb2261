"""The model library as the panels use it: the library's list as the engine sends it, the model of the next jobs
(picked, added, removed, gone missing, looked at again), its facts and defaults as the engine describes it, and
the sentences that say what became of each."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from app.background import Lookup, Lookups
from app.engine_errors import EngineError
from app.generation_state import PromptState
from app.memory_state import MemoryState
from app.model_list_state import ModelListState, usable
from app.wording import counted, sentence
from gpu.errors import named_few
from gpu.generation.png_metadata import encodable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LibraryLinks:
    """How the library reaches the engine thread and the window: the controller's signals' emits."""

    describe: Callable[[str, int], None]  # a model's facts asked for, with the request's number
    read: Callable[[int], None]  # the library's list read again, with the request's number
    add: Callable[[str, int], None]  # a model's path added, with the add's number
    remove: Callable[[str], None]  # a model taken off the list, by name
    owe_add: Callable[[str], None]  # an add owed until the engine takes it up (``EngineThread.add_model``)
    # a removal owed until the engine has made it, by name and the path listed (``EngineThread.remove_model``)
    owe_remove: Callable[[str, Any], None]
    changed: Callable[[list[Any]], None]  # the list changed (``AppController.library_changed``)
    info_changed: Callable[[Any], None]  # the selected model's facts (``AppController.model_info_changed``)
    add_ended: Callable[[int, object], None]  # an add's number, and the model's name or why it was refused
    say: Callable[[EngineError], None]  # a dialog
    tell: Callable[[str], None]  # the status bar
    # Where a request sent to the engine now waits, behind the jobs queued before it (``JobQueue.place``), and how
    # many of those are still to run (``JobQueue.jobs_before``): what a removal, an add or a model's read waits for
    place: Callable[[], int] = lambda: 0
    jobs_before: Callable[[int], int] = lambda _place: 0


@dataclass
class _KeptModel:
    """A model the user worked with (the last session's, or one selected when its file went missing) that could not
    be opened, replaced by another the user did not pick: what ``settings.json`` keeps till the user picks a model,
    so that the next start with its file back (its drive plugged in) selects it with the user's size and steps."""

    name: str
    fields: dict[str, Any]  # the fields its defaults set (``model_default_fields``), as the user left them
    unset: list[str]  # those still waiting for a first launch's defaults (``pending_fields``): saved as unset


@dataclass(frozen=True)
class _OpenedBefore:
    """The model in use (its facts read: it opens) when another was selected, as that selection found it: selected
    again, with its fields, should the other be refused at its first reading (``ModelLibrary.on_library``)."""

    name: str
    fields: dict[str, Any]  # the fields its defaults set, as they were then
    kept: _KeptModel | None  # the model kept for the user then (``kept_fields``)
    left: dict[str, Any]  # the fields as the selection left them: one set since is the user's, and stays


@dataclass(frozen=True)
class _AskedAdd:
    """An add the engine has not answered yet: it waits behind the jobs queued before it (minutes), and the user
    goes on meanwhile, whose choices made since hold at its end (``ModelLibrary.on_model_added``)."""

    path: str  # the file or folder added
    select: bool  # its model to be selected at its end (``add_model``'s ``select``)
    choices: int  # the user's choices of a model when it was asked (``select_model``): one made since is kept
    fields: dict[str, Any]  # the fields when it was asked: those set since keep their values, not its defaults


class ModelLibrary(QObject):
    """The library's entries and the model of the next jobs (``PromptState.model``). The engine's answers come in
    by the ``on_*`` slots the controller connects to the worker's signals: a QObject, so that they are delivered on
    the thread it lives on (its parent's, the Qt thread). ``list_state`` is the Models panel's state, kept up to
    date with the list and the model's facts."""

    def __init__(self, prompt: PromptState, memory: MemoryState, measure: Callable[[], None], links: LibraryLinks,
                 launch_fields: dict[str, Any] | None, parent: QObject | None = None) -> None:  # fmt: skip
        """``measure``: measures the prompt again with the model described; ``launch_fields``: the prompt panel's
        fields that the last session left at the model's default (all of them at a first launch), as they are at
        the launch: they take the model's defaults once the engine is ready (None: no such field)."""
        super().__init__(parent)
        self._prompt = prompt
        self._memory = memory
        self._measure = measure
        self._links = links
        self._say = links.say
        self._tell = links.tell
        # A first launch's fields, till the engine is ready: the defaults go only to those the user leaves alone
        # meanwhile (an image restored takes its fields out: ``keep_fields``)
        self.launch_fields = launch_fields
        self._restored_early: set[str] = set()  # the fields an image restored set before the engine was ready
        self._kept: _KeptModel | None = None  # the user's model replaced by another they did not pick
        self.entries: list[Any] = []
        self.known = False  # the entries are the library's: the engine was ready once (``select_at_start``)
        self.model_info: Any = None
        # name -> path of the models the user asked to remove that the engine has not taken off yet: it does so
        # after the jobs queued before (minutes), and a second Remove meanwhile was refused as "not user-added"
        self._removing: dict[str, Any] = {}
        self._gone: set[str] = set()  # models whose file went missing while the app ran, said so by on_library
        self._rechecking: str | None = None  # a missing model the user picked, whose file is being looked at again
        # The fields when it was picked: selected after a running job, its defaults go only to those still as they were
        self._recheck_since: dict[str, Any] = {}
        self._reads = 0  # the number of the last list read asked for (read), the answer _rechecking awaits
        self._adds = 0  # the number of the last add asked for (add_model)
        self._asked_adds: dict[int, _AskedAdd] = {}  # the adds the engine has not answered, by number
        self._choices = 0  # how many times the user chose a model (select_model)
        self._defaults_since: dict[str, Any] | None = None  # fields when a model was picked, till its defaults come
        self._opened_before: _OpenedBefore | None = None  # the model in use before one selected and not yet read
        self._asked: tuple[int, str] = (0, "")  # the number and model of the last describe asked of the engine
        self.describe_place = 0  # where the last describe waits in the engine's queue (``LibraryLinks.place``)
        self._retry = 0  # the number of the describe asked again, its model's file back (see on_describe_failed)
        self.list_state = ModelListState(self, prompt, self)  # the Models panel's rows, highlight, Remove, details
        # A removed model's file looked at (is it still there?) on a thread: a stat of a model on a network share
        # that hangs froze the window on the window's thread. Each look's sentence till it ends.
        self._file_looks = Lookups("Models: looking at a removed model's file", self)
        self._file_looks.ended.connect(self._say_removed)
        self._removed_said: dict[Lookup, tuple[str, Any, str]] = {}

    def is_gone(self, name: str) -> bool:
        """Whether the file of the model ``name`` went missing while the app ran, and that was said."""
        return name in self._gone

    def keep_panel(self) -> None:
        """A job runs with the prompt panel as it is now: a model's defaults still to come must not change it."""
        self._defaults_since = None

    def keep_fields(self, keys: list[str]) -> None:
        """The prompt panel's fields ``keys`` were set (an image's settings restored): a first launch's model
        defaults, still to come, leave them as they are, and so do the defaults of a model selected at the start in
        place of the last session's (``select_at_start``); the fields saved with that model (``kept_fields``) are
        these: the user asked for them."""
        if not self.known:
            self._restored_early.update(keys)
        if self.launch_fields is not None:
            for key in keys:
                self.launch_fields.pop(key, None)
        if self._kept is not None:
            for key in set(keys) & set(self._prompt.model_default_fields()):
                self._kept.fields[key] = getattr(self._prompt, key)
                self._kept.unset = [k for k in self._kept.unset if k != key]

    def pending_fields(self) -> list[str]:
        """The prompt panel's fields that still show the placeholders a first launch's model defaults will replace
        (none once the engine is ready): those the user has not set since the launch."""
        fields = self.launch_fields or {}
        pending = [key for key, value in fields.items() if getattr(self._prompt, key) == value]
        return pending + [key for key in (self._kept.unset if self._kept else []) if key not in pending]

    def kept_fields(self) -> dict[str, Any]:
        """What ``settings.json``'s last job keeps in place of the prompt panel's (``LastJob`` fields): the model the
        user worked with, replaced by another they did not pick because its file could not be opened (a drive
        unplugged), and the fields that model's defaults set as the user left them, till the user picks a model.
        The model put in its place, and its defaults, are this session's only. Empty when there is none."""
        return {} if self._kept is None else {"model": self._kept.name, **self._kept.fields}

    def drop_kept(self) -> None:
        """The user picked the model in use (a click, Enter, a double click on its row): it is the one saved from now
        on, with its fields, not the model it replaced (``kept_fields``)."""
        self._kept = None

    def _keeping(self, entry: Any | None) -> _KeptModel | None:
        """What ``kept_fields`` keeps once the model ``entry`` (listed: its file missing or unusable) is replaced by
        another the user did not pick: its name and its fields as they are now; the model kept already, if any (the
        user's, replaced before); None for a model that is not listed (removed: nothing comes back)."""
        if self._kept is not None or entry is None:
            return self._kept
        unset = self.pending_fields()
        fields = {k: v for k, v in self._prompt.model_default_fields().items() if k not in unset}
        return _KeptModel(entry.name, fields, unset)

    def select_model(self, name: str, apply_defaults: bool = True, unchanged_since: dict[str, Any] | None = None
                     ) -> bool:  # fmt: skip
        """The user chose ``name`` (picked it, restored an image's settings): ``_select``. Counted, so that an add
        asked before, which ends after a running job, leaves this choice as it is (``on_model_added``)."""
        self._choices += 1
        return self._select(name, apply_defaults, unchanged_since)

    def _select(self, name: str, apply_defaults: bool = True, unchanged_since: dict[str, Any] | None = None) -> bool:
        """Makes ``name`` the model of the next jobs; a library entry whose file is gone is refused with its
        reason (the current model stays), since every job would fail on it. ``unchanged_since``: the fields as
        they were when the choice was made (``PromptState.model_default_fields``); the defaults go only to those
        still as they were (all of them when None)."""
        entry = self.entry(name)
        if entry is not None and not usable(entry):
            if self._rechecking != name:  # looked at again first: a drive that was away may be back (_on_library)
                self._rechecking = name
                self._recheck_since = self._prompt.model_default_fields()
                self._tell(f"Looking at the file of '{name}' again…")
                self._reads += 1
                self._links.read(self._reads)
                return False
            self._rechecking = None
            self._say_cannot_use(entry)
            return False
        self._rechecking = None  # another model picked since: the list read for that pick must not undo this one
        before, fields_before, kept_before = self._prompt.model, self._prompt.model_default_fields(), self._kept
        back = self._kept if self._kept is not None and self._kept.name == name else None
        if back is not None or name != self._prompt.model:
            self._kept = None  # a model the user picks (or an image's, a model added) is the one to keep now
        self._prompt.model = name
        defaults = getattr(getattr(entry, "facts", None), "defaults", None)
        self._defaults_since = None
        if apply_defaults and defaults is not None:
            # Its facts are in the library's list: its defaults now, so a Generate clicked before the engine has
            # described it (after a running job) runs with them, and the panel shows what ran.
            self._prompt.apply_model_defaults(defaults, unchanged_since)
        elif apply_defaults:
            # Not known here: they come once the engine describes it, and must not undo what the user set
            # meanwhile (nor what a job queued meanwhile ran with: ``generate`` drops them).
            fields = self._prompt.model_default_fields()
            self._defaults_since = fields if unchanged_since is None else unchanged_since
        if back is not None:  # the model kept for the user, its file back and picked: with the fields kept for it
            for key, value in back.fields.items():
                setattr(self._prompt, key, value)
            if self._defaults_since is not None:  # its defaults, still to come, only for the fields kept unset
                self._defaults_since = {k: v for k, v in self._defaults_since.items() if k not in back.fields}
        if name != before and getattr(self.model_info, "name", None) == before:
            self._opened_before = _OpenedBefore(before, fields_before, kept_before, self._prompt.model_default_fields())
        elif self._opened_before is not None:  # selected before the one it replaces was read: still the one to go
            self._opened_before = replace(self._opened_before, left=self._prompt.model_default_fields())
        self._ask_describe(name)
        return True

    def _back_to_opened(self) -> bool:
        """The model selected was refused at its first reading (its file cut short or gone since the list was read):
        the model in use before it (``_opened_before``), if it opens, is selected again with its fields (but for
        those set since), and the model that was kept for the user then (``kept_fields``): as if the refused one had
        never been selected, as for a "(missing)" one picked. -> whether it was."""
        opened, self._opened_before = self._opened_before, None
        if opened is None or opened.name == self._prompt.model or not usable(self.entry(opened.name)):
            return False
        self._select(opened.name, apply_defaults=False)
        for key, value in opened.fields.items():
            if getattr(self._prompt, key) == opened.left.get(key):
                setattr(self._prompt, key, value)
        self._kept = opened.kept
        return True

    def _say_cannot_use(self, entry: Any, in_use: str = "") -> None:
        """The dialog of the model ``entry`` refused as it was picked: why, and what to do; ``in_use``: the model in
        use, said to stay selected (the panel showed the refused one as selected for a moment)."""
        stays = f" '{in_use}' stays selected." if in_use else ""
        self._say(EngineError("user", f"The model '{entry.name}' cannot be used: {entry.problem}.{stays}",
                              _unusable_hint(entry)))  # fmt: skip

    def _ask_describe(self, name: str) -> None:
        """The engine asked for the facts of the model ``name``, under a new number (``on_describe_failed``)."""
        self._asked = (self._asked[0] + 1, name)
        self.describe_place = self._links.place()
        self._links.describe(name, self._asked[0])

    def jobs_before(self, place: int) -> int:
        """How many jobs a request of the library's asked at ``place`` (``LibraryLinks.place``) still waits for."""
        return self._links.jobs_before(place)

    def is_current(self, name: str) -> bool:
        """Whether ``name`` is the model of the next jobs and its file is usable: picked again, nothing changes."""
        entry = self.entry(name)
        return name == self._prompt.model and entry is not None and usable(entry)

    def is_rechecking(self, name: str) -> bool:
        """Whether ``name``, picked while missing, has its file looked at again right now (before it is refused)."""
        return self._rechecking == name

    def drop_recheck(self) -> None:
        """The user went on to the current model, or past a missing one: the list read for the re-check of an unusable
        model picked before decides nothing (it selected that model, or refused it with a dialog, after the user
        had left it)."""
        self._rechecking = None

    def entry(self, name: str) -> Any | None:
        """The library entry named ``name``, or whose name is ``name`` once escaped as images record names that are
        not UTF-8 (``encodable``: the byte 0xe9 of a Latin-1 file name as the text ``\\xe9``)."""
        exact = next((e for e in self.entries if getattr(e, "name", None) == name), None)
        return exact or next((e for e in self.entries if encodable(str(getattr(e, "name", ""))) == name), None)

    def _fallback_model(self, other_than: str = "") -> str | None:
        """The first model that can be opened (built-in first, as the library lists them), other than ``other_than``."""
        return next((e.name for e in self.entries if usable(e) and e.name != other_than), None)

    def add_model(self, path: str | Path, select: bool = True) -> int:
        """Adds the model at ``path`` to the library; returns the add's number, which ``add_ended`` gives back.
        ``select``: the model added is selected (its defaults applied), as the user asked for it just now. Not for
        an add the user did not ask for at that moment (a quantize run that finished after its wizard was closed):
        the model and settings the user works with stay, and the status bar says the model was added."""
        self._adds += 1
        fields = self._prompt.model_default_fields()
        self._asked_adds[self._adds] = _AskedAdd(str(path), select, self._choices, fields)
        self._links.owe_add(str(path))  # owed until the engine takes it up: added at quit if it never did
        self._links.add(str(path), self._adds)
        self.list_state.show_adds(self._links.place())
        return self._adds

    @property
    def adding(self) -> list[str]:
        """The names of the files and folders being added that the engine has not answered yet, in the order asked."""
        return [Path(asked.path).name for asked in self._asked_adds.values()]

    def remove_model(self, name: str) -> None:
        """Takes the model ``name`` off the library's list (not its file); said once the library confirms it, and
        shown as pending till then (``ModelListState.removing``). One already pending is not asked again."""
        if name in self._removing:
            return
        self._removing[name] = getattr(self.entry(name), "path", None)
        # owed until the engine has made it: made at quit if it never did, or at the next start if it could not
        self._links.owe_remove(name, self._removing[name])
        self._links.remove(name)
        self.list_state.show_removals(self._links.place())

    def is_removing(self, name: str) -> bool:
        """Whether the user asked to remove ``name`` and the engine has not answered yet."""
        return name in self._removing

    def removal_refuses(self, name: str) -> EngineError | None:
        """Why a job on ``name`` is not queued: its removal is pending (``remove_model``), and the engine takes it
        off before any job queued now, which would fail ("no model named …"); None when it is not being removed.
        The selection is left as it is, rather than moved at the Remove click to the model the removal's end
        selects: the user did not pick that model, and its defaults would change the prompt panel's fields
        unasked; the user picks the model of the next job."""
        if name not in self._removing:
            return None
        return EngineError("user", f"The model '{name}' is being removed from the library: a job queued on it now "
                           "would run after the removal and fail.",
                           "Pick another model in the Models list, then generate again.")  # fmt: skip

    @property
    def removing(self) -> list[str]:
        """The models the user asked to remove that the engine has not taken off yet, in the order asked."""
        return list(self._removing)

    def on_removal_ended(self, name: str) -> None:
        """The engine answered the removal of ``name``: taken off (said by ``on_library``, which the list came
        to first), or failed (the error's dialog says why): no longer pending either way."""
        if self._removing.pop(name, None) is not None:
            self.list_state.show_removals()

    def on_engine_ready(self, entries: list[Any]) -> None:
        """The engine is ready with the library's ``entries``: known from now on (``select_at_start`` follows)."""
        self.entries = entries
        self.known = True

    def select_at_start(self, jobs_idle: bool) -> None:
        """Once the engine is ready: the last session's model selected again, or one that opens instead; a first
        launch's defaults applied unless a job (``jobs_idle`` False) already runs with the panel as it is."""
        last = self._prompt.model
        entry = self.entry(last)
        since = self.launch_fields
        kept = self._kept
        if entry is None or not usable(entry):
            # The last session's model was removed, or its file moved or deleted since: start on one that opens.
            fallback = self._fallback_model() or last
            kept = self._keeping(entry)  # saved in its place: the user did not pick the fallback
            if entry is not None and fallback != last:
                self._say_cannot_open(entry, " you used last time", fallback, "notice", kept.name if kept else None)
            self._prompt.model = fallback
            apply_defaults = True  # another model: its own size, steps and guidance, but for an image's restored
            since = {k: v for k, v in (self._prompt.model_default_fields() if since is None else since).items()
                     if k not in self._restored_early}  # fmt: skip
        else:
            # A first launch takes the model's own defaults (native size, steps, guidance); later launches keep
            # what the user left in the prompt panel, and so does a first one whose job, queued before the engine
            # was ready, runs with the panel as it is (the panel shows what ran).
            apply_defaults = self.launch_fields is not None and jobs_idle
        self.launch_fields = None  # once: a later ready keeps the user's fields
        self.list_state.set_entries(self.entries)
        self._links.changed(self.entries)
        before = self._prompt.model_default_fields()
        self._select(self._prompt.model, apply_defaults=apply_defaults, unchanged_since=since)
        self._kept = kept
        self._adds_take_start_defaults(before)

    def _adds_take_start_defaults(self, before: dict[str, Any]) -> None:
        """The start's model defaults set the fields (``before``: as they were) that adds asked while the engine
        started (waiting for the start) found as placeholders: to those adds, the start's values are the ones the
        user left, not edits. Taken for edits, the model added kept the start model's size, steps and guidance."""
        after = self._prompt.model_default_fields()
        for number, asked in self._asked_adds.items():
            fields = {key: after[key] if value == before.get(key) else value for key, value in asked.fields.items()}
            self._asked_adds[number] = replace(asked, fields=fields)

    def next_model(self) -> str:
        """The model new images use: the selected one where it opens (or while the library is not known yet), else
        the one that takes its place (``select_at_start``): the first that opens."""
        entry = self.entry(self._prompt.model)
        if entry is not None and usable(entry):
            return self._prompt.model
        return self._fallback_model() or self._prompt.model

    def _say_cannot_open(self, entry: Any, when: str, fallback: str | None, kind: str, kept: str | None = None
                         ) -> None:  # fmt: skip
        """Why the selected model ``entry`` cannot be opened, and the model selected instead; ``when``: " you
        used last time" for the last session's; ``kept``: the model saved in the fallback's place (``kept_fields``:
        ``entry``, or the user's model it had replaced), so that the size, steps and guidance set on the fallback are
        not, till the user picks it: said."""
        instead = f" '{fallback}' is selected instead." if fallback is not None else ""
        keep = (f" To keep working with '{fallback}' (and save its size, steps and guidance rather than those of "
                f"'{kept}'), pick it in the Models list.") if kept and fallback is not None else ""
        self._say(EngineError(
            kind, f"The model '{entry.name}'{when} cannot be opened: {entry.problem}.{instead}",
            _unusable_hint(entry) + keep))

    def on_library_read(self, asked: int, entries: list[Any]) -> None:
        """The list read for request ``asked`` (``read_library``): the answer a missing model picked awaits."""
        self.on_library(entries, answered=asked)

    def on_library(self, entries: list[Any], answered: int = 0) -> None:
        """The library's list as the engine read it (``answered``: the number of the read asked for, 0 for a list
        sent unasked): a missing model picked is selected or refused, a model selected and refused at its first
        reading gives way to the model before it (``_back_to_opened``), a selected model gone is replaced, a removal
        is said."""
        self.entries = entries
        self.list_state.set_entries(entries)
        self._links.changed(entries)
        if self._rechecking is not None and self.entry(self._rechecking) is None:  # removed meanwhile
            self._rechecking = None
        # A missing model picked is decided by the list read after the pick, not by one the engine read before it
        # and sent while the pick was made (a failed describe's): that one refused a file that was back.
        if self._rechecking is not None and answered == self._reads:  # selected if its file opens now, else refused
            if self._select(self._rechecking, unchanged_since=self._recheck_since):
                self._tell(f"The model '{self._prompt.model}' opens again; it is selected.")
                self._rechecking = None
        # Names said to be gone stay so only while they are: one put back (added again) is said again next time.
        self._gone &= {e.name for e in entries if not usable(e)}
        if self._kept is not None and self.entry(self._kept.name) is None:  # removed: nothing to come back to
            self._kept = None
        entry = self.entry(self._prompt.model)
        switched = ""
        if entry is not None and not usable(entry) and self._back_to_opened():
            # Selected and never read (its file cut short or gone since the list was read): refused as a "(missing)"
            # model picked is, the model before it in use again. Kept as the model the user worked with, it was
            # saved in settings.json, and every start said it could not be opened.
            self._say_cannot_use(entry, self._prompt.model)
            self._gone.add(entry.name)
            # Shown where it was picked, with why, as a "(missing)" row picked is: the list went to the model in use
            # with its facts, as if no pick had been made, and Remove acted on that model
            self.list_state.show_unusable(entry.name)
        elif entry is None or not usable(entry):  # the selected model was removed or went missing
            fallback = self._fallback_model()
            kept = self._keeping(entry)  # one gone missing is saved in its place: the user did not pick the fallback
            if kept is not None and kept.name == fallback:  # the kept model itself back in its place: nothing kept
                kept = None
            if fallback is not None and self._select(fallback):
                switched = f"; '{fallback}' is selected"
                self._kept = kept
            if entry is not None:  # its file was moved or deleted while the app ran (a job or its facts found it)
                self._say_cannot_open(entry, "", fallback, "user", kept.name if switched and kept else None)
                self._gone.add(entry.name)
        for name, path in list(self._removing.items()):
            if self.entry(name) is not None:  # a list read before the removal was taken up
                continue
            del self._removing[name]
            self.list_state.show_removals()
            # Said: with only the list changing, the selection (and with it the prompt panel's steps and size)
            # switched to another model unnoticed, and "Remove" may be read as deleting the file.
            self._tell_removed(name, path, switched)

    def _tell_removed(self, name: str, path: Any, switched: str) -> None:
        """Says that the model ``name`` was removed (``switched``: the model selected in its place, in words), and
        that its file at ``path`` is not deleted where it is still there: looked at on a thread (``_say_removed``)."""
        lookup = self._file_looks.start(f"looking at {path}", lambda: bool(path) and Path(path).exists())
        self._removed_said[lookup] = (name, path, switched)

    def _say_removed(self, lookup: Lookup) -> None:
        """A look of ``_tell_removed``'s ended: the removal said, its file named as not deleted where it is there
        (one that cannot be looked at is not named, as one that is gone)."""
        name, path, switched = self._removed_said.pop(lookup)
        kept = f" ({path} itself is not deleted)" if lookup.result else ""
        self._tell(f"The model '{name}' was removed from the library{kept}{switched}.")

    def _add_ended(self, request: int) -> _AskedAdd:
        """The add ``request`` answered: no longer pending (``adding``). -> what was asked (one not asked here is
        taken as asked just now: its model selected, its defaults applied)."""
        asked = self._asked_adds.pop(request, None)
        self.list_state.show_adds()
        return asked or _AskedAdd("", True, self._choices, self._prompt.model_default_fields())

    def _chosen_since(self, asked: _AskedAdd) -> bool:
        """Whether the user chose a model (picked one, restored an image's) after the add ``asked`` was asked: it
        waited behind a job, and the user's later word holds at its end."""
        return asked.choices != self._choices

    def on_model_added(self, name: str, request: int) -> None:
        """A model just added is what the user wants to use next: selected (its defaults applied to the fields
        left as they were when it was asked), and said. One added unasked (``add_model``'s ``select``) is only
        said, as the models found at start-up are, and so is one the user chose a model after (``_chosen_since``:
        the add waited behind a job)."""
        self._links.add_ended(request, name)
        asked = self._add_ended(request)
        if not asked.select or self._chosen_since(asked):
            # With no model selected (none opens), there is none to name as staying selected.
            kept = f"; '{self._prompt.model}' stays selected" if self._prompt.model else ""
            self._tell(f"The model '{name}' was added to the library{kept}.")
        elif self._select(name, unchanged_since=asked.fields):
            self._tell(f"The model '{name}' was added to the library; it is selected.")

    def on_add_failed(self, request: int, error: EngineError) -> None:
        """The library refused the model of add ``request``: its asker is told (``add_ended``); the user is told by
        the dialog every failed request shows (the controller's)."""
        self._add_ended(request)
        self._links.add_ended(request, error)

    def on_models_found(self, names: list[str]) -> None:
        """Models found unlisted in the models folder at start-up (an add lost to a quit, a crash or a kill),
        added by the engine: said, as the list grew by itself. Not selected: the user picked no model."""
        self._tell(f"Added {counted(len(names), 'quantized model')} found in the models folder: "
                   f"{named_few(names)}.")

    def on_already_in_library(self, name: str, request: int) -> None:
        """A model added again (the same file or folder, however its path was spelled): the library keeps one
        entry, so the user, who would otherwise see nothing happen, gets it selected and told why (an add not to
        select, ``add_model``, leaves the selection as it is; one the user chose a model after, ``_chosen_since``,
        says so). Selected, its defaults go only to the fields left as they were when it was asked."""
        self._links.add_ended(request, name)
        asked = self._add_ended(request)
        if not asked.select:
            return
        if self._chosen_since(asked):
            self._tell(f"The model '{name}' is already in the library; '{self._prompt.model}' stays selected.")
            return
        # The model in use already: selecting it again would reset the prompt panel to the model's defaults.
        if name != self._prompt.model and not self._select(name, unchanged_since=asked.fields):
            return  # refused (its file cannot be opened): _select said why
        self._tell(f"The model '{name}' is already in the library; it is selected.")

    def on_described(self, info: Any) -> None:
        """The facts of a model (``ModelInfo``), described or loaded: shown if it is still the one selected, with its
        memory plan, its defaults where a pick awaited them, and the prompt measured again."""
        if getattr(info, "name", None) != self._prompt.model:
            return
        self.model_info = info
        self._opened_before = None  # it opens: the model to go back to if it is refused is none now
        self._memory.show_policy(getattr(info, "memory_policy", None))
        self._measure()
        if self._defaults_since is not None:
            self._prompt.apply_model_defaults(getattr(info, "defaults", {}) or {}, self._defaults_since)
            self._defaults_since = None
        self.list_state.show_info(info)
        self._links.info_changed(info)

    def on_describe_failed(self, asked: int, error: EngineError, back: bool = False) -> None:
        """A describe that failed is said only if it was the last asked and its model is still selected: one on a
        model left since (a file away for a moment: the fallback said so, and the list read again found it back)
        or asked again since was shown as a second, generic "no such file" dialog (the engine logged it). One of
        the selected model whose file is ``back`` (the engine's list, read again after the failure, opens it: a
        network or removable drive away for a moment) is asked once more: the panel stayed on "Reading model…"
        under a "no such file" dialog for a model that opens. A second failure is refused (``_describe_refused``)."""
        number, model = self._asked
        if asked != number or model != self._prompt.model:
            log.info("not shown, asked before the selection changed: %s", error.message)
        elif back and asked != self._retry:
            log.info("the file of the model %s is back; describing it again", model)
            self._ask_describe(model)
            self._retry = self._asked[0]
        else:
            self._describe_refused(model, error)

    def _describe_refused(self, model: str, error: EngineError) -> None:
        """The selected ``model`` could not be described (``error``): as for a selected model that cannot be opened
        (``on_library``), every job would fail on it, so the model described before it (with the fields it had,
        ``_back_to_opened``), or the first that opens, is selected instead, and said. The Models panel keeps
        ``model`` highlighted with why (it said "Reading model…" for good, and the jobs to come failed on it)."""
        before = getattr(self.model_info, "name", None)
        opens = before is not None and before != model and usable(self.entry(before))
        fallback = before if opens else self._fallback_model(other_than=model)
        if fallback is not None and (self._back_to_opened() or self._select(fallback)):
            self._say(replace(error, message=f"{sentence(error.message)} '{fallback}' is selected instead."))
        else:
            self._say(error)
        self.list_state.refuse(model, sentence(error.message))

    def on_quantize_runs_ended(self) -> None:
        """The selected model's memory plan, predicted again: one predicted while a quantize run held its GPU
        budget was planned for that budget."""
        if self.model_info is not None:
            self._ask_describe(self._prompt.model)


def _unusable_hint(entry: Any) -> str:
    """What to do about the library model ``entry`` that cannot be used. Its file gone: picking a "(missing)" entry
    looks at its file again (a network or removable drive back), so putting the file back and picking it is
    enough. Its file there but unusable (a newer format, a damaged copy, unreadable): the engine's remedy."""
    name = entry.name
    if getattr(entry, "missing", True):
        return (f"Put the file back where it was (or reconnect its drive) and pick '{name}' again, or remove it from "
                "the Models list.")
    remedy = getattr(entry, "hint", "")
    return sentence(f"{remedy}; or remove '{name}' from the Models list" if remedy else
                    f"Remove '{name}' from the Models list, or add the model again")
