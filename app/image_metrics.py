"""PSNR/SSIM for the wizard's result page: the engine's ``gpu.metrics`` when present, else a numpy fallback
(global-statistics SSIM on luma) so the wizard still reports something meaningful."""

from __future__ import annotations

from typing import Any


def psnr_ssim(a: Any, b: Any) -> tuple[float, float]:
    try:
        from gpu.metrics import psnr, ssim

        return float(psnr(a, b)), float(ssim(a, b))
    except ImportError:
        pass
    import numpy as np

    x = np.asarray(a.convert("RGB"), dtype=np.float64)
    y = np.asarray(b.convert("RGB").resize(a.size), dtype=np.float64)
    mse = float(np.mean((x - y) ** 2))
    psnr_value = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
    lx, ly = x.mean(axis=2), y.mean(axis=2)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = lx.mean(), ly.mean()
    cov = ((lx - mx) * (ly - my)).mean()
    ssim_value = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (lx.var() + ly.var() + c2))
    return psnr_value, float(ssim_value)
