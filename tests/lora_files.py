"""LoRA files for tests: saved by peft + diffusers' own savers, then converted to kohya / BFL / XLabs key names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

TARGETS = [
    "to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out", "ff.net.0.proj",
    "ff.net.2", "ff_context.net.0.proj", "ff_context.net.2", "proj_mlp", "proj_out", "norm1.linear",
    "norm1_context.linear", "norm.linear", "x_embedder", "context_embedder", "norm_out.linear", "linear_1",
    "linear_2",
]  # fmt: skip


def save_peft_lora(
    model_dir: Path, out: Path, rank: int = 4, alpha: float = 8.0, seed: int = 0, effect: float = 0.05
) -> Path:
    """A random LoRA on every linear of the tiny FLUX at ``model_dir``, through peft and
    ``FluxPipeline.save_lora_weights`` (diffusers format, alpha in the adapter metadata)."""
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    tr = FluxTransformer2DModel.from_pretrained(model_dir, subfolder="transformer").float()
    cfg = LoraConfig(r=rank, lora_alpha=alpha, target_modules=TARGETS, init_lora_weights=False)
    tr.add_adapter(cfg)
    with torch.no_grad():
        for name, p in tr.named_parameters():
            if "lora_A" in name:
                p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
            elif "lora_B" in name:
                p.copy_(torch.randn_like(p) * effect / rank**0.5)
    out.mkdir(parents=True, exist_ok=True)
    FluxPipeline.save_lora_weights(
        out,
        transformer_lora_layers=get_peft_model_state_dict(tr),
        transformer_lora_adapter_metadata=cfg.to_dict(),
        safe_serialization=True,
    )
    return out / "pytorch_lora_weights.safetensors"


def _diffusers_factors(path: Path) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], float]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["lora_adapter_metadata"])
    sd = load_file(path)
    mods = {}
    for k in sd:
        if k.endswith(".lora_A.weight"):
            base = k[len("transformer.") : -len(".lora_A.weight")]
            mods[base] = (sd[k], sd[k.replace("lora_A", "lora_B")])
    return mods, float(meta["transformer.lora_alpha"]) / int(meta["transformer.r"])


_DOUBLE = {
    "img_attn.qkv": ["attn.to_q", "attn.to_k", "attn.to_v"], "img_attn.proj": ["attn.to_out.0"],
    "img_mlp.0": ["ff.net.0.proj"], "img_mlp.2": ["ff.net.2"], "img_mod.lin": ["norm1.linear"],
    "txt_attn.qkv": ["attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"], "txt_attn.proj": ["attn.to_add_out"],
    "txt_mlp.0": ["ff_context.net.0.proj"], "txt_mlp.2": ["ff_context.net.2"], "txt_mod.lin": ["norm1_context.linear"],
}  # fmt: skip
_SINGLE = {"linear1": ["attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"], "linear2": ["proj_out"],
           "modulation.lin": ["norm.linear"]}  # fmt: skip
_TOP = {
    "img_in": "x_embedder", "txt_in": "context_embedder",
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2", "final_layer.linear": "proj_out",
    "final_layer.adaLN_modulation.1": "norm_out.linear",
}  # fmt: skip


def _fuse(parts: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Factors (A [r, K], B [N_i, r]) of modules with one input -> one LoRA whose output rows are theirs in order:
    A [sum r, K] stacked, B block-diagonal [sum N_i, sum r] (its rank is the sum)."""
    return torch.cat([a for a, _ in parts]), torch.block_diag(*[b for _, b in parts])


