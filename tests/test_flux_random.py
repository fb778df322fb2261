"""Random-weight FLUX builders (gpu.bench.flux_random): shapes, bytes vs formula, plausible values, forward."""

from __future__ import annotations

import torch
from diffusers import FluxPipeline

from gpu.bench.flux_random import (
    FLUX_DEV_CONFIG,
    FLUX_TINY_CONFIG,
    bf16_flux_params,
    build_bf16_flux,
    build_quantized_flux,
    quantized_flux_bytes,
    shared_input_groups,
)
from gpu.generation.memory import module_bytes
from gpu.modules.svdq_linear import SVDQLinear
from gpu.quant import dequantize


def flux_inputs(config: dict, img_side: int = 8, txt: int = 16, dtype=torch.bfloat16, seed: int = 0) -> dict:
    """Random transformer inputs: img_side^2 image tokens, ``txt`` text tokens, batch 1."""
    g = torch.Generator().manual_seed(seed)
    n_img = img_side * img_side
    return {
        "hidden_states": torch.randn(1, n_img, config["in_channels"], generator=g).to(dtype),
        "encoder_hidden_states": torch.randn(1, txt, config["joint_attention_dim"], generator=g).to(dtype),
        "pooled_projections": torch.randn(1, config["pooled_projection_dim"], generator=g).to(dtype),
        "timestep": torch.tensor([0.5], dtype=dtype),
        "guidance": torch.tensor([3.5], dtype=dtype) if config["guidance_embeds"] else None,
        "img_ids": FluxPipeline._prepare_latent_image_ids(1, img_side, img_side, "cpu", dtype),
        "txt_ids": torch.zeros(txt, 3, dtype=dtype),
    }


def test_full_size_flux_dev_on_meta_matches_known_sizes():
    bf16 = build_bf16_flux(FLUX_DEV_CONFIG, "meta")
    n_params = sum(p.numel() for p in bf16.parameters())
    assert n_params == bf16_flux_params(FLUX_DEV_CONFIG) == 11_901_408_320  # FLUX.1-dev's published size
    assert len(bf16.transformer_blocks) == 19 and len(bf16.single_transformer_blocks) == 38
    assert all(p.dtype == torch.bfloat16 for p in bf16.parameters())

    q = build_quantized_flux(FLUX_DEV_CONFIG, "meta", rank=32)
    expected = quantized_flux_bytes(FLUX_DEV_CONFIG, 32)
    assert module_bytes(q) == expected["total"]
    assert 6.0 < expected["total"] / 2**30 < 6.5  # ~3.6x smaller than BF16's 22.2 GiB
    svdq = {n: m for n, m in q.named_modules() if isinstance(m, SVDQLinear)}
    assert len(svdq) == 19 * 14 + 38 * 6
    to_q = svdq["transformer_blocks.0.attn.to_q"]
    assert to_q.qweight.shape == (3072, 1536) and to_q.qweight.dtype == torch.uint8
    assert to_q.wscales.shape == (3072, 48) and to_q.lora_down.shape == (3072, 32)
    assert to_q.lora_up.shape == (3072, 32) and to_q.smooth.shape == (3072,) and to_q.spec.kind == "W4A4"
    mod = svdq["single_transformer_blocks.0.norm.linear"]
    assert mod.spec.kind == "W4A16" and mod.qweight.shape == (9216, 1536) and not hasattr(mod, "lora_down")
    assert svdq["single_transformer_blocks.37.proj_out"].in_features == 15360


def test_tiny_quantized_bytes_and_values():
    cfg = FLUX_TINY_CONFIG
    q = build_quantized_flux(cfg, "cpu", rank=32, seed=1)
    assert module_bytes(q) == quantized_flux_bytes(cfg, 32)["total"]
    assert all(t.device.type == "cpu" for t in q.state_dict().values())
    for name, m in q.named_modules():
        if not isinstance(m, SVDQLinear):
            continue
        qt = m.quantized_weight()
        assert int(qt.codes.min()) >= -7 and int(qt.codes.max()) <= 7, name  # -8 would be outside the grid
        assert int(qt.codes.min()) == -7 and int(qt.codes.max()) == 7, name
        eff = dequantize(qt)
        if hasattr(m, "smooth"):
            assert 0.7 < float(m.smooth.float().min()) and float(m.smooth.float().max()) < 1.35
            lowrank = m.lora_up.float() @ m.lora_down.float().T  # [N, K], applied to x / smooth like R
            assert 0.005 < float(lowrank.std()) < 0.02, name
            eff = (eff + lowrank) / m.smooth.float()
        assert 0.015 < float(eff.std()) < 0.03, name  # like the BF16 model's N(0, 0.02) weights
    # RMSNorm weights are 1 (as in the BF16 builder)
    assert torch.equal(q.transformer_blocks[0].attn.norm_q.weight, torch.ones(128, dtype=torch.bfloat16))


def test_shared_smoothing_per_fusable_group():
    shared = build_quantized_flux(FLUX_TINY_CONFIG, "cpu", seed=0)
    groups = shared_input_groups(shared)
    assert len(groups) == 2 * 2 + 2
    for group in groups:
        first = shared.get_submodule(group[0]).smooth
        for name in group[1:]:
            other = shared.get_submodule(name).smooth
            assert torch.equal(first, other) and other.data_ptr() != first.data_ptr()  # equal values, own storage
    separate = build_quantized_flux(FLUX_TINY_CONFIG, "cpu", seed=0, shared_smoothing=False)
    a = separate.get_submodule("transformer_blocks.0.attn.to_q").smooth
    b = separate.get_submodule("transformer_blocks.0.attn.to_k").smooth
    assert not torch.equal(a, b)


def test_builders_are_deterministic_and_forward_runs():
    cfg = FLUX_TINY_CONFIG
    a = build_quantized_flux(cfg, "cpu", seed=3)
    b = build_quantized_flux(cfg, "cpu", seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    bf16 = build_bf16_flux(cfg, "cpu", seed=3)
    assert all(p.dtype == torch.bfloat16 for p in bf16.parameters())
    inputs = flux_inputs(cfg)
    with torch.no_grad():
        y_q = a(**inputs, return_dict=False)[0]
        y_b = bf16(**inputs, return_dict=False)[0]
    assert y_q.shape == y_b.shape == (1, 64, 64)
    assert y_q.dtype == torch.bfloat16 and torch.isfinite(y_q).all() and torch.isfinite(y_b).all()
    # Same weight statistics -> outputs of the same magnitude (not the same values: different weights).
    ratio = float(y_q.float().std() / y_b.float().std())
    assert 0.5 < ratio < 2.0, ratio
