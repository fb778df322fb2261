"""Reading FLUX.1 LoRA ``.safetensors`` files in the formats people share, into one canonical form.

Formats (detected from the key names, never from the file name):

* ``diffusers`` (PEFT / diffusers ``save_lora_weights``): ``transformer.<module>.lora_A.weight`` /
  ``lora_B.weight`` over diffusers module names (q, k, v split); also raw PEFT ``base_model.model.<module>``
  and kohya-style underscored diffusers names (``lora_transformer_single_transformer_blocks_0_attn_to_q``).
  Alpha: a ``.alpha`` tensor when present, else ``transformer_lora_adapter_metadata`` (r, lora_alpha) in the
  header, else alpha = rank.
* ``kohya`` (sd-scripts, ai-toolkit's ComfyUI export): ``lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight``
  / ``lora_up.weight`` / ``alpha`` over BFL module names with ``_`` for ``.``; q, k, v fused.
* ``bfl`` (BFL / ComfyUI): ``diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight`` / ``lora_B.weight``
  (or ``lora_down``/``lora_up``, optional ``alpha``); q, k, v fused.

Every file becomes a list of ``LoraTarget``: the diffusers module(s) it changes, ``down`` A [r, K],
``up`` B [N, r] and ``scale`` = alpha / r. A fused BFL target (``img_attn.qkv``, single blocks' ``linear1``)
names several diffusers modules whose outputs are B's rows in order; the split sizes are taken from the model
when the LoRA is applied. Files for another architecture, with keys this reader does not understand, or with
inconsistent shapes are refused with a ``LoraError`` naming the keys: nothing is silently skipped.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gpu.errors import CheckpointError, UserError
from gpu.lora.metadata import trigger_words_from  # noqa: F401 - part of this module's API
from gpu.safetensors_header import read_safetensors_header

FORMATS = ("diffusers", "kohya", "bfl")


class LoraError(UserError):
    """A LoRA file that cannot be used: unreadable, another architecture, unknown keys, wrong shapes."""


@dataclass
class LoraTarget:
    key: str  # the module's name in the file (for messages)
    modules: tuple[str, ...]  # diffusers module names; several = B's rows split over them, in order
    down: torch.Tensor  # A: float32 [r, K]
    up: torch.Tensor  # B: float32 [N, r]
    scale: float  # alpha / r
    swap_halves: bool = False  # BFL final_layer.adaLN_modulation (shift, scale) -> diffusers norm_out (scale, shift)

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])


@dataclass
class LoraFile:
    path: Path
    name: str  # file stem, as A1111 names LoRAs
    format: str  # one of FORMATS
    targets: list[LoraTarget]
    sha256: str
    metadata: dict[str, str] = field(default_factory=dict)
    trigger_words: list[str] = field(default_factory=list)

    @property
    def short_hash(self) -> str:
        """First 12 hex digits of the file's SHA-256 (what A1111 writes under ``Lora hashes``)."""
        return self.sha256[:12]

    @property
    def rank(self) -> int:
        return max((t.rank for t in self.targets), default=0)


# -- FLUX.1 module names ---------------------------------------------------------------------------------
_DOUBLE_LEAVES = (
    "attn.to_q", "attn.to_k", "attn.to_v", "attn.to_out.0", "attn.add_q_proj", "attn.add_k_proj",
    "attn.add_v_proj", "attn.to_add_out", "ff.net.0.proj", "ff.net.2", "ff_context.net.0.proj",
    "ff_context.net.2", "norm1.linear", "norm1_context.linear",
)  # fmt: skip
_SINGLE_LEAVES = ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp", "proj_out", "norm.linear")
_TOP_LEVEL = (
    "x_embedder", "context_embedder", "proj_out", "norm_out.linear",
    "time_text_embed.timestep_embedder.linear_1", "time_text_embed.timestep_embedder.linear_2",
    "time_text_embed.text_embedder.linear_1", "time_text_embed.text_embedder.linear_2",
    "time_text_embed.guidance_embedder.linear_1", "time_text_embed.guidance_embedder.linear_2",
)  # fmt: skip
_DIFFUSERS_RE = re.compile(
    r"(?:transformer_blocks\.\d+\.(?:" + "|".join(map(re.escape, _DOUBLE_LEAVES)) + r")"
    r"|single_transformer_blocks\.\d+\.(?:" + "|".join(map(re.escape, _SINGLE_LEAVES)) + r")"
    r"|" + "|".join(map(re.escape, _TOP_LEVEL)) + r")"
)
# kohya-style underscored diffusers names -> dotted: leaves without their dots, longest first
_UNDERSCORED = sorted(
    [(leaf.replace(".", "_"), leaf) for leaf in set(_DOUBLE_LEAVES + _SINGLE_LEAVES)], key=lambda p: -len(p[0])
)

