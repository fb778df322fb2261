"""Crash-safe file writes: temp file in the same folder, fsync, rename over the target.

Failures to write surface as ``OutputError`` naming the *target* path (never the hidden temp file) with the
system's reason, so the CLI and the app can show them as they are. New files get the permissions of an
ordinary file (0666 minus the umask); a replaced file keeps its own."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from gpu.errors import OutputAppeared
from gpu.os_errors import BUSY_WINERRORS, os_error_of, output_error
from gpu.output_folders import make_folders, missing_folders, remove_empty_folders
from gpu.output_names import check_output_path
from gpu.paths import numbered_paths


@contextlib.contextmanager
def atomic_path(target: Path | str, replace: bool = True) -> Iterator[Path]:
    """Yields a temporary path for ``target``; on success it is fsynced and renamed onto ``target``.
    ``replace=False``: published only where no file is, in one step that fails if one is (``claim_name``), so a file
    put at ``target`` while the caller wrote is kept; ``OutputAppeared`` then, the scratch file removed.

    The path lies in a private folder beside ``target`` (``.<tag>.<random>.tmp/new<suffix>``, ``scratch_prefix``),
    so that a writer's own scratch files land there too: safetensors' ``save_file`` writes ``.tmp<random>``
    beside the path it is given, then renames it, and a kill in between would otherwise leave a model-sized file
    in the user's folder.
    A crash or exception leaves ``target`` untouched (old content or absent) and removes the private folder, and
    the folders this call created for ``target`` while they are empty (a failed first write into a new folder
    tree leaves none behind). OS-level failures (and safetensors' wrapped ones) are raised as ``OutputError``
    naming ``target``."""
    target = Path(target)

    def publish(tmp: Path) -> None:
        if replace:
            replace_file(tmp, target)
            return
        try:
            claim_name(tmp, target)
        except FileExistsError:
            raise OutputAppeared(f"{target} appeared while it was being written, and is kept",
                                 "move it elsewhere, then try again") from None

    with _scratch_write(target, publish, lambda: _mode_for(target)) as tmp:
        yield tmp


def atomic_write_new(target: Path | str, writer: Callable[[Path], None], first: int = 2,
                     taken: Callable[[Path], bool] | None = None) -> Path:  # fmt: skip
    """Calls ``writer(tmp_path)`` and publishes the result, as ``atomic_path`` does, under the first name of
    ``gpu.paths.numbered_paths(target, first)`` (``target``, ``<stem>-<first>``, …) that no file holds and that is
    not ``taken`` (names held otherwise, e.g. by the app's trash). Returns the path written.

    The name is claimed by the publishing step itself (``claim_free_name``), never replaced: a file another
    process puts at a name between a check of it and the write (a second ``main.py generate`` in the same folder)
    stays, and this one takes the next name."""
    target = Path(target)
    published: list[Path] = []

    def publish(tmp: Path) -> None:
        published.append(claim_free_name(tmp, target, first, taken))

    # Checked as the output is the first name a file could take: a folder holding a name is skipped like a file
    # (the check refused "nibble-7.png is a folder" after the image was made).
    first_file = next(c for c in numbered_paths(target, first) if not c.is_dir())
    with _scratch_write(first_file, publish, lambda: _NEW_FILE_MODE) as tmp:
        writer(tmp)
    return published[0]


@contextlib.contextmanager
def _scratch_write(target: Path, publish: Callable[[Path], None], mode: Callable[[], int]) -> Iterator[Path]:
    """The write both ``atomic_path`` and ``atomic_write_new`` make: a temporary path in a private scratch folder
    beside ``target``, given ``mode()`` and fsynced once written, handed to ``publish``, then the folder fsynced
    (the new name is durable too). See ``atomic_path`` for the clean-up on failure and the errors."""
    check_output_path(target, probe=False)  # its scratch folder, made next, tries the folder
    created = missing_folders(target.parent)
    try:
        with output_errors(target):
            make_folders(created)
            scratch = Path(tempfile.mkdtemp(prefix=scratch_prefix(target), suffix=_TEMP_SUFFIX, dir=target.parent))
            tmp_path = scratch / f"new{target.suffix}"  # short for Windows' 260 characters; PIL reads the suffix
            try:
                yield tmp_path
                _make_durable(tmp_path, mode())  # as a replaced file had, or as a new one under the umask
                publish(tmp_path)
                _fsync_dir(target.parent)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    except BaseException:
        remove_empty_folders(created)
        raise


def _make_durable(path: Path, mode: int) -> None:
    """``path`` given ``mode`` and its bytes synced to the disk: the step before a scratch file is published."""
    os.chmod(path, mode)
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def publish_left_behind(src: Path, target: Path, first: int = 2, taken: Callable[[Path], bool] | None = None) -> Path:
    """Publishes ``src``, a whole file that a write killed before its publishing step left in its scratch folder
    (a ``SCRATCH_NAME`` folder), as ``atomic_write_new`` would have: given a new file's mode, synced (the kill may
    have come before the sync), claimed under the first free name of ``numbered_paths(target, first)`` that is not
    ``taken`` (``claim_free_name``: never over a file), the folder synced. Returns the name taken. Only for a caller
    that knows the writer is dead (the app's start-up, under its instance lock) and has checked ``src`` is whole."""
    _make_durable(src, _NEW_FILE_MODE)
    published = claim_free_name(src, target, first, taken)
    _fsync_dir(target.parent)
    return published


def claim_free_name(src: Path, target: Path, first: int = 2, taken: Callable[[Path], bool] | None = None,
                    windows: bool = os.name == "nt", sleep: Callable[[float], None] = time.sleep) -> Path:  # fmt: skip
    """Moves the finished file ``src`` (in ``target``'s folder, on its disk) to the first name of
    ``numbered_paths(target, first)`` that is not ``taken`` and that it can claim, and returns that name. Each
    claim is one step that fails when the name exists, so a file that arrived there after any check is never
    replaced: a hard link on POSIX, a rename on Windows (which refuses an existing target; retried while another
    program briefly holds the file, as ``replace_file`` is). Where the file system has no hard links (FAT and
    exFAT drives, some network shares), an empty file created exclusively claims the name, then ``src`` replaces
    it."""
    for candidate in numbered_paths(target, first):
        if taken is not None and taken(candidate):
            continue
        try:
            claim_name(src, candidate, windows, sleep)
        except FileExistsError:
            continue
        return candidate
    raise AssertionError("numbered_paths has no end")  # for the type checker: the loop returns


def claim_name(src: Path, target: Path, windows: bool = os.name == "nt",
               sleep: Callable[[float], None] = time.sleep) -> None:  # fmt: skip
    """Moves the finished file ``src`` (on ``target``'s disk) to ``target`` in one step that fails with
    ``FileExistsError``, nothing changed, when a file is there (``claim_free_name``'s step for one name)."""
    if windows:
        _retry_while_busy(lambda: os.rename(src, target), windows, sleep)
    else:
        _link_or_claim(src, target)


def _link_or_claim(src: Path, candidate: Path) -> None:
    """``src`` moved to ``candidate`` on POSIX; FileExistsError, and nothing changed, when ``candidate`` exists."""
    try:
        os.link(src, candidate)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (EPERM on FAT, ENOTSUP, EOPNOTSUPP): a real write problem fails below too
        fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _NEW_FILE_MODE)
        os.close(fd)
        try:
            os.replace(src, candidate)  # onto the empty file this call just made
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(candidate)
            raise
        return
    os.unlink(src)


_TEMP_SUFFIX = ".tmp"
# atomic_path's scratch folders: "." + 8 hex digits naming the target + "." + mkdtemp's 8 random characters.
SCRATCH_NAME = re.compile(rf"^\.[0-9a-f]{{8}}\.\w{{8}}{re.escape(_TEMP_SUFFIX)}$")


def scratch_prefix(target: Path) -> str:
    """The start of the names of ``target``'s scratch folders: a tag derived from its name, never the name itself.
    ``.<name>.<random>.tmp`` was 14 bytes longer than the name, so a name near the system's 255-byte limit, which
    the target itself may have, failed at the final write, after hours of quantizing."""
    return "." + hashlib.sha256(os.fsencode(target.name)).hexdigest()[:8] + "."


def stale_temps(target: Path | str) -> list[Path]:
    """The temp folders (and, from older versions, temp files) ``atomic_path`` left beside ``target`` when a write
    of it was killed (``kill -9``, power loss: no ``finally`` ran), or is writing now: only a caller that knows the
    writer is dead may take them for stale. Never a link; other files beside ``target`` are never among them
    (another target's scratch folder has another tag)."""
    target = Path(target)
    ours = re.escape(scratch_prefix(target))
    older = re.escape(f".{target.name}.")  # the scratch names of versions before the tag
    own = re.compile(rf"^({ours}|{older})\w{{8}}{re.escape(_TEMP_SUFFIX)}$")  # mkdtemp's 8 characters
    with output_errors(target):
        found = target.parent.iterdir() if target.parent.is_dir() else []
        return [f for f in found if own.match(f.name) and not f.is_symlink() and (f.is_dir() or f.is_file())]


def remove_stale_temps(target: Path | str) -> None:
    """Deletes the ``stale_temps`` of ``target``. Only for a target whose writer is known to be dead, e.g. a rerun
    that resumes it (under the output's lock)."""
    with output_errors(target):
        for f in stale_temps(target):
            if f.is_dir():
                shutil.rmtree(f)
            else:
                f.unlink(missing_ok=True)


def atomic_write_bytes(target: Path | str, data: bytes) -> Path:
    """``data`` published atomically at ``target`` (``atomic_path``). A ``target`` that is a symbolic link (a
    settings or library file kept in a dotfiles folder and linked into the data folder) is written where it points,
    and stays a link: replaced, it became a plain file, and the file it pointed to was never updated again."""
    target = Path(target)
    with atomic_path(target.resolve() if target.is_symlink() else target) as tmp:
        tmp.write_bytes(data)
    return target


def atomic_write_with(target: Path | str, writer: Callable[[Path], None]) -> Path:
    """Calls ``writer(tmp_path)`` and publishes the result atomically at ``target``."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


@contextlib.contextmanager
def output_errors(target: Path | str) -> Iterator[None]:
    """OS-level failures inside the block (and safetensors' wrapped ones) -> ``OutputError`` naming ``target``.
    ``atomic_path`` writes through it; scratch files that need no atomicity use it alone."""
    try:
        yield
    except BaseException as exc:
        os_err = os_error_of(exc)
        if os_err is not None:
            raise output_error(Path(target), os_err) from exc
        raise


_REPLACE_TRIES = 6  # 0.05 s, 0.1 s, 0.2 s, ... about 1.5 s in all


def replace_file(src: Path, dst: Path, windows: bool = os.name == "nt", sleep: Callable[[float], None] = time.sleep,
                 ) -> None:  # fmt: skip
    """``os.replace(src, dst)``; on Windows retried a few times while another program briefly holds ``dst``."""
    _retry_while_busy(lambda: os.replace(src, dst), windows, sleep)


def _retry_while_busy(move: Callable[[], None], windows: bool, sleep: Callable[[float], None]) -> None:
    """Calls ``move``; on Windows again, a few times, while it fails because another program holds a file."""
    for attempt in range(_REPLACE_TRIES):
        try:
            move()
            return
        except PermissionError as err:
            busy = windows and getattr(err, "winerror", None) in BUSY_WINERRORS
            if not busy or attempt == _REPLACE_TRIES - 1:
                raise
            sleep(0.05 * 2**attempt)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_NEW_FILE_MODE = 0o666 & ~_umask()  # read once: os.umask can only be read by setting it


def _mode_for(target: Path) -> int:
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return _NEW_FILE_MODE


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable on POSIX; Windows cannot open directories, and does not need to.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
