"""Turns any exception from the engine into plain words for a dialog: what happened and what to try."""

from __future__ import annotations

import errno
import gc
import sqlite3
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gpu.errors import with_hint


@dataclass(frozen=True)
class EngineError:
    kind: str  # "user" | "oom" | "internal" | "notice" (not an error: something the app repaired)
    message: str
    hint: str = ""
    kept_said: bool = False  # the message says what a stopped quantize run keeps (a full disk): no note after it

    @property
    def text(self) -> str:
        """Message and hint on one line, for a log or a label (``gpu.errors.with_hint``)."""
        return with_hint(self.message, self.hint)


class StartupRefused(Exception):
    """The app cannot start on this data folder (its database cannot be opened, another app has it open, its
    lock file cannot be made). ``run_app`` shows the message and hint as a fatal dialog and exits; nothing in
    the folder was changed."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint

    def as_error(self) -> EngineError:
        return EngineError("user", str(self), self.hint)

    def with_files(self, files: Sequence[Path]) -> EngineError:
        """The refusal of an app started with ``files`` to open: the refusal alone, but where the files' fate
        has more to say (``AlreadyRunning``: drop them on the app that is open)."""
        return self.as_error()


_SQLITE_FULL = 13  # primary result code ("database or disk is full"); literal for Python 3.10


def _is_oom(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def is_disk_full(exc: BaseException) -> bool:
    """No space left: an OS write error (ENOSPC, or the user's disk quota) or SQLite's SQLITE_FULL, raised as
    is or as the cause of another error (the engine wraps failed writes in its own ``OutputError``)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            return True
        if isinstance(current, sqlite3.Error):
            code = getattr(current, "sqlite_errorcode", None)  # Python 3.11+; the message before that
            full = (code & 0xFF) == _SQLITE_FULL if code is not None else "disk is full" in str(current).lower()
            if full:
                return True
        current = current.__cause__  # explicit wrapping only ("raise ... from"), not any error met on the way
    return False


def database_error(exc: BaseException, database: Path, images: Path) -> EngineError:
    """A finished job's images are on disk but their gallery rows could not be written. They are not lost:
    start-up reconciliation imports them from ``images`` once the database can be written again."""
    later = f"The images themselves are saved in {images}; they appear in the gallery at the next start."
    if is_disk_full(exc):
        return EngineError("user", f"The disk is full: the gallery database {database} could not be updated.",
                           f"Free some disk space. {later}")
    return EngineError("user", f"The gallery database {database} could not be updated: {exc}.",
                       f"Check that the disk is healthy and the folder writable, then restart the app. {later}")


def free_memory() -> None:
    """After an OOM: drop the failed job's tensors and hand cached GPU memory back to the driver."""
    gc.collect()
    torch = sys.modules.get("torch")  # only if the engine already imported it
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def classify(exc: BaseException) -> EngineError:
    from gpu.errors import OutOfMemory, UserError

    # The engine's own out-of-memory error (a job's, its model's loading, a quantize run's): its message says which
    # memory ran out and what for; what the failed work kept is freed
    if isinstance(exc, OutOfMemory):
        free_memory()
        return EngineError("oom", str(exc), exc.hint)
    if isinstance(exc, UserError):
        return EngineError("user", str(exc), exc.hint, kept_said=getattr(exc, "kept_said", False))
    from gpu.torch_check import from_importing_torch, torch_unusable

    if from_importing_torch(exc):  # a file check or a quantize run the first to import a broken torch
        return classify(torch_unusable(exc))
    if _is_oom(exc):
        free_memory()
        return EngineError(
            "oom",
            "The GPU ran out of memory while generating.",
            "Try a smaller size (for example 512×512), fewer images per batch, or a 4-bit model; "
            "close other programs that use the GPU.",
        )
    from gpu.out_of_memory import ram_ran_out

    if ram_ran_out(exc):  # MemoryError, or torch's CPU allocator (a RuntimeError that names no "out of memory")
        free_memory()
        return EngineError("oom", "The computer ran out of memory (RAM).",
                           "Close other programs, pick a smaller size or a 4-bit model.")
    if is_disk_full(exc):  # after UserError: the engine's own messages already name their file
        where = getattr(exc, "filename", None) or "the file"
        return EngineError("user", f"Not enough disk space to save {where}.",
                           "Free some space on that disk (or start the app with another data folder, "
                           "--data-dir PATH), then try again.")
    if isinstance(exc, FileNotFoundError):
        return EngineError("user", f"A file is missing: {exc.filename or exc}",
                           "Check that the model folder or file still exists, or remove it from the library.")
    return EngineError("internal", f"Something went wrong: {type(exc).__name__}: {exc}",
                       "Try again; if it keeps happening, restart the app and report the message above.")