_UNDERSCORED_TOP = {name.replace(".", "_"): name for name in _TOP_LEVEL}

# BFL names -> diffusers module(s) (several = fused output rows) and whether the two output halves swap.
_BFL_DOUBLE = {
    "img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "img_attn.proj": ("attn.to_out.0",),
    "img_mlp.0": ("ff.net.0.proj",),
    "img_mlp.2": ("ff.net.2",),
    "img_mod.lin": ("norm1.linear",),
    "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "txt_attn.proj": ("attn.to_add_out",),
    "txt_mlp.0": ("ff_context.net.0.proj",),
    "txt_mlp.2": ("ff_context.net.2",),
    "txt_mod.lin": ("norm1_context.linear",),
}
_BFL_SINGLE = {
    "linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"),
    "linear2": ("proj_out",),
    "modulation.lin": ("norm.linear",),
}
_BFL_TOP = {
    "img_in": "x_embedder",
    "txt_in": "context_embedder",
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
    "final_layer.linear": "proj_out",
    "final_layer.adaLN_modulation.1": "norm_out.linear",
}
# kohya's underscored BFL names -> dotted BFL names
_KOHYA_DOUBLE = {k.replace(".", "_"): k for k in _BFL_DOUBLE}
_KOHYA_SINGLE = {k.replace(".", "_"): k for k in _BFL_SINGLE}
_KOHYA_TOP = {k.replace(".", "_"): k for k in _BFL_TOP}

# Key prefixes that mark a LoRA for another model family (checked when nothing maps to FLUX).
_OTHER_ARCH = (
    (re.compile(r"lora_unet_(down|up|mid|input|output|middle)_blocks?_"), "Stable Diffusion 1.x/2.x/SDXL (UNet)"),
    (re.compile(r"(unet\.|lora_unet_.*_(attn1|attn2)_)"), "Stable Diffusion 1.x/2.x/SDXL (UNet)"),
    (re.compile(r"(lora_unet_joint_blocks_|(diffusion_model\.)?joint_blocks\.)"), "Stable Diffusion 3"),
    (re.compile(r"(lora_te\d?_|text_encoder(_2)?\.|lora_te_text_model)"), "a text encoder"),
)

_SUFFIXES = (
    (".lora_A.weight", "down"), (".lora_B.weight", "up"), (".lora_down.weight", "down"),
    (".lora_up.weight", "up"), (".alpha", "alpha"),
)  # fmt: skip


def _split_key(key: str) -> tuple[str, str] | None:
    for suffix, role in _SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], role
    return None


def _listing(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" … ({len(names) - limit} more)" if len(names) > limit else "")


