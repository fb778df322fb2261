"""Quantizers with exact pack/unpack round trips. ``quantize``/``dequantize`` dispatch on the format."""

from __future__ import annotations

import torch

from gpu.quant.formats import FORMATS, QuantFormat, QuantizedTensor, get_format
from gpu.quant.fp4 import fp4_code_values, quantize_fp4
from gpu.quant.integer import int_code_values, quantize_int
from gpu.quant.nf4 import nf4_code_values, quantize_nf4
from gpu.quant.packing import pack_int4, unpack_int4

__all__ = [
    "FORMATS",
    "QuantFormat",
    "QuantizedTensor",
    "code_values",
    "dequantize",
    "get_format",
    "pack_codes",
    "quantize",
    "unpack_codes",
]


def quantize(
    x: torch.Tensor,
    fmt: QuantFormat | str,
    scale_dtype: torch.dtype = torch.float16,
    global_scale: torch.Tensor | None = None,
) -> QuantizedTensor:
    """x: [..., K] -> QuantizedTensor along K. ``scale_dtype`` applies to 16-bit-scaled formats;
    ``global_scale`` (fp32 scalar) fixes NVFP4's per-tensor scale (computed from x when None)."""
    fmt = get_format(fmt) if isinstance(fmt, str) else fmt
    if fmt.family == "int":
        return quantize_int(x, fmt, scale_dtype)
    if fmt.family == "fp4":
        return quantize_fp4(x, fmt, global_scale)
    return quantize_nf4(x, fmt, scale_dtype)


def code_values(q: QuantizedTensor) -> torch.Tensor:
    """The unscaled value of every code, float32 [..., K]."""
    if q.fmt.family == "int":
        return int_code_values(q)
    if q.fmt.family == "fp4":
        return fp4_code_values(q)
    return nf4_code_values(q)


def group_scales(q: QuantizedTensor) -> torch.Tensor:
    """Effective float32 scale of each group [..., K // group] (global scale folded in)."""
    s = q.scales.float()
    return s * q.global_scale.float() if q.global_scale is not None else s


def dequantize(q: QuantizedTensor) -> torch.Tensor:
    """QuantizedTensor -> float32 [..., K]."""
    k = q.codes.shape[-1]
    g = q.fmt.group_of(k)
    v = code_values(q).reshape(*q.codes.shape[:-1], k // g, g)
    return (v * group_scales(q).unsqueeze(-1)).reshape(q.codes.shape)


def pack_codes(q: QuantizedTensor) -> torch.Tensor:
    """Codes in their storage layout: uint8 [..., K // 2] for 4-bit formats, int8 [..., K] for 8-bit."""
    return pack_int4(q.codes) if q.fmt.bits == 4 else q.codes.contiguous()


def unpack_codes(stored: torch.Tensor, fmt: QuantFormat) -> torch.Tensor:
    """Inverse of ``pack_codes``: int8 codes [..., K]."""
    if fmt.bits == 4:
        return unpack_int4(stored, signed=fmt.family == "int")
    return stored.to(torch.int8)
