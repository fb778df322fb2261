"""The machine's RAM as gpu.system_info reads it (the wizard's RAM budget default comes from it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gpu.system_info import installed_ram_bytes

MEMINFO = Path("/proc/meminfo")


@pytest.mark.skipif(not MEMINFO.is_file(), reason="Linux's /proc/meminfo gives the figure to compare with")
def test_installed_ram_is_the_kernels_memtotal():
    line = next(line for line in MEMINFO.read_text().splitlines() if line.startswith("MemTotal:"))
    assert installed_ram_bytes(cgroup_limits=()) == int(line.split()[1]) * 1024  # the host's, no container limit


@pytest.mark.skipif(not hasattr(__import__("os"), "sysconf"), reason="POSIX: Windows asks GlobalMemoryStatusEx")
def test_ram_a_platform_does_not_give_is_unknown(monkeypatch):
    import os

    def refused(_name):
        raise ValueError("unrecognized configuration name")

    monkeypatch.setattr(os, "sysconf", refused)
    assert installed_ram_bytes() is None


@pytest.mark.skipif(not sys.platform.startswith("linux") or not MEMINFO.is_file(), reason="cgroups are Linux's")
@pytest.mark.parametrize("v2, v1, limited", [
    ("max\n", None, False),  # cgroup v2, no limit
    ("2147483648\n", None, True),  # cgroup v2: 2 GiB
    (None, "9223372036854771712\n", False),  # cgroup v1, no limit (its largest page-aligned value)
    (None, "2147483648\n", True),  # cgroup v1: 2 GiB
    ("max\n", "2147483648\n", True),  # a v1 limit under an unlimited v2 root (hybrid layouts)
    ("", "garbage", False),  # unreadable: the host's RAM
])  # fmt: skip
def test_a_containers_memory_limit_is_the_ram_there_is(tmp_path, v2, v1, limited):
    """In a container (Docker, a CI runner, a systemd slice) the RAM budget defaulted to 3/4 of the host's RAM:
    over the container's limit, the run was killed. The cgroup limit, when there is one, is the RAM there is."""
    files = []
    for name, text in (("memory.max", v2), ("memory.limit_in_bytes", v1)):
        files.append(tmp_path / name)
        if text is not None:
            files[-1].write_text(text)
    host = installed_ram_bytes(cgroup_limits=())
    assert host is not None and host > 2 * 2**30
    assert installed_ram_bytes(cgroup_limits=files) == (2 * 2**30 if limited else host)
    (tmp_path / "memory.max").write_text(str(4 * host))  # a limit above the host's RAM: the host's
    assert installed_ram_bytes(cgroup_limits=files[:1]) == host
