"""Registers the fused INT4 W4A4 backend with ``gpu.runtime.dispatch`` on import.

Importing this module must work without pycuda, without CUDA and without nvcc: every check that needs
them runs inside ``refuses`` and turns a failure into a reason the GUI can show.
"""

from __future__ import annotations

import importlib.util

import torch

from gpu.runtime.dispatch import Backend, register_backend

NAME = "fused INT4 W4A4 kernels (pycuda)"
MIN_ARCH = (8, 0)  # mma.sync.m16n8k64 s4; Turing has only m8n8k32 (see kernels_cu/DESIGN.md)

_pycuda_ok: bool | None = None
_load_errors: dict[tuple[int, torch.dtype], str] = {}


def _pycuda_available() -> bool:
    global _pycuda_ok
    if _pycuda_ok is None:
        _pycuda_ok = importlib.util.find_spec("pycuda") is not None
    return _pycuda_ok


def layer_refusal(layer: torch.nn.Module) -> str | None:
    """Reasons the kernels cannot serve this layer on any GPU (format, dtype, shape)."""
    spec = getattr(layer, "spec", None)
    if spec is None or not hasattr(layer, "qweight"):
        return "not an SVDQLinear layer"
    if spec.weight_format != "int4" or spec.act_format != "int4":
        return f"layer is {spec.kind} {spec.weight_format}/{spec.act_format}; the kernels serve INT4 W4A4 only"
    if layer.compute_dtype not in (torch.bfloat16, torch.float16):
        return f"layer dtype {layer.compute_dtype} (kernels take bf16/fp16)"
    if layer.in_features % 64:
        return f"in_features {layer.in_features} is not a multiple of 64"
    if layer.out_features % 2:
        return f"out_features {layer.out_features} is odd"
    if spec.rank > 128:
        return f"rank {spec.rank} > 128"
    return None


def refuses(layer: torch.nn.Module, device: torch.device) -> str | None:
    """None when the fused kernels can run ``layer`` on ``device``, else the human reason."""
    why = layer_refusal(layer)
    if why:
        return why
    if device.type != "cuda":
        return f"device is {device.type.upper()}, not a CUDA GPU"
    if not _pycuda_available():
        return "pycuda is not installed"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < MIN_ARCH:
        return f"GPU sm_{major}{minor} lacks m16n8k64 s4 MMA (needs sm_80 or newer)"
    idx = device.index if device.index is not None else torch.cuda.current_device()
    if (idx, layer.compute_dtype) in _load_errors:
        return _load_errors[(idx, layer.compute_dtype)]
    from gpu.kernels.loader import binary_status

    return binary_status(f"{major}{minor}")


def run(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x: T [..., K] on the GPU -> T [..., N]; falls back to the reference (and says why) when x's
    dtype is not the layer's or the kernels fail to load."""
    if x.dtype != layer.compute_dtype:
        layer.last_path = (
            f"PyTorch reference (input dtype {x.dtype} differs from the layer's {layer.compute_dtype})"
        )
        return layer.forward_reference(x)
    from gpu.kernels.launch import svdq_linear_forward
    from gpu.kernels.repack import packed_for

    try:
        return svdq_linear_forward(x, packed_for(layer))
    except Exception as err:  # noqa: BLE001 - a build/load failure must not kill generation
        if not _is_load_error(err):
            raise
        idx = x.device.index if x.device.index is not None else torch.cuda.current_device()
        reason = f"kernel load failed: {err}".splitlines()[0][:300]
        _load_errors[(idx, layer.compute_dtype)] = reason
        layer.last_path = f"PyTorch reference ({reason})"
        return layer.forward_reference(x)


def _is_load_error(err: Exception) -> bool:
    """Build / module-load failures (recoverable by falling back), not launch or shape errors."""
    if isinstance(err, RuntimeError) and "no kernel binary" in str(err):
        return True
    try:
        from pycuda.driver import CompileError  # noqa: F401
    except ImportError:
        return False
    import pycuda.driver as drv

    return isinstance(err, drv.CompileError | drv.LogicError) or "nvcc" in str(err)


# Hopper W4A8 first: on sm_90 it serves INT4 W4A4 layers (s4 MMA is emulated there); elsewhere it refuses.
import gpu.kernels.backend_w4a8  # noqa: E402, F401

register_backend(Backend(NAME, refuses, run))
