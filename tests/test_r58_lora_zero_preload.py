"""R58: a job's LoRAs are judged before the model loads (``check_fit_before_load``), so that what is wrong with
them is said at once, not after the minute a FLUX.1 load takes. A LoRA at strength 0 in every part is skipped there
entirely, while the loaded model's check (``LoraManager._wanted``) still refuses it when its file is gone or is no
LoRA ("checked from its header: gone or damaged is said"): the same job is refused only after the model is loaded.
The same file at strength 1 is refused before the load."""

from __future__ import annotations

import pytest
import torch

from gpu.lora import LoraError


@pytest.mark.xfail(strict=True, reason="R58: a gone LoRA at strength 0 is refused only after the model has loaded")
def test_a_gone_lora_at_strength_zero_is_refused_before_the_model_loads(tmp_path):
    from gpu.generation.request import GenerationRequest
    from gpu.generation.service import GenerationService

    gone = tmp_path / "gone style.safetensors"
    service = GenerationService(device=torch.device("cpu"))
    with pytest.raises(LoraError, match="gone style"):  # at strength 1: before the load
        service.generate(GenerationRequest("a red circle", model="demo", steps=1, loras=[(str(gone), 1.0)]))
    assert service.loaded is None
    with pytest.raises(LoraError, match="gone style"):  # `generate --lora "gone style.safetensors:0"`
        service.generate(GenerationRequest("a red circle", model="demo", steps=1, loras=[(str(gone), 0.0)]))
    assert service.loaded is None  # was: the demo model loaded first (a minute for FLUX.1), then refused
