"""GPU check of the shipped kernel binaries: run the kernel correctness tests with nvcc out of reach.

    PATH=<without nvcc> python packaging/check_prebuilt_kernels.py [--frozen-layout] [pytest args...]

Run on a CUDA machine after ``packaging/build_kernels.py`` (the fatbins in ``resources/kernels/``). Before the
tests start, ``gpu.kernels.loader.find_nvcc`` is made to return None (on top of PATH, the loader also looks in
$CUDA_HOME and /usr/local/cuda, which a user's machine does not have), the user cache points at a new empty
folder, and every module load is recorded. The tests are the kernel suites of ``tests/gpu/`` (W4A4, both W4A8
paths, the FLUX block ops) minus the two that need nvcc/compute-sanitizer themselves. Passes (exit 0)
when the tests pass and every kernel module was loaded from a prebuilt fatbin (loader origin "prebuilt ...").

``--frozen-layout`` also hides ``kernels_cu/`` from the loader, as in the bundle (no source-hash check);
without it the fatbins must match the current sources' hash, so a stale binary fails instead of passing.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gpu.kernels.loader import LoadedModule

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main(argv: list[str]) -> int:
    import pytest

    from gpu.kernels import loader

    frozen = "--frozen-layout" in argv
    argv = [a for a in argv if a != "--frozen-layout"]
    os.environ["NIBBLE_DATA_DIR"] = tempfile.mkdtemp(prefix="nibble-kernels-")  # empty cubin cache
    for env in ("CUDA_HOME", "CUDA_PATH"):
        os.environ.pop(env, None)
    print(f"nvcc on PATH: {shutil.which('nvcc')}; loader.find_nvcc() before patch: {loader.find_nvcc()}")
    loader.find_nvcc = lambda: None
    if frozen:
        loader.source_dir = lambda: REPO / "no-kernel-sources-in-the-bundle"
    origins: list[str] = []
    original = loader._load_module_in_context

    def recording(stem: str, arch: str) -> LoadedModule:
        loaded = original(stem, arch)
        origins.append(f"{stem} sm_{arch}: {loaded.origin}")
        return loaded

    loader._load_module_in_context = recording
    print("prebuilt fatbins:", ", ".join(str(loader.prebuilt_fatbin(s)) for s in loader.KERNEL_FAMILIES))
    tests = [str(REPO / "tests" / "gpu" / f"{name}.py") for name in ("test_fused_kernels", "test_w4a8_kernels",
                                                                     "test_w4a8_fp8_kernels", "test_fused_ops_device")]
    rc = pytest.main([*tests, "-q", "-p", "no:cacheprovider", "-k",
                      "not prebuilt_fatbin_and_cache and not compute_sanitizer", *argv])
    print("kernel module loads:")
    for line in origins:
        print("  " + line)
    from_fatbin = bool(origins) and all(": prebuilt " in o for o in origins)
    print(f"every load from a prebuilt fatbin: {from_fatbin} ({len(origins)} loads); pytest exit {int(rc)}")
    return 0 if rc == 0 and from_fatbin else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
