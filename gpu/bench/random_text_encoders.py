"""FLUX.1's other parts with random weights, built on the target device in 16 bits: T5-XXL and CLIP-L text
encoders, the FLUX VAE, offline tokenizers and the scheduler (benchmarks and tests; no download anywhere).

The configs are the published ones written inline (the GPU machine has no internet): T5 v1.1 XXL encoder
(d_model 4096, d_ff 10240, 24 layers, 64 heads x 64, vocab 32128, gated-GELU), CLIP ViT-L/14's text tower
(hidden 768, 12 layers, 12 heads, 77 positions, vocab 49408), and FLUX.1's 16-channel ``AutoencoderKL``.
Weights are N(0, 0.02), norm weights 1 and biases 0, drawn by a generator on the target device. Every model
is constructed with the 16-bit dtype as the default dtype inside a ``torch.device`` context, so nothing is
ever allocated in fp32 on the CPU (the 4.8 B parameters of T5-XXL appear in bf16 on the GPU directly).

Tokenizers are the demo model's word-level ones (``gpu.demo.text``): prompts made of the demo world's words
tokenize exactly as the pipeline expects, with ids well inside both vocabularies.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

WEIGHT_STD = 0.02

T5_XXL_CONFIG: dict[str, Any] = {
    "d_model": 4096,
    "d_ff": 10240,
    "d_kv": 64,
    "num_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "vocab_size": 32128,
    "feed_forward_proj": "gated-gelu",
    "layer_norm_epsilon": 1e-6,
    "dropout_rate": 0.0,
    "is_encoder_decoder": False,
    "use_cache": False,
}
T5_TINY_CONFIG: dict[str, Any] = {**T5_XXL_CONFIG, "d_model": 64, "d_ff": 128, "d_kv": 16, "num_layers": 2,
                                  "num_heads": 4}  # fmt: skip

CLIP_L_CONFIG: dict[str, Any] = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
CLIP_TINY_CONFIG: dict[str, Any] = {**CLIP_L_CONFIG, "hidden_size": 32, "intermediate_size": 64,
                                    "num_hidden_layers": 2, "num_attention_heads": 2, "projection_dim": 32}  # fmt: skip

FLUX_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 16,
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "sample_size": 1024,
    "scaling_factor": 0.3611,
    "shift_factor": 0.1159,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
    "force_upcast": True,
    "mid_block_add_attention": True,
}
# Four levels as in FLUX (scale factor 8, so the pipeline's latent packing is unchanged), 32 channels.
FLUX_VAE_TINY_CONFIG: dict[str, Any] = {**FLUX_VAE_CONFIG, "block_out_channels": (32, 32, 32, 32),
                                        "layers_per_block": 1, "norm_num_groups": 8, "sample_size": 64}  # fmt: skip

# FLUX.1-dev's scheduler (scheduler/scheduler_config.json of the release).
FLUX_SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}

CLIP_MAX_LENGTH = 77
T5_MAX_LENGTH = 512


@contextlib.contextmanager
def _building(device: torch.device, dtype: torch.dtype) -> Iterator[None]:
    """Factory functions allocate on ``device`` in ``dtype`` for the duration."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def _is_norm(module: nn.Module) -> bool:
    # T5LayerNorm (an RMSNorm) is not an nn.LayerNorm; every norm class has "Norm" in its name
    return "norm" in type(module).__name__.lower()


@torch.no_grad()
def fill_random(model: nn.Module, seed: int) -> nn.Module:
    """In place: norm weights 1 and biases 0, every other floating parameter N(0, ``WEIGHT_STD``); integer
    buffers (CLIP's position ids) are kept. The generator lives on the parameters' device."""
    device = next(model.parameters()).device
    gen = torch.Generator(device).manual_seed(seed)
    for module in model.modules():
        norm = _is_norm(module)
        for name, p in module.named_parameters(recurse=False):
            if not p.is_floating_point():
                continue
            if norm:
                p.fill_(1.0 if name == "weight" else 0.0)
            else:
                p.normal_(0.0, WEIGHT_STD, generator=gen)
    model.eval()
    model.requires_grad_(False)
    return model


def build_t5_encoder(config: dict[str, Any], device: torch.device | str, dtype: torch.dtype = torch.bfloat16,
                     seed: int = 1) -> nn.Module:  # fmt: skip
    """``T5EncoderModel`` of ``config`` on ``device`` in ``dtype`` (``device="meta"``: no memory).

    Forward: input_ids int64 [B, L] -> last_hidden_state [B, L, d_model] in ``dtype``."""
    from transformers import T5Config, T5EncoderModel

    device = torch.device(device)
    with _building(device, dtype):
        model = T5EncoderModel(T5Config(**config))  # the plain constructor: transformers 4.x and 5.x alike
    model.to(device)  # no-op when the constructor honoured the device context
    return model if device.type == "meta" else fill_random(model, seed)


def build_clip_text(config: dict[str, Any], device: torch.device | str, dtype: torch.dtype = torch.bfloat16,
                    seed: int = 2, eos_token_id: int = 2, bos_token_id: int = 1) -> nn.Module:  # fmt: skip
    """``CLIPTextModel`` of ``config`` on ``device`` in ``dtype``; ``eos_token_id`` must be the tokenizer's,
    since the pooled output is the hidden state at the first EOS.

    Forward: input_ids int64 [B, 77] -> pooler_output [B, hidden] in ``dtype``."""
    from transformers import CLIPTextConfig, CLIPTextModel

    device = torch.device(device)
    cfg = CLIPTextConfig(**config, eos_token_id=eos_token_id, bos_token_id=bos_token_id, pad_token_id=eos_token_id)
    with _building(device, dtype):
        model = CLIPTextModel(cfg)
    model.to(device)
    return model if device.type == "meta" else fill_random(model, seed)


def build_flux_vae(config: dict[str, Any], device: torch.device | str, dtype: torch.dtype = torch.bfloat16,
                   seed: int = 3) -> nn.Module:  # fmt: skip
    """FLUX's ``AutoencoderKL`` (16 latent channels) on ``device`` in ``dtype``.

    decode: latents [B, 16, H/8, W/8] -> image [B, 3, H, W] in ``dtype``, roughly [-1, 1]."""
    from diffusers import AutoencoderKL

    device = torch.device(device)
    with _building(device, dtype):
        model = AutoencoderKL(**config)
    nn.Module.to(model, device)  # diffusers' own .to() warns about fp32 modules; nothing here needs fp32
    return model if device.type == "meta" else fill_random(model, seed)


@functools.lru_cache(maxsize=1)
def build_tokenizers() -> tuple[Any, Any]:
    """(CLIP tokenizer with 77 positions, T5 tokenizer for 512 tokens), offline (the demo world's words).

    Built once per process: the BPE trainer behind the CLIP one breaks ties in no fixed order, so a rebuild
    may number a few words differently (harmless for random weights, but runs in one process then agree)."""
    from gpu.demo.text import build_tokenizers as demo_tokenizers

    clip_tok, t5_tok = demo_tokenizers(max_length=CLIP_MAX_LENGTH)
    t5_tok.model_max_length = T5_MAX_LENGTH
    return clip_tok, t5_tok


def build_scheduler() -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER_CONFIG)
