"""Symmetric integer group quantization (INT4 g64, INT8 per row, INT8 g64).

This is the numerical contract the fused kernels reproduce bit for bit:

    xf    = float32(x)
    scale = to_scale_dtype(max|xf over group| / qmax)   # fp32 IEEE division, then round to 16 bits
    s     = float32(scale)
    q     = clamp(rint(xf / s), -qmax, qmax)  if s > 0 else 0   # rint: round half to even

Dividing by the *rounded* 16-bit scale (not the exact fp32 one) is what makes kernels, which only see
the stored scale, agree with this reference exactly.
"""

from __future__ import annotations

import torch

from gpu.quant.formats import QuantFormat, QuantizedTensor


def quantize_int(x: torch.Tensor, fmt: QuantFormat, scale_dtype: torch.dtype) -> QuantizedTensor:
    """x: [..., K] any float dtype -> codes int8 [..., K], scales scale_dtype [..., K // group]."""
    k = x.shape[-1]
    g = fmt.group_of(k)
    n_groups = fmt.groups(k)
    xf = x.float().reshape(*x.shape[:-1], n_groups, g)
    absmax = xf.abs().amax(dim=-1)
    scales = (absmax / fmt.qmax).to(scale_dtype)
    s = scales.float().unsqueeze(-1)
    safe = torch.where(s > 0, s, torch.ones_like(s))
    q = torch.round(xf / safe).clamp_(-fmt.qmax, fmt.qmax)
    q = torch.where(s > 0, q, torch.zeros_like(q))
    return QuantizedTensor(q.to(torch.int8).reshape(x.shape), scales, fmt)


def int_code_values(q: QuantizedTensor) -> torch.Tensor:
    """Codes as float32 values before scaling: [..., K]."""
    return q.codes.float()
