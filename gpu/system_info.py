"""The GPU this machine has (if any), for the model panel and the execution-path decision, and its RAM (as much
of it as the app may use)."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when a function needs it: the RAM and cgroup readers need no torch
    import torch


@dataclass
class GpuInfo:
    name: str
    sm: int  # compute capability as major*10+minor, e.g. 89
    total_bytes: int
    free_bytes: int


def detect_gpu() -> GpuInfo | None:
    import torch

    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(0)
    free, total = torch.cuda.mem_get_info(0)
    return GpuInfo(torch.cuda.get_device_name(0), major * 10 + minor, total, free)


def cuda_index(device: torch.device) -> int:
    """The ordinal of the CUDA ``device``: its index, or for a bare "cuda" the current device's (where torch runs
    it). What per-GPU state (kernel caches, refusals, memory limits) is keyed on, so "cuda" and "cuda:0" share it.
    ``TypeError`` for anything but a ``torch.device``: a string "cuda:1" answered its bound ``str.index`` method."""
    import torch

    if not isinstance(device, torch.device):
        raise TypeError(f"cuda_index takes a torch.device, not {type(device).__name__} {device!r}")
    return device.index if device.index is not None else torch.cuda.current_device()


def memory_fraction(index: int) -> float:
    """The share of CUDA device ``index``'s memory this process's caching allocator may use
    (``torch.cuda.set_per_process_memory_fraction``), 1.0 where torch cannot say: a build without the getter, or
    one that has no allocator state yet to read it from (the whole card, as without a cap)."""
    import torch

    get_fraction = getattr(torch.cuda, "get_per_process_memory_fraction", None)
    if get_fraction is None:
        return 1.0
    try:
        return min(1.0, float(get_fraction(index)))
    except (RuntimeError, TypeError):
        return 1.0


def installed_ram_bytes(root: Path = Path("/")) -> int | None:
    """The RAM this machine lets the app use, in bytes; None when it cannot be read. No new dependency: ``sysconf``
    on POSIX (Linux, macOS), ``GlobalMemoryStatusEx`` on Windows; on Linux at most the memory limit of the cgroup
    the app runs in (``cgroup_memory_limit``: a container's, a systemd slice's), which kills the app when it is
    exceeded however much RAM the host has. For defaults such as the quantizer's RAM budget, which must not be
    more than the machine holds (it would swap, or the system would kill the process). ``root``: where the file
    system's root is (tests give a tree of their own)."""
    if sys.platform == "win32":
        return _windows_ram_bytes()
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # a platform without these names
        return None
    installed = pages * page_size if pages > 0 and page_size > 0 else None
    if not sys.platform.startswith("linux"):
        return installed
    limit = cgroup_memory_limit(root)
    return min((n for n in (installed, limit) if n is not None), default=None)


# cgroup v1 says "no limit" with the largest page-aligned signed 64-bit value (9223372036854771712), v2 with "max".
_NO_CGROUP_LIMIT = 2**62


def cgroup_memory_limit(root: Path = Path("/")) -> int | None:
    """The memory limit of the cgroup this process runs in, in bytes; None when none is set or it cannot be read.
    The process's own group (``/proc/self/cgroup``), under the mount of its hierarchy (``/proc/self/mountinfo``:
    ``/sys/fs/cgroup``, or ``/sys/fs/cgroup/unified`` beside v1's controllers), not the hierarchy's top, which
    holds no limit of a systemd slice or of a container that shares the host's cgroup namespace:

    * cgroup v2 (the ``0::<path>`` line): the smallest ``memory.max`` from that group up to the mount's root, as
      every ancestor's limit holds it too;
    * cgroup v1 (the line of the ``memory`` controller): the group's ``memory.stat`` ``hierarchical_memory_limit``
      (the kernel's smallest along its ancestors), else the group's ``memory.limit_in_bytes``, else the mount
      root's.

    Both on a hybrid layout: the smaller. ``root``: where the file system's root is (tests give a fake tree)."""
    try:
        return _own_group_limit(root)
    except (OSError, ValueError):  # what no kernel writes (a NUL in a mount point, odd digits): no limit known
        return None


