"""SVDQLinear's reference forward against an independent float64 derivation, and method quality."""

from __future__ import annotations

import pytest
import torch

from gpu.modules import SVDQLinear
from gpu.modules.layer_spec import spec_for
from gpu.quant import dequantize, quantize
from gpu.svdquant.calibration import CalibrationCollector
from gpu.svdquant.decompose import decompose_linear


def _outlier_layer(k=512, n=384, seed=0):
    """A layer whose activations have a few channels 30-50x larger than the rest (like DiT activations)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g) * 0.02
    x = torch.randn(3072, k, generator=g)
    hot = torch.randperm(k, generator=g)[:8]
    x[:, hot] *= torch.linspace(30, 50, 8)
    col = CalibrationCollector(k, 1024, seed=seed)
    for chunk in x[:2048].split(256):
        col.add(chunk)
    return w, col.result(), x[2048:]


def _build(w, calib, method, precision="int4", rank=32, bias=None):
    spec = spec_for(method, precision, rank, "w4a4")
    layer = decompose_linear(w, bias, spec, calib)
    module = SVDQLinear(w.shape[1], w.shape[0], spec, bias=bias is not None, dtype=torch.bfloat16)
    module.load_state_dict(layer.tensors, strict=True)
    return module


@pytest.mark.parametrize("precision", ["int4", "nvfp4", "fp4", "int8"])
def test_reference_forward_equals_float64_rederivation(precision):
    w, calib, x = _outlier_layer(k=256, n=128)
    bias = torch.randn(128) * 0.1
    m = _build(w, calib, "svdquant", precision, bias=bias)
    x = x[:37].to(torch.bfloat16)
    y = m.forward_reference(x).double()

    # Independent derivation: the contract's fp32 smoothing and activation codes, then dequantize both
    # operands fully and do one float64 matmul (no grouping, no fp32 accumulation).
    xs32 = x.float() * torch.reciprocal(m.smooth.float())
    qx = quantize(xs32, precision, torch.bfloat16, getattr(m, "ascale_global", None))
    xs = xs32.double()
    deq_x = dequantize(qx).double()
    deq_w = dequantize(m.quantized_weight()).double()
    expect = deq_x @ deq_w.T + xs @ m.lora_down.double() @ m.lora_up.double().T + m.bias.double()
    # The output is rounded to bf16 once at the end; everything before is fp32 vs fp64.
    assert torch.allclose(y, expect.to(torch.bfloat16).double(), rtol=1e-2, atol=1e-3)
    assert ((y - expect).norm() / expect.norm()) < 4e-3
    y32 = m.forward_reference(x.float()).double()
    assert ((y32 - expect).norm() / expect.norm()) < 1e-5


def test_svdquant_beats_baselines_on_outlier_activations():
    w, calib, x = _outlier_layer()
    y_ref = x @ w.T
    err = {}
    for method in ("naive", "smoothquant", "svd", "lorc", "svdquant"):
        y = _build(w, calib, method).forward_reference(x)
        err[method] = float(((y - y_ref) ** 2).sum() / (y_ref**2).sum())
    assert err["svdquant"] < err["smoothquant"] < err["naive"]
    assert err["svdquant"] < err["svd"] < err["naive"]
    assert err["svdquant"] < err["lorc"]
    assert err["svdquant"] * 5 < err["naive"]


def test_w4a16_and_nf4_keep_activations_16bit():
    w, calib, x = _outlier_layer(k=256, n=128)
    for method, role in (("svdquant", "w4a16"), ("nf4", "w4a4")):
        spec = spec_for(method, "int4", 32, role)
        assert spec.act_format is None and spec.kind == "W4A16"
        layer = decompose_linear(w, None, spec, None)
        m = SVDQLinear(256, 128, spec, bias=False)
        m.load_state_dict(layer.tensors)
        y = m.forward_reference(x[:64])
        rel = (y - x[:64] @ w.T).norm() / (x[:64] @ w.T).norm()
        assert rel < 0.15


def test_forward_reports_the_path_it_took():
    w, calib, x = _outlier_layer(k=256, n=128)
    m = _build(w, calib, "svdquant")
    out = m(x[:4].to(torch.bfloat16))
    assert out.dtype == torch.bfloat16 and out.shape == (4, 128)
    assert m.last_path.startswith("PyTorch reference on CPU")


def test_gelu_from_applies_tanh_gelu_to_the_trailing_columns_only():
    """``forward(x, gelu_from=g)``: the epilogue the fused FLUX blocks use (fc1, the MLP part of the merged
    single-block projection); on the reference path it must equal diffusers' GELU of those columns."""
    w, calib, x = _outlier_layer(k=256, n=128)
    m = _build(w, calib, "svdquant")
    xb = x[:5].to(torch.bfloat16)
    plain = m(xb)
    for g in (0, 37, 128):
        y = m(xb, gelu_from=g)
        assert torch.equal(y[:, :g], plain[:, :g])
        assert torch.equal(y[:, g:], torch.nn.functional.gelu(plain[:, g:], approximate="tanh"))
    assert not torch.equal(m(xb, gelu_from=0), plain)
    for bad in (-1, 129):
        with pytest.raises(ValueError, match="gelu_from"):
            m(xb, gelu_from=bad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["int4", "nvfp4"])
def test_decomposes_on_the_gpu_with_calibration_kept_on_the_cpu(precision):
    """The quantizer hands the weights over on the GPU and the calibration statistics on the CPU."""
    w, calib, x = _outlier_layer(k=256, n=128)
    spec = spec_for("svdquant", precision, 32, "w4a4")
    on_gpu = decompose_linear(w.cuda(), None, spec, calib)
    on_cpu = decompose_linear(w, None, spec, calib)
    assert on_gpu.tensors.keys() == on_cpu.tensors.keys()
    errors = []
    for layer in (on_gpu, on_cpu):
        module = SVDQLinear(w.shape[1], w.shape[0], spec, bias=False, dtype=torch.bfloat16)
        module.load_state_dict({k: t.cpu() for k, t in layer.tensors.items()}, strict=True)
        y_ref = x @ w.T
        y = module(x.bfloat16()).float()
        errors.append(float(((y - y_ref) ** 2).sum() / (y_ref**2).sum()))
    assert errors[0] < 1.2 * errors[1] + 1e-4, errors
