"""Crash-safe file writes: temp file in the same folder, fsync, rename over the target.

Failures to write surface as ``OutputError`` naming the *target* path (never the hidden temp file) with the
system's reason, so the CLI and the app can show them as they are. New files get the permissions of an
ordinary file (0666 minus the umask); a replaced file keeps its own."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from gpu.errors import OutputAppeared, OutputError
from gpu.paths import numbered_paths, resolved


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
    check_output_path(target)
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


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its ancestors that do not exist yet, deepest first: what a ``mkdir(parents=True)``
    of it is about to create, for ``remove_empty_folders`` to take back."""
    missing = []
    while not _exists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _exists(path: Path) -> bool:
    """``path.exists()``, False too for a name or path too long to exist (which it raises for)."""
    try:
        return path.exists()
    except OSError as err:
        if err.errno != errno.ENAMETOOLONG:
            raise
        return False


def make_folders(missing: list[Path]) -> None:
    """Creates ``missing`` (``missing_folders``' list, deepest first) from the top down, one level at a time:
    ``Path.mkdir(parents=True)`` recurses once per level and raised RecursionError under a thousand of them
    (``--out d/d/…/d/a.png``), after the image was made. A link in the way is said as what it is
    (``broken_link``), not as mkdir's "File exists"."""
    for folder in reversed(missing):
        try:
            folder.mkdir(exist_ok=True)
        except FileExistsError as exists:
            raise broken_link(folder) or exists from None


class LinkLeadsNowhere(FileNotFoundError):
    """A folder to make or to use is a link (a symbolic link, a Windows junction) whose target is not there: mkdir
    says "File exists" at its name, and following it would make its target, on the system disk where the link
    led to an unmounted drive. ``strerror`` names the link and its target; ``filename`` is the link."""

    hint = "plug in or mount the drive the link leads to, or make the folder it names, or choose another folder"

    def __init__(self, link: Path) -> None:
        super().__init__(errno.ENOENT, f"{link} is {link_to_nothing(link)}", str(link))


def link_to_nothing(link: Path) -> str:
    """Why the link (or Windows junction) ``link`` leads nowhere, as a phrase: "a link to <target>, which is not
    there: …". A relative target is shown joined onto the link's folder ("../elsewhere/gone" said nothing of where
    that is), and where the target is a link too, where the chain ends: "a link to <target>, which leads on to
    <end>, which is not there"."""
    hops: list[str] = []
    here = os.fspath(link)
    while len(hops) < _MAX_HOPS:  # a loop is said as one (broken_link), not here; bounded all the same
        try:
            target = os.readlink(here)
        except OSError:  # not a link (the end of the chain), or not one this system reads
            break
        # the folder that holds the link exists, and is where the system starts a relative target from
        here = os.path.normpath(os.path.join(os.path.realpath(os.path.dirname(here)), target))
        hops.append(here)
    where = f" to {hops[0]}" if hops else ""
    if len(hops) > 1:
        where += f", which leads on to {hops[-1]}"
    return (f"a link{where}, which is not there: the drive it is on may be unplugged or unmounted, or the folder "
            "moved or removed")  # fmt: skip


_MAX_HOPS = 40  # as many links as Linux follows in one path


def broken_link(folder: Path) -> OSError | None:
    """Why ``folder``, which ``missing_folders`` takes for missing, cannot be made though something has its name:
    a link that leads nowhere (``LinkLeadsNowhere``), or a loop of links, said as the system says it ("Too many
    levels of symbolic links") as mkdir(parents=True) said it; None for anything else."""
    if not os.path.lexists(folder):
        return None
    try:
        os.stat(folder)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return OSError(err.errno, err.strerror, str(folder))
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return LinkLeadsNowhere(folder)
    return None


