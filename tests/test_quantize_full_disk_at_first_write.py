"""A quantize run whose disk fills up at its first write, the calibration samples: it keeps nothing for a resume, and
leaves nothing behind, as a run refused or stopped before that write leaves nothing."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import safetensors.torch
import torch

from gpu.atomic import scratch_prefix
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from gpu.quantizer import QuantizeConfig, quantize_model
from gpu.streaming.disk_space import DiskSpaceError
from gpu.streaming.parts_folder import SAMPLES, parts_dir
from gpu.streaming.unfinished import unfinished_runs

DEMO = resources_dir() / "models" / "demo"


def test_a_disk_full_as_the_samples_are_written_leaves_no_empty_unfinished_run(tmp_path, monkeypatch):
    """The parts folder was made just before the samples were written into it, and stayed, empty: Unfinished runs…
    listed it as a run of 0 bytes and 0 finished blocks, for the user to delete. The run said, rightly, that nothing
    is kept; nothing is left now."""
    models = tmp_path / "models"
    out = models / "m.safetensors"
    serialize = safetensors.torch.serialize_file

    def full(tensors, filename, *args, **kwargs):
        if Path(filename).parent.name.startswith(scratch_prefix(parts_dir(out) / SAMPLES)):
            raise OSError(errno.ENOSPC, "No space left on device")
        return serialize(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "serialize_file", full)
    config = QuantizeConfig(calib_prompts=2, calib_steps=2, timesteps_per_prompt=2, alpha_points=3)
    with pytest.raises(DiskSpaceError) as failed:
        quantize_model(DEMO, out, config, library=ModelLibrary(tmp_path / "lib"), device=torch.device("cpu"))
    assert str(failed.value).endswith(f"cannot write {parts_dir(out) / SAMPLES}: No space left on device")
    assert failed.value.hint == "free some space on that disk, then run again"
    assert unfinished_runs(models) == [] and not models.exists()  # the folder made for the output's lock too
