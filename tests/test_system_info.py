"""The machine's RAM as gpu.system_info reads it (the wizard's RAM budget default comes from it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from gpu.system_info import cgroup_memory_limit, installed_ram_bytes

MEMINFO = Path("/proc/meminfo")


@pytest.mark.skipif(not MEMINFO.is_file(), reason="Linux's /proc/meminfo gives the figure to compare with")
def test_installed_ram_is_the_kernels_memtotal(tmp_path):
    line = next(line for line in MEMINFO.read_text().splitlines() if line.startswith("MemTotal:"))
    assert installed_ram_bytes(root=tmp_path) == int(line.split()[1]) * 1024  # the host's: no cgroup there


@pytest.mark.skipif(not hasattr(__import__("os"), "sysconf"), reason="POSIX: Windows asks GlobalMemoryStatusEx")
def test_ram_a_platform_does_not_give_is_unknown(monkeypatch):
    import os

    def refused(_name):
        raise ValueError("unrecognized configuration name")

    monkeypatch.setattr(os, "sysconf", refused)
    assert installed_ram_bytes() is None


GIB = 2**30
NO_LIMIT_V1 = "9223372036854771712"  # cgroup v1's "no limit": its largest page-aligned value
V2_MOUNT = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate"
HYBRID_MOUNTS = (  # systemd's hybrid layout: the v1 controllers, and v2 (no controllers) under unified/
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")


def _tree(root: Path, cgroup: str, mountinfo: str, files: dict[str, str]) -> Path:
    """A fake file system at ``root``: the process's ``/proc/self/cgroup`` and ``mountinfo``, and ``files`` (path
    from the root -> text)."""
    for path, text in {"proc/self/cgroup": cgroup, "proc/self/mountinfo": mountinfo, **files}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


@pytest.mark.parametrize("cgroup, mountinfo, files, limit", [
    # A container in its own cgroup namespace: its group is the mount's root.
    ("0::/\n", V2_MOUNT, {"sys/fs/cgroup/memory.max": f"{2 * GIB}\n"}, 2 * GIB),
    ("0::/\n", V2_MOUNT, {"sys/fs/cgroup/memory.max": "max\n"}, None),
    # A systemd slice: the limit is the slice's, two levels above the process's scope; the top holds none.
    ("0::/user.slice/user-1000.slice/session-3.scope\n", V2_MOUNT,
     {"sys/fs/cgroup/user.slice/user-1000.slice/memory.max": f"{4 * GIB}\n",
      "sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope/memory.max": "max\n",
      "sys/fs/cgroup/user.slice/memory.max": f"{8 * GIB}\n"}, 4 * GIB),
    # A container sharing the host's namespace: its path from the hierarchy's root, under /sys/fs/cgroup.
    ("0::/system.slice/docker-ab12.scope\n", V2_MOUNT,
     {"sys/fs/cgroup/system.slice/docker-ab12.scope/memory.max": f"{3 * GIB}\n"}, 3 * GIB),
    # Hybrid: the v2 group under unified/, the v1 memory group under memory/; the smaller limit holds.
    ("4:memory:/process_api/d954\n0::/process_api/d954\n", HYBRID_MOUNTS,
     {"sys/fs/cgroup/memory/process_api/d954/memory.stat": f"cache 0\nhierarchical_memory_limit {5 * GIB}\n",
      "sys/fs/cgroup/unified/process_api/memory.max": f"{6 * GIB}\n"}, 5 * GIB),
    # v1: the group's own limit without a memory.stat, then the mount root's.
    ("4:memory:/process_api/d954\n0::/\n", HYBRID_MOUNTS,
     {"sys/fs/cgroup/memory/process_api/d954/memory.limit_in_bytes": f"{2 * GIB}\n",
      "sys/fs/cgroup/memory/memory.limit_in_bytes": f"{7 * GIB}\n"}, 2 * GIB),
    ("4:memory:/process_api/d954\n0::/\n", HYBRID_MOUNTS,
     {"sys/fs/cgroup/memory/memory.limit_in_bytes": f"{7 * GIB}\n"}, 7 * GIB),
    ("4:memory:/process_api/d954\n", HYBRID_MOUNTS,
     {"sys/fs/cgroup/memory/process_api/d954/memory.stat": f"hierarchical_memory_limit {NO_LIMIT_V1}\n",
      "sys/fs/cgroup/memory/memory.limit_in_bytes": f"{NO_LIMIT_V1}\n"}, None),
    # v1 without a cgroup namespace (Docker's cgroupfs driver): the mount shows /docker/<id> at memory/.
    ("9:cpu:/docker/ab12\n4:memory:/docker/ab12\n",
     "35 31 0:32 /docker/ab12 /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n",
     {"sys/fs/cgroup/memory/memory.stat": f"hierarchical_memory_limit {3 * GIB}\n"}, 3 * GIB),
    # A mount point with a space, as mountinfo escapes it.
    ("0::/\n", "30 23 0:26 / /mnt/c\\040g rw - cgroup2 cgroup2 rw\n", {"mnt/c g/memory.max": f"{GIB}\n"}, GIB),
    ("0::/\n", "garbage\n", {"sys/fs/cgroup/memory.max": f"{GIB}\n"}, None),  # no cgroup mount found
    # What no kernel writes is no limit, not a ValueError at the wizard's start: a Unicode digit, a NUL.
    ("0::/\n", V2_MOUNT, {"sys/fs/cgroup/memory.max": "\u00b2\n"}, None),
    ("0::/\n", "30 23 0:26 / /mnt/c\\000g rw - cgroup2 cgroup2 rw\n", {}, None),
])  # fmt: skip
def test_the_memory_limit_is_the_processs_own_cgroups(tmp_path, cgroup, mountinfo, files, limit):
    """Only the top of the hierarchy was read (/sys/fs/cgroup/memory.max, memory/memory.limit_in_bytes), which
    holds no limit of a systemd slice, of a container sharing the host's cgroup namespace nor of a hybrid layout's
    v2 part (under unified/). The process's own group is found from /proc/self/cgroup and the mounts, and every
    limit above it counts."""
    assert cgroup_memory_limit(_tree(tmp_path, cgroup, mountinfo, files)) == limit


@pytest.mark.skipif(not sys.platform.startswith("linux") or not MEMINFO.is_file(), reason="cgroups are Linux's")
def test_a_containers_memory_limit_is_the_ram_there_is(tmp_path):
    """In a container (Docker, a CI runner) the RAM budget defaulted to 3/4 of the host's RAM: over the container's
    limit, the run was killed. The cgroup limit, when there is one, is the RAM there is; a limit above the host's
    RAM, or none that can be read, leaves the host's."""
    host = installed_ram_bytes(root=tmp_path / "nothing")
    assert host is not None and host > 2 * GIB
    limit = tmp_path / "sys" / "fs" / "cgroup" / "memory.max"
    _tree(tmp_path, "0::/\n", V2_MOUNT, {str(limit.relative_to(tmp_path)): f"{2 * GIB}\n"})
    assert installed_ram_bytes(root=tmp_path) == 2 * GIB
    limit.write_text(f"{4 * host}\n")
    assert installed_ram_bytes(root=tmp_path) == host
    (tmp_path / "proc" / "self" / "cgroup").unlink()  # unreadable: the host's
    limit.write_text(f"{GIB}\n")
    assert installed_ram_bytes(root=tmp_path) == host


