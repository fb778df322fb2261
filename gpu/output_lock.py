"""An exclusive, per-output lock between processes, for long writers of one file (the quantizer): a second run
on the same output would otherwise resume, overwrite and delete the first one's parts while it works.

The lock is the operating system's (``flock`` on POSIX, ``LockFileEx`` through ``msvcrt`` on Windows) on a small
file ``.<name>.lock`` beside the output, so it disappears with the process that held it: a killed run leaves
no stale lock, only the small file, which the next holder reuses and removes.

The lock file needs the output's folder, so a missing one is created; the folders this lock created are removed
again on release when they are still empty (a run refused for its source or its settings wrote nothing, and
must not leave a new empty folder tree behind)."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from gpu.atomic import make_folders, missing_folders, output_errors, remove_empty_folders
from gpu.errors import OutputBusy

_NO_LOCKS_HERE = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}  # flock on a file system without it
_WINDOWS_LOCK_OFFSET = 1 << 20  # Windows locks bytes, and a locked byte cannot be read: lock one past the pid


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


@contextlib.contextmanager
def output_lock(target: Path | str, what: str = "run", windows: bool = os.name == "nt") -> Iterator[None]:
    """Holds the lock on ``target`` for the block; ``OutputError`` naming the holder's process if another
    process holds it. ``what`` names the holder in that message ("another quantize run")."""
    target = Path(target)
    path = lock_path(target)
    created = missing_folders(target.parent)
    try:
        with output_errors(target):
            make_folders(created)  # as atomic writes make them: pathlib's mkdir(parents=True) recurses per level
            fd = _acquire(path, target, what)
    except BaseException:
        remove_empty_folders(created)
        raise
    try:
        yield
    finally:
        _release(fd, path, windows)
        remove_empty_folders(created)  # one holding the output, or parts to resume from, stays


def _release(fd: int, path: Path, windows: bool) -> None:
    """Closes ``fd`` (which releases the lock) and removes the lock file, in the order each system allows."""
    if windows:
        # Windows does not remove an open file, so the file closes first; a next holder that opened it in
        # between keeps it (the unlink fails, harmlessly), as the next holder reuses a killed run's file. It was
        # unlinked while open: every run left a visible ".<name>.lock" (a dot does not hide it there), and a
        # refused run the new output folder the docstring promises to remove.
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
    else:  # unlinked while held, so a waiting opener finds its file gone (``_acquire``) and makes a new one
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _acquire(path: Path, target: Path, what: str) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            locked = _try_lock(fd)
        except BaseException:
            os.close(fd)
            raise
        if not locked:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputBusy(f"{target} is being written by another {what} (process {holder})",
                              "wait for it to finish, or choose another output file")  # fmt: skip
        try:  # a holder that finished unlinked the file between our open and our lock: lock the new one
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            return fd
        os.close(fd)


if os.name == "nt":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as err:
            if err.errno not in _NO_LOCKS_HERE:
                raise
            return True  # a file system without locks (some network mounts): the run goes on unguarded
        return True

