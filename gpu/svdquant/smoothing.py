"""SmoothQuant-style smoothing: migrate activation outliers into the weight, channel by channel."""

from __future__ import annotations

import torch

from gpu.quantize_defaults import DEFAULT_ALPHA_POINTS


def alpha_grid(points: int) -> tuple[float, ...]:
    """``points`` (>= 2) migration strengths evenly spaced over [0, 1], both ends included: the candidates
    the smoothing search scores (its cost grows linearly with them)."""
    if points < 2:
        raise ValueError(f"an alpha grid needs at least 2 points (0 and 1), not {points}")
    return tuple(round(i / (points - 1), 6) for i in range(points))


DEFAULT_ALPHA_GRID = alpha_grid(DEFAULT_ALPHA_POINTS)


def smoothing_factors(x_absmax: torch.Tensor, w_absmax: torch.Tensor, alpha: float) -> torch.Tensor:
    """lambda_i = max|X_:,i|^alpha / max|W_:,i|^(1-alpha).

    x_absmax: float32 [K] per input channel over calibration tokens; w_absmax: float32 [K] per input
    channel over output rows. Returns float32 [K], positive; channels that never fire get 1."""
    xa = x_absmax.float().clamp(min=1e-5)
    wa = w_absmax.float().clamp(min=1e-5)
    lam = xa.pow(alpha) / wa.pow(1.0 - alpha)
    lam = torch.where(x_absmax > 0, lam, torch.ones_like(lam))
    return lam.clamp(min=1e-4, max=1e4)
