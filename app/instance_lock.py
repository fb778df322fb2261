"""One app per data folder: a second instance would overwrite the first one's ``settings.json`` on exit (prompt
panel, LoRA list, layout), never see its new images or deletions, and load a second engine into the same memory.

``QLockFile`` holds ``nibble.lock`` in the data folder while the window is open. A lock left by a process that
died (killed, crashed) is taken over at once: it names a process that no longer runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QLockFile

from app.data_dir import DataDir
from app.engine_errors import EngineError, StartupRefused
from gpu.errors import named_few


class AlreadyRunning(StartupRefused):
    """Another Nibble Studio has this data folder open; the app does not start a second one on it."""

    def __init__(self, folder: Path, lock_file: Path, owner: str) -> None:
        """``owner``: " (process PID on HOST)" of the app that holds ``lock_file``, "" when it cannot be read."""
        super().__init__(
            f"Nibble Studio is already running with the data folder {folder}{owner}. A second window on the "
            "same gallery would overwrite its settings and miss its new images.",
            _hint("Switch to the Nibble Studio window that is open", lock_file, "start again"))
        self.folder = folder
        self.lock_file = lock_file

    def with_files(self, files: Sequence[Path]) -> EngineError:
        """The refusal of an app started with ``files`` to open (images dropped on the executable, "Open with")
        while the one open has the folder: the refusal (its owner, the other data folder, the stale lock's remedy)
        and what became of the images, and where to drop them instead (the refusal alone read as if the images had
        been lost). The general refusal where there are none."""
        if not files:
            return self.as_error()
        one = len(files) == 1
        images = "image" if one else "images"
        names = named_few([repr(f.name) for f in files])
        return EngineError(
            "user", f"{self} The {images} {names} {'was' if one else 'were'} not opened in a second window.",
            _hint(f"Drop the {images} on the prompt panel of the Nibble Studio window that is open to restore the "
                  "settings", self.lock_file, f"open the {images} again"))  # fmt: skip


def _hint(first: str, lock_file: Path, again: str) -> str:
    """The remedies for a data folder another app holds: ``first`` (what to do in the window open), another data
    folder, and where the lock is stale (no app runs: a crash the lock's check did not see), deleting ``lock_file``
    and ``again``."""
    return (f"{first}, or start this one with another data folder (--data-dir PATH). If no Nibble Studio is "
            f"running, delete {lock_file} and {again}.")


class LockUnavailable(StartupRefused):
    """The lock file cannot be created (a read-only data folder, a full disk): without it a second app could
    open the folder unseen, so this one does not start."""


def lock_data_dir(data: DataDir) -> QLockFile:
    path = data.root / "nibble.lock"
    lock = QLockFile(str(path))
    lock.setStaleLockTime(0)  # stale only when its process is gone, however long the first window stays open
    if lock.tryLock(0):
        return lock
    if lock.error() == QLockFile.LockError.LockFailedError:
        ok, pid, host, _app = _owner(lock)
        who = f" (process {pid} on {host})" if ok else ""
        raise AlreadyRunning(data.root, path, who)
    raise LockUnavailable(f"The lock file {path} cannot be created in the data folder {data.root}.",
                          f"Check that the folder {data.root} is writable and its disk is not full; or start "
                          "Nibble Studio with another data folder (--data-dir PATH).")


def _owner(lock: QLockFile) -> tuple[bool, int, str, str]:
    info = lock.getLockInfo()  # PySide6: (pid, hostname, appname), or False when unreadable
    if isinstance(info, tuple) and len(info) == 3:
        return True, int(info[0]), str(info[1]), str(info[2])
    return False, 0, "", ""
