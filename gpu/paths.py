"""Where the engine finds shipped resources and keeps user data.

Resources live in the repository's ``resources/`` folder, or inside a PyInstaller bundle
(``sys._MEIPASS``). User data always goes to the platform's user directories (appdirs), or to the
folder named by ``NIBBLE_DATA_DIR`` (tests and portable installs).
"""

from __future__ import annotations

import itertools
import os
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import appdirs

from gpu.version import APP_NAME

DATA_DIR_ENV = "NIBBLE_DATA_DIR"

# The reparse tag of a Windows junction (a mount point), which ``lstat`` calls a folder, not a link (``S_ISLNK``):
# what is deleted through it is its target's. The constant is Windows-only in ``stat``.
JUNCTION_TAG = getattr(stat, "IO_REPARSE_TAG_MOUNT_POINT", 0xA0000003)


def is_junction(path: Path) -> bool:
    """Whether ``path`` is a Windows junction, by its reparse tag only: a OneDrive folder (files on demand) is a
    reparse point too, and is the user's own folder. Never one off Windows (no ``st_reparse_tag``), nor where
    nothing is at ``path`` (gone meanwhile: what lists it next says so)."""
    try:
        return getattr(path.lstat(), "st_reparse_tag", 0) == JUNCTION_TAG
    except OSError:
        return False


def resources_dir() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def data_dir_override() -> Path | None:
    """The folder ``NIBBLE_DATA_DIR`` names (``named_data_dir``: absolute, as the command line and the app export
    it); None when it is unset, empty or only spaces (such a one counts as unset). The first read writes the folder
    back into the variable, as ``main.py`` and the app export it: a relative name read directly by the engine (a
    script, the self test) was made absolute against the current folder of each read, so a ``chdir`` between two
    reads moved the data folder (``a/data``, then ``b/data``). Pinned, every later read and every child process
    agree with the first."""
    override = os.environ.get(DATA_DIR_ENV)
    if override is None:
        return None
    folder = named_data_dir(override)
    if folder is not None and str(folder) != override:
        os.environ[DATA_DIR_ENV] = str(folder)
    return folder


def named_data_dir(name: str | os.PathLike[str]) -> Path | None:
    """The data folder ``name`` (``--data-dir``'s or ``NIBBLE_DATA_DIR``'s value) names, ``~`` expanded, absolute as
    ``absolute_folder`` makes it: the one reading of the name for the command line, the app and the engine alike.
    ``~``: a desktop shortcut or a .desktop file sets it with no shell to expand it, and a folder named "~" was made
    in the current one. Absolute: the engine read directly (a script, the self test) kept ``typo/../data`` as
    written, and making it made a stray ``typo``. None when ``name`` is empty or only spaces, which name no folder:
    ``Path("")`` is the current folder, so user data would land wherever a command happened to run, and "  " made
    a folder named with spaces there."""
    text = os.fspath(name)
    return absolute_folder(os.path.expanduser(text)) if text.strip() else None


def blank_data_dir(flag: str) -> tuple[str, str] | None:
    """What is wrong with the --data-dir ``flag``, and what to do, when it names no folder (``named_data_dir``):
    empty (``--data-dir "$UNSET"``), where ``Path("")`` is the current folder and user data would land wherever the
    command happened to run, or only spaces, a folder named with them there. None when it names one. For the
    command line (``main``) and the app started on its own (``app.main_window.run_app``) alike, so both say it in
    the same words; here, beside ``named_data_dir``, since an engine-only install (no ``app`` package) takes
    --data-dir too. Said by them, not by argparse, whose usage line before the error was the CLI's only two-line
    error."""
    if named_data_dir(flag) is not None:
        return None
    return (f'--data-dir "{flag}": the folder name is {"only spaces" if flag else "empty"}',
            "give a folder, e.g. --data-dir ~/nibble-data, or leave --data-dir out for the default one")


def user_data_path() -> Path:
    """The per-user data folder (``NIBBLE_DATA_DIR`` or the platform's), which may not exist yet: for what only reads
    it (``inspect`` looking up a library name), so that reading never creates it or fails where it cannot be made."""
    override = data_dir_override()
    return override if override is not None else Path(appdirs.user_data_dir(APP_NAME, appauthor=False))


def user_data_dir() -> Path:
    """``user_data_path``, made if missing."""
    return _made(user_data_path())


def user_cache_dir() -> Path:
    override = data_dir_override()
    path = override / "cache" if override is not None else Path(appdirs.user_cache_dir(APP_NAME, appauthor=False))
    return _made(path)


def _made(folder: Path) -> Path:
    """``folder``, made with its missing parents as every output folder is (``gpu.output_folders.make_folders``: one
    level at a time; pathlib's ``mkdir(parents=True)`` recurses once per level, and a data folder a thousand deep was
    refused as "a symbolic link loop"). ``FileExistsError`` where a file has its name, as ``mkdir`` raises; where a
    link that leads nowhere or a loop of links is in the way, ``make_folders``' own words (``broken_link``)."""
    from gpu.output_folders import make_folders, missing_folders  # that module imports this one

    # ``folder`` is made even where it exists, so that a file at its name is refused (missing_folders counts it)
    make_folders([folder, *missing_folders(folder.parent)])
    return folder


def numbered_paths(path: Path, first: int = 2) -> Iterator[Path]:
    """``path``, then ``<stem>-<first>``, ``<stem>-<first + 1>``, … with the same suffix, without end: the names
    tried, in order, for a file that must not replace one the user already has."""
    path = Path(path)
    yield path
    for n in itertools.count(first):
        yield path.with_name(f"{path.stem}-{n}{path.suffix}")


