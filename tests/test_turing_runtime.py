"""A bf16 SVDQ file on a GPU without bf16 (Turing, fp16 run time): its quantized layers are loaded in fp16, so the
fused kernels (which take one 16-bit type for the activations and the layer) serve them. They stayed bf16, every
W4A4 layer then ran the PyTorch reference ("input dtype torch.float16 differs from the layer's torch.bfloat16")
while "Runs on" promised the kernels. Runs on the CPU: the loading rule and the dispatch's answer are what is
tested; tests/gpu/test_turing_forms.py runs the Turing kernels themselves."""

from __future__ import annotations

import pytest
import torch

from gpu.checkpoint.skeleton import cast_quantized_16bit, load_quantized_transformer, quantized_layer_dtype
from gpu.modules.layer_spec import LayerSpec
from gpu.modules.svdq_linear import SVDQLinear
from gpu.paths import resources_dir

DEMO_INT4 = resources_dir() / "models" / "demo-int4.safetensors"
BF, FP = torch.bfloat16, torch.float16
FP16_TINY = 2.0**-14  # below it fp16 is subnormal and keeps fewer bits than bf16


def _svdq_layers(model: torch.nn.Module) -> dict[str, SVDQLinear]:
    return {name: m for name, m in model.named_modules() if isinstance(m, SVDQLinear)}


def test_quantized_layers_of_a_bf16_file_load_in_fp16_on_an_fp16_run_time():
    stored, _ = load_quantized_transformer(DEMO_INT4)
    turing, _ = load_quantized_transformer(DEMO_INT4, runtime_dtype=FP)
    before, after = _svdq_layers(stored), _svdq_layers(turing)
    assert before and all(m.compute_dtype == BF for m in before.values())
    outside = total = 0
    for name, layer in after.items():
        assert layer.compute_dtype == FP, name
        for buf, old in before[name].named_buffers(recurse=False):
            if old is None or old.dtype != BF:
                assert torch.equal(getattr(layer, buf), old), f"{name}.{buf} ({old.dtype}) changed"
                continue
            new = getattr(layer, buf)
            assert new.dtype == FP, f"{name}.{buf}"
            exact = (old.float().abs() >= FP16_TINY) | (old == 0)
            assert torch.equal(new.float()[exact], old.float()[exact]), f"{name}.{buf}: a normal-range value moved"
            outside += int((~exact).sum())
            total += old.numel()
    assert outside < total * 1e-3  # the demo's scales and factors are nearly all in fp16's normal range
    # the run time the CPU (fp32) and bf16 GPUs have: the stored type, as before
    for runtime in (torch.float32, BF):
        model, _ = load_quantized_transformer(DEMO_INT4, runtime_dtype=runtime)
        assert all(m.compute_dtype == BF for m in _svdq_layers(model).values())


def test_a_layer_with_a_value_fp16_cannot_hold_keeps_its_type():
    spec = LayerSpec("svdquant", "int4", "int4", 16, True)
    fits, too_big = SVDQLinear(128, 64, spec, dtype=BF), SVDQLinear(128, 64, spec, dtype=BF)
    with torch.no_grad():
        too_big.lora_up[3, 5] = 1e6  # > 65504
    model = torch.nn.ModuleDict({"fits": fits, "too_big": too_big})
    assert cast_quantized_16bit(model, FP) == ["too_big"]
    assert fits.compute_dtype == FP and fits.lora_up.dtype == FP and fits.smooth.dtype == FP
    assert too_big.compute_dtype == BF and too_big.lora_up.dtype == BF


@pytest.mark.parametrize(("stored", "runtime", "layers"), [(BF, FP, FP), (BF, BF, BF), (BF, torch.float32, BF),
                         (FP, BF, FP), (FP, FP, FP), (FP, torch.float32, FP)])  # fmt: skip
def test_the_rule(stored, runtime, layers):
    assert quantized_layer_dtype(stored, runtime) == layers


def test_turing_dispatch_serves_the_loaded_layers(monkeypatch):
    """What the dispatcher answers for a layer as loaded on an sm_75 GPU (pycuda and kernel binaries assumed there):
    the fused INT4 path, which ``run`` only takes when the input's dtype (the run time's, fp16) is the layer's."""
    from gpu.generation.pipeline_loader import runtime_dtype
    from gpu.kernels import backend, loader

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(backend, "pycuda_refusal", lambda: None)
    monkeypatch.setattr(loader, "binary_status", lambda arch: None)
    gpu = torch.device("cuda", 0)
    model, _ = load_quantized_transformer(DEMO_INT4, runtime_dtype=runtime_dtype(gpu))
    w4a4 = [m for m in _svdq_layers(model).values() if m.spec.act_format == "int4"]
    assert w4a4 and runtime_dtype(gpu) == FP
    for layer in w4a4:
        assert backend.INT4.refuses(layer, gpu) is None and layer.compute_dtype == runtime_dtype(gpu)