def check_folder_writable(folder: Path) -> None:
    """Raises ``OSError`` (its ``filename`` ``folder``, its ``strerror`` a phrase such as "no file can be created
    in it: Permission denied") unless a file can be made in the existing ``folder``. A file is actually created
    and removed: ``os.access`` answers yes to root whatever the permission bits, and yes for /proc, /sys and some
    network and read-only mounts, where creating a file then fails."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
    except OSError as err:
        raise OSError(err.errno, f"no file can be created in it: {err.strerror or err}", str(folder)) from err
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError as err:  # replacing or deleting any file there would fail the same way, later
        raise OSError(
            err.errno, f"a file can be created in it but not removed ({Path(probe).name}): {err.strerror or err}",
            str(folder),
        ) from err


def folder_problem(folder: Path, err: OSError) -> str:
    """Why ``folder`` could not be created or written in, in the user's terms. mkdir's own words mislead in two
    cases: a file at that name is "File exists", a file in place of a parent folder is "Not a directory" on the
    folder; and "Too many levels of symbolic links" is said as the loop of links it is. A link that leads nowhere
    is said by ``LinkLeadsNowhere``'s own words, which name it."""
    if isinstance(err, LinkLeadsNowhere):
        return err.strerror
    if folder.exists() and not folder.is_dir():
        return "it is a file, not a folder"
    if isinstance(err, NotADirectoryError):
        for parent in folder.absolute().parents:
            if parent.exists() and not parent.is_dir():
                return f"{parent} is a file, not a folder"
    named = Path(err.filename) if isinstance(err, FileExistsError) and err.filename else None
    if named is not None and named.exists() and not named.is_dir():  # a folder to make inside it (the data's images/)
        return f"{named} is a file, not a folder"
    # resolved(), not Path.resolve(): that raises RuntimeError on a link loop (Python < 3.13)
    where = f"{err.filename}: " if err.filename and resolved(err.filename) != resolved(folder) else ""
    return f"{where}{'a symbolic link loop' if err.errno == errno.ELOOP else err.strerror or err}"


def make_output_folder(folder: Path | str, what: str = "the results into",
                       hint: str = "give --out a folder you can write to (a missing one is made)") -> Path:  # fmt: skip
    """Creates ``folder`` (and its parents) for a command that writes its results into it at the end of a long
    run (the benchmarks, the images of ``main.py generate``), and checks that a file can be made there: an
    OutputError "cannot write <what> <folder>: <why>", with ``hint``, comes now rather than after the run."""
    folder = Path(folder)
    try:
        make_folders(missing_folders(folder))
        check_folder_writable(folder)
    except OSError as err:
        raise OutputError(f"cannot write {what} {folder}: {folder_problem(folder, err)}", hint) from None
    return folder


