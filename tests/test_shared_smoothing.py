"""Shared smoothing (gpu.svdquant.decompose.decompose_group): linears reading one input get one smoothing
vector, which is what lets the fused runtime merge them; each member keeps its own low-rank branch."""

from __future__ import annotations

import torch

from gpu.adapters.flux import FLUX
from gpu.models.flux_fused import merge_refusal, merge_svdq_linears
from gpu.modules.layer_spec import spec_for
from gpu.modules.svdq_linear import SVDQLinear
from gpu.svdquant.calibration import CalibrationCollector
from gpu.svdquant.decompose import DecomposeConfig, decompose_group, decompose_linear
from gpu.svdquant.smoothing import smoothing_factors

K = 256
CFG = DecomposeConfig(refine_iters=1, alpha_grid=(0.3, 0.5, 0.7))


def _members(seed: int = 0) -> tuple[list[torch.Tensor], list[torch.Tensor], object]:
    """Q/K/V-like weights [N_i, K] (different row counts and scales) and the calibration of an input with a few
    outlier channels, as after FLUX's LayerNorm + modulation."""
    g = torch.Generator().manual_seed(seed)
    weights = [torch.randn(n, K, generator=g) * s for n, s in ((256, 0.02), (256, 0.05), (512, 0.03))]
    biases = [torch.randn(w.shape[0], generator=g) * 0.01 for w in weights]
    x = torch.randn(2048, K, generator=g)
    x[:, torch.randperm(K, generator=g)[:6]] *= 30.0
    collector = CalibrationCollector(K, max_tokens=512, seed=seed)
    for chunk in x.split(256):
        collector.add(chunk)
    return weights, biases, collector.result()


def _layer(spec, tensors: dict[str, torch.Tensor]) -> SVDQLinear:
    n = tensors["wscales"].shape[0]
    m = SVDQLinear(K, n, spec, bias="bias" in tensors, dtype=torch.bfloat16)
    m.load_state_dict(tensors)
    return m


