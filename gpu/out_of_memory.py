"""Which errors are a memory running out: the GPU's (torch's OutOfMemoryError, or a CUDA library's "out of memory"
raised as a plain RuntimeError) or the computer's RAM (MemoryError, or torch's CPU allocator failing).

Torch-free: the app words every engine error with these, a torch that cannot be imported among them."""

from __future__ import annotations

import sys


def gpu_ran_out(exc: BaseException) -> bool:
    """Whether ``exc`` is the GPU's memory running out: torch's caching allocator (``torch.OutOfMemoryError``), or
    CUDA itself where a library's workspace or a context could not be had (a RuntimeError, e.g. torch's
    AcceleratorError, "CUDA error: out of memory")."""
    torch = sys.modules.get("torch")  # not imported (or not importable): no torch error can have been raised
    out_of_memory = getattr(torch, "OutOfMemoryError", None)
    return (out_of_memory is not None and isinstance(exc, out_of_memory)) or (
        isinstance(exc, RuntimeError) and "CUDA error: out of memory" in str(exc))


def ram_ran_out(exc: BaseException) -> bool:
    """Whether ``exc`` is the computer running out of RAM: Python's MemoryError, or torch's CPU allocator failing
    (a RuntimeError: "DefaultCPUAllocator: can't allocate memory", "... not enough memory" on Windows)."""
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "DefaultCPUAllocator" in str(exc))
