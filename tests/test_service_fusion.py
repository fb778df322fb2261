"""The service runs FLUX transformers fused with and without LoRAs: a change of LoRAs splits the model exactly,
applies them to the named layers and fuses again.

On this CPU machine the fused blocks run on the PyTorch reference ops (``fuse="always"``); on a GPU ("auto")
the same switching selects the fused kernels and the CUDA graphs."""

from __future__ import annotations

import numpy as np
import pytest

from gpu.demo.train_lora import OUT as SHIPPED_LORA
from gpu.generation.fusion import fuse_mode, is_fused
from gpu.generation.request import GenerationRequest
from gpu.generation.service import GenerationService
from gpu.runtime.dispatch import describe_device


def _request(loras=None) -> GenerationRequest:
    return GenerationRequest("a red circle on a blue square", model="demo-int4", seed=11, steps=4, loras=loras or [])


def _pixels(result) -> np.ndarray:
    return np.asarray(result.image, dtype=np.float32)


def test_fused_with_and_without_loras(monkeypatch):
    import gpu.models.flux_fused as flux_fused

    fused = GenerationService(fuse="always")
    plain = GenerationService(fuse="never")
    lora = [(str(SHIPPED_LORA), 1.0)]

    [a] = fused.generate(_request())
    transformer = fused.loaded.pipe.transformer
    assert is_fused(transformer) and "); fused FLUX blocks" in a.settings["execution_path"]
    info = fused.describe("demo-int4")  # what the Models panel shows: the path alone, its notes in the whole text
    assert info.execution_path == a.settings["execution_path"]
    summary = info.execution_summary  # "PyTorch reference on CPU", or the fused backend on the GPU
    assert summary.endswith(f" on {describe_device(fused.loaded.device)}") and "fused FLUX blocks" not in summary
    assert info.execution_path.startswith((f"{summary} (", f"{summary}; fused FLUX blocks"))
    [ref] = plain.generate(_request())
    assert not is_fused(plain.loaded.pipe.transformer) and "fused FLUX blocks" not in ref.settings["execution_path"]
    # the fused blocks keep fp32 between ops where diffusers rounds to bf16 after each: close, not identical
    assert np.abs(_pixels(a) - _pixels(ref)).mean() < 2.0

    splits = []
    unfuse = flux_fused.unfuse_flux_transformer
    monkeypatch.setattr(flux_fused, "unfuse_flux_transformer", lambda m: splits.append(m) or unfuse(m))
    [with_lora] = fused.generate(_request(lora))
    assert fused.loaded.pipe.transformer is transformer and is_fused(transformer) and len(splits) == 1
    assert "fused FLUX blocks" in with_lora.settings["execution_path"] and with_lora.settings["loras"]
    [ref_lora] = plain.generate(_request(lora))
    assert np.abs(_pixels(with_lora) - _pixels(ref_lora)).mean() < 2.0  # the LoRA runs in the fused model
    assert np.abs(_pixels(with_lora) - _pixels(a)).mean() > 3 * np.abs(_pixels(with_lora) - _pixels(ref_lora)).mean()
    [same_lora] = fused.generate(_request(lora))
    assert len(splits) == 1 and same_lora.image.tobytes() == with_lora.image.tobytes()  # unchanged set: no re-fuse

    [again] = fused.generate(_request())
    assert is_fused(transformer) and len(splits) == 2
    assert again.image.tobytes() == a.image.tobytes()  # the LoRA came off exactly


def test_a_bad_lora_file_leaves_a_working_model(tmp_path):
    from gpu.errors import UserError

    service = GenerationService(fuse="always")
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(UserError):
        service.generate(_request([(str(bad), 1.0)]))
    [image] = service.generate(_request())
    assert is_fused(service.loaded.pipe.transformer) and image.image.size[0] > 0


def test_a_lora_for_another_model_leaves_the_fused_model_with_its_loras(tmp_path):
    """A LoRA that fails only against the model (a block this model lacks) is refused after the split: the model
    is fused again with the LoRAs it had, and the next image is the one it gave before."""
    from safetensors.torch import load_file, save_file

    from gpu.errors import UserError

    service = GenerationService(fuse="always")
    lora = [(str(SHIPPED_LORA), 1.0)]
    [before] = service.generate(_request(lora))
    bigger = {k.replace("single_transformer_blocks.0.", "single_transformer_blocks.99."): v
              for k, v in load_file(SHIPPED_LORA).items()}  # fmt: skip
    other = tmp_path / "for-a-bigger-flux.safetensors"
    save_file(bigger, other)
    with pytest.raises(UserError, match="single_transformer_blocks.99"):
        service.generate(_request([*lora, (str(other), 1.0)]))
    transformer = service.loaded.pipe.transformer
    assert is_fused(transformer)
    [after] = service.generate(_request(lora))
    assert after.image.tobytes() == before.image.tobytes()


def test_fuse_mode_is_checked(monkeypatch):
    assert fuse_mode("never") == "never"
    monkeypatch.setenv("NIBBLE_FUSE", "sometimes")
    with pytest.raises(ValueError, match="sometimes"):
        fuse_mode()