def test_group_members_share_one_smoothing_vector_and_merge_exactly():
    weights, biases, calib = _members()
    spec = spec_for("svdquant", "int4", 32, "w4a4")
    layers = decompose_group(weights, biases, spec, calib, CFG)
    assert len(layers) == 3 and len({layer.alpha for layer in layers}) == 1
    smooth = layers[0].tensors["smooth"]
    assert all(torch.equal(layer.tensors["smooth"], smooth) for layer in layers[1:])
    modules = [_layer(spec, layer.tensors) for layer in layers]
    assert merge_refusal(modules) is None
    merged = merge_svdq_linears(modules)
    x = calib.x_sample[:64].to(torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(merged(x), torch.cat([m(x) for m in modules], dim=-1))
    # Each member's recorded error is its own output error under the shared smoothing.
    for w, layer, m in zip(weights, layers, modules, strict=True):
        xs = calib.x_sample[:512]
        y_ref = xs @ w.T
        with torch.no_grad():
            y = m.forward_reference(xs.to(torch.bfloat16)).float() - m.bias.float()
        rel = float(((y - y_ref) ** 2).sum() / (y_ref**2).sum())
        assert abs(rel - layer.error) <= 0.05 * layer.error


def test_shared_smoothing_costs_little_accuracy():
    """Per member, the shared vector's error stays near the error of smoothing that member alone (the group's
    vector is a compromise between the members' own optima)."""
    weights, biases, calib = _members(seed=1)
    spec = spec_for("svdquant", "int4", 32, "w4a4")
    shared = decompose_group(weights, biases, spec, calib, CFG)
    alone = [decompose_linear(w, b, spec, calib, CFG) for w, b in zip(weights, biases, strict=True)]
    for s, a in zip(shared, alone, strict=True):
        assert s.error <= 1.25 * a.error, (s.error, a.error)
    assert sum(s.error for s in shared) / 3 <= 1.1 * sum(a.error for a in alone) / 3


def test_smoothing_vector_follows_the_group_rule():
    """lambda = max|X|^alpha / max|W|^(1 - alpha) with the weight maxima over the whole group (over the layer
    alone for a group of one), at the chosen alpha, stored in 16 bits."""
    weights, biases, calib = _members(seed=2)
    spec = spec_for("svdquant", "int4", 32, "w4a4")
    group = decompose_group(weights, biases, spec, calib, CFG)
    w_max = torch.stack([w.abs().amax(dim=0) for w in weights]).amax(dim=0)
    expected = smoothing_factors(calib.x_absmax, w_max, group[0].alpha).to(torch.bfloat16)
    assert torch.equal(group[0].tensors["smooth"], expected)
    (alone,) = decompose_group(weights[1:2], biases[1:2], spec, calib, CFG)
    own = smoothing_factors(calib.x_absmax, weights[1].abs().amax(dim=0), alone.alpha).to(torch.bfloat16)
    assert torch.equal(alone.tensors["smooth"], own) and not torch.equal(own, expected)


def test_methods_without_smoothing_decompose_members_alone():
    weights, biases, calib = _members(seed=3)
    spec = spec_for("svd", "int4", 32, "w4a4")
    layers = decompose_group(weights, biases, spec, calib, CFG)
    for w, b, layer in zip(weights, biases, layers, strict=True):
        single = decompose_linear(w, b, spec, calib, CFG)
        assert "smooth" not in layer.tensors
        assert all(torch.equal(layer.tensors[k], single.tensors[k]) for k in single.tensors)


def test_flux_adapter_groups_whole_models_and_single_blocks():
    names = [
        "transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_k", "transformer_blocks.0.attn.to_v",
        "transformer_blocks.0.attn.add_q_proj", "transformer_blocks.0.attn.add_k_proj",  # add_v_proj missing
        "single_transformer_blocks.3.proj_mlp", "single_transformer_blocks.3.attn.to_q",
        "single_transformer_blocks.3.attn.to_k", "single_transformer_blocks.3.attn.to_v",
        "single_transformer_blocks.3.proj_out",
    ]  # fmt: skip
    assert FLUX.shared_input_groups(names) == [
        ["transformer_blocks.0.attn.to_q", "transformer_blocks.0.attn.to_k", "transformer_blocks.0.attn.to_v"],
        ["single_transformer_blocks.3.attn.to_q", "single_transformer_blocks.3.attn.to_k",
         "single_transformer_blocks.3.attn.to_v", "single_transformer_blocks.3.proj_mlp"],
    ]  # fmt: skip


def test_nan_weights_or_activations_are_refused_naming_the_layers():
    """A NaN in a member's weight (a damaged file) or in the activations reaching a group ended the alpha search in
    a bare ValueError/LinAlgError naming no layer; quantize_layers now refuses with a user error naming them."""
    import pytest

    from gpu.errors import ModelLoadError
    from gpu.quantizer.config import QuantizeConfig
    from gpu.quantizer.shared import quantize_layers

    weights, biases, calib = _members()
    names = ["blocks.0.attn.to_q", "blocks.0.attn.to_k", "blocks.0.attn.to_v"]

    def targets() -> dict[str, tuple[torch.nn.Linear, str]]:
        out = {}
        for name, w, b in zip(names, weights, biases, strict=True):
            linear = torch.nn.Linear(K, w.shape[0])
            linear.weight.data, linear.bias.data = w.clone(), b.clone()
            out[name] = (linear, "w4a4")
        return out

    config = QuantizeConfig(alpha_points=3, shared_smoothing=False)
    damaged = targets()
    damaged[names[1]][0].weight.data[3, 7] = float("nan")
    with pytest.raises(ModelLoadError, match=r"The weights of blocks\.0\.attn\.to_k hold NaN"):
        list(quantize_layers(damaged, lambda _n: calib, config, CFG, FLUX))
    damaged = targets()  # a NaN bias went into the file without a word
    damaged[names[2]][0].bias.data[0] = float("nan")
    with pytest.raises(ModelLoadError, match=r"The weights of blocks\.0\.attn\.to_v hold NaN"):
        list(quantize_layers(damaged, lambda _n: calib, config, CFG, FLUX))
    calib.x_absmax[5] = float("inf")
    with pytest.raises(ModelLoadError, match=r"NaN or infinite values .* before blocks\.0\.attn\.to_q"):
        list(quantize_layers(targets(), lambda _n: calib, config, CFG, FLUX))
