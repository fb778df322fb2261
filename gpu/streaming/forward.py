"""The transformer run over calibration inputs with one block in memory at a time: its layers before the first
block (``preamble``), then each block loaded once per call over every input (``streamed_forward``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn

from gpu.streaming.activation_store import ActivationStore
from gpu.streaming.source import WeightSource, load_block

if TYPE_CHECKING:  # imported, gpu.quantizer's package would import the engine, which imports this module
    from gpu.quantizer.shared import CalibSample


def preamble(head: nn.Module, samples: list[CalibSample], device: torch.device,
             store: ActivationStore) -> tuple[ActivationStore, list[tuple[torch.Tensor, tuple]]]:  # fmt: skip
    """FluxTransformer2DModel.forward up to the first block, per sample -> (store, [(temb, rotary)]): the first
    block's inputs put in ``store`` (hidden [1, S_img, D], encoder [1, S_txt, D] in the head's dtype), and each
    sample's time embedding temb [1, D] and rotary embedding (cos, sin [S_txt + S_img, head_dim]) on ``device``."""
    extras = []
    rot_cache: list[tuple[torch.Tensor, tuple]] = []
    with torch.inference_mode():
        for i, s in enumerate(samples):
            s = {k: v.to(device) for k, v in s.items()}
            h = head.x_embedder(s["hidden_states"])
            timestep = s["timestep"].to(h.dtype) * 1000
            guidance = s.get("guidance")
            if guidance is not None:
                guidance = guidance.to(h.dtype) * 1000
                temb = head.time_text_embed(timestep, guidance, s["pooled_projections"])
            else:
                temb = head.time_text_embed(timestep, s["pooled_projections"])
            e = head.context_embedder(s["encoder_hidden_states"])
            ids = torch.cat((s["txt_ids"], s["img_ids"]), dim=0)
            rot = next((r for cached, r in rot_cache if cached.shape == ids.shape and torch.equal(cached, ids)), None)
            if rot is None:
                rot = head.pos_embed(ids)
                rot_cache.append((ids, rot))
            store.put(i, h, e)
            extras.append((temb, rot))
    return store, extras


def streamed_forward(src: WeightSource, head: nn.Module, blocks: list[tuple[str, int]], device: torch.device,
                     dtype: torch.dtype) -> Callable[[list[CalibSample]], list[torch.Tensor]]:  # fmt: skip
    """The whole transformer over a list of inputs, loading each block once per call (trajectory steps): each
    sample's output [1, S_img, C] (``proj_out``, in ``dtype``) on the CPU."""

    def run(inputs: list[CalibSample]) -> list[torch.Tensor]:
        store, extras = preamble(head, inputs, device, ActivationStore(None))
        for kind, index in blocks:
            block = load_block(src, kind, index, device, dtype)
            with torch.inference_mode():
                for i in range(len(inputs)):
                    h, e = store.get(i)
                    temb, rot = extras[i]
                    e, h = block(hidden_states=h.to(device), encoder_hidden_states=e.to(device), temb=temb,
                                 image_rotary_emb=rot)  # fmt: skip
                    store.put(i, h, e)
            del block
        outs = []
        with torch.inference_mode():
            for i in range(len(inputs)):
                h, _ = store.get(i)
                h = head.norm_out(h.to(device), extras[i][0])
                outs.append(head.proj_out(h).cpu())
        return outs

    return run
