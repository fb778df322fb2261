"""Which errors are a memory running out: the GPU's (torch's OutOfMemoryError, or a CUDA library's "out of memory"
raised as a plain RuntimeError) or the computer's RAM (MemoryError, or torch's CPU allocator failing)."""

from __future__ import annotations

import torch


def gpu_ran_out(exc: BaseException) -> bool:
    """Whether ``exc`` is the GPU's memory running out: torch's caching allocator (``torch.OutOfMemoryError``), or
    CUDA itself where a library's workspace or a context could not be had (a RuntimeError, e.g. torch's
    AcceleratorError, "CUDA error: out of memory")."""
    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "CUDA error: out of memory" in str(exc))


def ram_ran_out(exc: BaseException) -> bool:
    """Whether ``exc`` is the computer running out of RAM: Python's MemoryError, or torch's CPU allocator failing
    (a RuntimeError: "DefaultCPUAllocator: can't allocate memory", "... not enough memory" on Windows)."""
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "DefaultCPUAllocator" in str(exc))
