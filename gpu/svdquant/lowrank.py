"""Rank-r factorizations for the 16-bit branch (Eckart-Young: truncated SVD is the best rank-r fit)."""

from __future__ import annotations

import torch

# Above this many elements the exact SVD gets slow; a randomized SVD in fp32 is then accurate enough
# for the leading singular vectors the branch keeps.
EXACT_SVD_MAX_ELEMENTS = 1 << 16


def low_rank_factors(
    w: torch.Tensor, rank: int, generator_seed: int = 0, power_iters: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """w: float32 [N, K] -> (up [N, r], down [K, r]) float32 with up @ down.T ~ best rank-r fit of w.

    The singular values are folded into ``up`` so ``down`` has orthonormal columns."""
    n, k = w.shape
    r = min(rank, n, k)
    if r == 0:
        return w.new_zeros(n, 0), w.new_zeros(k, 0)
    w = w.float()
    if w.numel() <= EXACT_SVD_MAX_ELEMENTS or r * 4 >= min(n, k):
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        return u[:, :r] * s[:r], vh[:r].T.contiguous()
    # Randomized range finder with power iterations (Halko et al.), seeded for reproducibility.
    gen = torch.Generator(device="cpu").manual_seed(generator_seed)
    oversample = min(r + 16, min(n, k))
    omega = torch.randn(k, oversample, generator=gen).to(w.device)
    y = w @ omega
    for _ in range(power_iters):
        y, _ = torch.linalg.qr(y)
        y = w @ (w.T @ y)
    q, _ = torch.linalg.qr(y)
    u_small, s, vh = torch.linalg.svd(q.T @ w, full_matrices=False)
    u = q @ u_small
    return u[:, :r] * s[:r], vh[:r].T.contiguous()