def bfl_modules(mods: dict, n_double: int, n_single: int) -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    """diffusers factors -> BFL names: q/k/v (and single blocks' mlp) fused as [A_q; A_k; ...] and block-diagonal
    B, so the fused LoRA's rank is the sum; returns name -> (A, B, rank multiplier)."""
    out = {}
    for i in range(n_double):
        for bfl, leaves in _DOUBLE.items():
            out[f"double_blocks.{i}.{bfl}"] = [f"transformer_blocks.{i}.{leaf}" for leaf in leaves]
    for i in range(n_single):
        for bfl, leaves in _SINGLE.items():
            out[f"single_blocks.{i}.{bfl}"] = [f"single_transformer_blocks.{i}.{leaf}" for leaf in leaves]
    for bfl, name in _TOP.items():
        out[bfl] = [name]
    fused = {}
    for bfl, names in out.items():
        parts = [mods[n] for n in names if n in mods]
        if not parts:
            continue
        assert len(parts) == len(names), names
        a, b = _fuse(parts)
        if bfl == "final_layer.adaLN_modulation.1":  # diffusers (scale, shift) -> BFL (shift, scale)
            half = b.shape[0] // 2
            b = torch.cat([b[half:], b[:half]])
        fused[bfl] = (a.contiguous(), b.contiguous(), len(parts))
    return fused


def convert(
    path: Path,
    fmt: str,
    out: Path,
    n_double: int = 2,
    n_single: int = 2,
    metadata: dict | None = None,
    lora_ab: bool = True,
) -> Path:
    """The diffusers file at ``path`` rewritten with ``fmt`` key names ("kohya", "bfl", "kohya-diffusers",
    "peft-raw"); alpha goes into ``.alpha`` tensors (alpha / rank preserved for fused modules)."""
    mods, scale = _diffusers_factors(path)
    sd = {}
    if fmt in ("kohya", "bfl"):
        for name, (a, b, _mult) in bfl_modules(mods, n_double, n_single).items():
            if fmt == "kohya":
                base = "lora_unet_" + name.replace(".", "_")
                sd[f"{base}.lora_down.weight"], sd[f"{base}.lora_up.weight"] = a, b
            else:
                base = "diffusion_model." + name
                down, up = ("lora_A", "lora_B") if lora_ab else ("lora_down", "lora_up")
                sd[f"{base}.{down}.weight"], sd[f"{base}.{up}.weight"] = a, b
            sd[f"{base}.alpha"] = torch.tensor(scale * a.shape[0])
    elif fmt in ("kohya-diffusers", "peft-raw"):
        for name, (a, b) in mods.items():
            if fmt == "peft-raw":
                base = "base_model.model." + name
                sd[f"{base}.lora_A.weight"], sd[f"{base}.lora_B.weight"] = a, b
            else:
                base = "lora_transformer_" + name.replace(".", "_")
                sd[f"{base}.lora_down.weight"], sd[f"{base}.lora_up.weight"] = a, b
            sd[f"{base}.alpha"] = torch.tensor(scale * a.shape[0])
    else:
        raise ValueError(fmt)
    save_file({k: v.contiguous() for k, v in sd.items()}, out, metadata=metadata)
    return out


# XLabs-AI (x-flux) processor LoRAs -> the diffusers modules each adds to, fused by output rows.
XLABS_DOUBLE = {"qkv_lora1": ["attn.to_q", "attn.to_k", "attn.to_v"], "proj_lora1": ["attn.to_out.0"],
                "qkv_lora2": ["attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"],
                "proj_lora2": ["attn.to_add_out"]}  # fmt: skip
XLABS_SINGLE = {"qkv_lora": ["attn.to_q", "attn.to_k", "attn.to_v"], "proj_lora": ["proj_out"]}


def xlabs_modules(n_double: int = 2, n_single: int = 2) -> list[str]:
    """The diffusers modules an XLabs file of the tiny FLUX (``to_xlabs``) changes."""
    double = [f"transformer_blocks.{i}.{leaf}" for i in range(n_double) for ls in XLABS_DOUBLE.values() for leaf in ls]
    single = [f"single_transformer_blocks.{i}.{leaf}" for i in range(n_single) for ls in XLABS_SINGLE.values()
              for leaf in ls]  # fmt: skip
    return double + single


