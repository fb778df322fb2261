"""A component folder holding a variant beside its weights (``diffusion_pytorch_model.fp16.safetensors`` beside
``diffusion_pytorch_model.safetensors``, as HF repositories ship them): every ``*.safetensors`` was counted, so
the parameters, the estimated VRAM, the memory plan's sizes and the model hash all counted the model twice. The
files read are the ones ``from_pretrained`` loads (``gpu.safetensors_header.loaded_weight_files``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gpu.errors import ModelLoadError
from gpu.generation.memory import folder_sizes
from gpu.model_files import inspect_model_path
from gpu.model_hash import model_hash
from gpu.paths import resources_dir
from gpu.safetensors_header import checked_weight_files

DEMO = resources_dir() / "models" / "demo"
WEIGHTS = "diffusion_pytorch_model.safetensors"


def _with_variants(tmp_path: Path) -> Path:
    folder = tmp_path / "FLUX.1-model"
    shutil.copytree(DEMO, folder)
    for component, weights in (("transformer", WEIGHTS), ("text_encoder_2", "model.safetensors")):
        variant = weights.replace(".safetensors", ".fp16.safetensors")
        shutil.copyfile(folder / component / weights, folder / component / variant)
    return folder


def test_a_variant_beside_the_weights_is_not_counted(tmp_path):
    folder = _with_variants(tmp_path)
    plain, doubled = inspect_model_path(DEMO), inspect_model_path(folder)
    assert doubled.transformer_params == plain.transformer_params  # was: twice as many
    assert model_hash(folder) == model_hash(DEMO)  # was: the hash of both files
    assert folder_sizes(folder / "text_encoder_2") == folder_sizes(DEMO / "text_encoder_2")  # was: twice
    assert folder_sizes(folder / "transformer") == folder_sizes(DEMO / "transformer")
    assert checked_weight_files(folder / "transformer", "m") == [folder / "transformer" / WEIGHTS]


def test_the_index_decides_over_a_single_file_and_a_variant_index_is_ignored(tmp_path):
    from gpu.safetensors_header import loaded_weight_files

    folder = tmp_path / "transformer"
    folder.mkdir()
    shards = [f"diffusion_pytorch_model-0000{i}-of-00002.safetensors" for i in (1, 2)]
    for name in [WEIGHTS, *shards, "diffusion_pytorch_model.fp16.safetensors"]:
        (folder / name).write_bytes(b"")
    index = {"weight_map": {"a": shards[1], "b": shards[0]}}
    (folder / f"{WEIGHTS}.index.json").write_text(json.dumps(index))
    (folder / "diffusion_pytorch_model.safetensors.index.fp16.json").write_text(json.dumps({"weight_map": {}}))
    assert loaded_weight_files(folder) == [folder / s for s in shards]  # as diffusers: the index first
    (folder / f"{WEIGHTS}.index.json").unlink()
    assert loaded_weight_files(folder) == [folder / WEIGHTS]


def test_a_folder_holding_only_a_variant_is_named(tmp_path):
    folder = tmp_path / "FLUX.1-model"
    shutil.copytree(DEMO, folder)
    (folder / "transformer" / WEIGHTS).rename(folder / "transformer" / "diffusion_pytorch_model.fp16.safetensors")
    with pytest.raises(ModelLoadError, match=r"FLUX.1-model: transformer/ holds no diffusion_pytorch_model"
                                             r".safetensors \(nor its sharded index\), the weights that load; only "
                                             r"diffusion_pytorch_model.fp16.safetensors") as err:  # fmt: skip
        inspect_model_path(folder)  # was: listed, and diffusers found no weights when generating
    assert "renamed to diffusion_pytorch_model.safetensors" in err.value.hint
