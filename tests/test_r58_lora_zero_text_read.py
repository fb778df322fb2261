"""R58: a LoRA at strength 0 changes nothing, and its tensors are no longer read (a 300 MB file switched to 0 was
read whole at every job). A LoRA without a CLIP/T5 part asked with a text strength of its own (``--lora
style.safetensors:0:1``, or a row restored with one) changes nothing either (``_wanted`` gives it its strength as
text strength), yet ``applied_parts(0, 1)`` counts its text parts as applied, so the whole file is read, at every
job, only to be skipped."""

from __future__ import annotations

import pytest
import torch

from gpu.lora import manager_for
from gpu.lora.formats import check_lora_file
from gpu.lora.keys import has_text_part
from gpu.paths import resources_dir

DEMO = resources_dir() / "models" / "demo"
SHIPPED = resources_dir() / "loras" / "monochrome-style.safetensors"


@pytest.mark.xfail(strict=True, reason="R58: a transformer-only LoRA at strength 0 with a text strength is read whole")
def test_a_transformer_only_lora_at_strength_zero_is_not_read_whatever_its_text_strength(tensor_reads):
    from diffusers import FluxTransformer2DModel

    demo = FluxTransformer2DModel.from_pretrained(DEMO, subfolder="transformer", torch_dtype=torch.float32).eval()
    assert not has_text_part(check_lora_file(SHIPPED)[1].components)  # the transformer only
    manager = manager_for(demo)
    assert manager.set([(SHIPPED, 0.0)]) == [] and tensor_reads == []  # strength 0: not read
    assert manager.set([(SHIPPED, 0.0, 1.0)]) == []  # nothing applied, as the engine says itself
    assert tensor_reads == []  # was: ["monochrome-style.safetensors"], read whole for nothing
