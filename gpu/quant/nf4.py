"""NF4 weight-only quantization (the W4A16 baseline of bitsandbytes / Forge / diffusers).

Blocks of 64 along K, each scaled by its absmax (stored in 16 bits); each value maps to the nearest of
the 16 NormalFloat levels. Activations stay 16-bit.
"""

from __future__ import annotations

import torch

from gpu.quant.formats import QuantFormat, QuantizedTensor

NF4_LEVELS = (
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
    -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
    0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
    0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
)  # fmt: skip


def nf4_table(device: torch.device | str = "cpu") -> torch.Tensor:
    """The 16 NormalFloat levels as float32 [16] in -1..1, indexed by code (0..15, ascending)."""
    return torch.tensor(NF4_LEVELS, dtype=torch.float32, device=device)


def quantize_nf4(x: torch.Tensor, fmt: QuantFormat, scale_dtype: torch.dtype) -> QuantizedTensor:
    """x: [..., K] -> codes int8 in 0..15 [..., K], absmax scales scale_dtype [..., K // 64]."""
    k = x.shape[-1]
    g = fmt.group_of(k)
    xf = x.float().reshape(*x.shape[:-1], fmt.groups(k), g)
    scales = xf.abs().amax(dim=-1).to(scale_dtype)
    s = scales.float().unsqueeze(-1)
    y = xf / torch.where(s > 0, s, torch.ones_like(s))
    table = nf4_table(x.device)
    codes = (y.unsqueeze(-1) - table).abs().argmin(dim=-1)
    return QuantizedTensor(codes.to(torch.int8).reshape(x.shape), scales, fmt)


def nf4_code_values(q: QuantizedTensor) -> torch.Tensor:
    """Codes int8 [..., K] as float32 NF4 levels before scaling: [..., K]."""
    return nf4_table(q.codes.device)[q.codes.long()]
