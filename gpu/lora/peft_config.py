"""The scales a LoRA file's metadata gives its layers (torch-free): PEFT's LoraConfig as diffusers saves it with the
weights, its ``lora_alpha`` (or an ``alpha_pattern`` entry) over the rank, or over its square root for an rsLoRA
adapter. The one rule the engine reads a file by (``gpu.lora.formats.read_lora``) and the LoRA panel tells two files
apart by (``gpu.lora.twins``): a copy whose metadata was only written again (its trigger words edited, its JSON laid
out another way) is the same LoRA for both, one with another ``lora_alpha`` another LoRA for both."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from gpu.lora.keys import LoraLayout

# The metadata entries a LoRA's scales may come from: PEFT's LoraConfig as diffusers saves it, for every part
# (``lora_adapter_metadata``, its keys prefixed with the part) or for one (``<part>_lora_adapter_metadata``)
ADAPTER_METADATA = "lora_adapter_metadata"


def adapter_config(metadata: dict[str, str], component: str) -> dict[str, Any] | None:
    """PEFT's LoraConfig of ``component`` ("transformer", "text_encoder") as diffusers stores it:
    ``lora_adapter_metadata`` (keys prefixed ``<component>.``) or ``<component>_lora_adapter_metadata``."""
    for key, prefix in ((ADAPTER_METADATA, f"{component}."), (f"{component}_{ADAPTER_METADATA}", "")):
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


def metadata_scale(metadata: dict[str, str], component: str, module: str, rank: int) -> float:
    """The scale of ``module`` (a layer without an alpha tensor) from the adapter's LoraConfig in the metadata:
    lora_alpha (or its alpha_pattern entry) / r, or / sqrt(r) for an rsLoRA adapter (``use_rslora``), as PEFT
    trained it and diffusers' loader applies it (read as / r, a rank-64 rsLoRA came out at 1/8 of its strength);
    ``rank`` is the layer's, as its tensors give it. 1.0 where the metadata gives no alpha (none, one that is no
    number, or 0)."""
    cfg = adapter_config(metadata, component)
    if not cfg or cfg.get("lora_alpha") is None:
        return 1.0
    try:
        alpha = float(cfg["lora_alpha"])
        for pattern, value in (cfg.get("alpha_pattern") or {}).items():
            if module == pattern or module.endswith("." + pattern) or re.fullmatch(pattern, module):
                alpha = float(value)
        return alpha / (math.sqrt(rank) if cfg.get("use_rslora") is True else rank) or 1.0
    except (ValueError, TypeError, AttributeError, re.error):
        return 1.0


def metadata_scales(layout: LoraLayout, metadata: dict[str, str]) -> tuple[tuple[str, float], ...]:
    """The scale the metadata gives each layer of a file (its ``layout``) that has no alpha tensor, by the layer's
    key in the file, as ``read_lora`` reads them (``metadata_scale``); the others' alphas are in the file's data."""
    return tuple(sorted(
        (base, metadata_scale(metadata, layout.components[base], modules[0], layout.ranks[base]))
        for base, (modules, _) in layout.modules.items() if "alpha" not in layout.keys[base]))  # fmt: skip
