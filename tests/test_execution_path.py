"""The engine gives the execution path in parts: the path alone (what the Models panel shows) and the whole text,
with why no fused kernel runs it and how it runs (the PNG metadata, the command line, the panel's tooltip)."""

from __future__ import annotations

import torch

from gpu.generation.service import GenerationService


def test_the_summary_is_the_path_and_the_reasons_stay_in_the_whole_text():
    service = GenerationService(device=torch.device("cpu"))
    info = service.describe("demo-int4")  # a prediction: nothing loaded
    assert info.execution_summary == "PyTorch reference on CPU"
    whole = info.execution_path
    assert whole.startswith("PyTorch reference on CPU (") and whole.endswith(")"), whole
    assert "device is CPU, not a CUDA GPU" in whole  # the fused backends' refusals, in the whole text only
    plain = service.describe("demo")  # no SVDQ layers: nothing to explain
    assert plain.execution_summary == plain.execution_path == "PyTorch float32 on CPU"


def test_the_whole_text_joins_the_parts_as_the_metadata_has_always_had_them():
    """A fused path on a GPU with two notes, and a refused one: the text images and the command line showed."""
    from gpu.runtime.dispatch import ExecutionPath

    fused = ExecutionPath("fused INT4 W4A4 kernels (pycuda) on NVIDIA H100 (sm_90)")
    fused = fused.with_note("3 of 10 W4A4 layers with a wide LoRA").with_note("fused FLUX blocks")
    assert str(fused) == ("fused INT4 W4A4 kernels (pycuda) on NVIDIA H100 (sm_90); 3 of 10 W4A4 layers with a "
                          "wide LoRA; fused FLUX blocks")  # fmt: skip
    assert fused.summary == "fused INT4 W4A4 kernels (pycuda) on NVIDIA H100 (sm_90)"
    refused = ExecutionPath("PyTorch reference on CPU", "a: device is CPU; b: device is CPU")
    assert str(refused.with_note("fused FLUX blocks")) == (
        "PyTorch reference on CPU (a: device is CPU; b: device is CPU); fused FLUX blocks"
    )
