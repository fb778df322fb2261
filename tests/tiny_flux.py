"""Build tiny random FLUX pipeline folders for engine tests (stock diffusers classes, real files)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

from gpu.demo.text import build_text_encoders, build_tokenizers

# Calibration for quantizing the tiny pipeline in tests (QuantizeConfig keywords): 2 prompts, 2-step trajectories
# and 3 alphas (0, 0.5, 1) keep the quantizer's behaviour (the methods' error order holds by a wide margin) at a
# fraction of the defaults' time. The session's SVDQuant INT4 model (conftest's ``tiny_flux_int4``) uses them too.
# 2 prompts, not 4: recording the trajectories is most of a tiny run's time, and the errors came out the same to
# two digits (test_quantize_model: svdquant INT4 0.0023, smoothquant 0.0030, svd 0.0040, naive 0.0047).
QUICK_CALIBRATION = {"calib_prompts": 2, "calib_steps": 2, "alpha_points": 3}


def make_tiny_flux(folder: Path, seed: int = 0, guidance_embeds: bool = False, outliers: bool = True) -> Path:
    """A 64x64, 2+2-block FLUX pipeline with random weights (head dim 128, hidden 256).

    ``outliers`` scales a few input channels of the context embedder's output up, so activations have
    the per-channel outliers real diffusion models have."""
    torch.manual_seed(seed)
    clip_tok, t5_tok = build_tokenizers()
    clip, t5 = build_text_encoders(clip_tok, t5_tok)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=2, num_single_layers=2, attention_head_dim=128,
        num_attention_heads=2, joint_attention_dim=t5.config.d_model, pooled_projection_dim=clip.config.hidden_size,
        guidance_embeds=guidance_embeds, axes_dims_rope=(16, 56, 56),
    )  # fmt: skip
    if outliers:
        with torch.no_grad():
            idx = torch.randperm(256)[:6]
            transformer.x_embedder.weight[idx] *= 25.0
            transformer.context_embedder.weight[idx] *= 25.0
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=16, block_out_channels=(32, 32, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1, norm_num_groups=8, sample_size=64, scaling_factor=1.0, shift_factor=0.0,
    )  # fmt: skip
    pipe = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae, text_encoder=clip, tokenizer=clip_tok,
        text_encoder_2=t5, tokenizer_2=t5_tok, transformer=transformer.to(torch.bfloat16),
    )  # fmt: skip
    pipe.save_pretrained(folder, safe_serialization=True)
    defaults = {"name": folder.name, "width": 64, "height": 64, "steps": 3, "guidance": 3.0, "max_sequence_length": 16}
    (folder / "nibble.json").write_text(json.dumps(defaults))
    return folder
