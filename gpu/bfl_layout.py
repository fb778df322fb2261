"""Recognising a single-file FLUX.1 transformer in Black Forest Labs' layout (``flux1-dev.safetensors``) from
its tensor names alone, without torch: the quantizer reads such files, and the model loader names them when
one is given where a quantized model is expected.

Two layouts are seen in the wild: BFL's own (``img_in.weight``, ``double_blocks.0.…``), and ComfyUI's
all-in-one checkpoints, where the same names sit under ``model.diffusion_model.`` beside the VAE's and text
encoders' tensors (which the quantizer ignores)."""

from __future__ import annotations

from collections.abc import Iterable

# Where the transformer's BFL names may sit in a file, most specific first.
PREFIXES = ("model.diffusion_model.", "")


def bfl_prefix(keys: Iterable[str]) -> str | None:
    """The prefix under which ``keys`` (a file's tensor names) hold a BFL-layout FLUX transformer; None if not."""
    keys = set(keys)
    for prefix in PREFIXES:
        if f"{prefix}img_in.weight" in keys and any(k.startswith(f"{prefix}double_blocks.") for k in keys):
            return prefix
    return None


QUANTIZE_FIRST = ("quantize it first: python main.py quantize FILE --base PIPELINE --out OUT.safetensors, where "
                  "PIPELINE is a diffusers FLUX.1 folder supplying the text encoders")  # fmt: skip
