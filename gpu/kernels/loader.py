"""Find or build the kernel binaries for the running GPU, and load them as pycuda modules.

Order of preference for a kernel family ``kernels_cu/<stem>.cu`` on a GPU of architecture sm_XY:

1. a prebuilt fatbin shipped by the packaging step, ``resources/kernels/<stem>.fatbin`` (with its
   ``<stem>.json`` sidecar naming the source hash it was built from; ignored when the sources are present
   and differ, so a developer's edit is never shadowed by a stale binary);
2. a cubin in the user cache directory, ``<user_cache_dir>/kernels/<stem>-<src hash>-sm_XY-<nvcc hash>.cubin``;
3. a fresh build with nvcc (``compile_cubin``), then written to that cache.

End users therefore need no nvcc when the app ships fatbins. Modules are loaded into the device's
primary context, the one PyTorch uses, so pointers from torch tensors are valid in the kernels.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from gpu.atomic import replace_file
from gpu.paths import resources_dir, user_cache_dir

log = logging.getLogger(__name__)

KERNEL_FAMILIES = ("svdq_quant_lora", "svdq_w4a4_gemm", "svdq_w4a8_gemm", "svdq_w4a8_wgmma",
                   "svdq_fused_norm", "svdq_w4a16_gemv")  # the last two: gpu/modules/fused_ops.py
# Families built for one architecture only, with its arch-specific target: wgmma needs sm_90a.
ARCH_SPECIFIC = {"svdq_w4a8_wgmma": ("90", "90a")}
# nvcc options for every build: -lineinfo keeps sanitizer reports readable at no run-time cost.
NVCC_OPTIONS = ("-O3", "-std=c++17", "-lineinfo")
# Architectures the packaging step builds fatbins for (sm_75 runs the Turing forms: gpu/kernels/mma_forms.py).
PACKAGED_ARCHS = ("75", "80", "86", "89", "90")
# subprocess.CREATE_NO_WINDOW, spelled out: the subprocess module defines it on Windows only.
CREATE_NO_WINDOW = 0x08000000


def source_dir() -> Path:
    """``kernels_cu/`` of the repository (absent in a frozen app that ships only fatbins)."""
    return Path(__file__).resolve().parent.parent.parent / "kernels_cu"


def prebuilt_dir() -> Path:
    return resources_dir() / "kernels"


def find_nvcc() -> str | None:
    """nvcc from $CUDA_HOME/$CUDA_PATH, the PATH, or /usr/local/cuda, else None."""
    for env in ("CUDA_HOME", "CUDA_PATH"):  # CUDA_PATH is what the Windows installer sets
        root = os.environ.get(env)
        for name in ("nvcc", "nvcc.exe"):  # Windows: an exact name, unlike shutil.which's PATHEXT search
            if root and (Path(root) / "bin" / name).is_file():
                return str(Path(root) / "bin" / name)
    found = shutil.which("nvcc")
    if found:
        return found
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.exists() else None


def source_hash(stem: str) -> str | None:
    """sha256 over ``<stem>.cu`` and every shared header (any .cuh edit invalidates all families)."""
    src = source_dir()
    cu = src / f"{stem}.cu"
    if not cu.exists():
        return None
    h = hashlib.sha256()
    for path in [cu, *sorted(src.glob("*.cuh"))]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(" ".join(NVCC_OPTIONS).encode())
    return h.hexdigest()


def no_window_flags(platform: str = sys.platform) -> int:
    """``creationflags`` for running a console program (nvcc) on ``platform``: ``CREATE_NO_WINDOW`` on
    Windows, where each call from the windowed app (which has no console to share) would otherwise flash a
    console window of its own; 0 elsewhere (POSIX refuses any other value)."""
    return CREATE_NO_WINDOW if platform == "win32" else 0


def run_nvcc(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Runs ``args`` (nvcc and its arguments) to the end without a console window, its output captured as
    text (nvcc's own messages are ASCII; any other byte is replaced rather than raising). A non-zero exit
    is the caller's to check; a missing program raises OSError."""
    return subprocess.run(args, capture_output=True, text=True, encoding="utf-8", errors="replace",
                          check=False, creationflags=no_window_flags())


