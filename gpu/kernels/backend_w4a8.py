"""Registers the Hopper W4A8 backend with ``gpu.runtime.dispatch`` (imported by ``gpu.kernels.backend``,
so it is asked before the INT4 W4A4 backend).

Hopper (sm_90) has no 4-bit tensor cores: the W4A4 kernels' s4 MMA is emulated there (~25x slower than
s8). This backend runs the *same* INT4 W4A4 checkpoint layer with 8-bit activations (INT8 g64) and the
int4 weights widened to s8 in registers. It serves sm_90 only (verified there); on other GPUs it
refuses, so the W4A4 kernels serve those.
Imports without pycuda, CUDA or nvcc, like the INT4 backend.
"""

from __future__ import annotations

import torch

from gpu.runtime.dispatch import Backend, register_backend

NAME = "fused W4A8 kernels for Hopper (pycuda)"
MIN_ARCH = (9, 0)

_load_errors: dict[tuple[int, torch.dtype], str] = {}


def refuses(layer: torch.nn.Module, device: torch.device) -> str | None:
    """None when the W4A8 kernels can run ``layer`` on ``device``, else the human reason."""
    from gpu.kernels import backend as int4_backend

    why = int4_backend.layer_refusal(layer)
    if why:
        return why
    if device.type != "cuda":
        return f"device is {device.type.upper()}, not a CUDA GPU"
    if not int4_backend._pycuda_available():
        return "pycuda is not installed"
    major, minor = torch.cuda.get_device_capability(device)
    if (major, minor) < MIN_ARCH:
        return f"GPU sm_{major}{minor} has 4-bit tensor cores; W4A8 is for Hopper (sm_90)"
    if major != 9:
        return f"GPU sm_{major}{minor}: W4A8 is built and verified for Hopper (sm_90) only"
    idx = device.index if device.index is not None else torch.cuda.current_device()
    if (idx, layer.compute_dtype) in _load_errors:
        return _load_errors[(idx, layer.compute_dtype)]
    from gpu.kernels.loader import binary_status

    return binary_status(f"{major}{minor}")


def run(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """x: T [..., K] on the GPU -> T [..., N], W4A8 numerics; falls back to the W4A8 reference (and says
    why) when x's dtype is not the layer's or the kernels fail to load."""
    from gpu.kernels.w4a8 import ACT_FORMAT

    if x.dtype != layer.compute_dtype:
        layer.last_path = (
            f"PyTorch reference, W4A8 (input dtype {x.dtype} differs from the layer's {layer.compute_dtype})"
        )
        return layer.forward_reference(x, act_format=ACT_FORMAT)
    from gpu.kernels.backend import _is_load_error
    from gpu.kernels.repack import packed_for
    from gpu.kernels.w4a8 import svdq_linear_forward_w4a8

    try:
        return svdq_linear_forward_w4a8(x, packed_for(layer))
    except Exception as err:  # noqa: BLE001 - a build/load failure must not kill generation
        if not _is_load_error(err):
            raise
        idx = x.device.index if x.device.index is not None else torch.cuda.current_device()
        reason = f"kernel load failed: {err}".splitlines()[0][:300]
        _load_errors[(idx, layer.compute_dtype)] = reason
        layer.last_path = f"PyTorch reference, W4A8 ({reason})"
        return layer.forward_reference(x, act_format=ACT_FORMAT)


register_backend(Backend(NAME, refuses, run))