def _map_diffusers(base: str) -> tuple[str, tuple[str, ...], bool] | None:
    for prefix in ("transformer.", "base_model.model.", ""):
        if base.startswith(prefix) and _DIFFUSERS_RE.fullmatch(base[len(prefix) :]):
            return "diffusers", (base[len(prefix) :],), False
    if base.startswith("lora_transformer_") and base[len("lora_transformer_") :] in _UNDERSCORED_TOP:
        return "diffusers", (_UNDERSCORED_TOP[base[len("lora_transformer_") :]],), False
    m = re.fullmatch(r"lora_transformer_(single_transformer_blocks|transformer_blocks)_(\d+)_(\w+)", base)
    if m:
        block, idx, rest = m.groups()
        for flat, leaf in _UNDERSCORED:
            if rest == flat:
                name = f"{block}.{idx}.{leaf}"
                if _DIFFUSERS_RE.fullmatch(name):
                    return "diffusers", (name,), False
    return None


def _map_bfl_name(name: str) -> tuple[tuple[str, ...], bool] | None:
    m = re.fullmatch(r"double_blocks\.(\d+)\.(.+)", name)
    if m and m.group(2) in _BFL_DOUBLE:
        return tuple(f"transformer_blocks.{m.group(1)}.{leaf}" for leaf in _BFL_DOUBLE[m.group(2)]), False
    m = re.fullmatch(r"single_blocks\.(\d+)\.(.+)", name)
    if m and m.group(2) in _BFL_SINGLE:
        return tuple(f"single_transformer_blocks.{m.group(1)}.{leaf}" for leaf in _BFL_SINGLE[m.group(2)]), False
    if name in _BFL_TOP:
        return (_BFL_TOP[name],), name == "final_layer.adaLN_modulation.1"
    return None


def _map_bfl(base: str) -> tuple[str, tuple[str, ...], bool] | None:
    name = base.removeprefix("diffusion_model.").removeprefix("model.diffusion_model.")
    mapped = _map_bfl_name(name)
    return ("bfl", *mapped) if mapped else None


def _map_kohya(base: str) -> tuple[str, tuple[str, ...], bool] | None:
    if not base.startswith("lora_unet_"):
        return None
    flat = base[len("lora_unet_") :]
    name = None
    m = re.fullmatch(r"double_blocks_(\d+)_(\w+)", flat)
    if m and m.group(2) in _KOHYA_DOUBLE:
        name = f"double_blocks.{m.group(1)}.{_KOHYA_DOUBLE[m.group(2)]}"
    m = re.fullmatch(r"single_blocks_(\d+)_(\w+)", flat)
    if m and m.group(2) in _KOHYA_SINGLE:
        name = f"single_blocks.{m.group(1)}.{_KOHYA_SINGLE[m.group(2)]}"
    if flat in _KOHYA_TOP:
        name = _KOHYA_TOP[flat]
    mapped = _map_bfl_name(name) if name else None
    return ("kohya", *mapped) if mapped else None


def map_module(base: str) -> tuple[str, tuple[str, ...], bool] | None:
    """A LoRA module name from a file -> (format, diffusers module names, swap halves), or None."""
    return _map_kohya(base) or _map_bfl(base) or _map_diffusers(base)


def _adapter_config(metadata: dict[str, str]) -> dict | None:
    """PEFT's LoraConfig as diffusers stores it: ``lora_adapter_metadata`` (keys prefixed ``transformer.``)
    or ``transformer_lora_adapter_metadata``."""
    for key, prefix in (("lora_adapter_metadata", "transformer."), ("transformer_lora_adapter_metadata", "")):
        raw = metadata.get(key)
        if not raw:
            continue
        try:
            cfg = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(cfg, dict):
            return {k[len(prefix) :]: v for k, v in cfg.items() if k.startswith(prefix)}
    return None


