"""Where a quantize run that stopped (cancelled, failed, Ctrl-C) left its parts folder (``OUT.safetensors.parts``),
and how the next run uses it, in words: as the engine said it as the run went (``QuantizeEvent``, gathered by
``QuantizeTold``), not by the folder's bytes, which a run replacing it may write again as they were. The one
wording of the command line's Ctrl-C note and of the Quantize wizard's, each caller naming its own way to run again
and to give a setting (``RunAgain``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gpu.errors import OutputError, named_few
from gpu.quantizer.config import PartsToReplace, QuantizeEvent
from gpu.streaming.parts_folder import foreign_entries, kept_in, not_a_folder
from gpu.streaming.resume import ANOTHER_VERSION, BY_ANOTHER_VERSION, NO_MANIFEST


@dataclass
class QuantizeTold:
    """What a quantize run's engine said of the output's parts folder, as far as it got (``QuantizeEvent``)."""

    anything: bool = False  # any event: the run has looked at the folder and decided what it does with it
    to_replace: PartsToReplace | None = None  # an earlier run's folder it replaces once its samples are recorded
    replacing: bool = False  # it began deleting that folder: nothing of that run in it resumes from then on
    parts_left: str = ""  # what stays of a parts folder it deleted, and why (``QuantizeEvent.parts_left``), as said

    def heard(self, event: QuantizeEvent) -> None:
        """What ``event`` tells as it arrives, before it is said: the run has decided, and deletes nothing until
        a later event."""
        self.anything = True
        self.to_replace = self.to_replace or event.to_replace
        if event.parts_left:
            self.parts_left = event.message

    def passed(self, event: QuantizeEvent) -> None:
        """What ``event`` tells once its caller's callback returned: a deletion it announces begins only then, so a
        Ctrl-C while it is said stops before it."""
        self.replacing = self.replacing or event.replacing_parts


@dataclass(frozen=True)
class RunAgain:
    """How a caller's user runs a quantize run again, in the caller's words, which ``stopped_note`` ends its
    sentences with: this module names no option of any caller's (the command line's, the wizard's), and gives no
    caller another's words by default."""

    same: str  # the same run again, as an order: "run the same command again", "run again with the same settings"
    # One ``QuantizeConfig`` field (or "base": ``PartsToReplace.other_base``) and its value -> how a run is given it,
    # joined by " and ": "with --rank 8", "5 alpha search points"; None where no run of this caller can be given it.
    setting: Callable[[str, object], str | None]
    changed: str  # what comes before those settings: "" after "run the same command again to replace it, or"
    replaces: bool  # the same run again replaces a folder it does not resume (False: it writes another name)
    command: str  # who has no setting that resumes a folder: "this command" in "no setting of this command resumes it"
    # How the same run is told to resume instead ("without --no-resume") where this run was asked to start over, as
    # the same run again is then; "" where it was not (a caller that cannot ask it never sets this).
    to_resume: str = ""


