"""Reusing an image made with a model or LoRA whose file name is not UTF-8 (a Linux name in Latin-1) finds them
again: the image records such names escaped (``mod\\\\xe9le``, as ``encodable`` writes them for the PNG), and the
app compares its own names escaped the same way. The model was "not in your library" and the LoRA "not here any
more"."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from PIL import Image

from gpu.generation.png_metadata import write_png
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from tests.app.gui import open_window

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="file names are bytes on Linux; others refuse them")


def test_reusing_an_image_selects_the_model_it_names_escaped(qtbot, tmp_path, data_root):
    model = os.path.join(os.fsencode(tmp_path), b"mod\xe9le.safetensors")
    shutil.copy(resources_dir() / "models" / "demo-int4.safetensors", model)
    ModelLibrary(data_root).add(os.fsdecode(model))
    window = open_window(qtbot, data_root)
    notices = []
    window.controller.error.connect(notices.append)
    png = write_png(tmp_path / "made.png", Image.new("RGB", (16, 16)),
                    {"prompt": "a red star", "model": "mod\udce9le", "steps": 3})  # fmt: skip
    assert window.controller.restore_from_files([png])
    assert window.controller.prompt.model == "mod\udce9le"
    assert not [n for n in notices if "mod" in n.message], [n.message for n in notices]


def test_reusing_an_image_switches_on_the_lora_it_names_escaped(qtbot, tmp_path):
    from app.lora_state import LoraState

    lora = os.path.join(os.fsencode(tmp_path), b"styl\xe9.safetensors")
    shutil.copyfile(resources_dir() / "loras" / "monochrome-style.safetensors", lora)
    state = LoraState()
    entry = state.add_file(os.fsdecode(lora))
    used = [{"file": "/home/ana/loras/styl\\xe9.safetensors", "name": "styl\\xe9", "strength": 0.5}]
    assert state.hash_search.restore_used(used) == []
    assert entry.enabled and entry.strength == 0.5
