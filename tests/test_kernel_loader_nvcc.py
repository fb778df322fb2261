"""How the kernel loader runs nvcc: without a console window on Windows (each call from the windowed app flashed
one), and with the ``.cu`` source handed to nvcc as the file's bytes, never decoded and re-encoded in Python's
default encoding (a code page on Windows). Runs anywhere: nvcc is a stand-in script that records what it got."""

from __future__ import annotations

import functools
import io
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from gpu import atomic
from gpu.kernels import loader

# One kernel family with a UTF-8 comment and a shared header, as a developer on Windows may write them.
SOURCE = '// kernel — 4-bit × 16-bit, Łódź\n#include "common.cuh"\nextern "C" __global__ void k() {}\n'.encode()

FAKE_NVCC = """\
import json, pathlib, sys
args = sys.argv[1:]
if args == ["--version"]:
    print("Cuda compilation tools, release 99.9, V99.9.1")
    sys.exit(0)
pathlib.Path(sys.argv[0] + ".args.json").write_text(json.dumps(args))
if "BROKEN" in pathlib.Path(args[-1]).read_text(encoding="utf-8", errors="replace"):
    print("kernel.cu(1): error: identifier BROKEN is undefined", file=sys.stderr)
    sys.exit(1)
out = pathlib.Path(args[args.index("-o") + 1])
out.write_bytes(b"CUBIN:" + pathlib.Path(args[-1]).read_bytes())  # what nvcc was given, byte for byte
"""


@pytest.fixture
def fake_nvcc(tmp_path: Path) -> Path:
    if sys.platform == "win32":
        pytest.skip("the stand-in nvcc is a script with a #! line")
    nvcc = tmp_path / "bin" / "nvcc"
    nvcc.parent.mkdir()
    nvcc.write_text(f"#!{sys.executable}\n{FAKE_NVCC}", encoding="utf-8")
    nvcc.chmod(0o755)
    return nvcc


@pytest.fixture
def kernel_sources(tmp_path: Path, monkeypatch) -> Path:
    src = tmp_path / "kernels_cu"
    src.mkdir()
    (src / "svdq_quant_lora.cu").write_bytes(SOURCE)
    (src / "common.cuh").write_bytes("// shared — ×\n".encode())
    monkeypatch.setattr(loader, "source_dir", lambda: src)
    return src


