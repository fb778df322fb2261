"""The wizard's output names and unfinished runs (``app.quantize_outputs``), decided by the engine's own resume
decision (``gpu.streaming.engine.resumes_from``), and what the wizard says of a full disk."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from app.quantize_outputs import delete_unfinished_run, free_output_path, running_output, unfinished_runs
from gpu.errors import Cancelled, OutputBusy
from gpu.paths import resources_dir
from gpu.quantizer import QuantizeConfig, quantize_model  # before gpu.streaming.engine (circular otherwise)
from gpu.streaming.engine import parts_dir

DEMO = resources_dir() / "models" / "demo"


def _cfg() -> QuantizeConfig:
    return QuantizeConfig(calib_prompts=2, calib_steps=2, max_tokens_per_layer=256, refine_iters=1, alpha_points=3,
                          rank=8)  # fmt: skip


def test_a_name_whose_run_would_start_over_is_not_offered(data_root, tmp_path):
    """The name of a stopped run was offered again when its quantization settings matched, though its source's
    files had changed since (moved, copied again, touched): the run then deleted the finished blocks to start
    over. A name is free only when the engine would resume there."""
    source = tmp_path / "model"
    shutil.copytree(DEMO, source)
    models = tmp_path / "models"
    out = models / "m.safetensors"
    with pytest.raises(Cancelled):  # stopped once its first block is finished
        quantize_model(source, out, _cfg(), should_cancel=lambda: _blocks_done(out) >= 1, device=torch.device("cpu"))
    assert free_output_path(models, "m", str(source), _cfg()) == out  # the same run: it resumes
    weights = source / "transformer" / "diffusion_pytorch_model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    notes: list[str] = []
    assert free_output_path(models, "m", str(source), _cfg(), notes) == models / "m-2.safetensors"
    assert notes == [f"m.safetensors.parts holds the blocks of an earlier run made with other settings. They stay in "
                     f"{models} and resume when you run with that run's settings (it differs: other source weights "
                     "(another model, or its files changed since)); this run writes a name of its own. Unfinished "
                     "runs… on the calibration page lists it, to delete."]  # fmt: skip
    [run] = unfinished_runs(models, str(source), _cfg())
    assert run.output == out and run.blocks_done == 1 and run.resumes is False


def _blocks_done(out: Path) -> int:
    try:
        return len(json.loads((parts_dir(out) / "manifest.json").read_bytes())["done"])
    except (OSError, ValueError, KeyError):
        return 0


def test_a_run_of_another_version_is_listed_and_deleted_and_its_name_is_free_again(data_root, tmp_path):
    """A parts folder of another version of the quantizer took its name for ever (no run of this version resumes
    it) and stayed, GiBs, in the hidden models folder. It is listed, and deleted when asked, but never while a run
    of this window has it as its output, even one still waiting for its turn (the engine locks it only then)."""
    models = tmp_path / "models"
    out = models / "demo-x.safetensors"
    parts = parts_dir(out)
    parts.mkdir(parents=True)
    (parts / "manifest.json").write_text(json.dumps({"key": "old", "done": {"transformer_blocks.0": {}}}))
    (parts / "block-0000.safetensors").write_bytes(b"x" * 4096)
    notes: list[str] = []
    assert free_output_path(models, "demo-x", "demo", _cfg(), notes) == models / "demo-x-2.safetensors"
    assert notes == [f"demo-x.safetensors.parts holds the blocks of a run of another version of the quantizer, which "
                     f"this version cannot resume. It stays in {models}; this run writes a name of its own. "
                     "Unfinished runs… on the calibration page lists it, to delete."]  # fmt: skip
    [run] = unfinished_runs(models, "demo", _cfg())
    assert (run.output, run.blocks_done, run.resumes) == (out, 1, False)
    assert run.differs == "another version of the quantizer"
    assert run.size_bytes == 4096 + (parts / "manifest.json").stat().st_size
    with running_output(out), pytest.raises(OutputBusy, match="a quantize run of this window writes demo-x"):
        delete_unfinished_run(run)
    assert parts.is_dir()
    delete_unfinished_run(run)
    assert not parts.exists() and unfinished_runs(models) == []
    assert free_output_path(models, "demo-x", "demo", _cfg()) == out


def test_a_full_disk_the_engine_reports_is_said_as_one(tmp_path):
    """safetensors reports a full disk in its text only ("... (os error 28)"): the wizard told the user to make
    the models folder writable. The engine's run now says it as a full disk, which the wizard tells as such."""
    from safetensors import SafetensorError

    from app.quantize_worker import run_error
    from gpu.atomic import output_errors
    from gpu.streaming.disk_space import disk_full_said

    code = 112 if os.name == "nt" else 28
    with pytest.raises(Exception) as failed, disk_full_said(tmp_path, lambda: ""), output_errors(tmp_path / "o"):
        raise SafetensorError(f"Error while serializing: I/O error: No space left on device (os error {code})")
    error, settings_can_fix = run_error(failed.value, tmp_path)
    assert error.message.startswith(f"the disk holding {tmp_path} is full") and not settings_can_fix
    assert "free some space on its disk" in error.hint
