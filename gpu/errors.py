"""Errors a user can cause and fix. Their message is shown as is (CLI one-liner, app dialog)."""

from __future__ import annotations


def named_few(names: list[str], shown: int = 3) -> str:
    """The first ``shown`` of ``names`` for a message, then how many more: "a, b, c and 4 more"."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def with_hint(message: str, hint: str) -> str:
    """``message`` and ``hint`` on one line, as a log, a label or the command line says them: a hint that is a
    sentence of its own ("Wait for that run to finish, then run again.") follows the message as one ("what is
    wrong. What to try."); a phrase ("use 0 to 1024") goes in parentheses after it ("what is wrong (what to try)"),
    where a sentence in parentheses read as an aside. A phrase goes inside a message's closing full stop ("what is
    wrong (what to try)." rather than "wrong. (what to try)"), and after a semicolon where the message already ends
    in parentheses, since a second pair ("(x) (y)") reads as two asides."""
    if not hint:
        return message
    end = message.rstrip()
    if hint[0].isupper() and hint.rstrip()[-1] in ".!?":
        return f"{message} {hint}" if end[-1:] in (".", "!", "?") else f"{message}. {hint}"
    if end.endswith(")"):
        return f"{end}; {hint}"
    if end.endswith(".") and not end.endswith(".."):
        return f"{end[:-1]} ({hint})."
    return f"{message} ({hint})"


class UserError(Exception):
    """A problem with the user's input (file, model, settings); ``hint`` says what to try."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    @property
    def text(self) -> str:
        """Message and hint on one line, as the command line prints it (``with_hint``)."""
        return with_hint(str(self), self.hint)


class CheckpointError(UserError):
    """An SVDQ file is malformed: wrong version/architecture, missing tensors, truncated, corrupt."""


class FileProblem(CheckpointError):
    """A file that cannot be read, or is no sound file of its kind (a damaged ``.safetensors``): said "NAME: PROBLEM",
    with ``problem`` apart, for a caller that names the file its own way (the LoRA panel, by its path), and
    ``reason``, the system's own words where it would not read the file ("Permission denied"; "" for the others)."""

    def __init__(self, name: str, problem: str, hint: str = "", reason: str = "") -> None:
        super().__init__(f"{name}: {problem}", hint)
        self.problem = problem
        self.reason = reason


class NewerAppError(CheckpointError):
    """An SVDQ file this version cannot run but a newer one may: a format version or a named architecture it does not
    know, or a recorded scheduler it does not take. The file itself may be sound (the library leaves it out for
    this version only)."""


class SchedulerError(NewerAppError):
    """The scheduler an SVDQ file records cannot run here (a class or setting this version or its diffusers does not
    take, a package not installed): the file itself may be sound, and an update may run it."""


class ModelLoadError(UserError):
    """A model (folder or file) cannot be loaded."""


class BadRequestError(UserError):
    """Generation settings that cannot work (size not a multiple of 16, zero steps, ...)."""


class OutputError(UserError):
    """A file cannot be written where the user asked (full disk, read-only or missing folder, a folder in
    the way). The message names the user's path, never a temporary one."""


class OutputBusy(OutputError):
    """The output is being written by another run right now: waiting is the remedy, not another folder."""


class OutputAppeared(OutputError):
    """A file was put at the output's name while it was being written, by someone else: it is kept, and the output
    is not written over it (a write asked not to replace, e.g. ``gpu.atomic.atomic_path(replace=False)``)."""


class OutputIsInput(OutputError):
    """The output is a file a run reads, or lies in the folder of a model it reads (``gpu.streaming.base_pipeline.
    check_output_not_read``): another output is the remedy, never replacing that model."""


class OutOfMemory(UserError):
    """The GPU or the computer's RAM ran out of memory for a job, its model's loading, or a quantize run: the message
    says which memory, and what for."""


class QuantizeOutOfMemory(OutOfMemory):
    """A quantize run ran out of GPU memory or RAM (``gpu.streaming.memory.quantize_out_of_memory``).
    ``ram_budget_helps``: a smaller RAM budget is a remedy (the block inputs it keeps in RAM then go to disk)."""

    def __init__(self, message: str, hint: str = "", ram_budget_helps: bool = False) -> None:
        super().__init__(message, hint)
        self.ram_budget_helps = ram_budget_helps


class Cancelled(Exception):
    """A long operation stopped because its caller asked it to."""
