"""Whether the loaded transformer runs as fused FLUX blocks (``gpu.models.flux_fused``), and keeping it so.

Fused execution (merged QKV(+MLP) linears, fused block kernels, a CUDA graph per resolution) is what makes a
4-bit FLUX step fast on a GPU, but its merged layers no longer carry the names LoRAs target (``to_q``,
``to_k``, ...). So when the set of LoRAs changes, the service unfuses the model (exactly, in place, no
reload), applies the set to the named layers and fuses again: the LoRAs ride in the members' low-rank
branches into the merged layers, and members whose combined branch the kernels cannot run stay separate
(``gpu.kernels.rank_limits``, ``fusion_report``).
"""

from __future__ import annotations

import os
from typing import Any

import torch

# "auto": fuse SVDQ FLUX models when the fused block kernels run on the device; "always": fuse wherever the
# model is a FLUX transformer (on a CPU the blocks use the PyTorch reference ops: for tests); "never".
FUSE_MODES = ("auto", "always", "never")
FUSE_ENV = "NIBBLE_FUSE"


def fuse_mode(explicit: str | None = None) -> str:
    mode = explicit or os.environ.get(FUSE_ENV, "auto")
    if mode not in FUSE_MODES:
        raise ValueError(f"fusion mode {mode!r} is not one of {', '.join(FUSE_MODES)}")
    return mode


def fusion_refusal(transformer: Any, device: torch.device, kind: str, mode: str) -> str | None:
    """None when ``transformer`` should run fused on ``device``, else why not (in words)."""
    from diffusers.models.transformers.transformer_flux import FluxTransformer2DModel

    if mode == "never":
        return f"fused blocks are off ({FUSE_ENV}=never)"
    if not isinstance(transformer, FluxTransformer2DModel):
        return f"fused blocks exist for FLUX transformers only, not {type(transformer).__name__}"
    if mode == "always":
        return None
    if kind != "svdq":
        return "fused blocks are for 4-bit SVDQ models"
    from gpu.modules.fused_ops import fused_refusal

    return fused_refusal(device)


def sync_fusion(transformer: Any, want_fused: bool) -> bool:
    """Fuse or unfuse ``transformer`` in place so that it is fused exactly when ``want_fused``; returns
    whether anything changed."""
    from gpu.models.flux_fused import fuse_flux_transformer, unfuse_flux_transformer

    if is_fused(transformer) == want_fused:
        return False
    if want_fused:
        fuse_flux_transformer(transformer)
    else:
        unfuse_flux_transformer(transformer)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the members' (or merged layers') packed copies are gone
    return True


def fuse_if_allowed(transformer: Any, device: torch.device, kind: str, mode: str) -> str | None:
    """Fuse ``transformer`` when ``fusion_refusal`` allows it, else unfuse it; returns the refusal (None: fused).
    What the service does whenever no LoRA is active."""
    why_not = fusion_refusal(transformer, device, kind, mode)
    sync_fusion(transformer, why_not is None)
    return why_not


def is_fused(transformer: Any) -> bool:
    from gpu.models.flux_fused import FusedFluxTransformer2DModel

    return isinstance(transformer, FusedFluxTransformer2DModel)
