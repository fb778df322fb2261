"""LoRA variants under a model's module names (a diffusers/PEFT-named LoKr: ``transformer.….lokr_w1``; LyCORIS full
diffs; DoRA magnitudes) were named as a whole model ("a pipeline's weights in one file (transformer)") by the check
that tells models from LoRAs, sending a FLUX.1 LoKr's user to Models and the quantizer. They are LoRAs this app does
not run, and say so; whole models are still named as models."""

from __future__ import annotations

import pytest

from gpu.lora.keys import LoraError, check_layout


def _header(*keys: str) -> dict:
    return {k: {"dtype": "F16", "shape": [8, 8], "data_offsets": [128 * i, 128 * (i + 1)]} for i, k in enumerate(keys)}


@pytest.mark.parametrize("keys", [
    ("transformer.transformer_blocks.0.attn.to_q.lokr_w1", "transformer.transformer_blocks.0.attn.to_q.lokr_w2"),
    tuple(f"transformer.single_transformer_blocks.0.proj_out.{t}" for t in ("diff", "diff_b")),
    tuple(f"text_encoder.text_model.encoder.layers.0.mlp.fc1.{t}" for t in ("hada_w1_a", "hada_w1_b")),
    ("unet.down_blocks.0.attentions.0.proj_in.lokr_w1",),
    ("transformer.transformer_blocks.0.attn.to_q.dora_scale",),
])  # fmt: skip
def test_a_lora_variant_is_said_to_be_one_not_a_model(keys):
    with pytest.raises(LoraError) as info:
        check_layout("style.safetensors", _header(*keys))
    assert str(info.value).startswith("style.safetensors is a LoRA variant (LoKr, LoHa, OFT, DoRA or a full diff)")
    assert info.value.weights  # a LoRA-kind file: a folder counts it as an unusable LoRA, not as a model


def test_a_pipeline_in_one_file_is_still_a_model():
    with pytest.raises(LoraError) as info:
        check_layout("pipe.safetensors", _header("transformer.transformer_blocks.0.attn.to_q.weight",
                                                 "vae.decoder.conv_in.weight"))  # fmt: skip
    assert "is a model, not a LoRA: a pipeline's weights in one file (transformer, vae)" in str(info.value)
    assert not info.value.weights
