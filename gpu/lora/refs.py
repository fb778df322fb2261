"""LoRAs as other programs' images name them (A1111/Forge's ``<lora:…>`` tags and ``Lora hashes``, ComfyUI's LoRA
nodes): by file stem, with the strengths read from data any program may have written. Torch-free: the app reads
these as an image is dropped, and the engine's PNG readers give them (``lora_refs``)."""

from __future__ import annotations

import math
from pathlib import PureWindowsPath
from typing import Any

# Suffixes of LoRA files (ComfyUI names them with it, A1111 without): cut from a name to give the file's stem; a
# name such as "style_v1.5" keeps its dot.
_LORA_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")


def lora_stem(name: str) -> str:
    """The file stem a LoRA name stands for: ComfyUI's "flux\\style.safetensors" (a subfolder, Windows' separator
    or another's) and A1111's "style" both give "style"."""
    return file_stem(name, _LORA_SUFFIXES)


def hashes_name(name: str) -> str:
    """A LoRA's name as A1111's ``Lora hashes`` value gives it: without ',' and ':', which split that value (A1111
    and Forge take them out, and so does ``lora_hashes``). The writer and the reader both use this, so that the tag
    ``<lora:Ink, Style:0.8>`` finds its hash under "Ink Style"."""
    return name.replace(":", "").replace(",", "")


def file_stem(name: str, suffixes: tuple[str, ...]) -> str:
    """The stem of the file another program names ``name`` (with a subfolder, in Windows' or another's separators),
    one of ``suffixes`` (lower case) cut from its end; another suffix is kept, as a dot in "style_v1.5" is."""
    base = PureWindowsPath(name.strip()).name.strip()
    suffix = next((x for x in suffixes if base.lower().endswith(x)), "")
    return base[: len(base) - len(suffix)].strip()


def finite(value: Any) -> float | None:
    """``value`` (a JSON number or a text) as a finite float; None for anything else: true/false, "strong", a NaN,
    or 1e309, which JSON and float() read as infinity."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):  # OverflowError: an integer past a float's range
        return None
    return number if math.isfinite(number) else None


def lora_ref(name: str, strength: float, text_strength: float | None, digest: str | None = None) -> dict[str, Any]:
    """One LoRA an image of another program names: ``name`` is the file's stem (``lora_stem``), ``strength`` that of
    its transformer (UNet) part, ``text_strength`` that of its CLIP/T5 parts (None: the same), ``digest`` the short
    hash the image gives (A1111's ``Lora hashes``), None when it gives none."""
    text = None if text_strength == strength else text_strength
    return {"name": name, "strength": strength, "text_strength": text, "hash": digest}