_nvcc_version_cache: dict[str, str] = {}


def nvcc_version(nvcc: str) -> str:
    if nvcc not in _nvcc_version_cache:
        out = run_nvcc([nvcc, "--version"]).stdout
        _nvcc_version_cache[nvcc] = out.strip().splitlines()[-1] if out.strip() else "unknown"
    return _nvcc_version_cache[nvcc]


def cache_path(stem: str, arch: str, nvcc: str) -> Path | None:
    """Cache file for (source hash, arch, nvcc version); None when the sources are not present."""
    src_hash = source_hash(stem)
    if src_hash is None:
        return None
    tool = hashlib.sha256(nvcc_version(nvcc).encode()).hexdigest()[:12]
    return user_cache_dir() / "kernels" / f"{stem}-{src_hash[:20]}-sm_{target_arch(stem, arch)}-{tool}.cubin"


def prebuilt_fatbin(stem: str) -> Path | None:
    """The shipped fatbin for ``stem`` if present and built from the current sources (when known)."""
    fatbin = prebuilt_dir() / f"{stem}.fatbin"
    if not fatbin.exists():
        return None
    current = source_hash(stem)
    sidecar = fatbin.with_suffix(".json")
    if current is not None and sidecar.exists():
        try:
            built_from = json.loads(sidecar.read_text()).get("source_hash")
        except (OSError, ValueError):
            return None
        if built_from != current:
            return None
    return fatbin


def binary_status(arch: str) -> str | None:
    """None when every kernel family can be obtained for sm_<arch> (prebuilt, cached or buildable),
    else the reason (the GUI shows it). Cheap: builds nothing."""
    nvcc = find_nvcc()
    for stem in KERNEL_FAMILIES:
        if prebuilt_fatbin(stem) is not None:
            continue
        if source_hash(stem) is None:
            return f"no kernel binary for sm_{arch} and no kernel sources ({stem})"
        if nvcc is None:
            pattern = f"{stem}-{source_hash(stem)[:20]}-sm_{target_arch(stem, arch)}-*"
            cached = any((user_cache_dir() / "kernels").glob(pattern))
            if not cached:
                return f"no kernel binary for sm_{arch} and nvcc not found"
    return None


def target_arch(stem: str, arch: str) -> str:
    """The nvcc target for ``stem`` on sm_<arch>: ``90a`` for the wgmma family on Hopper, else ``arch``."""
    special = ARCH_SPECIFIC.get(stem)
    return special[1] if special is not None and special[0] == arch else arch


def fatbin_archs(stem: str, archs: tuple[str, ...]) -> tuple[str, ...]:
    """The targets a packaged fatbin of ``stem`` holds: every arch, or the one arch-specific target."""
    special = ARCH_SPECIFIC.get(stem)
    return (special[1],) if special is not None else archs


def compile_cubin(stem: str, arch: str, nvcc: str) -> bytes:
    """Build ``kernels_cu/<stem>.cu`` for sm_<arch> with nvcc -> cubin bytes; RuntimeError with nvcc's
    messages when it fails.

    nvcc reads the source file itself, as bytes: the text never passes through Python's default encoding
    (a code page on Windows), and nvcc runs without a console window (``run_nvcc``). (pycuda's compiler was
    used before: it wrote the source back out in that encoding and started nvcc twice with no way to pass
    ``creationflags``.)"""
    src = source_dir()
    with tempfile.TemporaryDirectory(prefix="nibble-nvcc-") as tmp:
        out = Path(tmp) / f"{stem}.cubin"
        cmd = [nvcc, "-cubin", *NVCC_OPTIONS, f"-arch=sm_{target_arch(stem, arch)}", "-I", str(src),
               "-o", str(out), str(src / f"{stem}.cu")]
        done = run_nvcc(cmd)
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(f"nvcc could not build {stem} for sm_{target_arch(stem, arch)} "
                               f"(exit {done.returncode}):\n{done.stderr or done.stdout}")
        return out.read_bytes()


