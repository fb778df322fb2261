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
    """An overflow anywhere, or a nonzero smoothing factor or group scale that would become 0, keeps the layer's
    type; a tiny low-rank term is only rounded."""
    spec = LayerSpec("svdquant", "int4", "int4", 16, True)
    fits, too_big, tiny = (SVDQLinear(128, 64, spec, dtype=BF) for _ in range(3))
    with torch.no_grad():
        too_big.lora_up[3, 5] = 1e6  # > 65504
        tiny.smooth[7] = 1e-9  # 0 in fp16: x / smooth would be inf
        fits.lora_down[0, 0] = 1e-9  # a low-rank term that small is only rounded (to 0)
    model = torch.nn.ModuleDict({"fits": fits, "too_big": too_big, "tiny": tiny})
    assert cast_quantized_16bit(model, FP) == ["too_big", "tiny"]
    assert fits.compute_dtype == FP and fits.lora_up.dtype == FP and fits.smooth.dtype == FP
    assert too_big.compute_dtype == BF and too_big.lora_up.dtype == BF
    assert tiny.compute_dtype == BF and tiny.smooth.dtype == BF


@pytest.mark.parametrize(("stored", "runtime", "layers"), [(BF, FP, FP), (BF, BF, BF), (BF, torch.float32, BF),
                         (FP, BF, FP), (FP, FP, FP), (FP, torch.float32, FP)])  # fmt: skip
def test_the_rule(stored, runtime, layers):
    assert quantized_layer_dtype(stored, runtime) == layers


def test_an_sm_75_gpu_loads_the_layers_in_its_run_time_dtype(monkeypatch):
    """On an sm_75 GPU the run time is fp16 (no bf16 there), and the loaded layers take it: ``FusedPath.run`` sends
    an input whose dtype is not the layer's to the reference."""
    from gpu.generation.pipeline_loader import runtime_dtype

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    gpu = torch.device("cuda", 0)
    assert runtime_dtype(gpu) == FP
    model, _ = load_quantized_transformer(DEMO_INT4, runtime_dtype=runtime_dtype(gpu))
    assert {m.compute_dtype for m in _svdq_layers(model).values()} == {runtime_dtype(gpu)}
