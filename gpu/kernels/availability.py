"""Whether the fused kernels can run: the device checks every family asks first, and the load failures remembered.

Shared by the dispatcher's backends (``gpu.kernels.backend``) and the FLUX block ops (``gpu.modules.fused_ops``), so
that both refuse a GPU for the same reasons, in the same words, in the same order. Importing this module needs
neither pycuda nor CUDA: every check that does runs when asked and turns a failure into a reason the GUI can show.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable, Hashable, MutableMapping
from typing import TypeVar

import torch

_Key = TypeVar("_Key", bound=Hashable)


@functools.cache
def pycuda_refusal() -> str | None:
    """None when pycuda's driver module loads and the CUDA driver starts, else why not (for the GUI).

    Tried once per process and remembered (``pycuda_refusal.cache_clear()`` forgets it). Installed is not enough:
    a bundled pycuda built against another CUDA driver fails to import ("DLL load failed", "undefined symbol") or
    to start (cuInit), and every layer must then run the reference path, saying why, instead of failing each
    generation."""
    if importlib.util.find_spec("pycuda") is None:
        return "pycuda is not installed"
    try:
        import pycuda.driver as drv

        drv.init()
    except Exception as err:  # noqa: BLE001 - whatever a broken install raises, the reference path still runs
        return _one_line(f"pycuda cannot be used: {type(err).__name__}: {err}")
    return None


def gpu_refusal(device: torch.device, arch_refusal: Callable[[int, int], str | None]) -> str | None:
    """Why a family of fused kernels cannot run on ``device``, whatever the layer, first reason first: it is no CUDA
    GPU, pycuda cannot be used (``pycuda_refusal``), or ``arch_refusal`` (major, minor) turns its architecture
    down; None past those. What is asked after (a load failure, the kernel binary) is the caller's."""
    if device.type != "cuda":
        return f"device is {device.type.upper()}, not a CUDA GPU"
    return pycuda_refusal() or arch_refusal(*torch.cuda.get_device_capability(device))


def binary_refusal(device: torch.device) -> str | None:
    """Why no kernel binary can be had for CUDA ``device``'s architecture (``loader.binary_status``), or None: asked
    after ``gpu_refusal``."""
    from gpu.kernels.loader import binary_status  # asked when needed, as the GPU is

    major, minor = torch.cuda.get_device_capability(device)
    return binary_status(f"{major}{minor}")


def is_load_error(err: Exception) -> bool:
    """Build / module-load failures (recoverable by falling back), not launch or shape errors.

    pycuda or the CUDA driver library that cannot be loaded (ImportError, OSError) and a CUDA driver that cannot
    start (cuInit) are load failures too: decided before asking pycuda's own exception classes, which a broken
    pycuda cannot provide."""
    text = str(err)
    if isinstance(err, ImportError | OSError) or "cuInit failed" in text or "nvcc" in text:
        return True
    if isinstance(err, RuntimeError) and "no kernel binary" in text:
        return True
    try:
        import pycuda.driver as drv
    except Exception:  # noqa: BLE001 - a pycuda that cannot load raised no error of its own classes
        return False
    return isinstance(err, drv.CompileError | drv.LogicError)


def load_failure(err: Exception) -> str:
    """A kernel build or load failure (``is_load_error``) as the reason remembered for it and shown."""
    return _one_line(f"kernel load failed: {err}")


def remember_load_failure(
    memo: MutableMapping[_Key, str] | MutableMapping[_Key, str | None], key: _Key, err: Exception
) -> str | None:
    """When ``err`` is a kernel build or load failure (``is_load_error``): its reason (``load_failure``), stored as
    ``memo[key]`` so that later calls for ``key`` (a device index and what runs there) go straight to the reference
    and say why. None for any other error, which the caller re-raises (a launch or shape error is a bug, not a
    reason to fall back)."""
    if not is_load_error(err):
        return None
    memo[key] = reason = load_failure(err)
    return reason


def _one_line(reason: str) -> str:
    """``reason`` as the GUI shows it: its first line, at most 300 characters (a compiler's or loader's message can
    run to pages)."""
    return reason.splitlines()[0][:300]
