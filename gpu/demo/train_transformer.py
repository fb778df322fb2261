"""Rectified-flow training of the small FluxTransformer2DModel (jointly with the tiny text encoders).

Data: a pool of world scenes is rendered on the device, VAE-encoded to normalised latents
(N, 16, 16, 16) and packed to (N, 64, 64) tokens exactly as FluxPipeline does; captions are tokenised
once. Each step draws a random batch from the pool (no Python-side data work per step). With t ~ shifted
logit-normal and noise ~ N(0, I): x_t = (1 - t) * x0 + t * noise, and the transformer predicts the
velocity noise - x0 (FluxPipeline's Euler sampler integrates exactly this from t=1 to 0).
Captions are replaced by "" with probability ``caption_dropout`` so true CFG against the empty
negative prompt works at inference. An EMA of all trained weights is what gets shipped.
"""

from __future__ import annotations

import copy
import math
import random
import time

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, FluxPipeline, FluxTransformer2DModel
from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5Tokenizer

from gpu.demo.text import CLIP_HIDDEN, MAX_SEQUENCE_LENGTH, T5_HIDDEN
from gpu.demo.train_vae import encode_latents
from gpu.demo.world import render, sample_scene

HEAD_DIM = 128  # FLUX.1's head size, so fused attention kernels run at their real shape
SCHEDULE_SHIFT = 1.6  # ~exp(mu) FluxPipeline computes for 64 image tokens with the default scheduler config


def build_transformer(
    heads: int = 2, double_blocks: int = 2, single_blocks: int = 4
) -> FluxTransformer2DModel:
    """Small FLUX transformer: hidden = heads * 128, 64 input channels (16 latent ch x 2x2 patches)."""
    return FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=double_blocks,
        num_single_layers=single_blocks,
        attention_head_dim=HEAD_DIM,
        num_attention_heads=heads,
        joint_attention_dim=T5_HIDDEN,
        pooled_projection_dim=CLIP_HIDDEN,
        guidance_embeds=False,
        axes_dims_rope=(16, 56, 56),  # sums to the head dim, as in FLUX.1
    )


