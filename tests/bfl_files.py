"""Single-file FLUX checkpoints for tests: a diffusers transformer rewritten with Black Forest Labs' key names
(the layout of ``flux1-dev.safetensors``), optionally under ComfyUI's ``model.diffusion_model.`` prefix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tests.lora_files import _DOUBLE, _SINGLE, _TOP

_GUIDANCE = {"guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
             "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2"}  # fmt: skip


def save_bfl_transformer(pipeline_dir: Path, out: Path, prefix: str = "", extra: dict | None = None) -> Path:
    """The transformer of the diffusers pipeline at ``pipeline_dir`` as one BFL-layout file at ``out``: q/k/v (and
    the single blocks' MLP input) concatenated by rows, the final modulation's halves in BFL's (shift, scale)
    order, the QK norms as ``*.scale``. ``extra`` tensors (e.g. a VAE's) are stored beside it, unprefixed."""
    tdir = pipeline_dir / "transformer"
    sd: dict[str, torch.Tensor] = {}
    for f in sorted(tdir.glob("*.safetensors")):
        sd.update(load_file(f))
    cfg = json.loads((tdir / "config.json").read_text())
    fused: dict[str, list[str]] = {}
    for i in range(cfg["num_layers"]):
        fused.update({f"double_blocks.{i}.{b}": [f"transformer_blocks.{i}.{leaf}" for leaf in leaves]
                      for b, leaves in _DOUBLE.items()})  # fmt: skip
    for i in range(cfg["num_single_layers"]):
        fused.update({f"single_blocks.{i}.{b}": [f"single_transformer_blocks.{i}.{leaf}" for leaf in leaves]
                      for b, leaves in _SINGLE.items()})  # fmt: skip
    fused.update({b: [name] for b, name in {**_TOP, **_GUIDANCE}.items()})
    out_sd: dict[str, torch.Tensor] = {}
    for bfl, names in fused.items():
        for p in ("weight", "bias"):
            parts = [sd.pop(f"{n}.{p}") for n in names if f"{n}.{p}" in sd]
            if parts:
                t = torch.cat(parts)
                if bfl == "final_layer.adaLN_modulation.1":  # diffusers (scale, shift) -> BFL (shift, scale)
                    t = torch.cat(t.chunk(2)[::-1])
                out_sd[f"{bfl}.{p}"] = t
    norms = {"attn.norm_q": "img_attn.norm.query_norm", "attn.norm_k": "img_attn.norm.key_norm",
             "attn.norm_added_q": "txt_attn.norm.query_norm",
             "attn.norm_added_k": "txt_attn.norm.key_norm"}  # fmt: skip
    for i in range(cfg["num_layers"]):
        for d, b in norms.items():
            out_sd[f"double_blocks.{i}.{b}.scale"] = sd.pop(f"transformer_blocks.{i}.{d}.weight")
    for i in range(cfg["num_single_layers"]):
        for d, b in (("attn.norm_q", "norm.query_norm"), ("attn.norm_k", "norm.key_norm")):
            out_sd[f"single_blocks.{i}.{b}.scale"] = sd.pop(f"single_transformer_blocks.{i}.{d}.weight")
    assert not sd, f"not converted: {sorted(sd)[:5]}"
    tensors = {prefix + k: v.contiguous() for k, v in out_sd.items()} | (extra or {})
    save_file(tensors, str(out))
    return out


def pipeline_copy(pipeline_dir: Path, out: Path, **transformer_config) -> Path:
    """A copy of the diffusers pipeline at ``pipeline_dir`` at ``out``, its transformer config changed by
    ``transformer_config`` (a base pipeline that does not fit a file, or of the other FLUX.1 variant). A
    ``joint_attention_dim`` is the T5 text encoder's width too (its config's d_model): what a base supplies is checked
    on its encoders, never on its transformer, which no base lends."""
    shutil.copytree(pipeline_dir, out)
    config = out / "transformer" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_bytes()), **transformer_config}))
    if "joint_attention_dim" in transformer_config:
        t5 = out / "text_encoder_2" / "config.json"
        t5.write_text(json.dumps({**json.loads(t5.read_bytes()), "d_model": transformer_config["joint_attention_dim"]}))
    return out
