"""A quantize run's memory: what it is doing now (``RunStage``), memory running out said in a quantize run's words
(``quantize_out_of_memory``, ``over_budget``), its GPU memory budget held for its duration (``gpu_memory_budget``),
and garbage collected once a block or the text encoders are freed (``release``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from gpu.errors import BadRequestError, QuantizeOutOfMemory
from gpu.out_of_memory import gpu_ran_out, ram_ran_out
from gpu.runtime.memory_policy import amount
from gpu.system_info import cuda_index, installed_ram_bytes, memory_fraction


@dataclass
class RunStage:
    """What a quantize run is doing now, for an out-of-memory error to say (``quantize_out_of_memory``)."""

    doing: str = "reading the model"  # "while <doing>"
    # Whether a smaller RAM budget makes this step keep less in RAM: the block inputs, which then go to disk
    ram_budget_helps: bool = False


def quantize_out_of_memory(exc: BaseException, stage: RunStage) -> QuantizeOutOfMemory | None:
    """``exc``, the GPU (``gpu_ran_out``) or the RAM (``ram_ran_out``) running out during a quantize run
    at ``stage``, in words for quantizing: which memory, while doing what, how much there is, and the remedies a run
    has. Said as a job's, it sent the user to a smaller image size and fewer images per batch. None for any other
    error."""
    if gpu_ran_out(exc):
        return QuantizeOutOfMemory(f"the GPU ran out of memory while {stage.doing}{_gpu_has()}",
                                   "close other programs that use the GPU, then run again; if none does, this GPU is "
                                   "too small for that step of quantizing this model")  # fmt: skip
    if not ram_ran_out(exc):
        return None
    ram = installed_ram_bytes()
    has = f" (this computer has {amount(ram)})" if ram else ""
    if stage.ram_budget_helps:
        hint = ("give the run a smaller RAM budget, so that the block inputs it keeps go to disk instead, or close "
                "other programs; then run again")  # fmt: skip
    else:
        hint = ("close other programs, then run again; if that does not help, this computer has too little RAM for "
                "that step of quantizing this model")  # fmt: skip
    return QuantizeOutOfMemory(f"the computer ran out of memory (RAM) while {stage.doing}{has}", hint,
                               ram_budget_helps=stage.ram_budget_helps)  # fmt: skip


def _gpu_has() -> str:
    """What the current CUDA device holds, for an out-of-memory sentence: " (it has 79.2 GiB)", or, where this
    process may use only part of it (``set_per_process_memory_fraction`` set before the run, as an app embedding the
    engine may), " (it has 79.2 GiB, of which this program may use 16 GiB)": the card's size alone hid that the cap
    was the limit. "" where torch cannot say."""
    try:
        index = torch.cuda.current_device()
        total = int(torch.cuda.get_device_properties(index).total_memory)
    except (RuntimeError, AssertionError, AttributeError):  # no CUDA here (a CPU build, a broken driver)
        return ""
    fraction = memory_fraction(index)
    if fraction < 1.0:
        return f" (it has {amount(total)}, of which this program may use {amount(int(total * fraction))})"
    return f" (it has {amount(total)})"


@contextmanager
def gpu_memory_budget(device: torch.device, budget_gib: float) -> Iterator[bool]:
    """Holds the run's GPU memory to ``budget_gib`` on a CUDA ``device`` (the caching allocator's
    ``set_per_process_memory_fraction``; a smaller fraction already in force stays, and the one before comes back
    after): the budget was a setting of the wizard that nothing read. Yields whether the budget is the limit (less
    than the card, or a cap already in force), for ``over_budget``."""
    if device.type != "cuda":
        yield False
        return
    index = cuda_index(device)
    total = torch.cuda.get_device_properties(index).total_memory
    before = memory_fraction(index)
    fraction = budget_gib * 2**30 / total
    torch.cuda.set_per_process_memory_fraction(min(before, fraction), index)
    try:
        yield fraction < before  # else the card (or a cap already in force) is the limit
    finally:
        torch.cuda.set_per_process_memory_fraction(before, index)


def over_budget(exc: BaseException, capped: bool, budget_gib: float) -> BadRequestError | None:
    """A run that needed more GPU memory than its budget, where the budget was the limit (``capped``), said as the
    budget: not an out-of-memory error from deep inside a layer. None for any other error, or where a larger budget
    cannot help (the GPU itself is full: ``quantize_out_of_memory``)."""
    if not (capped and gpu_ran_out(exc)):
        return None
    return BadRequestError(f"the run needs more GPU memory than its budget of {budget_gib:g} GiB",
                           "give it a larger GPU memory budget (--gpu-budget GIB, or the Quantize wizard's calibration "
                           "page), or close other programs that use the GPU")  # fmt: skip


# A full garbage collection walks every Python object: 0.25 s of CPU and more with diffusers and transformers
# loaded, once per block. It returns what reference cycles hold of a freed block or text encoder before the next
# one loads, which matters on the GPU and for FLUX's blocks (~0.3 GiB each) and encoders (~10 GiB); for a small
# model's blocks of a few MiB it is a needless cost (the tiny test FLUX: ~1.5 s of a run's ~18 s of CPU).
GC_MIN_BYTES = 64 * 2**20


def release(freed_bytes: int, device: torch.device) -> None:
    """Collects garbage after ``freed_bytes`` were dropped, where that is worth its cost (``GC_MIN_BYTES``)."""
    if device.type == "cuda" or freed_bytes >= GC_MIN_BYTES:
        gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
