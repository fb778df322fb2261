"""Small AutoencoderKL for the shape world (scale factor 8, 16 latent channels, FLUX layout).

128x128x3 images -> 16x16x16 latents. Trained with L1 + MSE reconstruction and a tiny KL term so the
posterior stays near-deterministic; after training, ``shift_factor``/``scaling_factor`` are set from the
latent mean/std of fresh world images so the transformer sees roughly unit-variance latents.
"""

from __future__ import annotations

import random
import time

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from gpu.demo.world import render, sample_scene


def build_vae() -> AutoencoderKL:
    """Untrained small VAE: 4 levels (scale factor 8), 16 latent channels, no quant convs (as FLUX)."""
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 64, 128, 128),
        layers_per_block=1,
        latent_channels=16,
        norm_num_groups=32,
        sample_size=128,
        use_quant_conv=False,
        use_post_quant_conv=False,
        mid_block_add_attention=True,
    )


def train_vae(
    vae: AutoencoderKL,
    seed: int,
    steps: int,
    batch: int,
    device: torch.device,
    lr: float = 1e-3,
    log_every: int = 200,
) -> AutoencoderKL:
    """Train ``vae`` in place on freshly rendered world images; returns it in eval mode with latent stats set.

    Images are float32 (B, 3, 128, 128) in [-1, 1]; the forward runs under bf16 autocast on CUDA.
    """
    rng = random.Random(seed)
    torch.manual_seed(seed)
    vae.to(device).train()
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0, betas=(0.9, 0.99))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    use_amp = device.type == "cuda"
    t0 = time.time()
    for step in range(steps):
        x = render([sample_scene(rng) for _ in range(batch)], device=device) * 2 - 1
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            post = vae.encode(x).latent_dist
            z = post.sample()
            rec = vae.decode(z).sample.float()
        # L1 keeps edges sharp; MSE punishes colour shifts; KL weight is tiny (we only need a bounded latent).
        kl = post.kl().mean() / (16 * 16 * 16)
        loss = F.l1_loss(rec, x) + F.mse_loss(rec, x) + 1e-4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % log_every == 0 or step == steps - 1:
            print(
                f"vae step {step} loss {loss.item():.4f} kl {kl.item():.3f} t {time.time() - t0:.0f}s",
                flush=True,
            )
    vae.eval()
    set_latent_stats(vae, seed + 1, device)
    return vae


@torch.no_grad()
def set_latent_stats(vae: AutoencoderKL, seed: int, device: torch.device, n: int = 512) -> None:
    """Set ``shift_factor`` (latent mean) and ``scaling_factor`` (1/std) from ``n`` fresh images."""
    rng = random.Random(seed)
    x = render([sample_scene(rng) for _ in range(n)], device=device) * 2 - 1
    z = vae.encode(x).latent_dist.mode().float()
    mean, std = z.mean().item(), z.std().item()
    vae.register_to_config(shift_factor=mean, scaling_factor=1.0 / std)
    print(f"vae latent mean {mean:.4f} std {std:.4f}", flush=True)


@torch.no_grad()
def encode_latents(vae: AutoencoderKL, images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> normalised latents (B, 16, H/8, W/8), float32, as FluxPipeline expects."""
    z = vae.encode(images * 2 - 1).latent_dist.mode().float()
    return (z - vae.config.shift_factor) * vae.config.scaling_factor
