"""The GPU this machine has (if any), for the model panel and the execution-path decision, and its RAM (as much
of it as the app may use)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


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


# The memory limit of the container (or systemd slice) the app runs in: cgroup v2, then v1.
CGROUP_MEMORY_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def installed_ram_bytes(cgroup_limits: Sequence[Path] = CGROUP_MEMORY_LIMITS) -> int | None:
    """The RAM this machine lets the app use, in bytes; None when it cannot be read. No new dependency: ``sysconf``
    on POSIX (Linux, macOS), ``GlobalMemoryStatusEx`` on Windows; on Linux at most the memory limit of the
    container the app runs in (``cgroup_limits``), which kills the app when it is exceeded however much RAM the
    host has. For defaults such as the quantizer's RAM budget, which must not be more than the machine holds (it
    would swap, or the system would kill the process)."""
    if sys.platform == "win32":
        return _windows_ram_bytes()
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # a platform without these names
        return None
    installed = pages * page_size if pages > 0 and page_size > 0 else None
    if not sys.platform.startswith("linux"):
        return installed
    limits = [limit for path in cgroup_limits if (limit := _cgroup_limit(path)) is not None]
    return min([installed, *limits] if installed else limits, default=None)


# cgroup v1 says "no limit" with the largest page-aligned signed 64-bit value (9223372036854771712), v2 with "max".
_NO_CGROUP_LIMIT = 2**62


def _cgroup_limit(path: Path) -> int | None:
    """The memory limit ``path`` (a cgroup's ``memory.max`` or ``memory.limit_in_bytes``) sets, in bytes; None
    when it sets none or cannot be read (no cgroup file system, another layout)."""
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text.isdigit():  # "max", or anything unexpected
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
