"""Output file names checked before the work that writes them: a Windows device name, a name or a whole path longer
than the file system takes, a folder at the name or a file in place of its folder: the command fails now, not after
hours of work."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from gpu.errors import OutputError
from gpu.os_errors import output_error
from gpu.output_folders import broken_link, check_folder_writable, missing_folders

# Names Windows gives to devices, with any extension ("CON.png" is the console, not a file).
_WINDOWS_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def windows_device_name(name: str) -> bool:
    """``name`` (a file name) is one Windows reserves for a device: writing there writes no file."""
    return name.split(".")[0].rstrip(" ").upper() in _WINDOWS_DEVICES


def check_output_path(target: Path | str, windows: bool = os.name == "nt", example: str = "out.png",
                      beside: Iterable[Path] = (), probe: bool = True) -> None:  # fmt: skip
    """Raises ``OutputError`` now if ``target`` can clearly not be written: it is a folder, a Windows device
    name, its nearest existing ancestor is a file or takes no new file, a name in it is longer than the file system
    allows, or the whole path is. For commands that should fail before hours of work. ``example`` is the file
    name the hint suggests inside a folder given as ``target``; ``beside`` are files or folders the command
    keeps next to ``target`` (the quantizer's ``<name>.parts``), whose longer names must fit too. ``probe``: whether
    the folder is tried with a file (``_check_writable``); an atomic write makes its scratch folder there next, which
    fails the same way, and a probe file more per write (every settings save) would only cost."""
    target = Path(target)
    if windows and windows_device_name(target.name):
        raise OutputError(f"{target.name} is a device name on Windows, not a file name",
                          f"choose another name, e.g. my-{target.name}")  # fmt: skip
    missing = missing_folders(target.parent)
    if (in_the_way := next(filter(None, map(broken_link, missing)), None)) is not None:
        raise output_error(target, in_the_way)
    parent = missing[-1].parent if missing else target.parent  # the nearest that exists (or the root)
    _check_name_lengths(target, parent, missing, beside, windows)  # first: the system's "File name too long" says less
    if target.is_dir():
        raise OutputError(f"{target} is a folder; give a file name", "for example " + str(target / example))
    if parent.exists() and not parent.is_dir():
        raise OutputError(f"cannot write {target}: {parent} is a file, not a folder")
    if probe and parent.exists():
        _check_writable(target, parent)


def _check_writable(target: Path, folder: Path) -> None:
    """OutputError unless a file can be made in ``folder`` (where ``target``'s write makes its first file or
    folder), with the system's own reason: a file is made and removed (``check_folder_writable``). ``os.access``
    answered yes for root, /proc, /sys, root-squashed NFS and Windows folders closed by an ACL, so the image was
    made and then not written; and its "Permission denied" was invented, for a read-only drive too."""
    try:
        check_folder_writable(folder)
    except OSError as err:
        refused = output_error(target, OSError(err.errno, f"{folder}: {err.strerror}"))
        # a probe that fails for a reason without a hint of its own (/proc: "No such file or directory") is still
        # a folder that takes no file
        refused.hint = refused.hint or "choose a folder you can write to"
        raise refused from None


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
