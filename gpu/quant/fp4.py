"""FP4 E2M1 quantization with E4M3 block scales: NVFP4 (group 16 + fp32 global), paper FP4 (group 32).

E2M1 magnitudes are {0, 0.5, 1, 1.5, 2, 3, 4, 6}; a code is ``sign << 3 | index``. Rounding is to nearest,
ties to the even index (what ``cvt.rn.satfinite.e2m1x2`` does), saturating at 6. Zero is always code 0
(no negative zero), so codes compare exactly across implementations.

    block scale b = e4m3(min(max|x| / 6 / global, 448))   (global = 1 for the paper's FP4)
    s             = float32(b) * global
    code          = e2m1(x / s)  if s > 0 else 0
"""

from __future__ import annotations

import torch

from gpu.quant.formats import QuantFormat, QuantizedTensor

E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
E4M3_MAX = 448.0
_MIDPOINTS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)
# A tie at midpoint i sits between indices i and i+1; it goes to whichever index is even.
_TIE_GOES_UP = (False, True, False, True, False, True, False)


def e2m1_table(device: torch.device | str = "cpu") -> torch.Tensor:
    """The 16 code values as float32 [16] (codes 8..15 are the negatives of 0..7)."""
    pos = torch.tensor(E2M1_VALUES, dtype=torch.float32, device=device)
    return torch.cat([pos, -pos])


def round_to_e2m1(y: torch.Tensor) -> torch.Tensor:
    """y: float32 [...] -> int8 codes [...] (round to nearest even, saturate at +-6)."""
    a = y.abs().unsqueeze(-1)
    mid = torch.tensor(_MIDPOINTS, dtype=torch.float32, device=y.device)
    up = torch.tensor(_TIE_GOES_UP, device=y.device)
    index = (a > mid).sum(-1) + ((a == mid) & up).sum(-1)
    sign = ((y < 0) & (index > 0)).to(torch.int64)
    return (index | (sign << 3)).to(torch.int8)


def tensor_global_scale(x: torch.Tensor) -> torch.Tensor:
    """The NVFP4 per-tensor scale: max|x| / (6 * 448) as an fp32 scalar (1 for an all-zero tensor)."""
    amax = x.float().abs().amax()
    return torch.where(amax > 0, amax / (6.0 * E4M3_MAX), torch.ones_like(amax))


def quantize_fp4(
    x: torch.Tensor, fmt: QuantFormat, global_scale: torch.Tensor | None = None
) -> QuantizedTensor:
    """x: [..., K] -> codes int8 [..., K], scales float8_e4m3fn [..., K // group], global fp32 scalar."""
    k = x.shape[-1]
    g = fmt.group_of(k)
    xf = x.float().reshape(*x.shape[:-1], fmt.groups(k), g)
    if fmt.global_scale:
        gs = tensor_global_scale(x) if global_scale is None else global_scale.float().reshape(())
    else:
        gs = torch.ones((), dtype=torch.float32, device=x.device)
    block = (xf.abs().amax(dim=-1) / fmt.qmax / gs).clamp(max=E4M3_MAX)
    scales = block.to(torch.float8_e4m3fn)
    s = (scales.float() * gs).unsqueeze(-1)
    safe = torch.where(s > 0, s, torch.ones_like(s))
    codes = round_to_e2m1(xf / safe)
    codes = torch.where(s > 0, codes, torch.zeros_like(codes))
    return QuantizedTensor(codes.reshape(x.shape), scales, fmt, gs if fmt.global_scale else None)


def fp4_code_values(q: QuantizedTensor) -> torch.Tensor:
    """Codes as float32 E2M1 values before scaling: [..., K]."""
    return e2m1_table(q.codes.device)[q.codes.long()]