def first_free_path(path: Path, first: int = 2, taken: Callable[[Path], bool] = Path.exists) -> Path:
    """The first of ``numbered_paths(path, first)`` that is not ``taken`` (default: nothing is there): a name
    picked for the user never replaces a file they already have. Only a suggestion where another process may
    write into the folder: ``gpu.atomic.atomic_write_new`` claims the name as it writes."""
    return next(candidate for candidate in numbered_paths(path, first) if not taken(candidate))


def file_identity(path: str | os.PathLike[str], st: os.stat_result | None = None) -> tuple[int, int] | str:
    """What tells the file or folder at ``path`` from every other, however it is reached (a link to it, a hard
    link, a relative path): its (device, inode) from ``st`` (its ``os.stat``, through links; taken here when not
    given), else its resolved path. Python documents ``st_ino`` as unique only when it is not 0, and some Windows
    network and FUSE drives report 0 for every file: keyed on it, all their folders were one. Raises ``OSError``
    when ``path`` cannot be looked at."""
    st = os.stat(path) if st is None else st
    return (st.st_dev, st.st_ino) if st.st_ino else os.path.realpath(path)


Stamp = tuple[int, int]  # a file's size and modification time (ns): another file written at its path has others


def file_stamp(path: str | os.PathLike[str]) -> Stamp | None:
    """The size and modification time (ns) of the file at ``path`` now; None when there is none, no path, or a
    folder is there (a folder's stamp changes with any file put into it: it tells no model folder from another)."""
    times = file_times(path)
    return None if times is None else times[:2]


def file_times(path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """``file_stamp`` and the file's change time (ns): (size, modification time, change time). The change time
    moves with any write, and with the file put there (copied, renamed, restored from a backup), and no program can
    set it back, where the modification time can (``cp -p``, ``touch -r``, ``rsync -a``). None as ``file_stamp``."""
    try:
        st = os.stat(path) if path else None
    except (OSError, ValueError):  # gone, or a path the system refuses (a NUL from a hand edit)
        return None
    return None if st is None or not stat.S_ISREG(st.st_mode) else (st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def named_path(path: str | os.PathLike[str]) -> Path:
    """``path`` absolute, its folders resolved and its own name kept, as a file picked through a link is read and
    named: a Hugging Face cache's ``snapshots/<rev>/style.safetensors`` links to a blob named by its hash, and the
    file is ``style`` to the user. What it is (``file_identity``, a resolved path) tells it apart."""
    path = Path(path).expanduser()
    if path.name in ("", ".", ".."):
        return resolved(path)
    return resolved(path.parent) / path.name


def resolved(path: str | os.PathLike[str]) -> Path:
    """``path`` (``~`` expanded) resolved; absolute only where it cannot be (a loop of links, a hand-edited
    library.json)."""
    path = Path(path).expanduser()
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a link loop, before Python 3.13
        return path.absolute()


def absolute_folder(path: str | os.PathLike[str]) -> Path:
    """``path`` (a folder to use, made if missing: the data folder) absolute, as ``Path.resolve`` makes it, less
    what it did wrong there: the part that exists is resolved (its links followed), and the part that does not is
    joined on with its ``..`` and ``.`` taken out by name. ``Path.resolve`` followed a link that leads nowhere (an
    unplugged drive) and the link's target was made, on the system disk; ``Path.absolute`` kept ``..``, so
    ``typo/../data`` made a stray ``typo`` beside ``data``, and a Windows ``C:data`` stayed relative (Python < 3.12).
    A link that leads nowhere, or a loop of links, counts as missing: it is kept, never followed, and making the
    folder refuses it (``gpu.output_folders.make_folders``). A later ``os.chdir`` does not move the result."""
    path = Path(path)
    # the anchor made absolute as the system does: "C:" is the current folder of drive C, "\\" the current drive's root
    start = Path(os.path.abspath(path.anchor or os.curdir))
    once = _resolve_existing(start, path.parts[1:] if path.anchor else path.parts)
    # again: a ".." taken out of the missing part may lead back into folders that exist (missing/../link/x)
    return _resolve_existing(Path(once.anchor), once.parts[1:])


def _resolve_existing(start: Path, parts: tuple[str, ...]) -> Path:
    """``start`` (absolute) joined with ``parts``: the longest leading part that exists resolved, the rest joined by
    name (``..`` going up one name, ``.`` dropped), but for a ``..`` after something that is there: up from a link's
    target as the system goes, and kept as written after a link that leads nowhere, a loop or a file, which the
    system goes through or refuses (taken out by name, ``drive/../x`` put the data folder beside the unplugged
    drive's link, on the system disk)."""
    head, rest = start, list(parts)
    while rest and os.path.exists(head / rest[0]):  # False for a link that leads nowhere, a loop, an unreadable one
        head = head / rest.pop(0)
    folder = head.resolve()
    for index, part in enumerate(rest):
        if part == "..":
            if os.path.lexists(folder) and not os.path.isdir(folder):
                return folder.joinpath(*rest[index:])
            folder = folder.resolve().parent if os.path.exists(folder) else folder.parent
        elif part != ".":
            folder = folder / part
    return folder


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` are one file or folder: the same once resolved (links, a relative path), or the same
    inode (a hard link, which resolving does not join; inode 0: a file system without inodes)."""
    if resolved(a) == resolved(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except (OSError, ValueError):  # one that is gone (or a path the system cannot stat)
        return False
    return sa.st_ino != 0 and (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)
