"""A component's sharded index (``diffusion_pytorch_model.safetensors.index.json``) as the library reads it: one
that lists no weights was said as "holds no diffusion_pytorch_model.safetensors …; only
diffusion_pytorch_model.safetensors", and one removed while its shards were being checked raised StopIteration."""

from __future__ import annotations

import json
import shutil

import pytest

from gpu.errors import ModelLoadError
from gpu.model_files import inspect_model_path
from gpu.paths import resources_dir
from gpu.safetensors_header import checked_weight_files

DEMO = resources_dir() / "models" / "demo"
INDEX = "diffusion_pytorch_model.safetensors.index.json"


def test_an_index_with_an_empty_weight_map_is_named(tmp_path):
    folder = shutil.copytree(DEMO, tmp_path / "FLUX.1-model")
    (folder / "transformer" / INDEX).write_text(json.dumps({"metadata": {}, "weight_map": {}}))
    with pytest.raises(ModelLoadError) as err:
        inspect_model_path(folder)  # was: "holds no diffusion_pytorch_model.safetensors …; only diffusion_pytorch_…"
    assert str(err.value) == f"FLUX.1-model: transformer/{INDEX} lists no weight files (its weight_map is empty)"


def test_an_index_removed_while_its_shards_are_checked_is_a_plain_error(tmp_path, monkeypatch):
    folder = tmp_path / "transformer"
    folder.mkdir()
    shards = {"a": "diffusion_pytorch_model-00001-of-00002.safetensors"}
    (folder / INDEX).write_text(json.dumps({"weight_map": shards}))
    loads = json.loads

    def read_then_remove(raw, *args, **kwargs):  # another program deletes the index right after it was read
        (folder / INDEX).unlink(missing_ok=True)
        return loads(raw, *args, **kwargs)

    monkeypatch.setattr(json, "loads", read_then_remove)
    with pytest.raises(ModelLoadError, match=f"^m: transformer/ lacks {shards['a']}, which {INDEX} lists$"):
        checked_weight_files(folder, "m")  # was: StopIteration
