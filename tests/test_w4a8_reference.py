"""CPU: the W4A8 reference numerics (an INT4 W4A4 layer executed with INT8 g64 activations)."""

from __future__ import annotations

import torch

from gpu.modules.layer_spec import LayerSpec
from gpu.modules.reference import reference_linear
from gpu.modules.svdq_linear import SVDQLinear
from gpu.quant.packing import pack_int4


def _layer(k=256, n=96, rank=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    layer = SVDQLinear(k, n, LayerSpec("svdquant", "int4", "int4", rank, True), dtype=torch.bfloat16)
    with torch.no_grad():
        layer.qweight.copy_(pack_int4(torch.randint(-7, 8, (n, k), generator=g, dtype=torch.int8)))
        layer.wscales.copy_((torch.rand(n, k // 64, generator=g) * 0.02 + 0.002).to(torch.bfloat16))
        layer.smooth.copy_((torch.rand(k, generator=g) + 0.5).to(torch.bfloat16))
        layer.lora_down.copy_((torch.randn(k, rank, generator=g) / k**0.5).to(torch.bfloat16))
        layer.lora_up.copy_((torch.randn(n, rank, generator=g) * 0.5).to(torch.bfloat16))
        layer.bias.copy_((torch.randn(n, generator=g) * 0.1).to(torch.bfloat16))
    return layer, g


def _float64_w4a8(layer, x):
    """Independent float64 formula: per-64-group INT8 codes of x/lambda, int4 weight codes, exact dots."""
    xs = (x.float() * torch.reciprocal(layer.smooth.float())).double()
    m, k = xs.shape
    gx = xs.view(m, k // 64, 64)
    s = (gx.abs().amax(-1).float() / 127.0).to(torch.bfloat16).double()
    q = torch.where(s[..., None] > 0, torch.round(gx / s.clamp_min(1e-30)[..., None]).clamp(-127, 127), 0.0)
    w = layer.quantized_weight()
    wc = w.codes.double().view(-1, k // 64, 64)
    dots = torch.einsum("mgk,ngk->mng", q, wc)
    y = (dots * s[:, None, :] * w.scales.double()[None]).sum(-1)
    y = y + (xs @ layer.lora_down.double()) @ layer.lora_up.double().T + layer.bias.double()
    return y


def test_w4a8_reference_matches_float64_formula():
    layer, g = _layer()
    x = torch.randn(37, 256, generator=g).to(torch.bfloat16)
    y = layer.forward_reference(x, act_format="int8_g64").double()
    ref = _float64_w4a8(layer, x)
    assert float((y - ref).norm() / ref.norm()) < 4e-3  # bf16 output rounding


def test_w4a8_closer_to_unquantized_activations_than_w4a4():
    layer, g = _layer(seed=1)
    x = torch.randn(64, 256, generator=g)
    x[:, :4] *= 20
    x = x.to(torch.bfloat16)
    y16 = reference_linear(  # W4A16: activations unquantized
        x, layer.quantized_weight(), None, layer.smooth, layer.lora_down, layer.lora_up, layer.bias, torch.bfloat16
    ).double()
    e8 = float((layer.forward_reference(x, act_format="int8_g64").double() - y16).norm())
    e4 = float((layer.forward_reference(x).double() - y16).norm())
    assert e8 < e4 / 5, (e8, e4)