def _own_group_limit(root: Path) -> int | None:
    """``cgroup_memory_limit``'s reading, which may raise on files no kernel writes."""
    proc = root / "proc" / "self"
    try:
        groups = (proc / "cgroup").read_text().splitlines()
        mounts = (proc / "mountinfo").read_text().splitlines()
    except (OSError, UnicodeDecodeError):  # no /proc (another OS, a sandbox): no limit known
        return None
    v2 = v1 = None  # the process's group in each hierarchy
    for line in groups:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        if fields[0] == "0" and fields[1] == "":
            v2 = fields[2]
        elif "memory" in fields[1].split(","):
            v1 = fields[2]
    limits = []
    if v2 is not None and (mount := _cgroup_mount(mounts, "cgroup2", root)) is not None:
        group, top = _group_folder(mount, v2)
        along = [group, *group.parents[: len(group.parents) - len(top.parents)]]  # the group, up to the mount's root
        limits += [limit for folder in along if (limit := _limit_in(folder / "memory.max")) is not None]
    if v1 is not None and (mount := _cgroup_mount(mounts, "cgroup", root)) is not None:
        group, top = _group_folder(mount, v1)
        limit = _hierarchical_limit(group / "memory.stat")
        for folder in (group, top):
            limit = limit if limit is not None else _limit_in(folder / "memory.limit_in_bytes")
        limits += [limit] if limit is not None else []
    return min(limits, default=None)


def _cgroup_mount(mountinfo: list[str], fstype: str, root: Path) -> tuple[str, Path] | None:
    """(the hierarchy's path mounted there, the mount point under ``root``) of the first ``fstype`` mount in
    ``mountinfo``'s lines ("cgroup2"; "cgroup": the one of the ``memory`` controller), None when there is none.
    A line: id, parent, dev, root, mount point, options, optional fields, "-", type, source, super options."""
    for line in mountinfo:
        fields = line.split()
        if "-" not in fields[5:]:
            continue
        tail = fields[fields.index("-", 5) + 1:]
        if not tail or tail[0] != fstype or (fstype == "cgroup" and "memory" not in tail[-1].split(",")):
            continue
        return _unescaped(fields[3]), root / _unescaped(fields[4]).lstrip("/")
    return None


def _unescaped(field: str) -> str:
    """A mountinfo path field as it is: the kernel writes a space, tab, newline and backslash as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _group_folder(mount: tuple[str, Path], group: str) -> tuple[Path, Path]:
    """(the folder of the cgroup ``group``, the mount point) in the hierarchy ``mount`` shows: the mount shows the
    hierarchy from its own root (``/`` in a container's cgroup namespace, ``/docker/<id>`` without one). A group
    outside what the mount shows is read at the mount point."""
    shown, point = mount
    try:
        inside = PurePosixPath(group).relative_to(shown)
    except ValueError:
        return point, point
    if ".." in inside.parts:
        return point, point
    return point.joinpath(*inside.parts), point


def _limit_in(path: Path) -> int | None:
    """The memory limit ``path`` (a cgroup's ``memory.max`` or ``memory.limit_in_bytes``) sets, in bytes; None
    when it sets none or cannot be read."""
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return _limit(text)


def _hierarchical_limit(path: Path) -> int | None:
    """``hierarchical_memory_limit`` of a cgroup v1 ``memory.stat`` file, in bytes; None when it sets none or cannot
    be read."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    return next((_limit(line.split()[1]) for line in lines
                 if line.startswith("hierarchical_memory_limit ") and len(line.split()) == 2), None)  # fmt: skip


def _limit(text: str) -> int | None:
    if not (text.isascii() and text.isdigit()):  # "max", or anything unexpected ("²" is a digit to isdigit)
        return None
    limit = int(text)
    return limit if 0 < limit < _NO_CGROUP_LIMIT else None


def _windows_ram_bytes() -> int | None:
    import ctypes
    from ctypes import wintypes

    class MemoryStatusEx(ctypes.Structure):
        _fields_ = [("dwLength", wintypes.DWORD), ("dwMemoryLoad", wintypes.DWORD),
                    ("ullTotalPhys", ctypes.c_ulonglong), ("ullAvailPhys", ctypes.c_ulonglong),
                    ("ullTotalPageFile", ctypes.c_ulonglong), ("ullAvailPageFile", ctypes.c_ulonglong),
                    ("ullTotalVirtual", ctypes.c_ulonglong), ("ullAvailVirtual", ctypes.c_ulonglong),
                    ("ullAvailExtendedVirtual", ctypes.c_ulonglong)]  # fmt: skip

    status = MemoryStatusEx()
    status.dwLength = ctypes.sizeof(MemoryStatusEx)
    if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
        return None
    return int(status.ullTotalPhys) or None
