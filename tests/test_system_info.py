"""The machine's RAM as gpu.system_info reads it (the wizard's RAM budget default comes from it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu.system_info import installed_ram_bytes

MEMINFO = Path("/proc/meminfo")


@pytest.mark.skipif(not MEMINFO.is_file(), reason="Linux's /proc/meminfo gives the figure to compare with")
def test_installed_ram_is_the_kernels_memtotal():
    line = next(line for line in MEMINFO.read_text().splitlines() if line.startswith("MemTotal:"))
    assert installed_ram_bytes() == int(line.split()[1]) * 1024


@pytest.mark.skipif(not hasattr(__import__("os"), "sysconf"), reason="POSIX: Windows asks GlobalMemoryStatusEx")
def test_ram_a_platform_does_not_give_is_unknown(monkeypatch):
    import os

    def refused(_name):
        raise ValueError("unrecognized configuration name")

    monkeypatch.setattr(os, "sysconf", refused)
    assert installed_ram_bytes() is None
