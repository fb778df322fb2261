"""What a file given as a model is when it is none Nibble Studio reads, said before any work: a name that is no
``.safetensors`` name (a PyTorch pickle, a GGUF file), a FLUX.1 file another tool already quantized (bitsandbytes,
Nunchaku, packed integers), or by its tensor names something else (a LoRA, an SDXL checkpoint, a text encoder, a
VAE); with what to do instead. Torch-free: the app checks a picked file with it on the GUI thread."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from gpu.bfl_names import bfl_prefix
from gpu.errors import ModelLoadError
from gpu.safetensors_header import PICKLE_PROBLEM, PICKLE_SUFFIXES, element_counts

SVDQ_METADATA_KEY = "svdq"  # gpu.checkpoint.format.METADATA_KEY, named here without importing torch

QUANTIZE_WITH = "quantize it with the app's Quantize wizard (or python main.py quantize)"
QUANTIZE_FIRST = ("quantize it first: the app's Quantize wizard, or python main.py quantize FILE --base "
                  "PIPELINE --out OUT.safetensors, where PIPELINE is a diffusers FLUX.1 folder supplying the text "
                  "encoders")  # fmt: skip
# The hint for a FLUX.1 LoRA where a model to generate with is wanted (generate --model, the library).
USE_AS_LORA = "add it as a LoRA to a FLUX.1 model instead: --lora FILE, or the LoRA panel"
# The hint for a model of another kind where a model to generate with is wanted (generate --model, the library).
PICK_MODEL = ("Nibble Studio runs FLUX.1 models: give a quantized (SVDQ) FLUX.1 .safetensors file, a diffusers "
              "FLUX.1 pipeline folder or a library model name")  # fmt: skip


def check_safetensors_name(path: Path, hint: str = "") -> None:
    """ModelLoadError naming what a file whose name does not end in ``.safetensors`` (in any case) is: a PyTorch
    pickle, a GGUF file, or anything else (``hint`` then says what to pick). The library, ``generate --model`` and
    the quantize wizard name such files through this one function."""
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise ModelLoadError(f"{path.name}: {PICKLE_PROBLEM}", "use the .safetensors version of the model")
    if suffix == ".gguf":
        raise ModelLoadError(f"{path.name}: a GGUF file (already quantized for ComfyUI-GGUF)",
                             f"use the 16-bit .safetensors version of the model and {QUANTIZE_WITH}")  # fmt: skip
    if suffix != ".safetensors":
        raise ModelLoadError(f"{path.name}: not a .safetensors file", hint)


# What to do with a FLUX.1 file that another tool has already quantized in a layout Nibble Studio cannot read.
FROM_16_BIT = ("quantize the 16-bit FLUX.1 model (e.g. flux1-dev.safetensors or the FLUX.1-dev pipeline folder) "
               "with the app's Quantize wizard (or python main.py quantize) instead")  # fmt: skip
NUNCHAKU = "a Nunchaku SVDQuant file; Nibble Studio reads its own SVDQ format, not Nunchaku's"
# Tensor-name endings only Nunchaku's files have (its old layout's .smooth/.lora_down/.lora_up are our own
# SVDQ format's names too, which a file of ours always declares in its metadata).
_NUNCHAKU_ONLY = (".smooth_factor", ".smooth_factor_orig", ".smooth_orig", ".proj_down", ".proj_up", ".wtscale",
                  ".wcscales", ".wzeros")  # fmt: skip


def _is_nunchaku(keys: list[str]) -> bool:
    """Packed 4-bit weights (``.qweight``) with their scales (``.wscales``: a file of ours has them too, but always
    with its SVDQ metadata, which the callers look for first) or names only Nunchaku uses (``qkv_proj``,
    ``.smooth_factor``, ``.proj_down``, ...). A LoRA, Nunchaku's converted ones included, has no ``.qweight``."""
    if not any(k.endswith(".qweight") for k in keys):
        return False
    return any(k.endswith((".wscales", *_NUNCHAKU_ONLY)) or ".qkv_proj." in k for k in keys)


# bitsandbytes' 4-bit quant state, stored beside each packed weight (Forge's NF4 files, diffusers' bnb saves)
_BNB_STATE = ".quant_state.bitsandbytes__"
_PACKED_DTYPES = ("U8", "I8", "U16", "I16", "U32", "I32")  # no FLUX.1 weight is an integer tensor


