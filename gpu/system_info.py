"""The GPU this machine has (if any), for the model panel and the execution-path decision, and its RAM."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


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


def installed_ram_bytes() -> int | None:
    """The RAM this machine has, in bytes; None when it cannot be read. No new dependency: ``sysconf`` on POSIX
    (Linux, macOS), ``GlobalMemoryStatusEx`` on Windows. For defaults such as the quantizer's RAM budget, which
    must not be more than the machine holds (it would swap, or the system would kill the process)."""
    if sys.platform == "win32":
        return _windows_ram_bytes()
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # a platform without these names
        return None
    return pages * page_size if pages > 0 and page_size > 0 else None


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
