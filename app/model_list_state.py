"""Observable state of the Models panel: the library's rows, the highlighted one (the model of the next jobs, or an
unusable one the user went to), whether Remove acts on it, and the details under the list. The user's picks and
moves are decided here (``pick``, ``highlight``), by asking the model library; the panel only binds. Also what a
Remove or an add waits for (the jobs queued before it)."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

from PySide6.QtCore import QObject, Signal

from app.generation_state import PromptState
from app.observable import Prop
from app.wording import human_bytes
from gpu.errors import named_few

if TYPE_CHECKING:  # the library makes this state: imported at run time, it would import itself
    from app.model_library import ModelLibrary


class ModelRow(NamedTuple):
    """A row of the Models list: what it says, the model it names, its tooltip (the path, or why it is unusable)."""

    text: str
    name: str
    tip: str


class Pick(Enum):
    """What became of a model the user picked (``ModelListState.pick``) or went to (``highlight``)."""

    CURRENT = "current"  # the model in use already: its facts shown again, nothing read again
    WAITING = "waiting"  # its file is being looked at again already: nothing more
    SELECTED = "selected"  # the model of the next jobs now; its facts are being read
    LOOKING = "looking"  # unusable: its file is looked at again first (selected if it opens now)
    REFUSED = "refused"  # unusable: refused with why (the library's dialog); the model in use stays
    SHOWN = "shown"  # unusable, gone to with the keys or a press: shown only, its file not looked at


def memory_row(info: Any) -> tuple[str, str]:
    """What the model needs, as the memory plan below it says (one source: its peak): GPU memory, or without a GPU
    the system memory it runs in (a VRAM figure there would be no one's need)."""
    ram = getattr(info, "est_ram_bytes", None)
    if getattr(info, "est_vram_bytes", None) is None and ram:
        return "Estimated RAM", f"{human_bytes(ram)} (no GPU: VRAM n/a)"
    return "Estimated VRAM", human_bytes(getattr(info, "est_vram_bytes", None))


def info_text(info: Any) -> str:
    """A model's facts (``ModelInfo``) as the details' lines: name, kind, architecture, precision, size, need."""
    rows = [
        ("Model", getattr(info, "name", "?")),
        ("Kind", getattr(info, "kind", "?")),
        ("Architecture", getattr(info, "architecture", "?")),
        ("Precision", getattr(info, "precision", "?")),
        ("Size on disk", human_bytes(getattr(info, "size_bytes", None))),
        memory_row(info),
    ]
    return "\n".join(f"{k}: {v}" for k, v in rows)


def unusable_word(entry: Any) -> str:
    """What the list says of a library entry that cannot be used: "missing" only when nothing is at its path (put
    back, it works again); "cannot be used" for a file there that is not usable (a newer format, a damaged copy,
    one that cannot be read), where putting it back is no remedy."""
    return "missing" if getattr(entry, "missing", True) else "cannot be used"


def _after(jobs_before: int) -> str:
    """What a request of the library with ``jobs_before`` jobs still to run before it waits for (said after the
    request): the engine takes it up only after those jobs."""
    return {0: "", 1: " after the running job"}.get(jobs_before, " after the running and queued jobs")


def usable(entry: Any) -> bool:
    """Whether the library entry (``gpu.library.ModelEntry``) can be opened: the engine described it. No facts: its
    file moved, was deleted or changed since it was added."""
    return getattr(entry, "facts", None) is not None


class ModelListState(QObject):
    rows_changed = Signal(object)
    highlighted_changed = Signal(object)
    removable_changed = Signal(object)
    details_changed = Signal(object)
    runs_on_changed = Signal(object)
    runs_on_tip_changed = Signal(object)
    removing_changed = Signal(object)
    adding_changed = Signal(object)

    rows = Prop(())  # tuple[ModelRow, ...]: the library's entries as the list shows them
    highlighted = Prop("")  # the name of the highlighted row: the model in use, or an unusable one gone to
    removable = Prop(False)  # Remove acts on the highlighted model (not a built-in one, nor one being removed)
    details = Prop("Starting the engine…")  # the model's facts, or a passing state ("Reading model…", a refusal)
    runs_on = Prop("")  # "Runs on: <path>" with the model's facts; "" (hidden) with a passing state
    runs_on_tip = Prop("")  # the engine's whole text (why, notes) where it says more than the path
    removing = Prop("")  # "Removing 'mine' after the running job…" while the engine has not taken it off; "" (hidden)
    adding = Prop("")  # "Adding 'mine.safetensors' after the running job…" till the add ends; "" (hidden)

    def __init__(self, library: ModelLibrary, prompt: PromptState, parent: QObject | None = None) -> None:
        """``library``: whose entries, current model and picks these are; ``prompt``: holds the model in use."""
        super().__init__(parent)
        self._library = library
        self._prompt = prompt
        self._refused: tuple[str, str] = ("", "")  # a usable model whose facts could not be read, and why (refuse)
        self._removal_place = 0  # where the last removal pending waits in the engine's queue (show_removals)
        self._add_place = 0  # where the last add pending waits in the engine's queue (show_adds)
        self._reading_said = ""  # the details' "Reading model…" as said last (follow_queue says it anew)
        prompt.model_changed.connect(self._in_use_changed)

    def set_entries(self, entries: list[Any]) -> None:
        """The library's list changed (each answer of the engine sends it): its rows; the model in use highlighted,
        or an unusable one the user highlighted (picked and refused, its file looked at again), kept so that
        Remove takes it off."""
        highlighted = self.highlighted
        # The same rows again emit nothing: the list keeps its items (one pressed and not yet released was
        # replaced, and the click was lost).
        self.rows = self._rows(entries)
        refused = next((e for e in entries if e.name == highlighted and not usable(e)), None)
        if refused is not None and refused.name != self._prompt.model:
            self.show_unusable(refused.name)
        elif highlighted == self._refused[0] != self._prompt.model and any(e.name == highlighted for e in entries):
            self._mark(highlighted)
            self._note(self._refused_text())
        elif highlighted and highlighted != self._prompt.model:
            # The row left was removed, or its file is back: its message must not stay under the model in use.
            self._show_in_use()
        else:
            self._mark(self._prompt.model)

    def _rows(self, entries: list[Any]) -> tuple[ModelRow, ...]:
        """The rows of the library's ``entries``: built-in, unusable, or being removed said after the name."""
        rows = []
        for entry in entries:
            label = entry.name + ("  (built-in)" if getattr(entry, "builtin", False) else "")
            if self._library.is_removing(entry.name):
                label += "  (removing…)"
            if usable(entry):
                rows.append(ModelRow(label, entry.name, str(getattr(entry, "path", ""))))
            else:
                rows.append(ModelRow(f"{label}  ({unusable_word(entry)})", entry.name,
                                     getattr(entry, "problem_text", "")))
        return tuple(rows)

    def show_removals(self, place: int = 0) -> None:
        """The removals the engine has not answered yet (``ModelLibrary.removing``; one more was asked at ``place``
        in the engine's queue, ``LibraryLinks.place``): their rows say so, Remove is greyed on them, and ``removing``
        says what they wait for. The engine takes a model off only after the jobs queued before (a FLUX batch:
        minutes), and a Remove that showed nothing meanwhile looked broken."""
        names = self._library.removing
        self._removal_place = max(self._removal_place, place) if names else 0
        self.rows = self._rows(self._library.entries)
        self.removable = self._can_remove(self.highlighted)
        self.removing = f"Removing {self._waiting(names, self._removal_place)}" if names else ""

    def show_adds(self, place: int = 0) -> None:
        """The adds the engine has not answered yet (``ModelLibrary.adding``; one more was asked at ``place`` in the
        engine's queue): ``adding`` says what they wait for. An add waits behind the jobs queued before it (a FLUX
        batch: minutes), and a click of Add that showed nothing meanwhile was made again."""
        names = self._library.adding
        self._add_place = max(self._add_place, place) if names else 0
        self.adding = f"Adding {self._waiting(names, self._add_place)}" if names else ""

    def _waiting(self, names: list[str], place: int) -> str:
        """"'a', 'b' after the running job…": the ``names`` of the requests pending, the last asked at ``place``,
        and the jobs they still wait for."""
        return f"{named_few([repr(n) for n in names])}{_after(self._library.jobs_before(place))}…"

    def follow_queue(self) -> None:
        """A job ended: what the removals, adds and the model's read pending still wait for, said anew. Said once,
        "after the running job" stayed while the engine made them (a FLUX.1 model's read: seconds), and counted a
        job queued after them, which they do not wait for."""
        self.show_removals()
        self.show_adds()
        if self._reading_said and self.details == self._reading_said:
            self._note_reading()

    def show_info(self, info: Any) -> None:
        """The facts of the model in use (``ModelInfo``) in the details, with the path that runs it; kept for when
        the highlight comes back to it (``model_info``) while another row is highlighted, which has its own."""
        name = getattr(info, "name", None)
        if self.highlighted and self.highlighted != name:
            return
        if name == self._refused[0]:
            self._refused = ("", "")  # read after all
        self.details = info_text(info)
        # The engine gives the path alone and the whole text (with why and its notes): no parsing of its wording.
        path, summary = info.execution_path, info.execution_summary
        self.runs_on_tip = path if summary != path else ""
        self.runs_on = f"Runs on: {summary}"

    def refuse(self, name: str, why: str) -> None:
        """The facts of the usable model ``name`` could not be read (``why``, a sentence), and the library chose what
        the next jobs use: ``name`` stays highlighted with why, so Remove can take it off and Enter try it again."""
        self._refused = (name, why)
        self._mark(name)
        self._note(self._refused_text())

    def highlight(self, name: str) -> Pick:
        """The user moved the highlight onto ``name`` (the arrow keys, a press, typing a name): picked, if it can
        be used. One that cannot is only shown: its file is looked at again (and refused with a dialog) by
        ``pick`` (Enter, a click), not as the keys pass over it, where the dialog took the next key press."""
        entry = self._entry(name)
        if entry is not None and not usable(entry):
            self._library.drop_recheck()  # a look at another one passed decides nothing now
            self.show_unusable(name)
            return Pick.SHOWN
        return self.pick(name)

    def pick(self, name: str) -> Pick:
        """The user picked ``name`` (a click, Enter, a double click, or ``highlight``): it becomes the model of the
        next jobs, or its file is looked at again, or it is refused (the library says why); it stays highlighted."""
        self.highlighted = name
        retry = self._refused[0] == name  # its facts could not be read (``refuse``): picked again, they are asked again
        self._refused = ("", "")
        # Picked again (the release of the press that highlighted it, Enter, a double click): reading it again reset
        # size, steps and guidance, and a second pick of a model whose file is being looked at refused it at once
        if self._library.is_current(name) and not retry:
            self._library.drop_recheck()  # back to the model in use: a re-check of one passed decides nothing
            # The user's word: the model in place of one that could not be opened is theirs to keep from now on (not
            # counted, the one replaced stayed in the settings, and its notice came back at every start, for good
            # where its file was deleted)
            self._library.drop_kept()
            self._show_in_use()  # its facts again, not those of the model passed over
            return Pick.CURRENT
        if self._library.is_rechecking(name):
            return Pick.WAITING
        # A retry of the model in use (none opened instead) keeps the fields: it is the same model.
        if self._library.select_model(name, apply_defaults=name != self._prompt.model):
            self._note_reading()
            return Pick.SELECTED
        # Refused (its file is gone; the library says why), or its file being looked at again first (a drive
        # back: then it is selected). It stays highlighted so Remove can take it off.
        looking = self._library.is_rechecking(name)
        self._note(f"{name}: looking at its file again…" if looking else self.unusable_text(name))
        self.removable = self._can_remove(name)
        return Pick.LOOKING if looking else Pick.REFUSED

    def remove(self) -> None:
        """Takes the highlighted model off the library's list (not its file)."""
        if self.highlighted:
            self._library.remove_model(self.highlighted)

    def show_unusable(self, name: str) -> None:
        """The unusable model ``name`` highlighted with what is wrong and the model in use (``unusable_text``):
        passed over with the keys, or picked and refused, it stays in view, for Remove or a look at its file again."""
        self._mark(name)
        self._note(self.unusable_text(name))

    def unusable_text(self, name: str) -> str:
        """The details of the unusable model ``name``: what is wrong, the model in use, and how to look again."""
        return f"{name}: {unusable_word(self._entry(name))}. New images use {self._prompt.model}. Press " \
            "Enter to look at its file again."  # fmt: skip

    def _refused_text(self) -> str:
        """The details of the model refused (``refuse``): why, the model in use if it is another, and what to do."""
        name, why = self._refused
        in_use = f" New images use {self._prompt.model}." if self._prompt.model != name else ""
        remove = "" if getattr(self._entry(name), "builtin", False) else ", or Remove to take it off the list"
        return f"{name}: {why}{in_use} Press Enter to try it again{remove}."

    def _entry(self, name: str) -> Any | None:
        """The library entry of the row named ``name`` (None where the list changed since)."""
        return self._library.entry(name)

    def _in_use_changed(self, name: str) -> None:
        """The model of the next jobs is ``name`` now (picked, added, or instead of one that cannot be opened): it is
        highlighted, with its facts once the library is listed (before, the details say the engine is starting)."""
        if self.rows:
            self._show_in_use()
        else:
            self._mark(name)

    def _show_in_use(self) -> None:
        """The model in use highlighted, Remove as for it, and its facts under it (the library's, where they are
        that model's), or "Reading model…" while the engine describes it: never the message of a row left."""
        name = self._prompt.model
        self._mark(name)
        info = self._library.model_info
        if info is not None and getattr(info, "name", None) == name:
            self.show_info(info)
        elif self._refused[0] == name:  # none opened instead: it stays in use, refused
            self._note(self._refused_text())
        else:
            self._note_reading()

    def _note_reading(self) -> None:
        """The details while the engine reads the model's facts, and the jobs that read waits for: behind a running
        job, it read "Reading model…" for the minutes of a FLUX.1 batch, with nothing said of the wait."""
        self._reading_said = f"Reading model{_after(self._library.jobs_before(self._library.describe_place))}…"
        self._note(self._reading_said)

    def _mark(self, name: str) -> None:
        """``name`` highlighted, and Remove as for it."""
        self.highlighted = name
        self.removable = self._can_remove(name)

    def _can_remove(self, name: str) -> bool:
        """Whether Remove acts on ``name``: a model of the user's, not being removed already (asked again, the
        engine refused it once it had taken it off)."""
        return bool(name) and not getattr(self._entry(name), "builtin", False) and not self._library.is_removing(name)

    def _note(self, text: str) -> None:
        """A passing state instead of a model's facts ("Reading model…", a model refused)."""
        self.details = text
        self.runs_on = ""
