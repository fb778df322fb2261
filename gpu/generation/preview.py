"""Cheap previews of a denoising run, straight from the latents (no VAE decode)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from PIL import Image

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline


def latent_preview(latents: torch.Tensor, height: int, width: int, pipeline: DiffusionPipeline) -> Image.Image:
    """latents: FLUX packed latents [B, (H/16)*(W/16), C*4] (any float dtype) -> small RGB PIL image of the first
    sample.

    The first three latent channels, each normalized to its own range, stand in for RGB: enough to
    watch the composition form, at the cost of a few hundred operations."""
    vae_scale = getattr(pipeline, "vae_scale_factor", 8)
    h, w = height // (vae_scale * 2), width // (vae_scale * 2)
    x = latents[0].float().detach().cpu()
    c = x.shape[-1] // 4
    x = x.reshape(h, w, c, 2, 2).permute(2, 0, 3, 1, 4).reshape(c, h * 2, w * 2)
    rgb = x[:3]
    lo = rgb.amin(dim=(1, 2), keepdim=True)
    hi = rgb.amax(dim=(1, 2), keepdim=True)
    rgb = ((rgb - lo) / (hi - lo).clamp(min=1e-6) * 255).clamp(0, 255).to(torch.uint8)
    return Image.fromarray(rgb.permute(1, 2, 0).numpy(), "RGB")