def remove_empty_folders(folders: list[Path]) -> None:
    """Removes ``folders`` (deepest first) while they are empty, and stops at the first that is not: one that
    holds a file (written since, or put there by another process) stays, and so do its ancestors. One that is not
    there is passed over: ``make_folders`` stopped below the ones it made (a name too long, a full disk), and
    stopping there left those (``a/b`` of ``a/b/<300 characters>/c``)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            if os.path.lexists(folder):  # False too where it cannot be looked at (a name too long to exist)
                return


_TEMP_SUFFIX = ".tmp"
# atomic_path's scratch folders: "." + 8 hex digits naming the target + "." + mkdtemp's 8 random characters.
SCRATCH_NAME = re.compile(rf"^\.[0-9a-f]{{8}}\.\w{{8}}{re.escape(_TEMP_SUFFIX)}$")


def scratch_prefix(target: Path) -> str:
    """The start of the names of ``target``'s scratch folders: a tag derived from its name, never the name itself.
    ``.<name>.<random>.tmp`` was 14 bytes longer than the name, so a name near the system's 255-byte limit, which
    the target itself may have, failed at the final write, after hours of quantizing."""
    return "." + hashlib.sha256(os.fsencode(target.name)).hexdigest()[:8] + "."


def remove_stale_temps(target: Path | str) -> None:
    """Deletes the temp folders (and, from older versions, temp files) ``atomic_path`` left beside ``target``
    when a write of it was killed (``kill -9``, power loss: no ``finally`` ran). Only for a target whose writer
    is known to be dead, e.g. a rerun that resumes it; other files beside it are never touched (another
    target's scratch folder has another tag)."""
    target = Path(target)
    ours = re.escape(scratch_prefix(target))
    older = re.escape(f".{target.name}.")  # the scratch names of versions before the tag
    own = re.compile(rf"^({ours}|{older})\w{{8}}{re.escape(_TEMP_SUFFIX)}$")  # mkdtemp's 8 characters
    with output_errors(target):
        for f in target.parent.iterdir() if target.parent.is_dir() else []:
            if not own.match(f.name) or f.is_symlink():
                continue
            if f.is_dir():
                shutil.rmtree(f)
            elif f.is_file():
                f.unlink(missing_ok=True)


def atomic_write_bytes(target: Path | str, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


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
        os_err = _os_error_of(exc)
        if os_err is not None:
            raise _output_error(Path(target), os_err) from exc
        raise


# Windows system error codes (winerror.h). safetensors reports them as "(os error N)" there, instead of an errno.
_WIN_ACCESS_DENIED, _WIN_SHARING_VIOLATION, _WIN_LOCK_VIOLATION = 5, 32, 33
_SHARING_VIOLATIONS = (_WIN_SHARING_VIOLATION, _WIN_LOCK_VIOLATION)  # another program has the file open
_WINDOWS_ERRNO = {112: errno.ENOSPC, 39: errno.ENOSPC, _WIN_ACCESS_DENIED: errno.EACCES, 19: errno.EROFS,
                  **dict.fromkeys(_SHARING_VIOLATIONS, errno.EACCES)}  # disk full (112, 39), write-protected (19)

# Windows refuses a rename onto a file another program has open for a moment (antivirus, the search indexer,
# a thumbnailer reading a file just written): access denied or sharing violation. Retried briefly there.
_BUSY_WINERRORS = (_WIN_ACCESS_DENIED, *_SHARING_VIOLATIONS)
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
            busy = windows and getattr(err, "winerror", None) in _BUSY_WINERRORS
            if not busy or attempt == _REPLACE_TRIES - 1:
                raise
            sleep(0.05 * 2**attempt)


# Names Windows gives to devices, with any extension ("CON.png" is the console, not a file).
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def windows_device_name(name: str) -> bool:
    """``name`` (a file name) is one Windows reserves for a device: writing there writes no file."""
    return name.split(".")[0].rstrip(" ").upper() in _WINDOWS_DEVICES


def check_output_path(target: Path | str, windows: bool = os.name == "nt", example: str = "out.png",
                      beside: Iterable[Path] = ()) -> None:  # fmt: skip
    """Raises ``OutputError`` now if ``target`` can clearly not be written: it is a folder, a Windows device
    name, its nearest existing ancestor is a file or not writable, a name in it is longer than the file system
    allows, or the whole path is. For commands that should fail before hours of work. ``example`` is the file
    name the hint suggests inside a folder given as ``target``; ``beside`` are files or folders the command
    keeps next to ``target`` (the quantizer's ``<name>.parts``), whose longer names must fit too."""
    target = Path(target)
    if windows and windows_device_name(target.name):
        raise OutputError(f"{target.name} is a device name on Windows, not a file name",
                          f"choose another name, e.g. my-{target.name}")  # fmt: skip
    missing = missing_folders(target.parent)
    if (in_the_way := next(filter(None, map(broken_link, missing)), None)) is not None:
        raise _output_error(target, in_the_way)
    parent = missing[-1].parent if missing else target.parent  # the nearest that exists (or the root)
    _check_name_lengths(target, parent, missing, beside, windows)  # first: the system's "File name too long" says less
    if target.is_dir():
        raise OutputError(f"{target} is a folder; give a file name", "for example " + str(target / example))
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"cannot write {target}: {parent} is a file, not a folder")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise _output_error(target, OSError(errno.EACCES, os.strerror(errno.EACCES)))


_NAME_MAX, _PATH_MAX = 255, 4096  # where the system cannot say (Windows): its usual limits
# Bytes the longest path a write of a file makes is longer than the file's own path: atomic_path's scratch
# folder and file in the quantizer's parts folder (``OUT.parts/.<8>.<8>.tmp/new.safetensors``), with room.
_PATH_ROOM = 64


def _system_limit(folder: Path, name: str, default: int) -> int:
    """``os.pathconf(folder, name)``, or ``default`` where the system has no answer."""
    try:
        value = os.pathconf(folder, name)
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows), or no answer for this file system
        return default
    return value if value > 0 else default  # -1: no limit


def _name_length(name: str) -> tuple[int, str]:
    """A name's length as its file system counts it against the limit, with the unit: bytes where the system says
    its limits (POSIX), UTF-16 units where it cannot (Windows: NTFS takes 255 of those, so a 94-character Japanese
    name of 274 UTF-8 bytes was refused there, though it fits)."""
    if hasattr(os, "pathconf"):
        return len(os.fsencode(name)), "bytes"
    return _utf16_units(name), "characters"