def test_a_bare_cuda_device_is_the_current_one(monkeypatch):
    """Per-GPU state (kernel caches, refusals, memory limits) is keyed on the device's ordinal: "cuda:3" is 3, and a
    bare "cuda" the device torch runs it on, so that "cuda" and "cuda:<current>" share one entry."""
    import torch

    from gpu.system_info import cuda_index

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)
    assert cuda_index(torch.device("cuda", 3)) == 3 and cuda_index(torch.device("cuda", 0)) == 0
    assert cuda_index(torch.device("cuda")) == 2


def test_a_device_given_as_a_string_is_refused(monkeypatch):
    """``cuda_index("cuda:1")`` returned the string's ``index`` method (a str has one), and per-GPU state was keyed on
    it: a torch.device only."""
    import torch

    from gpu.system_info import cuda_index

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    with pytest.raises(TypeError, match="cuda_index takes a torch.device, not str 'cuda:1'"):
        cuda_index("cuda:1")  # type: ignore[arg-type]


def test_the_plan_and_the_quantizer_read_the_memory_cap_in_force_alike(monkeypatch):
    """The memory plan (``detect_total_vram``) and the quantizer's GPU budget (``gpu_memory_budget``) both read the
    caching allocator's cap in force (``memory_fraction``). Where torch cannot tell it (no allocator state yet),
    the plan counted the whole card and the quantizer's run failed on that RuntimeError before its first block."""
    from types import SimpleNamespace

    import torch

    import gpu.quantizer  # noqa: F401 - before the engine (that package imports it)
    from gpu.runtime.memory_policy import detect_total_vram
    from gpu.streaming.memory import gpu_memory_budget

    fractions = {0: 0.5}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: SimpleNamespace(total_memory=16 * 2**30))
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda index=None: fractions[index])
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction",
                        lambda fraction, index=None: fractions.__setitem__(index, fraction))  # fmt: skip
    cuda = torch.device("cuda", 0)
    assert detect_total_vram(cuda) == 8 * 2**30
    with gpu_memory_budget(cuda, 4.0):
        assert fractions[0] == 0.25 and detect_total_vram(cuda) == 4 * 2**30
    assert fractions[0] == 0.5  # the cap before comes back

    def cannot_say(index=None):
        raise RuntimeError("no allocator state yet")

    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", cannot_say)
    assert detect_total_vram(cuda) == 16 * 2**30
    with gpu_memory_budget(cuda, 4.0):
        assert fractions[0] == 0.25
    assert fractions[0] == 1.0  # no cap known before: none after
