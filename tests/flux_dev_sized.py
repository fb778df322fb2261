"""A FLUX.1-dev-sized diffusers pipeline whose weights are holes in sparse files: its headers give the real sizes
(the memory plans read only them), nothing is written but headers and configs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from header_files import header_only

from gpu.paths import resources_dir

# FLUX.1-dev's parameter counts: transformer, T5-XXL encoder, CLIP-L text model, VAE
FLUX_DEV_PARAMS = {"transformer": 11_901_408_320, "text_encoder_2": 4_762_310_656, "text_encoder": 123_060_480,
                   "vae": 83_819_683}  # fmt: skip
# and the config.json settings that give those sizes and widths (the rest stays the demo's)
FLUX_DEV_CONFIGS = {
    "transformer": {"num_layers": 19, "num_single_layers": 38, "num_attention_heads": 24, "joint_attention_dim": 4096,
                    "pooled_projection_dim": 768, "guidance_embeds": True},
    "text_encoder_2": {"d_model": 4096, "d_ff": 10240, "num_heads": 64, "num_layers": 24},
    "text_encoder": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12},
    "vae": {"block_out_channels": [128, 256, 512, 512]},
}  # fmt: skip
WEIGHT_FILES = {"transformer": "diffusion_pytorch_model.safetensors", "vae": "diffusion_pytorch_model.safetensors",
                "text_encoder": "model.safetensors", "text_encoder_2": "model.safetensors"}  # fmt: skip


def sparse_safetensors(path: Path, numel: int) -> None:
    """A bf16 .safetensors file of one ``numel`` tensor whose data is a hole: its real size on disk is its header."""
    header_only(path, {"weight": ("BF16", (numel,))})


def flux_dev_sized(folder: Path) -> Path:
    """The demo pipeline's tokenizers and configs, widened to FLUX.1-dev's, with FLUX.1-dev-sized sparse weights and
    FLUX.1's 1024x1024 default (no nibble.json)."""
    shutil.copytree(resources_dir() / "models" / "demo", folder,
                    ignore=shutil.ignore_patterns("*.safetensors", "nibble.json"))  # fmt: skip
    for component, settings in FLUX_DEV_CONFIGS.items():
        config = folder / component / "config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), **settings}))
    for component, numel in FLUX_DEV_PARAMS.items():
        sparse_safetensors(folder / component / WEIGHT_FILES[component], numel)
    return folder
