"""An image made with a model whose file name is not UTF-8 (a Linux name in Latin-1, ``mod\\xe9le.safetensors``)
records the name escaped, as the PNG can hold it ("mod\\\\xe9le"); reusing its settings looks the model up by that
name, which the library compares escaped the same way (``encodable``). It was "no model named 'mod\\\\xe9le'"."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
import torch

from gpu.generation.request import GenerationRequest
from gpu.generation.service import GenerationService
from gpu.library import ModelLibrary
from gpu.paths import resources_dir


@pytest.mark.skipif(sys.platform != "linux", reason="file names are bytes on Linux; other systems refuse this one")
def test_the_name_an_image_records_finds_the_model_again(tmp_path):
    model = os.path.join(os.fsencode(tmp_path), b"mod\xe9le.safetensors")
    shutil.copy(resources_dir() / "models" / "demo-int4.safetensors", model)
    library = ModelLibrary(tmp_path / "data")
    entry = library.add(os.fsdecode(model))
    assert entry.name == "mod\udce9le"
    service = GenerationService(library, device=torch.device("cpu"))
    made = service.generate(GenerationRequest("a red star", model=entry.name, steps=1, width=64, height=64))[0]
    assert made.settings["model"] == "mod\\xe9le"
    assert library.resolve(made.settings["model"]).path == entry.path