def build_fatbin(stem: str, out_dir: Path, archs: tuple[str, ...] = PACKAGED_ARCHS) -> Path:
    """Packaging step: one fatbin holding SASS for every arch, plus its source-hash sidecar. A failed nvcc
    raises CalledProcessError (its messages written to stderr)."""
    nvcc = find_nvcc()
    if nvcc is None:
        raise RuntimeError("nvcc not found; set CUDA_HOME or put nvcc on the PATH")
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{stem}.fatbin"
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in fatbin_archs(stem, archs)]
    cmd = [nvcc, "-fatbin", *NVCC_OPTIONS, *gencode, "-I", str(source_dir()), "-o", str(out),
           str(source_dir() / f"{stem}.cu")]
    done = run_nvcc(cmd)
    for text, stream in ((done.stdout, sys.stdout), (done.stderr, sys.stderr)):
        if text and stream is not None:  # a packaging step runs in a console: nvcc's messages shown as before
            stream.write(text)
    done.check_returncode()  # CalledProcessError: packaging/build_kernels.py retries without optional archs
    out.with_suffix(".json").write_text(json.dumps({"source_hash": source_hash(stem), "archs": list(archs)}))
    return out


@dataclass
class LoadedModule:
    module: object  # pycuda.driver.Module
    origin: str  # "prebuilt <path>", "cache <path>" or "built <path>"


_lock = threading.RLock()
_modules: dict[tuple[int, str], LoadedModule] = {}


def load_module(stem: str, device_index: int, arch: str) -> LoadedModule:
    """The pycuda module of ``stem`` for the device, loading or building it once per process.

    Raises RuntimeError with a human reason when no binary can be had."""
    from gpu.kernels import context

    key = (device_index, stem)
    with _lock:
        if key in _modules:
            return _modules[key]
        with context.active(device_index):
            loaded = _load_module_in_context(stem, arch)
        _modules[key] = loaded
        return loaded


def _load_module_in_context(stem: str, arch: str) -> LoadedModule:
    """``load_module``'s work; the device's context is current."""
    import pycuda.driver as drv

    fatbin = prebuilt_fatbin(stem)
    if fatbin is not None:
        try:
            return LoadedModule(drv.module_from_buffer(fatbin.read_bytes()), f"prebuilt {fatbin}")
        except drv.Error:
            pass  # no SASS for this arch in the shipped fatbin: fall through to cache / build
    nvcc = find_nvcc()
    if nvcc is None:
        raise RuntimeError(f"no kernel binary for sm_{arch} and nvcc not found")
    path = cache_path(stem, arch, nvcc)
    if path is None:
        raise RuntimeError(f"no kernel binary for sm_{arch} and no kernel sources ({stem})")
    if path.exists():
        origin = f"cache {path}"
        cubin = path.read_bytes()
    else:
        cubin = compile_cubin(stem, arch, nvcc)
        origin = f"built {path}" if _write_cache(path, cubin) else "built (not cached)"
    return LoadedModule(drv.module_from_buffer(cubin), origin)


def _write_cache(path: Path, cubin: bytes) -> bool:
    """Keeps a built cubin for the next start; whether it was kept. The cache only saves the next build: a full
    disk, a read-only folder or a file held longer than the retries leave the kernels running from memory this
    session (an OSError here was taken for a kernel that cannot load, every layer then on the slow path)."""
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(cubin)
        # atomic: concurrent processes never read a half-written cubin; retried while Windows' antivirus or
        # another process reading the old cubin briefly holds it
        replace_file(tmp, path)
        return True
    except OSError as err:
        log.warning("the built kernel %s could not be cached (%s); it runs from memory this session", path.name, err)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return False
