"""PSNR/SSIM for the wizard's result page (the engine's metrics, as plain floats)."""

from __future__ import annotations

from typing import Any

from gpu.metrics import psnr, ssim


def psnr_ssim(a: Any, b: Any) -> tuple[float, float]:
    return psnr(a, b), ssim(a, b)
