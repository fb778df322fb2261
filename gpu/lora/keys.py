"""LoRA key names: which FLUX.1 module each names, in each format, and what a file's header alone shows about
it (torch-free: the app checks a file the user picks with this, in milliseconds, before any job needs it).

``check_layout`` reads only the header's key names, shapes and dtypes: a file for another architecture, with
keys this app does not understand, a missing A or B, inconsistent shapes or integer factors is refused here with
a ``LoraError`` naming the file and the keys. The shapes it gives (``LoraLayout.shapes``) are what the fit to a model
is judged by (``gpu.lora.fit``); the values (NaN, alpha) are checked once read (``gpu.lora.formats.read_lora``)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gpu.bfl_names import DOUBLE_LINEARS, SINGLE_LINEARS, TOP_LINEARS, bfl_linear, bfl_prefix
from gpu.errors import UserError
from gpu.file_kinds import SVDQ_METADATA_KEY, foreign_quantized, other_file

FORMATS = ("diffusers", "kohya", "bfl", "xlabs")


class LoraError(UserError):
    """A LoRA file that cannot be used: unreadable, another architecture, unknown keys, wrong shapes. ``family``:
    the model family a LoRA for another model was made for ("" when it is none); ``weights``: False for a file
    without LoRA weights at all (a checkpoint, a VAE). A folder of LoRAs counts the files it skips by them.
    ``problem``: the message less the file's name where it only leads it ("NAME: PROBLEM", ``named``), for a caller
    that names the file its own way (the LoRA panel, by its path); the whole message (the default) where the name
    is part of its sentence ("NAME is a LoRA for SDXL …")."""

    def __init__(self, message: str, hint: str = "", family: str = "", weights: bool = True,
                 problem: str = "") -> None:  # fmt: skip
        super().__init__(message, hint)
        self.family = family
        self.weights = weights
        self.problem = problem or message

    @classmethod
    def named(cls, label: str, problem: str, hint: str = "") -> LoraError:
        """The error "LABEL: PROBLEM" of the file named ``label``, its ``problem`` apart."""
        return cls(f"{label}: {problem}", hint, problem=problem)


# -- FLUX.1 module names ---------------------------------------------------------------------------------
# The diffusers linears a LoRA in diffusers' names may change: those the BFL layers become.
_DOUBLE_LEAVES = tuple(module for layer in DOUBLE_LINEARS.values() for module in layer.modules)
_SINGLE_LEAVES = tuple(module for layer in SINGLE_LINEARS.values() for module in layer.modules)
_TOP_LEVEL = tuple(module for layer in TOP_LINEARS.values() for module in layer.modules)
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

# XLabs-AI (x-flux) attention-processor LoRAs -> the BFL layer whose output each adds to, and how many of that
# layer's diffusers modules it covers from the first (None: all): "1" is the image stream, "2" the text stream;
# a single block's qkv LoRA adds to the q, k, v rows of ``linear1`` only, not to its MLP rows.
_XLABS_DOUBLE = {
    "qkv_lora1": ("img_attn.qkv", None), "proj_lora1": ("img_attn.proj", None),
    "qkv_lora2": ("txt_attn.qkv", None), "proj_lora2": ("txt_attn.proj", None),
}  # fmt: skip
_XLABS_SINGLE = {"qkv_lora": ("linear1", 3), "proj_lora": ("linear2", None)}
# kohya's underscored BFL names -> dotted BFL names
_KOHYA_DOUBLE = {k.replace(".", "_"): k for k in DOUBLE_LINEARS}
_KOHYA_SINGLE = {k.replace(".", "_"): k for k in SINGLE_LINEARS}
_KOHYA_TOP = {k.replace(".", "_"): k for k in TOP_LINEARS}

# Text encoders: the prefixes files give their layers (kohya ``lora_te1_``/``lora_te_`` CLIP-L, ``lora_te2_`` as
# ComfyUI names FLUX.1's T5 and ``lora_te3_`` as sd-scripts does; diffusers/PEFT ``text_encoder.``/``text_encoder_2.``)
# -> the pipeline component they change. The layer names are checked here against the linears of CLIP-L and
# T5-XXL; which module each names is found on the loaded encoder (``gpu.lora.apply``), by walking its modules.
TEXT_ENCODERS = {"text_encoder": "CLIP text encoder", "text_encoder_2": "T5 text encoder"}
_TE_PREFIXES = (
    ("lora_te1_", "text_encoder"), ("lora_te2_", "text_encoder_2"), ("lora_te3_", "text_encoder_2"),
    ("lora_te_", "text_encoder"), ("text_encoder.", "text_encoder"), ("text_encoder_2.", "text_encoder_2"),
)  # fmt: skip
# The linears of each encoder (CLIP's under ``text_model.`` in checkpoints, directly in newer transformers).
_TE_LAYERS = {
    "text_encoder": r"(?:text_model\.)?encoder\.layers\.\d+\.(?:self_attn\.(?:q|k|v|out)_proj|mlp\.fc[12])",
    "text_encoder_2": r"encoder\.block\.\d+\.layer\.\d+\."
    r"(?:SelfAttention\.(?:q|k|v|o)|DenseReluDense\.(?:wi_0|wi_1|wi|wo))",
}
# kohya writes the same names with "_" for "."
_TE_RE = {
    (component, dotted): re.compile(pattern if dotted else pattern.replace(r"\.", "_"))
    for component, pattern in _TE_LAYERS.items()
    for dotted in (True, False)
}
_TEXT_ENCODER = re.compile("|".join(re.escape(prefix) for prefix, _ in _TE_PREFIXES))
# Key prefixes that mark a LoRA for another model family (checked when nothing maps to FLUX).
_OTHER_ARCH = (
    (re.compile(r"lora_unet_(down|up|mid|input|output|middle)_blocks?_"), "Stable Diffusion 1.x/2.x/SDXL (UNet)"),
    (re.compile(r"(unet\.|lora_unet_.*_(attn1|attn2)_)"), "Stable Diffusion 1.x/2.x/SDXL (UNet)"),
    (re.compile(r"(lora_unet_joint_blocks_|(diffusion_model\.)?joint_blocks\.)"), "Stable Diffusion 3"),
    (_TEXT_ENCODER, "a text encoder"),
)

_SUFFIXES = (
    (".lora_A.weight", "down"), (".lora_B.weight", "up"), (".lora_down.weight", "down"),
    (".lora_up.weight", "up"), (".alpha", "alpha"),
)  # fmt: skip
# XLabs' factors (``double_blocks.0.processor.qkv_lora1.down.weight``): read only under a processor's name, so that
# another model's ``….down.weight`` is named whole among the keys not understood.
_XLABS_SUFFIXES = ((".down.weight", "down"), (".up.weight", "up"))
# A PEFT state dict saved with its adapter's name: ``….lora_A.default.weight`` (group 2: the adapter's name).
_ADAPTER_KEY = re.compile(r"(.+\.lora_[AB])\.([^.]+)(\.weight)")


def _adapter_name(label: str, keys: Iterable[str]) -> str | None:
    """The adapter name a PEFT state dict gives every factor (``lora_A.<name>.weight``), or None when its keys name
    none; a file of several adapters is refused (which one is the LoRA?)."""
    names = sorted({m.group(2) for key in keys if (m := _ADAPTER_KEY.fullmatch(key))})
    if len(names) > 1:
        raise LoraError(f"{label} holds {len(names)} PEFT adapters ({_listing(names, 4)}), not one LoRA",
                        hint="save each adapter to a file of its own (diffusers' save_lora_weights, or PEFT's "
                             "get_peft_model_state_dict with its adapter_name)")  # fmt: skip
    return names[0] if names else None


def _split_key(key: str, adapter: str | None = None) -> tuple[str, str] | None:
    """A tensor's key -> (its module's name in the file, role "down"/"up"/"alpha"), or None for no LoRA factor;
    ``adapter``: the PEFT adapter name the file's factors carry, left out of the module's name."""
    m = _ADAPTER_KEY.fullmatch(key) if adapter else None
    if m and m.group(2) == adapter:
        key = m.group(1) + m.group(3)
    for suffix, role in _SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)], role
    for suffix, role in _XLABS_SUFFIXES:
        if key.endswith(suffix) and ".processor." in key:
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
    """A BFL layer's name (``double_blocks.0.img_attn.qkv``) -> (its diffusers modules, in row order; whether the
    halves of its output swap), from ``gpu.bfl_names``' table; None for a name that is no FLUX.1 linear."""
    found = bfl_linear(name)
    return (found[0], found[1].swap_halves) if found else None