@pytest.fixture
def built_here(fake_nvcc, kernel_sources, tmp_path, monkeypatch) -> list[bytes]:
    """No prebuilt kernels, the stand-in nvcc, a user cache under ``tmp_path`` and a stand-in pycuda driver: the
    list returned receives each cubin the driver is asked to load."""
    monkeypatch.setenv("NIBBLE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(loader, "find_nvcc", lambda: str(fake_nvcc))
    monkeypatch.setattr(loader, "prebuilt_dir", lambda: tmp_path / "no-prebuilt")
    loaded: list[bytes] = []
    fake_driver = types.SimpleNamespace(Error=Exception, module_from_buffer=lambda data: loaded.append(data) or "m")
    monkeypatch.setitem(sys.modules, "pycuda", types.ModuleType("pycuda"))
    monkeypatch.setitem(sys.modules, "pycuda.driver", fake_driver)
    return loaded


@pytest.fixture
def windows_default_encoding(monkeypatch):
    """Text opened without an encoding decodes as cp1252, as under a Western Windows locale."""
    real = io.text_encoding
    monkeypatch.setattr(io, "text_encoding",
                        lambda encoding, stacklevel=2: "cp1252" if encoding is None else real(encoding, stacklevel))


def test_no_console_window_flags_on_windows_only():
    assert loader.no_window_flags("win32") == loader.CREATE_NO_WINDOW == 0x08000000
    assert getattr(subprocess, "CREATE_NO_WINDOW", 0x08000000) == loader.CREATE_NO_WINDOW  # Windows' own value
    for platform in ("linux", "darwin", "cygwin"):
        assert loader.no_window_flags(platform) == 0  # POSIX's subprocess refuses any other creationflags
    assert loader.no_window_flags() == loader.no_window_flags(sys.platform)  # the running platform by default


def test_nvcc_gets_the_source_file_bytes_and_runs_through_the_one_helper(fake_nvcc, kernel_sources,
                                                                         windows_default_encoding):
    cubin = loader.compile_cubin("svdq_quant_lora", "90", str(fake_nvcc))
    assert cubin == b"CUBIN:" + SOURCE  # not decoded as cp1252 and written back (pycuda did both)
    args = json.loads(Path(f"{fake_nvcc}.args.json").read_text(encoding="utf-8"))
    assert args[0] == "-cubin" and "-arch=sm_90" in args and all(o in args for o in loader.NVCC_OPTIONS)
    assert args[args.index("-I") + 1] == str(kernel_sources)  # its headers are found beside it
    assert loader.nvcc_version(str(fake_nvcc)) == "Cuda compilation tools, release 99.9, V99.9.1"


def test_the_wgmma_family_builds_for_its_arch_specific_target(fake_nvcc, kernel_sources):
    (kernel_sources / "svdq_w4a8_wgmma.cu").write_bytes(SOURCE)
    loader.compile_cubin("svdq_w4a8_wgmma", "90", str(fake_nvcc))
    assert "-arch=sm_90a" in json.loads(Path(f"{fake_nvcc}.args.json").read_text(encoding="utf-8"))


def test_a_failed_build_names_nvccs_message(fake_nvcc, kernel_sources):
    (kernel_sources / "svdq_quant_lora.cu").write_bytes(b"BROKEN\n" + SOURCE)
    with pytest.raises(RuntimeError, match="identifier BROKEN is undefined"):
        loader.compile_cubin("svdq_quant_lora", "86", str(fake_nvcc))


def test_a_built_cubin_reaches_the_cache_while_another_program_holds_the_old_one(built_here, tmp_path,
                                                                                 monkeypatch):
    """Windows: an antivirus scan or another process reading the cached cubin makes the rename fail for a moment
    (sharing violation); the cache write retries as ``gpu.atomic.replace_file`` does instead of failing the load."""
    loaded = built_here
    as_on_windows = functools.partial(atomic.replace_file, windows=True, sleep=lambda _: None)
    monkeypatch.setattr(loader, "replace_file", as_on_windows, raising=False)
    real_replace, busy = os.replace, [1]

    def held_once(src, dst):
        if busy:
            busy.pop()
            err = PermissionError(13, "The process cannot access the file because it is being used")
            err.winerror = 32  # ERROR_SHARING_VIOLATION
            raise err
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", held_once)
    done = loader._load_module_in_context("svdq_quant_lora", "86")
    assert done.origin.startswith("built ") and loaded == [b"CUBIN:" + SOURCE] and not busy
    cached = Path(done.origin.removeprefix("built "))
    assert cached.read_bytes() == b"CUBIN:" + SOURCE and [p.name for p in cached.parent.iterdir()] == [cached.name]


def test_a_kernel_that_cannot_be_cached_still_loads(built_here, fake_nvcc, monkeypatch):
    """The cache only saves the next build. A full disk or a read-only cache folder raised an OSError, which the
    backend takes for a kernel that cannot load: every layer ran the slow reference path for the session though
    the cubin was built and in memory. It loads from memory, nothing half-written is left in the cache."""
    loaded = built_here

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(loader, "replace_file", disk_full, raising=False)
    done = loader._load_module_in_context("svdq_quant_lora", "86")
    assert done.origin == "built (not cached)" and loaded == [b"CUBIN:" + SOURCE]
    cache = loader.cache_path("svdq_quant_lora", "86", str(fake_nvcc))
    assert not cache.exists() and list(cache.parent.iterdir()) == []
