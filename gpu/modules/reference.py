"""Reference numerics of ``SVDQLinear``: exactly what the fused kernels compute, in plain PyTorch.

For x [M, K] and a layer with weight W [N, K] stored as (codes, scales):

    xs    = float32(x) * (1 / float32(smooth))                      # smoothing (x / lambda)
    qx    = quantize(xs, act_format)                                # per token, per group
    acc_g = sum_{k in group g} code(qx)[m, k] * code(qw)[n, k]      # exact (integer / FP4-grid) dot
    y     = sum_g acc_g * sx[m, g] * sw[n, g]                       # fp32 accumulators
          + (xs @ lora_down) @ lora_up^T                            # 16-bit low-rank branch, fp32 math
          + bias

With 16-bit activations (W4A16, NF4) the middle two lines become xs @ dequant(W)^T.

Hopper executes INT4 W4A4 checkpoints as W4A8 with per-token FP8 activations (``FP8_ROW``, see
``reference_linear_fp8_row``): one scale per token instead of per group, and the low-rank branch on 16-bit
operands, as the sm_90 kernels compute it.
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


FP8_ROW = "fp8_e4m3_row"  # execution override: INT4 weights x per-token FP8 E4M3 activations (Hopper)
FP8_MAX = 448.0


def quantize_fp8_row(xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """xs: float32 [M, K] -> (q float32 [M, K] holding E4M3 values, sa float32 [M]).

    r = 448 / amax and sa = amax / 448 (IEEE fp32 divisions), q = e4m3(xs * r) rounded to nearest even and
    saturated at +-448; an all-zero row gives q = 0 and sa = 0."""
    amax = xs.abs().amax(-1)
    nonzero = amax > 0
    safe = torch.where(nonzero, amax, torch.ones_like(amax))
    fp8_max = torch.full_like(amax, FP8_MAX)  # tensor / tensor: torch turns "/ scalar" into "* (1 / scalar)"
    r = torch.where(nonzero, fp8_max / safe, torch.zeros_like(amax))
    sa = torch.where(nonzero, amax / fp8_max, torch.zeros_like(amax))
    q = (xs * r[:, None]).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn).float()
    return q, sa


def fp8_row_grouped_dot(q: torch.Tensor, qw: QuantizedTensor) -> torch.Tensor:
    """q: float32 [M, K] E4M3 values, qw: [N, K] int4 g64 weights -> float32 [M, N] = sum_g dot_g * sw[n, g].

    fp32 throughout, as the kernels (tensor-core group dots, then one FFMA per group): the products are exact,
    the sums round in a different order than the hardware's, so kernels match this to ~1e-6 relative."""
    m, k = q.shape
    group = qw.fmt.group_of(k)
    vw, sw = code_values(qw).float(), group_scales(qw).float()
    out = torch.zeros(m, qw.codes.shape[0], dtype=torch.float32, device=q.device)
    for g in range(k // group):
        cols = slice(g * group, (g + 1) * group)
        out += (q[:, cols] @ vw[:, cols].T) * sw[None, :, g]
    return out


def smoothed_lora_down(lora_down: torch.Tensor, smooth: torch.Tensor | None) -> torch.Tensor:
    """L1 [K, r] 16-bit -> L1 / lambda [K, r] in L1's dtype: the down projection taken on the raw x."""
    if smooth is None:
        return lora_down
    inv = torch.reciprocal(smooth.float())
    return (lora_down.float() * inv[:, None]).to(lora_down.dtype)


def reference_linear_fp8_row(
    x: torch.Tensor,
    qw: QuantizedTensor,
    smooth: torch.Tensor | None,
    lora_down: torch.Tensor | None,
    lora_up: torch.Tensor | None,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """x: T [M, K] 16-bit -> float32 [M, N], the numerics of the Hopper W4A8 kernels:

        xs   = float32(x) * (1 / float32(smooth))
        q, sa = quantize_fp8_row(xs)                                  # per-token E4M3
        acc  = fp8_row_grouped_dot(q, qw)
        lact = T(float32(x) @ float32(T(L1 / smooth)))                # 16-bit, as the kernel's operand
        y    = acc * sa + float32(lact) @ float32(L2)^T + bias
    """
    xs = x.float()
    if smooth is not None:
        xs = xs * torch.reciprocal(smooth.float())
    q, sa = quantize_fp8_row(xs)
    y = fp8_row_grouped_dot(q, qw) * sa[:, None]
    if lora_down is not None and lora_down.shape[-1] > 0:
        lact = (x.float() @ smoothed_lora_down(lora_down, smooth).float()).to(x.dtype)
        y = y + lact.float() @ lora_up.float().T
    if bias is not None:
        y = y + bias.float()
    return y


def check_gelu_from(gelu_from: int | None, n: int) -> None:
    """``gelu_from`` of an N-column output: None (no GELU) or a column in [0, N] (N: none of them)."""
    if gelu_from is not None and not 0 <= gelu_from <= n:
        raise ValueError(f"gelu_from={gelu_from} is outside the output's columns [0, {n}]")


def gelu_columns_(y: torch.Tensor, start: int | None) -> torch.Tensor:
    """y: [..., N] float -> y with tanh-GELU applied in place to columns ``start:`` (None: none, 0: all).
    The fused GEMMs' ``gelu_from`` epilogue; they apply it to the fp32 value before the single 16-bit
    rounding, this applies it to the rounded output (diffusers' order), so the two agree within a rounding."""
    if start is not None and start < y.shape[-1]:
        cols = y[..., start:]
        cols.copy_(torch.nn.functional.gelu(cols, approximate="tanh"))
    return y
