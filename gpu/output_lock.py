"""An exclusive, per-output lock between processes, for long writers of one file (the quantizer): a second run
on the same output would otherwise resume, overwrite and delete the first one's parts while it works.

The lock is the operating system's (``flock`` on POSIX, ``LockFileEx`` through ``msvcrt`` on Windows) on a small
file ``.<name>.lock`` beside the output, so it disappears with the process that held it: a killed run leaves
no stale lock, only the small file, which the next holder reuses and removes.

The lock file needs the output's folder, so a missing one is created; the folders this lock created are removed
again on release when they are still empty (a run refused for its source or its settings wrote nothing, and
must not leave a new empty folder tree behind).

A run's output is chosen by name before the run starts (the Quantize wizard's first free name): ``claim_first_free``
takes the lock of the name it chooses in the same step, and hands it over (``OutputClaim``) for the run to hold
until it ends (``output_lock(target, claim=...)``). Chosen first and locked only by the run, two choosers (two
wizards, or a wizard and a ``main.py quantize`` run still recording its samples) took one free name, and two runs
one output and parts folder.

Claims inside one process exclude each other whatever the file system (``_claimed``): where it has no locks
(some network mounts, where the lock runs unguarded), two wizards of one app could otherwise claim one name, and
one's release remove the other's lock file. Between processes such a file system guards nothing."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from gpu.atomic import output_errors
from gpu.errors import OutputBusy
from gpu.output_folders import make_folders, missing_folders, remove_empty_folders
from gpu.paths import numbered_paths

_NO_LOCKS_HERE = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}  # flock on a file system without it
_WINDOWS_LOCK_OFFSET = 1 << 20  # Windows locks bytes, and a locked byte cannot be read: lock one past the pid
# Names claim_first gives up after, all busy: a drive whose locks always refuse (or a bug) would make a chooser
# walk numbered names without end, with a lock file for each (tens of thousands a second).
MAX_BUSY_NAMES = 100

# The lock files this process's claims hold (``_claim_key``), from before their lock is taken until after it is let
# go of. Reentrant: a claim let go of by the garbage collector (``OutputClaim``'s finalizer) may run on a thread
# that holds it already, inside ``claim_output``.
_claimed: set[str] = set()
_claimed_lock = threading.RLock()


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}.lock")


def _claim_key(target: Path) -> str:
    """``target``'s lock file as ``_claimed`` holds it: one spelling per file (a relative path, Windows' case)."""
    return os.path.normcase(os.path.abspath(lock_path(target)))


class OutputClaim:
    """The lock on the output ``target`` (``output_lock``'s), held from ``claim_output`` until ``release``: by a
    run's chooser of its name first, then by the run (``output_lock(target, claim=...)``). A claim no one releases
    is let go of when it is garbage collected, or as the process exits (a wizard dropped while it chose a name)."""

    def __init__(self, target: Path, fd: int, created: list[Path], windows: bool, key: str) -> None:
        self.target = target
        # ``key`` as the claim entered it in ``_claimed``: worked out again, a relative target after a chdir would
        # name another entry, and this one would refuse every later claim of the name in this process
        self._let_go = weakref.finalize(self, _let_go, fd, lock_path(target), created, windows, key)

    @property
    def held(self) -> bool:
        return self._let_go.alive

    def release(self) -> None:
        """Lets the lock go (once: a second call does nothing); the folders the claim made go too, while empty.
        Raises what closing the lock file raised (EIO on a network mount); the claim is let go of all the same."""
        self._let_go()

    def __enter__(self) -> OutputClaim:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def claim_output(target: Path | str, what: str = "run", windows: bool = os.name == "nt") -> OutputClaim:
    """Takes the lock on ``target`` and returns it held (``OutputClaim``); ``OutputBusy`` naming the holder's
    process where another holds it, in this process too (another run, or another chooser's claim). ``what`` names
    the holder in that message ("another quantize run")."""
    # Absolute once: the claim's entry, lock file and folders are let go of later, maybe after a chdir (another
    # thread's), and relative they named another folder's lock, which the release then removed while it was held
    target = Path(os.path.abspath(target))
    key = _claim_key(target)
    with _claimed_lock:
        if key in _claimed:  # another claim of this process: refused here, as the lock may not refuse it
            raise _busy(target, what, str(os.getpid()))
        _claimed.add(key)
    created: list[Path] = []
    try:
        created = missing_folders(target.parent)
        with output_errors(target):
            make_folders(created)  # as atomic writes make them: pathlib's mkdir(parents=True) recurses per level
            fd = _acquire(lock_path(target), target, what, windows)
    except BaseException:
        remove_empty_folders(created)
        _unclaim(key)
        raise
    return OutputClaim(target, fd, created, windows, key)


def claim_first(candidates: Iterable[Path], taken: Callable[[Path], bool], what: str = "run",
                on_busy: Callable[[OutputBusy], None] | None = None) -> OutputClaim | None:  # fmt: skip
    """The claim (``claim_output``) of the first of ``candidates`` that is not ``taken`` and that no one else
    holds; None when there is none. ``taken`` is asked again once the name is held: a run that held it until just
    before wrote its model or its parts there, and a chooser that looked before that would take that run's name.
    ``on_busy`` is told of each name passed over because another holds it (its ``OutputBusy``, naming the holder),
    for the caller to say why its name is another. After ``MAX_BUSY_NAMES`` names others hold, the last one's
    ``OutputBusy`` is raised (a drive whose locks always refuse), and the lock files and folders made for them are
    removed."""
    busy = 0
    made: list[Path] = []  # lock files, then folders, that the refused claims left behind
    for candidate in candidates:
        if taken(candidate):
            continue
        lock = lock_path(candidate)
        new = [lock] * (not os.path.lexists(lock)) + missing_folders(candidate.parent)
        try:
            claim = claim_output(candidate, what)
        except OutputBusy as held:  # a run works on it, or another chooser chose it: its run may not have started yet
            busy += 1
            made += [path for path in new if path not in made]
            if busy >= MAX_BUSY_NAMES:
                _remove_made(made)
                raise
            if on_busy is not None:
                on_busy(held)
            continue
        try:
            free = not taken(candidate)
        except BaseException:  # e.g. PermissionError from a look at the name: the claim must not outlive the choice
            claim.release()
            raise
        if free:
            return claim
        claim.release()
    return None


def _remove_made(made: list[Path]) -> None:
    """Removes the lock files ``claim_first`` made for names it did not take (none was there before it tried
    them), then the folders it made, while empty. Only once it gave up, as on a drive whose locks refuse every
    name: a real holder made its own file, and only one that made it between the look and the refusal loses it."""
    for path in made:
        if path.name.endswith(".lock"):
            with contextlib.suppress(OSError):
                os.unlink(path)
    remove_empty_folders(sorted({p for p in made if not p.name.endswith(".lock")}, key=lambda p: -len(p.parts)))


def claim_first_free(path: Path, taken: Callable[[Path], bool], what: str = "run",
                     on_busy: Callable[[OutputBusy], None] | None = None) -> OutputClaim:  # fmt: skip
    """``claim_first`` of ``path``, ``<stem>-2``, ``<stem>-3``, … (``numbered_paths``): a new output's name, held
    for its run from the moment it is chosen (``on_busy``: as ``claim_first``'s)."""
    claim = claim_first(numbered_paths(path), taken, what, on_busy)
    assert claim is not None  # numbered_paths has no end
    return claim


@contextlib.contextmanager
def output_lock(target: Path | str, what: str = "run", windows: bool = os.name == "nt",
                claim: OutputClaim | None = None) -> Iterator[None]:  # fmt: skip
    """Holds the lock on ``target`` for the block; ``OutputError`` naming the holder's process if another
    process holds it. ``what`` names the holder in that message ("another quantize run"). ``claim``: the lock
    the caller holds already (its chooser's, ``claim_first_free``), which the block uses and leaves held; taken
    again, it was refused as another's."""
    if claim is not None:
        if not claim.held or claim.target != Path(os.path.abspath(target)):
            raise ValueError(f"the claim of {claim.target} ({'held' if claim.held else 'released'}) is no lock "
                             f"on {target}")  # fmt: skip
        yield
        return
    with claim_output(target, what, windows):
        yield


def _let_go(fd: int, path: Path, created: list[Path], windows: bool, key: str) -> None:
    """Releases a claim (``OutputClaim.release``): its lock, then the folders it made while they are empty; the
    process's other claims may take the name once the lock is let go of, even where closing it failed."""
    try:
        _release(fd, path, windows)
        remove_empty_folders(created)  # one holding the output, or parts to resume from, stays
    finally:
        _unclaim(key)


def _unclaim(key: str) -> None:
    with _claimed_lock:
        _claimed.discard(key)


def _busy(target: Path, what: str, holder: str) -> OutputBusy:
    return OutputBusy(f"{target} is being written by another {what} (process {holder})",
                      "wait for it to finish, or choose another output file")  # fmt: skip


def _release(fd: int, path: Path, windows: bool) -> None:
    """Closes ``fd`` (which releases the lock) and removes the lock file, in the order each system allows."""
    if windows:
        # Windows does not remove an open file, so the file closes first; a next holder that opened it in
        # between keeps it (the unlink fails, harmlessly), as the next holder reuses a killed run's file. It was
        # unlinked while open: every run left a visible ".<name>.lock" (a dot does not hide it there), and a
        # refused run the new output folder the docstring promises to remove. Unlocked first: Windows lets a
        # closed file's locks go only "when the system gets to it", and a claim taken again at once (Back, then
        # Quantize) would find its own old lock.
        _unlock(fd)
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(path)
    else:  # unlinked while held, so a waiting opener finds its file gone (``_acquire``) and makes a new one
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _acquire(path: Path, target: Path, what: str, windows: bool) -> int:
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            locked = _try_lock(fd)
        except BaseException:
            os.close(fd)
            raise
        if not locked:
            try:  # the holder's pid, to name it: a failed read only leaves it unnamed
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            except OSError:
                holder = "unknown"
            finally:
                os.close(fd)
            raise _busy(target, what, holder)
        try:  # a holder that finished unlinked the file between our open and our lock: lock the new one
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        except BaseException:  # the file at ``path`` may be another's: ours is let go of, none removed
            _unlock(fd)
            os.close(fd)
            raise
        if same:
            try:
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
            except BaseException:
                # The pid not written (a full disk): the lock is let go of with its file, as a release does; kept
                # open, it stayed held until the app quit, and the next claim found it "busy (process unknown)".
                with contextlib.suppress(OSError):
                    _release(fd, path, windows)
                raise
            return fd
        _unlock(fd)
        os.close(fd)


if os.name == "nt":
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EDEADLOCK):  # the byte is locked: another holder
                return False
            return True  # a drive without byte-range locks (as POSIX's ENOLCK): the run goes on unguarded
        finally:
            os.lseek(fd, 0, os.SEEK_SET)
        return True

    def _unlock(fd: int) -> None:
        """Lets ``_try_lock``'s byte go (nothing where it runs unguarded); never raises: the close comes next."""
        with contextlib.suppress(OSError):
            os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            try:
                msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
            finally:
                os.lseek(fd, 0, os.SEEK_SET)

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

    def _unlock(fd: int) -> None:
        """Lets ``_try_lock``'s lock go (nothing where it runs unguarded): closing the file would too."""
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
