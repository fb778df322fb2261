"""The disk space a quantize run still needs in its output's folder, checked before it starts, and a disk that
fills up while it writes, said as such.

Beside its output a run writes the calibration samples, one file per finished block (kept until the model file is
written and verified), the block inputs spilled to disk when they exceed the RAM budget (two sets at a time,
deleted after the last block, before the model file is written), and the model file itself."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from gpu.atomic import stale_temps
from gpu.checkpoint.skeleton import replace_linears
from gpu.errors import OutputError
from gpu.modules.layer_spec import spec_for
from gpu.os_errors import os_error_of
from gpu.runtime.memory_policy import amount

if TYPE_CHECKING:  # imported, gpu.quantizer's package would import the engine, which imports this module
    from gpu.quantizer.config import QuantizeConfig

# Safetensors' header: a JSON entry per tensor (name, dtype, shape, offsets), and the SVDQ metadata per quantized
# layer (its spec, alpha, error, ...); both are a small share of a real model, but most of a tiny test model.
HEADER_PER_TENSOR = 96
_HEADER_PER_LAYER = 512
_HEADER_FIXED = 64 * 2**10  # the model's config, calibration, base pipeline record, ...
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


@dataclass(frozen=True)
class SpaceNeeded:
    """Bytes a run still writes into its output's folder."""

    model: int  # the model file, written while the blocks' files are still there
    blocks: int  # the files of the blocks not finished yet
    samples: int  # the calibration samples' file, when they are still to be recorded
    spill: int  # the block inputs spilled to disk, at their peak (two sets); 0 when they fit the RAM budget

    @property
    def total(self) -> int:
        """The peak: the spilled inputs are gone before the model file is written."""
        return self.samples + self.blocks + max(self.spill, self.model)


class DiskSpaceError(OutputError):
    """Not enough free disk space for a run, found before it starts, or a disk that filled up while it wrote.
    Raised from an ENOSPC ``OSError``, so that callers telling a full disk by its errno (the app) tell this one.

    ``kept_said``: the message already says what the run keeps for the next one (``disk_full_said``), so a caller
    that adds its own note of the parts folder after a failure (the command line, the wizard) leaves it out: the
    same blocks were said twice, one line after the other."""

    def __init__(self, message: str, hint: str = "", *, kept_said: bool = False) -> None:
        super().__init__(message, hint)
        self.kept_said = kept_said


def block_bytes(block: nn.Module, targets: dict[str, tuple[nn.Linear, str]], config: QuantizeConfig,
                storage: torch.dtype) -> int:  # fmt: skip
    """Bytes a block takes in the model file (and in its own shard) once quantized with ``config``: ``block`` is
    a meta-device block under its checkpoint names (changed in place), ``targets`` its quantizable linears (name ->
    (linear, adapter role)). Each quantized linear counts as the ``SVDQLinear`` that loads it holds it (as
    ``gpu.quantizer.shared.quantize_layers`` picks its spec), every other tensor at ``storage``."""
    specs = {name: spec_for(config.method, config.precision, config.rank, role) for name, (_m, role) in targets.items()}
    with torch.device("meta"):
        nn.Module.to(block, storage)
        replace_linears(block, specs, storage)
    tensors = block.state_dict()
    return sum(t.nbytes + HEADER_PER_TENSOR + len(k) for k, t in tensors.items()) + _HEADER_PER_LAYER * len(specs)


def head_bytes(head: nn.Module, storage: torch.dtype) -> int:
    """Bytes the tensors outside the blocks take in the model file: floating point ones at ``storage``."""
    size = torch.empty((), dtype=storage).element_size()
    return _HEADER_FIXED + sum((t.numel() * size if t.is_floating_point() else t.nbytes) + HEADER_PER_TENSOR + len(k)
                               for k, t in head.state_dict().items())  # fmt: skip


def folder_usage(folder: Path) -> tuple[int, float]:
    """(bytes of the files under ``folder``, when the newest of them or the folder itself was last written, in
    seconds since the epoch); (0, 0.0) when there is no such folder. Links are not followed."""
    total, newest = 0, 0.0
    for root, _dirs, files in os.walk(folder):
        for path in (root, *(os.path.join(root, name) for name in files)):
            try:
                st = os.lstat(path)
            except OSError:  # gone meanwhile
                continue
            total += st.st_size if path != root else 0
            newest = max(newest, st.st_mtime)
    return total, newest