def foreign_quantized(header: dict[str, Any]) -> tuple[str, str] | None:
    """What a .safetensors file already quantized by another tool is (a bitsandbytes NF4/FP4 file as Forge
    ships FLUX.1, a Nunchaku SVDQuant file, a FLUX.1 file of packed integer weights), from its header (tensor
    name -> entry); None for anything else. Their names look like a model's (a Forge NF4 file has every BFL name),
    so the file was taken for a 16-bit checkpoint with "0.0 M parameters in U8", or for a LoRA."""
    keys = [k for k in header if k != "__metadata__"]
    prefix = bfl_prefix(keys)
    forge = " FLUX.1 file (Forge)" if prefix is not None else " file"
    bnb = {k.partition(_BNB_STATE)[2] for k in keys if _BNB_STATE in k}
    if bnb or (any(k.endswith(".absmax") for k in keys) and any(k.endswith(".quant_map") for k in keys)):
        kind = "/".join(sorted(b.upper() for b in bnb)) or "4-bit"
        return (f"a bitsandbytes {kind}{forge}; Nibble Studio cannot read bitsandbytes 4-bit weights",
                FROM_16_BIT)  # fmt: skip
    if _is_nunchaku(keys):
        return NUNCHAKU, FROM_16_BIT
    counts = element_counts(header, prefix) if prefix is not None else {}
    dtype = max(counts, key=lambda d: counts[d]) if counts else None
    if dtype in _PACKED_DTYPES:
        return (f"a FLUX.1 file of packed quantized weights ({dtype} tensors, made by another tool); "
                "Nibble Studio cannot read them", FROM_16_BIT)  # fmt: skip
    return None


# What else a .safetensors file may be, recognised by its tensor names: (test, what it is, what to do instead;
# None: the caller's hint for a model of another kind, since what to pick depends on what the file was given for).
# What a LoRA file is said to be; its hint is the caller's (``other_file``'s ``lora_hint``): the model loader's
# "add it as a LoRA", which the quantizer's source page must not say ("--lora FILE" in the wizard)
A_LORA = "a LoRA, not a model"
# Kohya names of a Stable Diffusion 1.x/2.x or SDXL UNet's blocks, which no FLUX.1 model has (FLUX's are
# lora_unet_double_blocks_… and lora_unet_single_blocks_…)
_SD_UNET_LORA = tuple(f"lora_unet_{block}" for block in ("down_blocks", "up_blocks", "mid_block", "input_blocks",
                                                         "output_blocks", "middle_block"))  # fmt: skip
_OTHER_FILES: list[tuple[Callable[[list[str]], bool], str, str | None]] = [
    # Before any LoRA: "add it as a LoRA to a FLUX.1 model" is no advice for one that fits none
    (lambda keys: any(k.startswith(_SD_UNET_LORA) for k in keys),
     "a Stable Diffusion or SDXL LoRA, not for FLUX.1", None),
    # XLabs' (double_blocks.0.processor.qkv_lora1.down.weight) have neither "lora_" nor ".lora.", and were
    # "not an SVDQ checkpoint"
    (lambda keys: any("lora_" in k or ".lora." in k or (".processor." in k and "_lora" in k) for k in keys),
     A_LORA, None),
    (lambda keys: any(k.startswith("transformer_blocks.") for k in keys),
     "a FLUX transformer in diffusers layout (the transformer/ part of a pipeline folder)",
     "pick the whole pipeline folder (the one with model_index.json) instead"),
    (lambda keys: any(".input_blocks." in k or k.startswith("input_blocks.") for k in keys),
     "a Stable Diffusion 1.x/2.x or SDXL checkpoint (UNet), not FLUX.1", None),
    (lambda keys: any(".joint_blocks." in k or k.startswith("joint_blocks.") for k in keys),
     "a Stable Diffusion 3 checkpoint, not FLUX.1", None),
    # The text encoders before the VAE: a T5 shard holds only encoder.block.* and encoder.final_layer_norm.*,
    # which the VAE's "every name under encoder./decoder." test also matches.
    (lambda keys: any(k.startswith(("encoder.block.", "encoder.final_layer_norm.", "shared.")) for k in keys),
     "a T5 text-encoder file (a FLUX.1 pipeline's text_encoder_2), not a FLUX.1 transformer", None),
    (lambda keys: any(k.startswith(("text_model.", "embeddings.", "encoder.layers.")) for k in keys),
     "a text encoder, not a FLUX.1 transformer", None),
    (lambda keys: bool(keys) and all(k.startswith(("encoder.", "decoder.", "quant_conv", "post_quant_conv"))
                                     for k in keys), "a VAE, not a FLUX.1 transformer", None),
]  # fmt: skip


def other_file(keys: Iterable[str], pick: str, lora_hint: str = "") -> tuple[str, str] | None:
    """What a .safetensors file holding no FLUX.1 model is, recognised by its tensor names ``keys`` (a LoRA, an
    SDXL checkpoint, ...), and what to do instead; ``pick`` is the hint for a model of another kind, ``lora_hint``
    the one for a FLUX.1 LoRA (``pick`` when empty). None when the names say nothing. The quantizer and the model
    loader both name files through it."""
    keys = [k for k in keys if k != "__metadata__"]
    for test, what, hint in _OTHER_FILES:
        if test(keys):
            return what, hint or (lora_hint if what == A_LORA and lora_hint else pick)
    return None
