"""A pipeline the service drops is freed at once, not whenever the garbage collector next runs: diffusers' hook
registry and the transformer hold each other, so dropping the last reference freed nothing. On an H100 with 50 GiB
free, the model loaded again after its file changed ran out of memory ("needs 34.1 GiB; this GPU has 50.0 GiB
free"): the old one was still there. The same hit the first job after switching models on a 16 GB card.

The garbage collector is switched off in these tests, as it is in effect between its runs: only what the service
frees itself is freed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest
import torch
from diffusers import FluxTransformer2DModel

from gpu.generation.request import GenerationRequest
from gpu.generation.service import GenerationService, OutOfMemory
from gpu.library import ModelLibrary


def _request(model: str) -> GenerationRequest:
    return GenerationRequest("a red star", model=model, seed=1, steps=1, width=64, height=64)


@pytest.fixture
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_unload_after_a_job_frees_the_pipeline(tmp_path, no_collector):
    service = GenerationService(ModelLibrary(tmp_path), device=torch.device("cpu"))
    service.generate(_request("demo-int4"))
    transformer = weakref.ref(service.loaded.pipe.transformer)
    service.unload()
    assert transformer() is None


def test_switching_models_frees_the_one_before(tmp_path, no_collector):
    service = GenerationService(ModelLibrary(tmp_path), device=torch.device("cpu"))
    service.generate(_request("demo-int4"))
    before = weakref.ref(service.loaded.pipe.transformer)
    service.generate(_request("demo"))
    assert before() is None and service.loaded.entry.name == "demo"


@pytest.mark.parametrize(("model", "four_bits"), [("demo-int4", True), ("demo", False)])
def test_out_of_memory_in_a_job_frees_the_pipeline_and_advises_4_bits_only_to_others(
    tmp_path, monkeypatch, no_collector, model, four_bits
):
    """Running out of memory mid-job unloads the model; its memory is free for what the user tries next. A 4-bit
    model was told to "try a 4-bit model" (the plan's rule: only a model that is not 4-bit is)."""
    service = GenerationService(ModelLibrary(tmp_path), device=torch.device("cpu"))
    service.load(model)
    transformer = weakref.ref(service.loaded.pipe.transformer)

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(FluxTransformer2DModel, "forward", out_of_memory)
    with pytest.raises(OutOfMemory) as raised:
        service.generate(_request(model))
    assert service.loaded is None and transformer() is None
    assert str(raised.value) == "the GPU ran out of memory at 64x64"
    assert ("4-bit" in raised.value.hint) is not four_bits, raised.value.hint
    assert "a smaller size" in raised.value.hint and "close other programs that use the GPU" in raised.value.hint
