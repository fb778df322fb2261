"""A pycuda that is installed but cannot be used (a bundled build against another CUDA driver: "DLL load failed",
"undefined symbol", cuInit failing) makes the fused backends refuse, naming the reason, so every layer runs the
reference path and says why, instead of each quantized generation failing. The fake, broken ``pycuda`` packages
sit on ``sys.path``; the engine's code and Python's import machinery are the real ones."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from gpu.kernels import availability, backend
from gpu.modules.layer_spec import LayerSpec
from gpu.modules.svdq_linear import SVDQLinear

DLL_FAILED = "DLL load failed while importing _driver: The specified procedure could not be found."
UNDEFINED_SYMBOL = "/bundle/_internal/pycuda/_driver.so: undefined symbol: cuMemAllocAsync"
CUINIT = "cuInit failed: CUDA driver version is insufficient for CUDA runtime version"

BROKEN_IMPORT = f"raise ImportError({DLL_FAILED!r})\n"
MISSING_DRIVER_LIBRARY = f"raise OSError({UNDEFINED_SYMBOL!r})\n"
DRIVER_WONT_START = f"""\
class Error(Exception): pass
class LogicError(Error): pass
class CompileError(Error): pass
class LaunchError(Error): pass
class RuntimeError(Error): pass
def init(flags=0):
    raise RuntimeError({CUINIT!r})
"""


@pytest.fixture
def broken_pycuda(tmp_path: Path, monkeypatch):
    """Puts a ``pycuda`` package whose ``driver`` module runs the given code on ``sys.path``; the backend tries
    pycuda afresh, and every pycuda module imported meanwhile is forgotten afterwards."""
    before = {name: mod for name, mod in sys.modules.items() if name == "pycuda" or name.startswith("pycuda.")}
    for name in before:
        monkeypatch.delitem(sys.modules, name)
    availability.pycuda_refusal.cache_clear()
    monkeypatch.syspath_prepend(str(tmp_path))

    def install(driver_code: str) -> None:
        (tmp_path / "pycuda").mkdir()
        (tmp_path / "pycuda" / "__init__.py").write_text("")
        (tmp_path / "pycuda" / "driver.py").write_text(driver_code)

    yield install
    for name in [n for n in sys.modules if n == "pycuda" or n.startswith("pycuda.")]:
        del sys.modules[name]
    sys.modules.update(before)
    availability.pycuda_refusal.cache_clear()  # the broken one's answer is not kept for the tests after


def _w4a4_layer() -> SVDQLinear:
    return SVDQLinear(128, 64, LayerSpec("svdquant", "int4", "int4", 32, True), dtype=torch.bfloat16)


@pytest.mark.parametrize(("driver_code", "reason"), [(BROKEN_IMPORT, DLL_FAILED), (MISSING_DRIVER_LIBRARY,
                         UNDEFINED_SYMBOL), (DRIVER_WONT_START, CUINIT)], ids=["dll", "symbol", "cuinit"])  # fmt: skip
def test_fused_paths_refuse_a_pycuda_that_cannot_load_or_start_and_say_why(broken_pycuda, driver_code, reason):
    broken_pycuda(driver_code)
    layer, gpu = _w4a4_layer(), torch.device("cuda", 0)
    for path in (backend.W4A8, backend.INT4):  # decided before the GPU is asked anything (CPU torch here)
        why = path.refuses(layer, gpu)
        assert why is not None and why.startswith("pycuda cannot be used: ") and reason in why, why
    from gpu.modules import fused_ops

    # The FLUX block ops (norms, GEMV) said "pycuda is not installed" of an installed, broken one.
    assert fused_ops._probe(0, "norm") == availability.pycuda_refusal() == why


def test_a_load_failure_of_pycuda_itself_falls_back_instead_of_failing_generation(broken_pycuda):
    """``run`` (and the FLUX block ops) fall back on the errors ``availability.is_load_error`` accepts: those a
    pycuda that cannot load raises are among them, launch and shape errors are not."""
    broken_pycuda(BROKEN_IMPORT)
    assert availability.is_load_error(ImportError(DLL_FAILED))
    assert availability.is_load_error(OSError(UNDEFINED_SYMBOL))
    assert availability.is_load_error(RuntimeError("no kernel binary for sm_86 and nvcc not found"))
    assert not availability.is_load_error(ValueError("K=20000 > 16384 (the FP8 prologue keeps a long token row)"))
    assert not availability.is_load_error(RuntimeError("CUDA error: an illegal memory access was encountered"))


def test_a_driver_that_does_not_start_is_a_load_failure(broken_pycuda):
    broken_pycuda(DRIVER_WONT_START)
    import pycuda.driver as drv

    assert availability.is_load_error(drv.RuntimeError(CUINIT))
    assert availability.is_load_error(drv.CompileError("nvcc compilation of kernel.cu failed"))
    assert not availability.is_load_error(drv.LaunchError("cuLaunchKernel failed: an illegal memory access"))
