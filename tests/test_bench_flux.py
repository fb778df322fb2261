"""``python main.py bench flux --tiny``: the whole benchmark's plumbing on the CPU (fields, not speed)."""

from __future__ import annotations

import json
import math

import pytest

from gpu.bench.flux import VARIANTS


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
