"""An SVDQ checkpoint read straight onto the GPU (no whole copy in host memory) equals the CPU load."""

from __future__ import annotations

import pytest
import torch

from gpu.checkpoint.format import load_checkpoint
from gpu.checkpoint.skeleton import load_quantized_transformer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


def test_the_transformer_loads_onto_the_gpu_bit_for_bit(tiny_flux_int4):
    _, on_cpu = load_checkpoint(tiny_flux_int4)
    _, on_gpu = load_checkpoint(tiny_flux_int4, device="cuda")
    assert on_gpu.keys() == on_cpu.keys()
    for key, t in on_cpu.items():
        g = on_gpu[key]
        assert g.device.type == "cuda" and g.dtype == t.dtype and g.shape == t.shape, key
        assert torch.equal(g.cpu().reshape(-1).view(torch.uint8), t.reshape(-1).view(torch.uint8)), key
    model, _ = load_quantized_transformer(tiny_flux_int4, runtime_dtype=torch.bfloat16, device="cuda")
    assert {p.device.type for p in model.state_dict().values()} == {"cuda"}
