"""The unfinished quantize runs in a folder (their parts folders, ``gpu.streaming.parts_folder``): listed, each with
its size, date, finished blocks and whether a run resumes from it (``gpu.streaming.resume``), and deleted on request
under the output's lock (the Quantize wizard's Unfinished runs…)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpu.atomic import remove_stale_temps
from gpu.errors import OutputBusy, OutputError, named_few
from gpu.os_errors import os_error_of, own_remedy
from gpu.output_lock import output_lock
from gpu.streaming.disk_space import folder_usage, unpublished_bytes
from gpu.streaming.parts_folder import PARTS_SUFFIX, blocks_kept, delete_parts, foreign_entries, not_a_folder
from gpu.streaming.resume import ResumeKey, differs_from, resumes_from


@dataclass(frozen=True)
class UnfinishedRun:
    """The parts folder of a run that did not finish (stopped, failed or killed), as ``unfinished_runs`` lists it."""

    parts: Path
    size_bytes: int  # its files, spilled block inputs included, and a model file it was killed writing
    modified: float  # when it was last written, in seconds since the epoch
    blocks_done: int  # the finished blocks its manifest records
    resumes: bool | None  # whether a run with the resume key ``unfinished_runs`` was given resumes from it
    differs: str  # else what differs, in words ("rank 8 -> 16"); "" when it resumes or without a key

    @property
    def output(self) -> Path:
        """The model file the run writes."""
        return output_of(self.parts)


def output_of(parts: Path) -> Path:
    """The model file whose run keeps its parts in the folder ``parts`` (``parts_dir(out)``)."""
    return parts.with_name(parts.name[: -len(PARTS_SUFFIX)])


def unfinished_runs(folder: Path, key: ResumeKey | None = None) -> list[UnfinishedRun]:
    """The parts folders in ``folder`` (``<name>.safetensors.parts``), the newest first, each with whether a run
    with ``key`` resumes from it (``resumes_from``; None without a key). What is no folder of the engine's (a file
    or link of that name, a folder holding the user's files) is not listed: ``delete_unfinished_run`` refuses it."""
    runs = []
    for parts in sorted(folder.glob(f"*.safetensors{PARTS_SUFFIX}")):
        try:
            if not_a_folder(parts) or not parts.is_dir() or foreign_entries(parts):
                continue
        except OutputError:  # unreadable
            continue
        size, modified = folder_usage(parts)
        size += unpublished_bytes(output_of(parts))  # deleted with it
        resumes = None if key is None else resumes_from(parts, key) is True
        differs = differs_from(parts, key) if key is not None and not resumes else ""
        runs.append(UnfinishedRun(parts, size, modified, blocks_kept(parts), resumes, differs))
    return sorted(runs, key=lambda run: run.modified, reverse=True)


def delete_unfinished_run(parts: Path) -> None:
    """Deletes the parts folder ``parts`` (``parts_dir(out)``) of a run that does not work now (the errors say why
    not, for a caller that says it was not deleted: ``app.quantize_outputs.not_deleted``); the model file
    ``out`` (a finished model of that name) is never touched. ``OutputBusy`` while a run, in this process or
    another, holds ``out``'s lock (``quantize_model``); ``OutputError`` for what is no parts folder of the
    engine's: a file or link of that name, a folder holding files the engine does not write there; and for a folder
    that cannot be changed (``_folder_unchanged``: read-only, its rights). With the folder goes the model file the
    run was killed writing, if it was (``gpu.atomic.stale_temps``: hidden beside ``out``, as big as the model)."""
    if not parts.name.endswith(f".safetensors{PARTS_SUFFIX}"):
        raise OutputError(f"{parts} is not the folder of an unfinished quantize run")
    try:
        out = output_of(parts)
        with output_lock(out, "quantize run"):
            if not (parts.exists() or parts.is_symlink()):
                return  # deleted meanwhile (another window, the run it belonged to finished)
            if not_a_folder(parts):
                raise OutputError(f"{parts} is not a folder of the quantizer's")
            foreign = foreign_entries(parts)
            if foreign:
                raise OutputError(f"{parts} holds files the quantizer did not write ({named_few(foreign)})",
                                  "move them elsewhere first")  # fmt: skip
            left = delete_parts(parts)  # a file saved since that look stays, with the folder
            if left is not None:
                hint = "" if left.not_a_folder else "delete it yourself" if not left.foreign else "move them elsewhere"
                raise OutputError(left.words(), hint)
            # The model file the run was killed writing (as big as the model, hidden beside it), of no use without
            # the parts: it stayed in the models folder for good. Its writer is dead: the lock is held here.
            remove_stale_temps(out)
    except OutputBusy as busy:
        raise OutputBusy(str(busy), "wait for that run to end, or stop it") from None
    except OutputError as err:
        # The lock beside the model file could not be made (a drive mounted read-only): it said "cannot write
        # <model>.safetensors" and "choose a folder you can write to", of a deletion that writes no model
        os_err = os_error_of(err.__cause__) if err.__cause__ is not None else None
        if os_err is None:
            raise
        raise _folder_unchanged(parts, os_err) from err
    except OSError as err:  # the folder listed, then unreadable: its rights, a drive gone
        raise _folder_unchanged(parts, err) from err


def _folder_unchanged(parts: Path, err: OSError) -> OutputError:
    """Why ``parts`` was not deleted when its folder cannot be changed (``err``), and what to do."""
    reason, hint = own_remedy(err) or (err.strerror or str(err), "make it a folder you can write to (a drive "
                                       "mounted read-only: mount it writable again; or its permissions)")  # fmt: skip
    return OutputError(f"{parts.parent} cannot be changed: {reason}", hint)
