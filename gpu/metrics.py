"""Image similarity: PSNR and SSIM between generated images (quantized vs 16-bit on the same seed)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# One image, or equally long lists of them compared pairwise.
Images = Image.Image | Sequence[Image.Image]


def images_to_tensor(images: Images) -> torch.Tensor:
    """PIL image or list of them (same size) -> float64 [B, 3, H, W] in 0..1."""
    if isinstance(images, Image.Image):
        images = [images]
    arrays = [np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0 for im in images]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


def psnr(a: Images, b: Images) -> float:
    """Mean PSNR in dB over image pairs (PIL images or equally long lists); identical images give 100."""
    x, y = images_to_tensor(a), images_to_tensor(b)
    mse = ((x - y) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return float((10 * torch.log10(1.0 / mse)).mean())


def ssim(a: Images, b: Images) -> float:
    """Mean SSIM over image pairs: Gaussian window (11 taps, sigma 1.5) per RGB channel, averaged."""
    x, y = images_to_tensor(a), images_to_tensor(b)
    taps = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(taps**2) / (2 * 1.5**2))
    g = g / g.sum()
    win = (g[:, None] * g[None, :])[None, None].repeat(3, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        """t: float64 [B, 3, H, W] -> float64 [B, 3, H - 10, W - 10], each channel filtered by the window."""
        return F.conv2d(t, win, groups=3)

    c1, c2 = 0.01**2, 0.03**2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())