def _map_xlabs_name(name: str) -> tuple[tuple[str, ...], bool] | None:
    """An XLabs processor's LoRA (``double_blocks.0.processor.qkv_lora1``) -> the diffusers modules of the BFL layer
    it adds to (through ``_map_bfl_name``: a fused qkv is split by output rows as BFL's is)."""
    m = re.fullmatch(r"(double|single)_blocks\.(\d+)\.processor\.(\w+)", name)
    table = (_XLABS_DOUBLE if m.group(1) == "double" else _XLABS_SINGLE) if m else {}
    if not m or m.group(3) not in table:
        return None
    layer, count = table[m.group(3)]
    mapped = _map_bfl_name(f"{m.group(1)}_blocks.{m.group(2)}.{layer}")
    return (mapped[0][:count], mapped[1]) if mapped else None


def _map_bfl(base: str) -> tuple[str, tuple[str, ...], bool] | None:
    """BFL/ComfyUI names ("bfl"), and XLabs' processor names over BFL's blocks ("xlabs")."""
    name = base.removeprefix("diffusion_model.").removeprefix("model.diffusion_model.")
    if mapped := _map_bfl_name(name):
        return "bfl", *mapped
    mapped = _map_xlabs_name(name)
    return ("xlabs", *mapped) if mapped else None


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


