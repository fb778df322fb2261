"""The quantize wizard's source page reads a pipeline folder's transformer weights (headers and sizes, no torch):
a copy of the demo pipeline with its weights truncated or deleted passed as "Diffusers FLUX.1 pipeline folder,
2 double and 4 single blocks", Next enabled, and the run failed at once."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from app.quantize_source import QuantizeSource

WEIGHTS = "diffusion_pytorch_model.safetensors"
AGAIN = (" (copy or download the model again)", "); copy or download the model again")  # after a message, or its ()


def _truncate(transformer: Path) -> None:
    weights = transformer / WEIGHTS
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size // 2)


def _delete(transformer: Path) -> None:
    (transformer / WEIGHTS).unlink()


def _lose_a_shard(transformer: Path) -> None:
    """The layout of a sharded download (FLUX.1-dev's transformer is three shards), its second shard absent."""
    (transformer / WEIGHTS).rename(transformer / "diffusion_pytorch_model-00001-of-00002.safetensors")
    weight_map = {"x_embedder.weight": "diffusion_pytorch_model-00001-of-00002.safetensors",
                  "proj_out.weight": "diffusion_pytorch_model-00002-of-00002.safetensors"}  # fmt: skip
    (transformer / f"{WEIGHTS}.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_truncate, f"model: transformer/{WEIGHTS}: truncated: the header describes"),
        (_delete, "model: transformer/ holds no .safetensors weights"),
        (_lose_a_shard, "model: transformer/ lacks diffusion_pytorch_model-00002-of-00002.safetensors, which "
                        f"{WEIGHTS}.index.json lists"),
    ],
)  # fmt: skip
def test_a_pipeline_folder_with_damaged_weights_is_refused_naming_the_file(
    demo_model: Path, tmp_path: Path, damage: Callable[[Path], None], problem: str
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(demo_model, folder)
    state = QuantizeSource([])
    state.choose(str(folder))
    assert state.ready and state.problem == ""  # the intact copy passes
    damage(folder / "transformer")
    state.choose(str(folder))
    assert not state.ready and state.description == ""
    assert state.problem.startswith(problem) and state.problem.endswith(AGAIN)
