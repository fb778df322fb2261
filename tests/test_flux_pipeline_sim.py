"""The 16 GB laptop simulation (``gpu.bench.flux_pipeline_16gb``) at tiny sizes on the CPU: the whole flow
(random encoders/VAE, INT4 transformer, policy, staged encode -> denoise -> decode) runs and reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from gpu.bench.flux_pipeline_16gb import main

REPO = Path(__file__).resolve().parents[1]


def _report(out: Path) -> dict:
    report = json.loads((out / "flux_pipeline_16gb.json").read_text())
    assert (out / "flux_pipeline_16gb.md").read_text().startswith("# FLUX.1-dev pipeline, 16 GB laptop simulation")
    return report


def test_tiny_simulation_on_cpu_reports_every_field(tmp_path):
    # As users start it (python -m); the run itself in this process, as the tests below: a second process cost
    # torch's and diffusers' start-up again
    entry = subprocess.run([sys.executable, "-m", "gpu.bench.flux_pipeline_16gb", "--help"], cwd=REPO,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert entry.returncode == 0 and entry.stdout.startswith("usage: python -m gpu.bench.flux_pipeline_16gb "), entry
    out = tmp_path / "sim"
    assert main(["--tiny", "--device", "cpu", "--out", str(out)]) == 0
    r = _report(out)
    assert r["completed"] is True and r["image_finite"] is True
    assert r["policy_name"] == r["policy"]["name"] == "cpu" and r["policy"]["text_encoders"] == "cpu"
    assert set(r["seconds"]) == {"encode", "denoise", "decode"}
    assert all(v > 0 for v in r["seconds"].values())
    assert {"warmup_encode", "warmup_denoise", "warmup_decode"} <= set(r["stages"])
    assert 0 < r["transformer_weight_gib"] < 0.05 and r["sizes_gib"]["t5"] > 0
    assert r["peak_allocated_gib"] is None and r["peak_reserved_gib"] is None  # no GPU here
    assert r["execution_path"].startswith("PyTorch reference on CPU")
    image = Image.open(out / "image.png")
    assert image.size == (64, 64)
    assert "completed: **yes**" in (out / "flux_pipeline_16gb.md").read_text()


def test_forced_block_by_block_encoders_make_the_same_image(tmp_path):
    """The visiting path (encoders copied to the device block by block) gives the image of the plain one."""
    assert main(["--tiny", "--out", str(tmp_path / "plain"), "--no-warmup", "--steps", "2"]) == 0
    assert main(["--tiny", "--out", str(tmp_path / "blocks"), "--no-warmup", "--steps", "2",
                 "--text-encoders", "by-block"]) == 0  # fmt: skip
    r = _report(tmp_path / "blocks")
    assert r["policy_name"] == "forced-by-block"
    assert r["policy"]["text_encoders"] == "gpu-while-encoding" and r["policy"]["stream_encoder_blocks"]
    assert "warmup_encode" not in r["stages"]
    plain = Image.open(tmp_path / "plain" / "image.png").tobytes()
    assert Image.open(tmp_path / "blocks" / "image.png").tobytes() == plain


def test_a_lora_on_every_layer_is_applied_and_reported(tmp_path):
    """``--lora-rank``: the transformer carries the LoRA (bigger, another image) and the report says so."""
    assert main(["--tiny", "--out", str(tmp_path / "plain"), "--no-warmup", "--steps", "2"]) == 0
    assert main(["--tiny", "--out", str(tmp_path / "lora"), "--no-warmup", "--steps", "2", "--lora-rank", "16"]) == 0
    plain, lora = _report(tmp_path / "plain"), _report(tmp_path / "lora")
    assert plain["lora_rank"] == 0 and lora["lora_rank"] == 16 and lora["completed"]
    assert lora["transformer_weight_gib"] > plain["transformer_weight_gib"]
    assert "rank-16 LoRA on every W4A4 linear" in (tmp_path / "lora" / "flux_pipeline_16gb.md").read_text()
    image = Image.open(tmp_path / "lora" / "image.png").tobytes()
    assert image != Image.open(tmp_path / "plain" / "image.png").tobytes()


def test_out_of_memory_is_reported_with_its_stage(tmp_path, monkeypatch):
    import torch

    import gpu.generation.memory as memory

    def no_room(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")

    monkeypatch.setattr(memory, "decode_latents", no_room)
    out = tmp_path / "oom"
    assert main(["--tiny", "--out", str(out), "--steps", "1"]) == 1
    r = _report(out)
    assert r["completed"] is False and r["failed_stage"] == "warmup_decode"
    assert "Tried to allocate" in r["error"] and set(r["stages"]) == {"warmup_encode", "warmup_denoise",
                                                                      "warmup_decode"}  # fmt: skip
    assert "completed: **no** (failed in warmup_decode" in (out / "flux_pipeline_16gb.md").read_text()
    assert not (out / "image.png").exists()
