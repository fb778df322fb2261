"""Reference numerics of ``SVDQLinear``: exactly what the fused kernels compute, in plain PyTorch.

For x [M, K] and a layer with weight W [N, K] stored as (codes, scales):

    xs    = float32(x) * (1 / float32(smooth))                      # smoothing (x / lambda)
    qx    = quantize(xs, act_format)                                # per token, per group
    acc_g = sum_{k in group g} code(qx)[m, k] * code(qw)[n, k]      # exact (integer / FP4-grid) dot
    y     = sum_g acc_g * sx[m, g] * sw[n, g]                       # fp32 accumulators
          + (xs @ lora_down) @ lora_up^T                            # 16-bit low-rank branch, fp32 math
          + bias

With 16-bit activations (W4A16, NF4) the middle two lines become xs @ dequant(W)^T.
"""

from __future__ import annotations

import torch

from gpu.quant import QuantFormat, QuantizedTensor, code_values, dequantize, group_scales, quantize

# Largest dot-product magnitude that float32 represents exactly (2^24): below it, group dot products
# of codes come out exact whatever the summation order.
_FP32_EXACT = float(1 << 24)


def grouped_dot(qx: QuantizedTensor, qw: QuantizedTensor) -> torch.Tensor:
    """qx: [M, K] activations, qw: [N, K] weights, same group size -> float32 [M, N].

    Each group's dot product of codes is exact; groups are scaled and summed in fp32."""
    m, k = qx.codes.shape
    n = qw.codes.shape[0]
    gx, gw = qx.fmt.group_of(k), qw.fmt.group_of(k)
    if gx != gw:
        raise ValueError(f"activation group {gx} and weight group {gw} differ")
    vx, vw = code_values(qx), code_values(qw)
    exact_in_fp32 = qx.fmt.qmax * qw.fmt.qmax * gx < _FP32_EXACT
    dot_dtype = torch.float32 if exact_in_fp32 else torch.float64
    sx, sw = group_scales(qx), group_scales(qw)
    out = torch.zeros(m, n, dtype=torch.float32, device=qx.codes.device)
    for g in range(k // gx):
        cols = slice(g * gx, (g + 1) * gx)
        dot = (vx[:, cols].to(dot_dtype) @ vw[:, cols].to(dot_dtype).T).float()
        out += dot * (sx[:, g, None] * sw[None, :, g])
    return out


def low_rank_branch(xs: torch.Tensor, lora_down: torch.Tensor, lora_up: torch.Tensor) -> torch.Tensor:
    """xs: float32 [M, K], lora_down [K, r], lora_up [N, r] -> float32 [M, N]."""
    return (xs @ lora_down.float()) @ lora_up.float().T


def reference_linear(
    x: torch.Tensor,
    qw: QuantizedTensor,
    act_format: QuantFormat | str | None,
    smooth: torch.Tensor | None,
    lora_down: torch.Tensor | None,
    lora_up: torch.Tensor | None,
    bias: torch.Tensor | None,
    act_scale_dtype: torch.dtype,
    act_global_scale: torch.Tensor | None = None,
) -> torch.Tensor:
    """x: [M, K] float -> float32 [M, N] (see module docstring)."""
    xs = x.float()
    if smooth is not None:
        xs = xs * torch.reciprocal(smooth.float())
    if act_format is None:
        y = xs @ dequantize(qw).T
    else:
        qx = quantize(xs, act_format, act_scale_dtype, act_global_scale)
        y = grouped_dot(qx, qw)
    if lora_down is not None and lora_down.shape[-1] > 0:
        y = y + low_rank_branch(xs, lora_down, lora_up)
    if bias is not None:
        y = y + bias.float()
    return y