def stopped_note(parts: Path, told: QuantizeTold, again: RunAgain, if_stopped_now: bool = False) -> str:
    """Where a stopped quantize run left the parts folder ``parts``, and how the next run uses it, as the engine
    said it (``told``); "" when it holds nothing to say. A run that began on a folder made with other settings, and
    was stopped before it replaced it, said "the blocks finished so far are kept …: run the same command again to
    resume", which deletes them; the wizard said the same, whatever the engine had said. A folder holding files of
    the user's, which the next run refuses ("holds files the quantizer did not write"), is said to need them moved
    out first: "run … again to resume" alone sent the user to that refusal.

    ``if_stopped_now``: the run still works, and its user is asked whether to stop it ("Stop quantizing?"): said as
    what stopping it now would leave, not as what "this run stopped" left (a No lets the run go on)."""
    kept = kept_in(parts)  # once replacing, the run's own: the earlier run's manifest is deleted first
    plan = told.to_replace
    first = _move_out_first(parts)
    if told.replacing and not kept and parts.is_dir():
        being = (f"{parts} is being replaced: nothing in it resumes if this run stops now" if if_stopped_now
                 else f"{parts} was being replaced when this run stopped: nothing in it resumes")  # fmt: skip
        return f"{being}; {first}{again.same} to start over"
    if plan is not None and not told.replacing and parts.is_dir():
        return _left_as_it_was(parts, plan, again, first, if_stopped_now)
    if not kept:
        return ""
    if not told.anything:  # whether this run would have resumed from it is not known yet
        read = (f"{parts} is left as it was if this run stops now, before it reads it" if if_stopped_now
                else f"this run stopped before it read {parts}, which is left as it was")  # fmt: skip
        if again.to_resume:  # asked to start over, it starts over again, whatever the folder was made with
            return (f"{read}: {first}{again.same} to start over, or {again.to_resume} to resume from it if it was made "
                    "with these settings")  # fmt: skip
        return f"{read}: {first}{again.same} to resume from it if it was made with these settings"
    # Hours of work may be in it: say it is there, and how it is used. The same run asked to start over again
    # would delete it.
    return f"{kept}: {first}{again.same}{f' {again.to_resume}' if again.to_resume else ''} to resume"


def _move_out_first(parts: Path) -> str:
    """What comes first, as an order ending in "then ", where the folder ``parts`` holds files the quantizer did
    not write, which a run refuses the folder for (``check_parts_folder``): "move notes.txt elsewhere, then "; ""
    where it holds none (or cannot be read: the run's own refusal then says why)."""
    if not_a_folder(parts) or not parts.is_dir():
        return ""
    try:
        foreign = foreign_entries(parts)
    except OutputError:
        return ""
    return f"move {named_few(foreign)} elsewhere, then " if foreign else ""


def _left_as_it_was(parts: Path, plan: PartsToReplace, again: RunAgain, first: str, if_stopped_now: bool) -> str:
    """What ``stopped_note`` says of the folder ``parts`` of an earlier run that this run, stopped before then (or
    ``if_stopped_now``), was to replace (``plan``): left as it was, what the same run again does with it, and what
    resumes it instead, after ``first`` (``_move_out_first``)."""
    if again.to_resume:
        note = (f"{parts} is left as it was if this run stops now, before it starts over" if if_stopped_now
                else f"{parts} is left as it was: this run stopped before it started over")  # fmt: skip
        clauses = [f"{again.same} to start over"]
    else:
        why = {NO_MANIFEST: NO_MANIFEST, ANOTHER_VERSION: BY_ANOTHER_VERSION}.get(
            plan.differs, f"made with other settings: {plan.differs}")  # fmt: skip
        note = (f"{parts} is left as it was if this run stops now, before it replaces it ({why})" if if_stopped_now
                else f"{parts} is left as it was: this run stopped before it replaced it ({why})")  # fmt: skip
        clauses = [f"{again.same} to replace it"] if again.replaces else []
    options = _resume_options(plan, again)
    if options:
        clauses.append(f"{options} to resume it")
    said = f"{first}{', or '.join(clauses)}" if clauses else ""
    if not options and plan.differs != NO_MANIFEST:
        said = "; ".join(c for c in (said, f"no setting of {again.command} resumes it") if c)
    return f"{note}; {said}" if said else note


def _resume_options(plan: PartsToReplace, again: RunAgain) -> str | None:
    """How a run is given the settings that resume the folder ``plan`` is of (``PartsToReplace.resume_with``, and
    its ``other_base``), in ``again``'s words ("with --rank 8 and without --no-resume"); None when no settings do,
    or one of them cannot be given (only a caller of the engine sets it)."""
    if plan.resume_with is None:
        return None
    said = []
    for name, value in (({"base": plan.other_base} if plan.other_base else {}) | plan.resume_with).items():
        words = again.setting(name, value)
        if words is None:
            return None
        said.append(words)
    if again.to_resume:  # it starts over again, whatever its settings
        said.append(again.to_resume)
    return f"{again.changed}{' and '.join(said)}" if said else None