def map_text_encoder(base: str) -> tuple[str, str] | None:
    """A text encoder's LoRA module name from a file -> (pipeline component, the layer's name as the file gives
    it: dotted, or kohya's with "_" for "."), or None when it names no linear of that encoder."""
    for prefix, component in _TE_PREFIXES:
        if base.startswith(prefix):
            name = base[len(prefix) :]
            return (component, name) if _TE_RE[component, prefix.endswith(".")].fullmatch(name) else None
    return None


def has_text_part(components: Iterable[str]) -> bool:
    """Whether a LoRA of these components (transformer / text encoder names) changes a text encoder: only then does
    a text strength of its own mean anything."""
    return any(c in TEXT_ENCODERS for c in components)


def parts_text(components: list[str] | tuple[str, ...]) -> str:
    """What a LoRA changes, in words: "transformer + CLIP text encoder" (components in the pipeline's order)."""
    names = {"transformer": "transformer", **TEXT_ENCODERS}
    return " + ".join(names[c] for c in names if c in components)


# safetensors dtypes a LoRA's factors may have: floating point only (integer factors are a quantized or
# otherwise different format, whose scales this reader would ignore).
FLOAT_DTYPES = ("F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2")


@dataclass
class LoraLayout:
    """What a file's header says: its format and, per LoRA module of the file, its keys and FLUX.1 modules."""

    format: str  # one of FORMATS
    keys: dict[str, dict[str, str]]  # module base -> role ("down", "up", "alpha") -> the tensor's key
    # module base -> (modules, swap halves): the transformer's diffusers module names; for a text encoder's
    # layer, its name as the file gives it (resolved on the loaded encoder)
    modules: dict[str, tuple[tuple[str, ...], bool]]
    ranks: dict[str, int]  # module base -> rank
    components: dict[str, str]  # module base -> the pipeline component it changes ("transformer", TEXT_ENCODERS)
    # module base -> (A's inputs K, B's outputs N): what a model's layers must take and give (``gpu.lora.fit``)
    shapes: dict[str, tuple[int, int]]

    @property
    def rank(self) -> int:
        return max(self.ranks.values(), default=0)

    @property
    def parts(self) -> str:
        """What the file changes, in words ("transformer + CLIP text encoder")."""
        return parts_text(tuple(self.components.values()))


