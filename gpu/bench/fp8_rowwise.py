"""FP8 E4M3 rowwise linears: the 8-bit baseline the benchmarks time next to ours (``torch._scaled_mm``).

Weights are quantized once per output channel, activations per token at every call (dynamic), both with the
scale amax / 448; the GEMM is PyTorch's FP8 rowwise ``torch._scaled_mm`` (cuBLASLt on sm_89+, PyTorch's own
kernel on the CPU). This is the "FP8 rowwise" of the FLUX issue's reference numbers: 8-bit weights (twice our
4-bit bytes) and 8-bit activations, no low-rank branch. A baseline to compare with, not an execution path of
the app.
"""

from __future__ import annotations

import torch
from torch import nn

FP8_MAX = 448.0  # largest finite float8_e4m3fn


def quantize_rows_fp8(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """t [R, C] float -> (q float8_e4m3fn [R, C], scale float32 [R, 1]), t ~ q * scale.

    scale = amax / 448 per row, floored at 1e-12 (an all-zero row gives zeros). No clamp before the cast: a row's
    largest |t / scale| is 448 within an fp32 rounding, far below 464, where rounding would reach past 448."""
    scale = (t.abs().amax(dim=1, keepdim=True).float() / FP8_MAX).clamp_min(1e-12)
    return (t.float() / scale).to(torch.float8_e4m3fn), scale


def fp8_rowwise_gemm(
    xq: torch.Tensor, x_scale: torch.Tensor, weight_fp8: torch.Tensor, weight_scale: torch.Tensor,
    bias: torch.Tensor | None, out_dtype: torch.dtype,
) -> torch.Tensor:
    """xq float8_e4m3fn [M, K] with x_scale float32 [M, 1], weight_fp8 float8_e4m3fn [N, K] with weight_scale
    float32 [1, N], bias [N] or None -> (xq * x_scale) @ (weight_fp8 * weight_scale)^T + bias, [M, N] out_dtype:
    one ``torch._scaled_mm``."""
    return torch._scaled_mm(xq, weight_fp8.t(), scale_a=x_scale, scale_b=weight_scale, bias=bias,
                            out_dtype=out_dtype)  # fmt: skip


def fp8_rowwise_linear(
    x: torch.Tensor, weight_fp8: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None,
    out_dtype: torch.dtype,
) -> torch.Tensor:
    """x [M, K] 16-bit, weights as ``fp8_rowwise_gemm`` -> [M, N] out_dtype: x quantized per token
    (``quantize_rows_fp8``), then ``fp8_rowwise_gemm``."""
    return fp8_rowwise_gemm(*quantize_rows_fp8(x), weight_fp8, weight_scale, bias, out_dtype)


class Fp8RowwiseLinear(nn.Module):
    """``nn.Linear`` replacement: x [..., K] 16-bit -> [..., N] in the linear's dtype via ``torch._scaled_mm``.

    Buffers: ``weight_fp8`` float8_e4m3fn [N, K], ``weight_scale`` float32 [1, N], ``bias`` [N] or None."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.out_dtype = linear.weight.dtype
        w8, scale = quantize_rows_fp8(linear.weight.detach())
        self.register_buffer("weight_fp8", w8)
        self.register_buffer("weight_scale", scale.t().contiguous())
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = fp8_rowwise_linear(x.reshape(-1, x.shape[-1]), self.weight_fp8, self.weight_scale, self.bias,
                               self.out_dtype)  # fmt: skip
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, fp8_e4m3 rowwise"


def to_fp8_rowwise(blocks: nn.Module, keep: tuple[str, ...] = ("norm",)) -> int:
    """Replace, in place, every ``nn.Linear`` under ``blocks`` whose path has no part starting with one of ``keep``
    (default: FLUX's adaLN modulation linears, ``norm1.linear`` etc., stay 16-bit: they run on one row) by an
    ``Fp8RowwiseLinear``; returns how many were replaced. In and out features must be multiples of 16."""
    targets = [
        (name, mod)
        for name, mod in blocks.named_modules()
        if isinstance(mod, nn.Linear) and not any(part.startswith(keep) for part in name.split("."))
    ]
    for name, mod in targets:
        if mod.in_features % 16 or mod.out_features % 16:
            raise ValueError(f"{name}: FP8 rowwise needs features divisible by 16, got {mod.in_features}->"
                             f"{mod.out_features}")  # fmt: skip
        parent_name, _, leaf = name.rpartition(".")
        setattr(blocks.get_submodule(parent_name) if parent_name else blocks, leaf, Fp8RowwiseLinear(mod))
    return len(targets)
