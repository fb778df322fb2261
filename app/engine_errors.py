"""Turns any exception from the engine into plain words for a dialog: what happened and what to try."""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class EngineError:
    kind: str  # "user" | "oom" | "internal"
    message: str
    hint: str = ""


def _is_oom(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def free_memory() -> None:
    """After an OOM: drop the failed job's tensors and hand cached GPU memory back to the driver."""
    gc.collect()
    torch = sys.modules.get("torch")  # only if the engine already imported it
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def classify(exc: BaseException) -> EngineError:
    from gpu.errors import UserError

    if isinstance(exc, UserError):
        return EngineError("user", str(exc), exc.hint)
    if _is_oom(exc):
        free_memory()
        return EngineError(
            "oom",
            "The GPU ran out of memory while generating.",
            "Try a smaller size (for example 512×512), fewer images per batch, or a 4-bit model; "
            "close other programs that use the GPU.",
        )
    if isinstance(exc, MemoryError):
        free_memory()
        return EngineError("oom", "The computer ran out of memory (RAM).",
                           "Close other programs, pick a smaller size or a 4-bit model.")
    if isinstance(exc, FileNotFoundError):
        return EngineError("user", f"A file is missing: {exc.filename or exc}",
                           "Check that the model folder or file still exists, or remove it from the library.")
    return EngineError("internal", f"Something went wrong: {type(exc).__name__}: {exc}",
                       "Try again; if it keeps happening, restart the app and report the message above.")
