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


def test_ram_running_out_in_a_job_is_said_with_the_size_and_what_to_try(tmp_path, monkeypatch, no_collector, capsys):
    """The CPU allocator failing mid-job (1024x1024 on the CPU under ``ulimit -v 2000000``, in the VAE's decode)
    ended ``generate`` in a 23-frame traceback: it is the RAM's out-of-memory error, as the GPU's is, naming the size
    and what to try, on the command line (one line, exit 2) and in the app (an "oom" error); the model is freed."""
    from diffusers import AutoencoderKL

    from app.engine_errors import classify
    from main import main

    service = GenerationService(ModelLibrary(tmp_path), device=torch.device("cpu"))
    service.load("demo")
    transformer = weakref.ref(service.loaded.pipe.transformer)

    def allocator_fails(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 268435456 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(AutoencoderKL, "decode", allocator_fails)
    with pytest.raises(OutOfMemory) as raised:
        service.generate(_request("demo"))
    assert service.loaded is None and transformer() is None
    assert str(raised.value) == "the computer ran out of memory (RAM) at 64x64"
    assert raised.value.hint == "try a 4-bit model or a smaller size, or close other programs"
    said = classify(raised.value)
    assert (said.kind, said.message, said.hint) == ("oom", str(raised.value), raised.value.hint)

    code = main(["--data-dir", str(tmp_path / "data"), "generate", "a red star", "--model", "demo", "--steps", "1",
                 "--width", "64", "--height", "64", "--out", str(tmp_path / "big.png")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert err.splitlines()[-1] == ("error: the computer ran out of memory (RAM) at 64x64 (try a 4-bit model or a "
                                    "smaller size, or close other programs)")
    assert not (tmp_path / "big.png").exists()


def test_errors_other_than_memory_in_a_job_are_not_called_out_of_memory(tmp_path, monkeypatch):
    """Only the memory running out is said as such: another RuntimeError goes on as it was (a bug's traceback)."""
    from diffusers import AutoencoderKL

    service = GenerationService(ModelLibrary(tmp_path), device=torch.device("cpu"))

    def broken(*args, **kwargs):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(AutoencoderKL, "decode", broken)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        service.generate(_request("demo"))