def unpublished_bytes(out_path: Path) -> int:
    """Bytes of what a run killed while it wrote the model file ``out_path`` left beside it (``stale_temps``: the
    file in its scratch folder, as big as the model), which the next run on ``out_path`` deletes before it writes,
    and the deletion of the unfinished run with its parts folder (``gpu.streaming.unfinished``)."""
    return sum(folder_usage(p)[0] if p.is_dir() else _file_size(p) for p in stale_temps(out_path))


def _file_size(path: Path) -> int:
    """The size of the file ``path`` by ``lstat``; 0 once it is gone."""
    try:
        return path.lstat().st_size
    except FileNotFoundError:
        return 0


# What a run deletes before it writes, said with the space that frees (``check_free_space``).
STALE_PARTS = "deleting the old unfinished run, made with other settings"


def check_free_space(folder: Path, need: SpaceNeeded, freed: int = 0, freed_by: str = STALE_PARTS) -> None:
    """``DiskSpaceError`` naming ``folder``, the GiB needed (and what they are, as they add up) and the GiB free
    when the run's ``need`` exceeds the free space of ``folder``'s disk plus ``freed``: what the run deletes before
    it writes (``freed_by``, in words: an earlier run's parts made with other settings). The free space is said as
    the disk has it (what ``df`` says), what the deletion frees apart."""
    free = shutil.disk_usage(folder).free
    if need.total <= free + freed:
        return
    raise DiskSpaceError(
        f"not enough free disk space in {folder}: the run needs about {amount(need.total)} there ({_counted(need)}), "
        f"and {amount(free)} is free{f' (+{amount(freed)} freed by {freed_by})' if freed else ''}",
        "free some space on that disk, or choose another folder (--out)",
    ) from OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _counted(need: SpaceNeeded) -> str:
    """``need.total`` as it is counted, in words: samples + blocks + the larger of the spill and the model file."""
    terms = [f"{amount(need.samples)} of calibration samples"] if need.samples else []
    terms += [f"{amount(need.blocks)} of blocks still to quantize"] if need.blocks else []
    spilled = f"{amount(need.spill)} of block inputs spilled to disk under the RAM budget"
    if need.spill > need.model:
        terms.append(f"{spilled}, deleted before the {amount(need.model)} model file is written")
    else:
        terms.append(f"a {amount(need.model)} model file" + (f", written once the {spilled} are deleted" if need.spill
                                                              else ""))  # fmt: skip
    kept = " and ".join(what for what, n in (("samples", need.samples), ("blocks", need.blocks)) if n)
    return " + ".join(terms) + (f"; the {kept} stay until the model file is written" if kept else "")


@contextmanager
def disk_full_said(folder: Path, kept: Callable[[], str], resume: bool = True) -> Iterator[None]:
    """A write in the block that fails for a full disk becomes a ``DiskSpaceError`` saying so, naming ``folder``
    (the output's) and, in ``kept()``'s words, what the run keeps for the next one to resume from ("" when
    nothing); other errors pass as they are. Its hint agrees: it sends the user to resume only from what is kept,
    and, ``resume`` False (``QuantizeConfig.resume``: the run was asked to start over), with the command without
    --no-resume, since the same command starts over again. A write raised by safetensors carries its OS error only
    in its text, which callers telling a full disk by its errno did not see: the wizard told the user to make the
    folder writable."""
    try:
        yield
    except DiskSpaceError:
        raise
    except (OutputError, OSError) as exc:
        cause = exc.__cause__ if isinstance(exc, OutputError) else exc
        os_err = os_error_of(cause) if cause is not None else None
        if os_err is None or os_err.errno not in _FULL:
            raise
        try:
            free = f" ({amount(shutil.disk_usage(folder).free)} free there)"
        except OSError:
            free = ""
        words = str(exc) if isinstance(exc, OutputError) else f"cannot write in {folder}: {os_err.strerror}"
        what = kept()
        if not what:
            again = "run again"
        elif resume:
            again = "run again: the run resumes from what is kept"
        else:
            again = "run the same command again without --no-resume: it resumes from what is kept"
        raise DiskSpaceError(f"the disk holding {folder} is full{free}: {words}{what}",
                             f"free some space on that disk, then {again}",
                             kept_said=bool(what)) from os_err  # fmt: skip
