"""Reusing an image made with a model or LoRA whose file name is not UTF-8 (a Linux name in Latin-1) finds them
again: the image records such names escaped (``mod\\\\xe9le``, as ``encodable`` writes them for the PNG), and the
app compares its own names escaped the same way. The model was "not in your library" and the LoRA "not here any
more"."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from PIL import Image

from gpu.generation.png_metadata import write_png
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from tests.app.gui import drop_urls, open_window, restored_from, used_restored

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
    assert restored_from(window.controller, [png])
    assert window.controller.prompt.model == "mod\udce9le"
    assert not [n for n in notices if "mod" in n.message], [n.message for n in notices]


def test_reusing_an_image_switches_on_the_lora_it_names_escaped(qtbot, tmp_path):
    from app.lora_state import LoraState

    lora = os.path.join(os.fsencode(tmp_path), b"styl\xe9.safetensors")
    shutil.copyfile(resources_dir() / "loras" / "monochrome-style.safetensors", lora)
    state = LoraState()
    entry = state.add_file(os.fsdecode(lora))
    used = [{"file": "/home/ana/loras/styl\\xe9.safetensors", "name": "styl\\xe9", "strength": 0.5}]
    assert used_restored(qtbot, state, used) == []
    assert entry.enabled and entry.strength == 0.5


def test_a_dropped_image_whose_name_is_not_utf8_is_read(qtbot, tmp_path, window):
    """A file manager drags ``caf\\xe9.png`` as ``file:///…/caf%E9.png``: read as UTF-8 (``QUrl.toLocalFile``) the
    name was another, and the drop said the file "cannot be read (No such file or directory)". The URLs the app
    makes of such names (a gallery image dragged out, a folder opened) carry the same bytes."""
    from PySide6.QtCore import QUrl

    name = os.path.join(os.fsencode(tmp_path), b"caf\xe9.png")
    write_png(os.fsdecode(name), Image.new("RGB", (8, 8)), {"prompt": "from a Latin-1 name", "seed": 7})
    url = QUrl.fromEncoded(b"file://" + os.fsencode(tmp_path) + b"/caf%E9.png")  # as the file manager sends it
    notices = []
    window.controller.error.connect(notices.append)
    drop_urls(window.prompt_panel, [url])
    assert (window.controller.prompt.prompt, window.controller.prompt.seed) == ("from a Latin-1 name", 7)
    assert notices == []

    from app.file_urls import file_url

    assert file_url(Path(os.fsdecode(name))) == url
