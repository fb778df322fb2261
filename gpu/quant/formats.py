"""Quantization formats: what a format is, and the quantized tensor it produces.

Every format quantizes along the last dimension K in groups (a group of ``None`` means the whole row:
per-channel weights, per-token activations). Codes are kept unpacked (one int8 per element) in memory;
``gpu.quant.packing`` turns 4-bit codes into bytes for storage and kernels.

=========  ======  =====  ==============================  =============================================
name       family  group  scales                          codes
=========  ======  =====  ==============================  =============================================
int4       int     64     16-bit (the layer's dtype)      signed, -7..7 (symmetric, qmax 7)
int8       int     row    16-bit                          signed, -127..127 (per channel / per token)
int8_g64   int     64     16-bit                          signed, -127..127 (W4A8 activations)
nvfp4      fp4     16     E4M3 + one fp32 global scale    E2M1: bit 3 sign, bits 0-2 magnitude index
fp4        fp4     32     E4M3                            E2M1 (the paper's FP4)
nf4        nf4     64     16-bit absmax                   index into the NF4 table (weight-only)
=========  ======  =====  ==============================  =============================================
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class QuantFormat:
    name: str
    family: str  # "int" | "fp4" | "nf4"
    bits: int
    group_size: int | None  # None: one group spans the whole row
    qmax: float
    e4m3_scales: bool = False  # block scales stored as float8_e4m3fn instead of the 16-bit dtype
    global_scale: bool = False  # an extra fp32 per-tensor scale (NVFP4)

    def groups(self, k: int) -> int:
        """Number of groups along a row of length ``k``; raises if ``k`` does not divide."""
        group = self.group_size or k
        if k % group:
            raise ValueError(f"{self.name}: row length {k} is not a multiple of the group size {group}")
        return k // group

    def group_of(self, k: int) -> int:
        return self.group_size or k


FORMATS: dict[str, QuantFormat] = {
    f.name: f
    for f in (
        QuantFormat("int4", "int", 4, 64, 7.0),
        QuantFormat("int8", "int", 8, None, 127.0),
        QuantFormat("int8_g64", "int", 8, 64, 127.0),
        QuantFormat("nvfp4", "fp4", 4, 16, 6.0, e4m3_scales=True, global_scale=True),
        QuantFormat("fp4", "fp4", 4, 32, 6.0, e4m3_scales=True),
        QuantFormat("nf4", "nf4", 4, 64, 1.0),
    )
}


def get_format(name: str) -> QuantFormat:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown quantization format {name!r} (known: {', '.join(FORMATS)})") from None


@dataclass
class QuantizedTensor:
    """A tensor quantized along its last dimension.

    codes:        int8 [..., K], unpacked codes (meaning depends on the format family)
    scales:       [..., K // group], 16-bit dtype, or float8_e4m3fn for FP4 formats
    global_scale: fp32 scalar tensor (NVFP4 only), else None
    """

    codes: torch.Tensor
    scales: torch.Tensor
    fmt: QuantFormat
    global_scale: torch.Tensor | None = None