class TextConditioner(torch.nn.Module):
    """Wraps both text encoders and reproduces ``FluxPipeline.encode_prompt`` with gradients.

    ``forward(captions)`` -> (prompt_embeds (B, L, T5_HIDDEN), pooled (B, CLIP_HIDDEN)) float32.
    """

    def __init__(
        self, clip: CLIPTextModel, t5: T5EncoderModel, clip_tok: CLIPTokenizer, t5_tok: T5Tokenizer
    ) -> None:
        super().__init__()
        self.clip, self.t5 = clip, t5
        self.clip_tok, self.t5_tok = clip_tok, t5_tok

    def tokenize(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Captions -> (clip_ids (B, Lc), t5_ids (B, L)) int64 on CPU, padded as the pipeline pads."""
        kw = dict(padding="max_length", truncation=True, return_tensors="pt")
        clip_ids = self.clip_tok(captions, max_length=self.clip_tok.model_max_length, **kw).input_ids
        t5_ids = self.t5_tok(captions, max_length=MAX_SEQUENCE_LENGTH, **kw).input_ids
        return clip_ids, t5_ids

    def encode_ids(self, clip_ids: torch.Tensor, t5_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids -> (prompt_embeds (B, L, T5_HIDDEN), pooled (B, CLIP_HIDDEN))."""
        return self.t5(t5_ids)[0], self.clip(clip_ids).pooler_output

    def forward(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        dev = next(self.parameters()).device
        clip_ids, t5_ids = self.tokenize(captions)
        return self.encode_ids(clip_ids.to(dev), t5_ids.to(dev))


def pack(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, H, W) latents -> (packed (B, H*W/4, 4C), img_ids (H*W/4, 3)) using FluxPipeline's own code."""
    b, c, h, w = latents.shape
    packed = FluxPipeline._pack_latents(latents, b, c, h, w)
    ids = FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, latents.device, latents.dtype)
    return packed, ids


@torch.no_grad()
def build_pool(
    vae: AutoencoderKL, text: TextConditioner, seed: int, n: int, device: torch.device, chunk: int = 1024
) -> dict[str, torch.Tensor]:
    """Pre-render and pre-encode ``n`` scenes so training steps do no Python-side data work.

    Returns on ``device``: latents (n, 64, 64) float32 packed tokens, clip_ids / t5_ids (n, L) int64,
    plus "empty_clip" / "empty_t5" (1, L), the ids of the empty caption used for caption dropout.
    """
    rng = random.Random(seed)
    lat, cids, tids = [], [], []
    for start in range(0, n, chunk):
        scenes = [sample_scene(rng) for _ in range(min(chunk, n - start))]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            x0 = encode_latents(vae, render(scenes, device=device))
        lat.append(pack(x0.float())[0])
        c, t = text.tokenize([s.caption() for s in scenes])
        cids.append(c)
        tids.append(t)
    ec, et = text.tokenize([""])
    return {
        "latents": torch.cat(lat),
        "clip_ids": torch.cat(cids).to(device),
        "t5_ids": torch.cat(tids).to(device),
        "empty_clip": ec.to(device),
        "empty_t5": et.to(device),
    }


def sample_t(n: int, device: torch.device, gen: torch.Generator) -> torch.Tensor:
    """Logit-normal t in (0, 1), then the same time shift the sampler uses: (n,) float32."""
    t = torch.sigmoid(torch.randn(n, device=device, generator=gen))
    return SCHEDULE_SHIFT * t / (1 + (SCHEDULE_SHIFT - 1) * t)


def train_transformer(
    transformer: FluxTransformer2DModel,
    text: TextConditioner,
    vae: AutoencoderKL,
    seed: int,
    steps: int,
    batch: int,
    device: torch.device,
    lr: float = 4e-4,
    caption_dropout: float = 0.1,
    ema_decay: float = 0.999,
    time_budget_s: float | None = None,
    pool_size: int = 200_000,
    log_every: int = 500,
) -> tuple[FluxTransformer2DModel, TextConditioner]:
    """Train in place; returns EMA copies (transformer, text conditioner) in eval mode on ``device``.

    Stops early when ``time_budget_s`` runs out (the LR schedule follows wall time then); the step
    reached is printed.
    """
    gen = torch.Generator(device=device).manual_seed(seed)
    torch.manual_seed(seed)
    transformer.to(device).train()
    text.to(device).train()
    vae.to(device).eval().requires_grad_(False)
    params = [p for m in (transformer, text) for p in m.parameters()]
    ema_t, ema_x = copy.deepcopy(transformer).eval(), copy.deepcopy(text).eval()
    ema_params = [p for m in (ema_t, ema_x) for p in m.parameters()]
    for p in ema_params:
        p.requires_grad_(False)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, betas=(0.9, 0.98), fused=device.type == "cuda")
    warm = min(300, steps // 10 + 1)

    def lr_at(step: int, elapsed: float) -> float:
        # Linear warm-up, then cosine to 10% over progress measured in steps or in wall time, whichever
        # is further along, so a time-limited run still anneals.
        if step < warm:
            return lr * (step + 1) / warm
        prog = (step - warm) / max(1, steps - warm)
        if time_budget_s is not None:
            prog = max(prog, elapsed / time_budget_s)
        return lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(prog, 1.0))))

    use_amp = device.type == "cuda"
    t0 = time.time()
    txt_ids = torch.zeros(MAX_SEQUENCE_LENGTH, 3, device=device)
    pool = build_pool(vae, text, seed + 1, pool_size, device)
    n_pool = pool["latents"].shape[0]
    img_ids = pack(torch.zeros(1, 16, 16, 16, device=device))[1]
    print(f"dit pool of {n_pool} scenes ready after {time.time() - t0:.0f}s", flush=True)
    t0 = time.time()  # the time budget covers the optimisation steps only
    for step in range(steps):
        idx = torch.randint(0, n_pool, (batch,), device=device, generator=gen)
        x0 = pool["latents"][idx]
        drop = torch.rand(batch, 1, device=device, generator=gen) < caption_dropout
        clip_ids = torch.where(drop, pool["empty_clip"], pool["clip_ids"][idx])
        t5_ids = torch.where(drop, pool["empty_t5"], pool["t5_ids"][idx])
        noise = torch.randn(x0.shape, device=device, generator=gen)
        t = sample_t(batch, device, gen)
        xt = (1 - t[:, None, None]) * x0 + t[:, None, None] * noise
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            embeds, pooled = text.encode_ids(clip_ids, t5_ids)
            pred = transformer(
                hidden_states=xt,
                encoder_hidden_states=embeds,
                pooled_projections=pooled,
                timestep=t,
                img_ids=img_ids,
                txt_ids=txt_ids,
                return_dict=False,
            )[0]
        loss = F.mse_loss(pred.float(), noise - x0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        cur_lr = lr_at(step, time.time() - t0)
        for g in opt.param_groups:
            g["lr"] = cur_lr
        opt.step()
        with torch.no_grad():
            d = min(ema_decay, (1 + step) / (10 + step))  # short effective window early on
            torch._foreach_lerp_(ema_params, params, 1 - d)
        if step % log_every == 0 or step == steps - 1:
            print(
                f"dit step {step} loss {loss.item():.4f} lr {cur_lr:.2e} t {time.time() - t0:.0f}s",
                flush=True,
            )
        if time_budget_s is not None and time.time() - t0 > time_budget_s:
            print(f"dit time budget reached at step {step}", flush=True)
            break
    return ema_t, ema_x