def _adapter_metadata_scale(metadata: dict[str, str], module: str, rank: int) -> float | None:
    cfg = _adapter_config(metadata)
    if not cfg or cfg.get("lora_alpha") is None:
        return None
    try:
        alpha = float(cfg["lora_alpha"])
        for pattern, value in (cfg.get("alpha_pattern") or {}).items():
            if module == pattern or module.endswith("." + pattern) or re.fullmatch(pattern, module):
                alpha = float(value)
        return alpha / rank
    except (ValueError, TypeError, AttributeError, re.error):
        return None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_lora(path: str | Path) -> LoraFile:
    """Read and validate a FLUX.1 LoRA file (any supported format); raises ``LoraError``."""
    from safetensors import SafetensorError, safe_open

    path = Path(path).expanduser()
    label = path.name
    if path.is_dir():
        raise LoraError(f"LoRA {path} is a folder, not a file", "give one of the .safetensors files in it")
    if not path.is_file():
        raise LoraError(f"LoRA file {path} does not exist",
                        hint="put the file back, or switch the LoRA off or remove it from the list")  # fmt: skip
    try:
        read_safetensors_header(path)  # names a pickle, a truncated or damaged file before safetensors' words do
    except CheckpointError as err:
        raise LoraError(f"{label} is not a readable .safetensors LoRA file: {str(err).removeprefix(label + ': ')}",
                        hint=err.hint) from None  # fmt: skip
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        why = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise LoraError(f"{label} is not a readable .safetensors LoRA file ({why})") from None
    if not tensors:
        raise LoraError(f"{label} holds no tensors")

    groups: dict[str, dict[str, torch.Tensor]] = {}
    unknown: list[str] = []
    for key, t in tensors.items():
        split = _split_key(key)
        if split is None:
            unknown.append(key)
            continue
        groups.setdefault(split[0], {})[split[1]] = t
    mapped = {base: map_module(base) for base in groups}
    unknown += [base for base, m in mapped.items() if m is None]
    if not any(m is not None for m in mapped.values()):
        for pattern, family in _OTHER_ARCH:
            hits = sorted(k for k in tensors if pattern.match(k))
            if hits:
                raise LoraError(f"{label} is a LoRA for {family}, not FLUX.1 (keys such as {_listing(hits, 3)})",
                                hint="use a LoRA trained for FLUX.1")
        raise LoraError(f"{label} is not a FLUX.1 LoRA: none of its keys name a FLUX.1 layer "
                        f"(keys such as {_listing(sorted(tensors), 3)})", hint="use a LoRA trained for FLUX.1")
    if unknown:
        raise LoraError(f"{label}: {len(unknown)} key(s) are not FLUX.1 LoRA weights this app understands: "
                        f"{_listing(sorted(unknown))}", hint="the file may be for another model, or a LoRA variant "
                        "(LoKr, LoHa, DoRA) that is not supported")
    formats = sorted({m[0] for m in mapped.values() if m})
    if len(formats) > 1:
        raise LoraError(f"{label} mixes LoRA key formats ({', '.join(formats)})")

    targets = []
    for base, (_fmt, modules, swap) in mapped.items():
        parts = groups[base]
        if "down" not in parts or "up" not in parts:
            missing = "down (A)" if "down" not in parts else "up (B)"
            raise LoraError(f"{label}: {base} has no {missing} matrix")
        down, up = parts["down"], parts["up"]
        if down.dim() == 4 and down.shape[2:] == (1, 1):
            down, up = down.flatten(1), up.flatten(1)
        if down.dim() != 2 or up.dim() != 2 or down.shape[0] != up.shape[1] or down.shape[0] == 0:
            raise LoraError(f"{label}: {base} has inconsistent shapes (A {tuple(down.shape)}, B {tuple(up.shape)})")
        rank = int(down.shape[0])
        if "alpha" in parts:
            if parts["alpha"].numel() != 1:
                raise LoraError(f"{label}: {base}.alpha is not a scalar")
            scale = float(parts["alpha"].float().item()) / rank
        else:
            scale = _adapter_metadata_scale(metadata, modules[0], rank) or 1.0
        if not torch.isfinite(down).all() or not torch.isfinite(up).all():
            raise LoraError(f"{label}: {base} contains NaN or infinite values")
        targets.append(LoraTarget(base, modules, down.float(), up.float(), scale, swap))
    return LoraFile(path=path.resolve(), name=path.stem, format=formats[0], targets=targets,
                    sha256=file_sha256(path), metadata=metadata, trigger_words=trigger_words_from(metadata))