def to_xlabs(path: Path, out: Path, n_double: int = 2, n_single: int = 2) -> Path:
    """The diffusers file at ``path``'s LoRAs of the layers XLabs' processors change (blocks' q, k, v and attention
    outputs, single blocks' q, k, v and ``proj_out``) under XLabs-AI key names
    (``double_blocks.0.processor.qkv_lora1.down.weight`` / ``.up.weight``): q, k, v fused as ``bfl_modules`` does;
    XLabs files have no alpha (scale 1), so alpha / rank is multiplied into B. Same effect on those layers."""
    mods, scale = _diffusers_factors(path)
    sd = {}
    for kind, n, block, table in (("double", n_double, "transformer_blocks", XLABS_DOUBLE),
                                  ("single", n_single, "single_transformer_blocks", XLABS_SINGLE)):  # fmt: skip
        for i in range(n):
            for name, leaves in table.items():
                a, b = _fuse([mods[f"{block}.{i}.{leaf}"] for leaf in leaves])
                base = f"{kind}_blocks.{i}.processor.{name}"
                sd[f"{base}.down.weight"], sd[f"{base}.up.weight"] = a.contiguous(), (b * scale).contiguous()
    save_file(sd, out)
    return out


def rename_keys(path: Path, out: Path, fn) -> Path:
    """The file at ``path`` with each key ``k`` renamed ``fn(k)``, its header metadata kept."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        metadata = f.metadata()
    sd = load_file(path)
    save_file({fn(k): v for k, v in sd.items()}, out, metadata=metadata)
    return out


def sdxl_like(out: Path) -> Path:
    sd = {
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.randn(4, 320),
        "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.randn(320, 4),
        "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": torch.tensor(4.0),
    }
    save_file(sd, out)
    return out


def drop_matching(path: Path, out: Path, pattern: str) -> Path:
    sd = load_file(path)
    save_file({k: v for k, v in sd.items() if not re.search(pattern, k)}, out)
    return out


# The demo model's text-encoder linears (resources/models/demo: CLIP width 128, MLP 256; T5 d_model 128, d_ff 256).
DEMO_CLIP_LAYERS = {"encoder.layers.0.self_attn.q_proj": (128, 128), "encoder.layers.1.mlp.fc1": (128, 256)}
DEMO_T5_LAYERS = {"encoder.block.0.layer.0.SelfAttention.v": (128, 128),
                  "encoder.block.1.layer.1.DenseReluDense.wi_0": (128, 256)}  # fmt: skip
DEMO_PROJ = "double_blocks.0.img_attn.proj"  # the demo transformer's transformer_blocks.0.attn.to_out.0: 256 -> 256


def text_encoder_lora(out: Path, fmt: str = "kohya", clip: bool = True, t5: bool = True, rank: int = 4,
                      seed: int = 0, effect: float = 1.0, extra: dict | None = None) -> Path:  # fmt: skip
    """A FLUX.1 LoRA of the demo model with a transformer layer and CLIP and/or T5 layers, under their real names.
    ``fmt``: "kohya" (``lora_unet_`` + ``lora_te1_text_model_…`` / ``lora_te2_…``, with alpha) or "diffusers"
    (``transformer.`` + ``text_encoder.text_model.…`` / ``text_encoder_2.…``, alpha = rank)."""
    g = torch.Generator().manual_seed(seed)
    layers = [("transformer", DEMO_PROJ, (256, 256))]
    layers += [("clip", "text_model." + n, s) for n, s in DEMO_CLIP_LAYERS.items()] if clip else []
    layers += [("t5", n, s) for n, s in DEMO_T5_LAYERS.items()] if t5 else []
    kohya = {"transformer": "lora_unet_", "clip": "lora_te1_", "t5": "lora_te2_"}
    dotted = {"transformer": "transformer.", "clip": "text_encoder.", "t5": "text_encoder_2."}
    sd = {}
    for part, name, (k, n) in layers:
        down = torch.randn(rank, k, generator=g) / k**0.5
        up = torch.randn(n, rank, generator=g) * effect / rank**0.5
        if fmt == "kohya":
            base = kohya[part] + name.replace(".", "_")
            sd[f"{base}.lora_down.weight"], sd[f"{base}.lora_up.weight"] = down, up
            sd[f"{base}.alpha"] = torch.tensor(float(rank))
        else:
            name = "transformer_blocks.0.attn.to_out.0" if part == "transformer" else name
            sd[f"{dotted[part]}{name}.lora_A.weight"], sd[f"{dotted[part]}{name}.lora_B.weight"] = down, up
    save_file({**sd, **(extra or {})}, out)
    return out


# FLUX.1-dev's linears a LoRA trainer targets, by kohya's BFL names -> (inputs, outputs): 3072 wide, MLPs 4x
_DEV_DOUBLE = {f"{stream}_{layer}": shape for stream in ("img", "txt") for layer, shape in
               {"attn_qkv": (3072, 9216), "attn_proj": (3072, 3072), "mlp_0": (3072, 12288),
                "mlp_2": (12288, 3072)}.items()}  # fmt: skip
_DEV_SINGLE = {"linear1": (3072, 21504), "linear2": (15360, 3072)}


def flux_dev_lora(out: Path, rank: int = 16) -> Path:
    """A kohya LoRA of FLUX.1-dev's sizes (19 double and 38 single blocks) on its attention and MLP linears, bf16:
    hundreds of MB, written as its header over a hole (``header_only``: sparse, all zero), as a LoRA a user
    downloaded for FLUX.1-dev is."""
    from header_files import header_only

    layers = {f"double_blocks_{i}_{name}": shape for i in range(19) for name, shape in _DEV_DOUBLE.items()}
    layers |= {f"single_blocks_{i}_{name}": shape for i in range(38) for name, shape in _DEV_SINGLE.items()}
    tensors: dict[str, tuple[str, tuple[int, ...]]] = {}
    for name, (k, n) in layers.items():
        base = f"lora_unet_{name}"
        tensors |= {f"{base}.lora_down.weight": ("BF16", (rank, k)), f"{base}.lora_up.weight": ("BF16", (n, rank)),
                    f"{base}.alpha": ("F32", ())}  # fmt: skip
    return header_only(out, tensors)


def metadata_edited(source: Path, path: Path, **changed: str) -> Path:
    """A copy of the LoRA file ``source`` at ``path``, its tensors' bytes as they are, metadata entries ``changed``
    (its trigger words edited: the same LoRA, for the engine)."""
    from safetensors import safe_open

    from gpu.lora import read_lora

    with safe_open(source, "pt") as f:
        metadata = f.metadata()
    save_file(load_file(source), path, metadata={**metadata, **changed})
    assert read_lora(path).data_sha256 == read_lora(source).data_sha256 != read_lora(path).sha256
    return path


def alpha_edited(source: Path, path: Path, alpha: int) -> Path:
    """``metadata_edited`` with the transformer's PEFT ``lora_alpha`` of the diffusers LoRA ``source`` (the shipped
    example's is 8) made ``alpha``: the same weights, another LoRA (another scale), for the engine."""
    from gpu.lora import read_lora

    said = '"transformer.lora_alpha": '
    config = read_lora(source).metadata["lora_adapter_metadata"]
    assert said + "8" in config
    return metadata_edited(source, path, lora_adapter_metadata=config.replace(said + "8", f"{said}{alpha}"))


def keys_renamed(source: Path, path: Path, name=None) -> Path:
    """A copy of the LoRA file ``source`` at ``path`` whose tensors' keys are renamed (``name``: key -> new key;
    by default the shipped example's diffusers/PEFT names as kohya writes them,
    ``lora_transformer_single_transformer_blocks_0_attn_to_k.lora_down.weight``), its header's entries and metadata
    otherwise kept and its data section's bytes as they are: the same weights under other key names."""
    from gpu.safetensors_header import open_safetensors

    def kohya(key: str) -> str:
        base, _, factor = key.removeprefix("transformer.").rpartition(".lora_")
        role = {"A.weight": "lora_down.weight", "B.weight": "lora_up.weight"}[factor]
        return f"lora_transformer_{base.replace('.', '_')}.{role}"

    rename = name or kohya
    with open_safetensors(source) as (f, _, header):
        data = f.read()
    renamed = {(k if k == "__metadata__" else rename(k)): v for k, v in header.items()}
    text = json.dumps(renamed).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)
    return path