def _matrix_shape(shape: list[int]) -> list[int]:
    """A factor's shape as a matrix: a 1×1 convolution's [out, in, 1, 1] is the linear [out, in]."""
    return shape[:2] if len(shape) == 4 and shape[2:] == [1, 1] else shape


# Tensors of LoRA variants (LyCORIS LoKr, LoHa and full diffs, OFT/BOFT, DoRA's magnitudes): an adapter's keys under
# a model's module names (``transformer.….lokr_w1``), which the pipeline-part prefixes below would take for a model.
_VARIANT_TENSOR = re.compile(
    r"\.(lokr_\w+|hada_\w+|oft_\w+|boft_\w+|diff|diff_b|dora_scale|lora_magnitude_vector)(\.|$)"
)
# A diffusers pipeline's parts saved in one file, each under its folder's name
_PIPELINE_PARTS = ("transformer.", "text_encoder.", "text_encoder_2.", "text_encoder_3.", "vae.", "unet.")


def _model_file(label: str, header: dict[str, Any]) -> str | None:
    """Why the file of ``header`` (no LoRA factor among its keys) is a model, not a LoRA, as the model library and
    the quantizer recognise one (``gpu.file_kinds``): said by what it is and where it goes, rather than "none of
    its keys name a FLUX.1 layer". None when its keys say nothing of a model."""
    meta = header.get("__metadata__")
    keys = [k for k in header if k != "__metadata__"]
    if isinstance(meta, dict) and SVDQ_METADATA_KEY in meta:
        return f"{label} is a quantized FLUX.1 model (SVDQ), not a LoRA: add it under Models"
    if known := foreign_quantized(header):
        return f"{label} is a model, not a LoRA: {known[0]}"
    if bfl_prefix(keys) is not None:
        return (f"{label} is a FLUX.1 model (a single-file checkpoint), not a LoRA: quantize it with the Quantize "
                "wizard (Single file…) to add it under Models")  # fmt: skip
    known = other_file(keys, "")
    if known is not None and "LoRA" not in known[0]:
        return f"{label} is a model, not a LoRA: {known[0]}"
    parts = sorted({k.split(".", 1)[0] for k in keys if k.startswith(_PIPELINE_PARTS)})
    if parts:
        return f"{label} is a model, not a LoRA: a pipeline's weights in one file ({', '.join(parts)})"
    return None


