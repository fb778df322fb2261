"""What the LoRA panel reads of a LoRA file: its stamp (size and modification time) and its safetensors header
alone (trigger words, info line, the text encoders it changes, the shapes a model must fit), or why no job could
apply it, and what kind of file it is then. The engine reads and checks the weights when it applies them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from gpu.lora.metadata import file_stamp
from gpu.paths import named_path
from gpu.paths import resolved as resolve_path

if TYPE_CHECKING:
    from gpu.lora.fit import TargetShape


def read_stamp(path: Path) -> tuple[int, int] | None:
    """``file_stamp`` (as the engine's LoRA manager tells a changed file), None when it cannot look."""
    try:
        return file_stamp(path)
    except (OSError, ValueError):
        return None


class LoraHeader(NamedTuple):
    """What ``read_header`` found. ``problem``: "" when the file reads, else why no job could apply it (``info``
    then says it too); ``missing``: that problem is that nothing is there (moved, a drive not plugged in), which a
    start-up says in words of its own; ``kind``: what the file is, where it is no usable FLUX.1 LoRA, by which
    a folder's reading counts the files it skips (``UNREADABLE``, ``NOT_LORA``, ``UNUSABLE``, or the family of
    the other model a LoRA is for)."""

    words: str
    info: str
    problem: str = ""
    missing: bool = False
    text_encoders: tuple[str, ...] = ()
    kind: str = ""
    targets: tuple[TargetShape, ...] = ()  # what a model must take and give to fit it (``gpu.lora.fit``)


# What a file that is no usable FLUX.1 LoRA is (``LoraHeader.kind``), beside another model's LoRA
UNREADABLE = "unreadable"  # cannot be read, or no safetensors file (damaged, a pickle, a folder, gone)
NOT_LORA = "not a LoRA"  # safetensors without LoRA weights: a checkpoint, a VAE, an embedding
UNUSABLE = "unusable"  # a LoRA this app cannot apply (keys not understood, a variant, wrong shapes)


def read_header(path: Path) -> LoraHeader:
    """Trigger words, info line and problem from the safetensors header alone, read once: why ``path`` is no LoRA
    file the engine could apply, if it is none (gone, unreadable, or no FLUX.1 LoRA: another model's, keys not
    understood; a folder now where the file was), which every job would refuse."""
    from gpu.errors import FileProblem, UserError
    from gpu.lora.keys import LoraError
    from gpu.lora.metadata import header_summary

    try:
        found = path.is_file()
        folder = not found and path.is_dir()
    except OSError as err:  # EACCES on a folder on the way: is_file raises it rather than say False
        problem = f"the file cannot be read ({err.strerror or err}): check that you may read it and its folders"
        return LoraHeader("", problem, problem, kind=UNREADABLE)
    if folder:  # is_file says False for it too: it was reported as missing while it is right there
        problem = "it is a folder, not a LoRA file"
        return LoraHeader("", problem, problem, kind=UNREADABLE)
    if not found:
        problem = f"file not found: {path}"
        return LoraHeader("", problem, problem, missing=True, kind=UNREADABLE)
    try:
        summary = header_summary(path)
    except UserError as err:
        # the engine's words without the file's name, which the panel says its own way (by its path): as the error
        # gives them apart, never cut off its message
        problem = err.problem if isinstance(err, (FileProblem, LoraError)) else str(err)
        return LoraHeader("", problem, problem, kind=_kind(err))
    return LoraHeader(", ".join(summary.words), summary.info, text_encoders=summary.text_encoders,
                      targets=summary.targets)  # fmt: skip


def _kind(err: Exception) -> str:
    """``LoraHeader.kind`` of a file ``header_summary`` refused with ``err``."""
    from gpu.lora.keys import LoraError

    if not isinstance(err, LoraError):  # CheckpointError: no safetensors file (a pickle, truncated, corrupt)
        return UNREADABLE
    if not err.weights:  # a model's weights, whatever family its keys suggest, are no LoRA
        return NOT_LORA
    return err.family or UNUSABLE


class FileRead(NamedTuple):
    """A file's stamp (``read_stamp``) and its header (``read_header``), taken in that order: a change in
    between is seen at the next look (``LoraState.refresh``), never taken for the version read; the file it is
    (its path resolved: ``LoraEntry.resolved``); and the path its row is named by (``named_path``: its folders
    resolved, its own name kept), looked up with the rest, off the window's thread where the file is read there."""

    stamp: tuple[int, int] | None
    header: LoraHeader
    resolved: Path
    named: Path


def read_file(path: Path) -> FileRead:
    """``path``'s stamp, then its header, the path resolved, and named (``FileRead``)."""
    return FileRead(read_stamp(path), read_header(path), resolve_path(path), named_path(path))
