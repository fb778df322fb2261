"""``python main.py bench flux --tiny``: the whole benchmark's plumbing on the CPU (fields, not speed)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from gpu.bench.flux import VARIANTS
from gpu.bench.fp8_rowwise import FP8_MAX, Fp8RowwiseLinear, quantize_rows_fp8, to_fp8_rowwise


@pytest.fixture(scope="module")
def tiny_result(tmp_path_factory):
    from main import main

    out = tmp_path_factory.mktemp("bench-flux")
    assert main(["bench", "flux", "--tiny", "--steps", "2", "--out", str(out)]) == 0
    return json.loads((out / "bench_flux.json").read_text()), (out / "bench_flux.md").read_text()


def test_json_has_every_variant_and_field(tiny_result):
    result, _ = tiny_result
    assert set(result["variants"]) == set(VARIANTS)
    for name, row in result["variants"].items():
        assert row["steps"] == 2 and row["median_ms"] > 0 and row["min_ms"] <= row["median_ms"] <= row["max_ms"], name
        assert row["weight_gib"] > 0 and row["first_call_s"] >= 0
    meta = result["meta"]
    assert meta["image_tokens"] == 64 and meta["text_tokens"] == 16 and meta["batch"] == 1
    assert meta["compile"]["backend"] == "eager" and meta["compile"]["scope"] == "regional"
    assert "PyTorch reference on CPU" in meta["linear_path"]
    for key in ("ours_vs_bf16_eager", "ours_vs_bf16_compiled", "compiled_vs_eager", "fusion_and_graph_vs_unfused"):
        assert math.isfinite(result["speedup"][key]) and result["speedup"][key] > 0
    mem = result["memory"]
    assert mem["bf16_weight_gib"] > mem["svdq_weight_gib"] > 0 and mem["bf16_left_allocated_after_free_gib"] == 0
    assert mem["svdq_fused_weight_gib"] > mem["svdq_weight_gib"]  # block-diagonal up projections hold zeros
    assert result["fusion"]["merged"] == 6 and result["fusion"]["kept_separate"] == 0


def test_correctness_fields(tiny_result):
    result, markdown = tiny_result
    corr = result["correctness"]
    outs = corr["outputs"]
    assert all(o["finite"] for o in outs.values())
    # on the CPU the unfused model *is* the reference path; fused ops differ by bf16 rounding only
    assert outs["svdq_unfused_eager"]["rel_error_vs_reference"] == 0.0
    assert 0 < corr["ours_rel_error_vs_reference"] <= 1e-2
    assert outs["ours"]["max_abs_diff_vs_fused_eager"] == 0.0  # no graph on the CPU: the same eager forward
    assert outs["bf16_compiled"]["rel_error_vs_bf16_eager"] < 1e-2
    # teacher-forced per-block checks: one entry per block (2 double + 2 single)
    assert corr["per_block_unfused_vs_reference"]["per_block"] == [0.0] * 4
    fused = corr["per_block_fused_vs_reference"]
    assert len(fused["per_block"]) == 4 and 0 < fused["median"] <= fused["max"] <= 1e-2
    assert corr["reference_sensitivity_1ulp_input"] > 0
    assert "| SVDQ INT4 r32, fused + CUDA graph |" in markdown
    assert "Correctness, end to end: ours vs reference" in markdown and "Correctness, per block" in markdown


def test_the_lora_variant_runs_on_the_fused_model(tiny_result):
    result, markdown = tiny_result
    row, out = result["variants"]["ours_lora"], result["correctness"]["outputs"]["ours_lora"]
    assert row["lora_rank"] == 16 and row["lora_switch_s"] > 0 and out["finite"]
    assert out["lora_change_vs_ours"] > 1e-2  # the LoRA is on
    # rank 32 + 16 per member: every group still merges (each tile's window is one member's 48 columns)
    lf = result["fusion_with_lora"]
    assert lf["merged"] == 6 and lf["kept_separate"] == 0
    # the LoRA step's cost is reported against the same run's step without it (its median over ours')
    steps = result["variants"]
    assert result["speedup"]["lora_step_vs_ours"] == pytest.approx(
        steps["ours_lora"]["median_ms"] / steps["ours"]["median_ms"]
    )
    assert "With a rank-16 LoRA on every W4A4 linear" in markdown


def test_a_failing_compile_is_reported_not_fatal(tmp_path, monkeypatch):
    from diffusers import FluxTransformer2DModel

    from gpu.bench.flux import run

    def broken(self, *args, **kwargs):
        raise RuntimeError("inductor exploded")

    monkeypatch.setattr(FluxTransformer2DModel, "compile_repeated_blocks", broken)
    result = run(tmp_path, tiny=True, steps=1)
    compiled = result["variants"]["bf16_compiled"]
    assert "median_ms" not in compiled and "inductor exploded" in compiled["error"]
    assert len(compiled["compile_errors"]) == 2  # fullgraph, then without
    assert result["speedup"]["ours_vs_bf16_compiled"] is None and result["speedup"]["ours_vs_bf16_eager"] > 0
    assert "failed: fullgraph=True: RuntimeError: inductor exploded" in (tmp_path / "bench_flux.md").read_text()


def test_the_fp8_baseline_runs_every_block_linear_in_8_bits(tiny_result):
    result, markdown = tiny_result
    row, out = result["variants"]["fp8_rowwise_compiled"], result["correctness"]["outputs"]["fp8_rowwise_compiled"]
    # tiny config: 2 double blocks x 12 attention/MLP linears + 2 single blocks x 5; the adaLN linears stay BF16
    assert row["fp8_linears"] == 2 * 12 + 2 * 5 and row["fullgraph"] is True
    mem = result["memory"]
    assert mem["svdq_weight_gib"] < row["weight_gib"] < mem["bf16_weight_gib"]
    assert out["finite"] and 0 < out["rel_error_vs_bf16_eager"] < 5e-2
    assert result["speedup"]["fp8_compiled_vs_bf16_eager"] > 0 and result["speedup"]["ours_vs_fp8_compiled"] > 0
    assert "| FP8 rowwise block linears" in markdown and "- FP8 rowwise baseline (34 block linears" in markdown


def test_fp8_rowwise_linear_matches_its_dequantized_operands():
    g = torch.Generator().manual_seed(0)
    lin = nn.Linear(64, 32, dtype=torch.bfloat16)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(32, 64, generator=g) * 0.05)
        lin.bias.copy_(torch.randn(32, generator=g))
    x = (torch.randn(2, 5, 64, generator=g) * torch.logspace(-2, 1, 64)).to(torch.bfloat16)
    x[0, 1] = 0  # an all-zero token
    fp8 = Fp8RowwiseLinear(lin)
    y = fp8(x)
    assert y.shape == (2, 5, 32) and y.dtype == torch.bfloat16
    q, s = quantize_rows_fp8(x.reshape(-1, 64))
    assert torch.equal(q.float().abs().amax(1)[s[:, 0] > 1e-12], torch.full((9,), FP8_MAX))  # amax -> 448
    assert not q[1].float().any()  # the zero token quantizes to zeros
    want = (q.float() * s) @ (fp8.weight_fp8.float() * fp8.weight_scale.t()).T + lin.bias.detach().float()
    assert torch.allclose(y.reshape(-1, 32).float(), want, rtol=1e-2, atol=1e-3)
    exact = torch.nn.functional.linear(x.float(), lin.weight.detach().float(), lin.bias.detach().float())
    assert 1e-4 < float((y.float() - exact).norm() / exact.norm()) < 6e-2  # FP8's error, not a wiring error


def test_to_fp8_rowwise_keeps_the_adaln_linears_and_refuses_odd_sizes():
    block = nn.Module()
    block.norm1 = nn.Module()
    block.norm1.linear = nn.Linear(32, 96, dtype=torch.bfloat16)
    block.attn = nn.Module()
    block.attn.to_q = nn.Linear(32, 32, dtype=torch.bfloat16)
    bf16 = torch.bfloat16
    block.ff = nn.Sequential(nn.Linear(32, 64, dtype=bf16), nn.GELU(), nn.Linear(64, 32, dtype=bf16))
    assert to_fp8_rowwise(block) == 3
    assert isinstance(block.norm1.linear, nn.Linear)
    assert isinstance(block.attn.to_q, Fp8RowwiseLinear) and isinstance(block.ff[2], Fp8RowwiseLinear)
    odd = nn.Sequential(nn.Linear(32, 40))
    with pytest.raises(ValueError, match="divisible by 16"):
        to_fp8_rowwise(odd)
