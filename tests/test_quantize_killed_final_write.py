"""A quantize run killed while it wrote its model file (``kill -9``, a power cut, the app's exit after its 30 s wait
for a run past its last cancel check): the file is written in a hidden scratch folder beside the output
(``gpu.atomic.atomic_path``), as big as the model, which no ``finally`` removed. The run that resumes deletes it
before it writes; the disk space check made before that run, and the deletion of the unfinished run, knew nothing
of it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from gpu.atomic import scratch_prefix
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from gpu.quantizer import QuantizeConfig, quantize_model
from gpu.streaming.disk_space import folder_usage
from gpu.streaming.parts_folder import parts_dir, read_manifest

DEMO = resources_dir() / "models" / "demo"
ROOT = Path(__file__).resolve().parent.parent
CONFIG = QuantizeConfig(calib_prompts=2, calib_steps=3, timesteps_per_prompt=2, max_tokens_per_layer=256,
                        refine_iters=1, alpha_points=3)  # fmt: skip

# A run killed once its model file is whole in its scratch folder, before the rename that publishes it: the
# moment the write lasts longest (GiBs synced to the disk), and the largest scratch it can leave.
_KILLED_RUN = r"""
import json, os, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
import gpu.atomic
from gpu.library import ModelLibrary
from gpu.quantizer import QuantizeConfig, quantize_model
source, out, lib, config = sys.argv[1], Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
durable = gpu.atomic._make_durable
def killed(path, mode):
    durable(path, mode)
    if path.parent.name.startswith(gpu.atomic.scratch_prefix(out)):
        os._exit(9)
gpu.atomic._make_durable = killed
quantize_model(source, out, QuantizeConfig(**config), library=ModelLibrary(Path(lib)), device=torch.device("cpu"))
"""


@pytest.fixture(scope="module")
def killed_models(tmp_path_factory) -> Path:
    """A models folder holding ``m.safetensors.parts`` (every block finished) and the scratch folder of the model
    file its run was killed writing; no model file."""
    tmp = tmp_path_factory.mktemp("killed")
    out = tmp / "models" / "m.safetensors"
    argv = [sys.executable, "-c", _KILLED_RUN, str(DEMO), str(out), str(tmp / "lib"), json.dumps(asdict(CONFIG))]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 9, done.stderr
    assert not out.exists() and len(read_manifest(parts_dir(out))["done"]) == 6
    return out.parent


def _scratch(out: Path) -> list[Path]:
    return [p for p in out.parent.iterdir() if p.name.startswith(scratch_prefix(out))]


def test_the_disk_space_a_killed_model_write_holds_counts_as_free_for_the_run_that_resumes(killed_models, tmp_path,
                                                                                            monkeypatch):  # fmt: skip
    """The wizard checks the run's disk space before the run (``check_disk_space``): it counted the model-sized
    scratch of the killed write as taken, and refused the run ("the run needs about 8 MiB there (a 8 MiB model
    file), and 1 MiB is free") on a disk where the run, which deletes that scratch first, had room; the user could
    not see where the space had gone (a hidden folder). It counts as freed, as the spilled inputs of a stopped run
    do, and a refusal says so."""
    from gpu.runtime.memory_policy import amount
    from gpu.streaming.disk_space import DiskSpaceError
    from gpu.streaming.space_needed import check_disk_space

    models = tmp_path / "models"
    shutil.copytree(killed_models, models)
    out = models / "m.safetensors"
    [scratch] = _scratch(out)
    held = folder_usage(scratch)[0]
    # A disk with room for the model file (5.9 MiB, about 1.05x that estimated) once that scratch is gone, not before
    disk = {"room": held // 2}
    used_now = folder_usage(models)[0]
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage._replace(
        free=max(0, disk["room"] - held + used_now - folder_usage(models)[0])))  # fmt: skip
    lib = ModelLibrary(tmp_path / "lib")
    with pytest.raises(DiskSpaceError) as refused:  # too small even then: what the deletion frees is said
        check_disk_space(DEMO, out, CONFIG, lib, torch.device("cpu"))
    assert f"(+{amount(held)} freed by deleting the model file a killed run did not finish writing)" in str(
        refused.value)  # fmt: skip
    disk["room"] = int(1.1 * held)
    check_disk_space(DEMO, out, CONFIG, lib, torch.device("cpu"))  # refused before
    events = []
    quantize_model(DEMO, out, CONFIG, events.append, library=lib, device=torch.device("cpu"))
    assert any("resuming: 6/6 blocks already done" in e.message for e in events)
    assert sorted(p.name for p in models.iterdir()) == [out.name]


def test_deleting_an_unfinished_run_killed_as_it_wrote_its_model_deletes_its_scratch_too(killed_models, tmp_path):
    """Unfinished runs… listed the run with its parts folder's size and deleted that folder only: the scratch of
    the model file, as big as the model (GiBs for FLUX.1), stayed hidden in the app's models folder for good. It is
    counted in the run's size and deleted with it; the lock file beside the output goes as ever."""
    from gpu.streaming.unfinished import delete_unfinished_run, unfinished_runs

    models = tmp_path / "models"
    shutil.copytree(killed_models, models)
    out = models / "m.safetensors"
    [scratch] = _scratch(out)
    [run] = unfinished_runs(models)
    assert run.size_bytes == folder_usage(parts_dir(out))[0] + folder_usage(scratch)[0]
    delete_unfinished_run(run.parts)
    assert [p.name for p in models.iterdir() if p.name != f".{out.name}.lock"] == []


def test_a_run_deletes_the_scratch_a_killed_model_write_left_once_its_parts_folder_is_gone(killed_models, tmp_path):
    """Its parts folder deleted by an earlier version's Unfinished runs… (which left the scratch), the next run into
    that name deleted that scratch only where it found a parts folder: it stayed beside the new model for good."""
    models = tmp_path / "models"
    shutil.copytree(killed_models, models)
    out = models / "m.safetensors"
    shutil.rmtree(parts_dir(out))
    assert _scratch(out)
    quantize_model(DEMO, out, CONFIG, library=ModelLibrary(tmp_path / "lib"), device=torch.device("cpu"))
    assert sorted(p.name for p in models.iterdir()) == [out.name]
