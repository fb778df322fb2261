"""A model folder in the library whose transformer weights were deleted, or whose index lists a shard that is
gone, is named with a hint when the library reads it (before a generation or a quantize run fails on it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gpu.errors import ModelLoadError
from gpu.model_files import inspect_model_path, pipeline_defaults
from gpu.paths import resources_dir


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    shutil.copytree(resources_dir() / "models" / "demo", folder)
    return folder


def test_deleted_weights_are_named_with_a_hint(tmp_path):
    folder = _copy(tmp_path)
    for f in (folder / "transformer").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ModelLoadError, match="mine: transformer/ holds no .safetensors weights") as e:
        inspect_model_path(folder)
    assert "copy or download" in e.value.hint  # was: no hint at all


def test_a_shard_the_index_lists_but_is_gone_is_named(tmp_path):
    folder = _copy(tmp_path)
    (folder / "transformer" / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "diffusion_pytorch_model-00002-of-00002.safetensors"}}))
    with pytest.raises(ModelLoadError, match="lacks diffusion_pytorch_model-00002-of-00002.safetensors") as e:
        inspect_model_path(folder)  # was: listed as usable, the load failing later in diffusers
    assert "copy or download" in e.value.hint


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"], ids=["utf-8-with-bom", "utf-16"])
def test_a_nibble_json_saved_with_a_byte_order_mark_is_read(tmp_path, encoding):
    """A model's nibble.json (its defaults, which the user may edit: the hint of a bad default names it) saved from
    Windows Notepad or PowerShell 5 is read as any other: the bytes go to json, which reads their encoding."""
    (tmp_path / "nibble.json").write_bytes(json.dumps({"steps": 12, "guidance": 2.5}).encode(encoding))
    defaults = pipeline_defaults(tmp_path)
    assert (defaults["steps"], defaults["guidance"]) == (12, 2.5)  # not FLUX.1-dev's 28 and 3.5