def check_layout(label: str, header: dict[str, Any]) -> LoraLayout:
    """The layout of a LoRA file from its parsed safetensors header (``label``: the file's name, for messages);
    raises ``LoraError`` for anything the header alone shows to be unusable."""
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    if not entries:
        raise LoraError(
            f"{label} holds no tensors", hint="the file is empty of weights: download it again", weights=False
        )
    keys: dict[str, dict[str, str]] = {}
    unknown: list[str] = []
    adapter = _adapter_name(label, entries)
    for key in entries:
        split = _split_key(key, adapter)
        if split is None:
            unknown.append(key)
            continue
        keys.setdefault(split[0], {})[split[1]] = key
    mapped = {base: map_module(base) for base in keys}
    encoders = {base: map_text_encoder(base) for base, m in mapped.items() if m is None}
    unknown += [base for base, m in encoders.items() if m is None]
    if not any(m is not None for m in mapped.values()):
        # Another family's LoRA only where the file holds LoRA factors: a whole model's keys match these
        # prefixes too (an SD3 transformer's ``joint_blocks.``, a pipeline file's ``text_encoder.``), and a
        # folder's skipped files counted such models as LoRAs for SD3 or for a text encoder.
        for pattern, family in _OTHER_ARCH if keys else ():
            hits = sorted(k for k in entries if pattern.match(k))
            if hits:
                raise LoraError(
                    f"{label} is a LoRA for {family}, not FLUX.1 (keys such as {_listing(hits, 3)})",
                    hint="use a LoRA trained for FLUX.1",
                    family=family,
                )
        variant = sorted(k for k in entries if _VARIANT_TENSOR.search(k))
        if not keys and variant:
            raise LoraError(
                f"{label} is a LoRA variant (LoKr, LoHa, OFT, DoRA or a full diff) that is not supported "
                f"(keys such as {_listing(variant, 3)})",
                hint="use a plain LoRA (lora_A/lora_B or lora_down/lora_up factors) trained for FLUX.1",
            )
        if not keys and (model := _model_file(label, header)) is not None:
            raise LoraError(model, hint="use a LoRA trained for FLUX.1", weights=False)
        raise LoraError(
            f"{label} is not a FLUX.1 LoRA: none of its keys name a FLUX.1 layer "
            f"(keys such as {_listing(sorted(entries), 3)})",
            hint="use a LoRA trained for FLUX.1",
            weights=bool(keys),  # no key with a LoRA factor's name: a model's weights (a checkpoint, a VAE)
        )
    text_encoder = sorted(k for k in unknown if _TEXT_ENCODER.match(k))
    if text_encoder:
        raise LoraError.named(label, f"{len(text_encoder)} text-encoder key(s) name no layer of FLUX.1's CLIP or T5 "
                              f"text encoder: {_listing(text_encoder)}",
                              hint="the file may be for another model's text encoder (SDXL's CLIP-G, SD3): use a LoRA "
                             "trained for FLUX.1")  # fmt: skip
    if unknown:
        raise LoraError.named(
            label,
            f"{len(unknown)} key(s) are not FLUX.1 LoRA weights this app understands: {_listing(sorted(unknown))}",
            hint="the file may be for another model, or a LoRA variant (LoKr, LoHa, DoRA) that is not supported",
        )
    formats = sorted({m[0] for m in mapped.values() if m})  # the transformer's keys say the format
    if formats == ["bfl", "xlabs"]:  # XLabs' processors beside BFL's own names: one set of blocks, read as ever
        formats = ["bfl"]
    if len(formats) > 1:
        raise LoraError(f"{label} mixes LoRA key formats ({', '.join(formats)})",
                        hint="the file was put together wrongly: use the LoRA as its author shared it")  # fmt: skip
    ranks, shapes = {}, {}
    for base, roles in keys.items():
        if "down" not in roles or "up" not in roles:
            missing = "down (A)" if "down" not in roles else "up (B)"
            raise LoraError.named(label, f"{base} has no {missing} matrix",
                                  hint="the file is incomplete: download it again")  # fmt: skip
        down, up = (_matrix_shape(entries[roles[r]]["shape"]) for r in ("down", "up"))
        if len(down) != 2 or len(up) != 2 or down[0] != up[1] or down[0] == 0:
            raise LoraError.named(label, f"{base} has inconsistent shapes (A {tuple(down)}, B {tuple(up)})",
                                  hint="the file is damaged or no LoRA: download it again")  # fmt: skip
        for role in ("down", "up"):
            dtype = entries[roles[role]]["dtype"]
            if dtype not in FLOAT_DTYPES:
                raise LoraError.named(
                    label,
                    f"{roles[role]} holds {dtype} numbers, not floating point",
                    hint="the file is a quantized or other LoRA variant that is not supported",
                )
        if "alpha" in roles and math.prod(entries[roles["alpha"]]["shape"]) != 1:
            raise LoraError.named(label, f"{base}.alpha is not a scalar", hint="the file is damaged: download it again")
        ranks[base], shapes[base] = down[0], (down[1], up[0])
    modules = {base: (m[1], m[2]) for base, m in mapped.items() if m}
    components = dict.fromkeys(modules, "transformer")
    for base, m in encoders.items():
        if m is not None:
            modules[base], components[base] = ((m[1],), False), m[0]
    return LoraLayout(formats[0], keys, modules, ranks, components, shapes)