def _utf16_units(text: str) -> int:
    """``text``'s length as Windows counts names and paths: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def _windows_path_limit() -> int:
    """The longest path this process can open on Windows: 259 characters (MAX_PATH less its terminating null)
    unless long paths are on for it, which needs both the system's setting and the program's manifest, and only
    ``RtlAreLongPathsEnabled`` knows both (Windows 10 1607 and later)."""
    try:
        import ctypes

        ask = ctypes.WinDLL("ntdll").RtlAreLongPathsEnabled  # type: ignore[attr-defined]
        ask.restype = ctypes.c_ubyte  # a one-byte BOOLEAN: read as ctypes' default int, its upper bytes are garbage
        enabled = bool(ask())
    except (AttributeError, OSError):  # older Windows, or not Windows (tests of this branch elsewhere)
        enabled = False
    return 32767 if enabled else 259


def _check_name_lengths(target: Path, parent: Path, missing: list[Path], beside: Iterable[Path],
                        windows: bool) -> None:  # fmt: skip
    """OutputError if a name ``target``'s write would create, or its whole path, is longer than the file system
    at ``parent`` (the nearest existing folder) takes: mkdir and open refuse it only when they are called, and
    the final write comes after all the work."""
    limit = _system_limit(parent, "PC_NAME_MAX", _NAME_MAX)
    own, unit = _name_length(target.name)
    longest = max([own, *(_name_length(p.name)[0] for p in beside)])
    if longest > limit:
        extra = longest - own
        longer = f"{extra} {unit[:-1] if extra == 1 else unit}"  # "1 byte", "3 bytes", "1 character"
        room = f" (a name can have {limit} {unit} there, and the command keeps one {longer} longer beside it)" \
            if extra else ""  # fmt: skip
        raise OutputError(f"cannot write {target}: the file name is {own} {unit} long, more than the "
                          f"{limit - extra} that fit in {parent}{room}", "choose a shorter file name")  # fmt: skip
    for folder in missing:
        length = _name_length(folder.name)[0]
        if length > limit:
            raise OutputError(f"cannot write {target}: the folder name {folder.name[:40]}… is {length} {unit} long, "
                              f"more than the {limit} a name can have", "choose a shorter folder name")  # fmt: skip
    full = os.path.abspath(target)
    if windows:  # no pathconf there; its 4096 default let a 221-character path through to fail after the work
        path_limit, length, unit = _windows_path_limit(), _utf16_units(full), "characters"
    else:
        path_limit, length, unit = _system_limit(parent, "PC_PATH_MAX", _PATH_MAX), len(os.fsencode(full)), "bytes"
    if length + _PATH_ROOM > path_limit:
        raise OutputError(f"cannot write {target}: the path is {length} {unit} long, more than the "
                          f"{path_limit - _PATH_ROOM} the system allows for a file written there",
                          "choose a shorter name, or a folder with a shorter path")  # fmt: skip


_HINTS = {
    errno.ENOSPC: "free some disk space or choose another folder",
    errno.EDQUOT: "free some disk space or choose another folder",
    errno.EROFS: "choose a folder you can write to",
    errno.EACCES: "choose a folder you can write to",
    errno.EPERM: "choose a folder you can write to",
    errno.ENAMETOOLONG: "choose a shorter name, or a folder with a shorter path",
}


def own_remedy(err: OSError) -> tuple[str, str] | None:
    """Why a write failed and what to do, for a failure that lies in neither the folder's permissions nor its
    disk, whose remedy is another than a writable folder: another program has the file open, a link leads
    nowhere. None for any other failure."""
    if getattr(err, "winerror", None) in _SHARING_VIOLATIONS:  # EACCES on Windows, but no folder problem
        return "the file is open in another program", "close the program that has it open, then try again"
    if isinstance(err, LinkLeadsNowhere):
        return err.strerror, err.hint
    return None


def _output_error(target: Path, err: OSError) -> OutputError:
    reason, hint = own_remedy(err) or (err.strerror or str(err), _HINTS.get(err.errno or 0, ""))
    return OutputError(f"cannot write {target}: {reason}", hint)


def _os_error_of(exc: BaseException, windows: bool = os.name == "nt") -> OSError | None:
    """The OS error behind ``exc``: itself, or one that safetensors reports as text ("... (os error 28)"; on
    Windows the number is a system error code, mapped here to its errno)."""
    if isinstance(exc, OutputError):
        return None
    if isinstance(exc, OSError):
        return exc
    match = re.search(r"\(os error (\d+)\)", str(exc))
    if type(exc).__name__ != "SafetensorError" or not match:
        return None
    code = int(match.group(1))
    if not windows:
        return OSError(code, os.strerror(code))
    mapped = _WINDOWS_ERRNO.get(code)
    err = OSError(mapped or 0, os.strerror(mapped) if mapped else f"Windows error {code}")
    err.winerror = code  # type: ignore[attr-defined]  # as Python's own OSError has it on Windows
    return err


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
