"""A model file whose name is not UTF-8 (Linux names are bytes: ``mod\\xe9le.safetensors`` from a Latin-1 system)
still gets its image saved: Python holds such a byte as a lone surrogate, which no PNG text chunk can take, and the
save raised "surrogates not allowed" after the job had run, losing the image."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from PIL import Image

from gpu.generation.png_metadata import parse_parameters, read_png_text, write_png
from gpu.paths import resources_dir


def test_settings_with_undecodable_text_are_written_escaped(tmp_path):
    settings = {"prompt": "a red star", "model": "mod\udce9le", "steps": 2, "seed": 1, "width": 64, "height": 64,
                "lora_list": [{"name": "\udcff-lora", "strength": 1.0}], "other": "\ud800"}  # fmt: skip
    path = write_png(tmp_path / "x.png", Image.new("RGB", (8, 8)), settings)
    texts = read_png_text(path)
    assert parse_parameters(texts["parameters"])["model"] == "mod\\xe9le"  # as ls shows the name
    assert '"mod\\\\xe9le"' in texts["nibble"] and "\\\\xff-lora" in texts["nibble"] and "\\\\ud800" in texts["nibble"]
    assert settings["model"] == "mod\udce9le"  # the caller's settings are left as they were


@pytest.mark.skipif(sys.platform != "linux", reason="file names are bytes on Linux; other systems refuse this one")
def test_generate_with_a_model_named_in_latin_1_saves_the_image(tmp_path, capsys):
    from main import main

    model = os.path.join(os.fsencode(tmp_path), b"mod\xe9le.safetensors")
    shutil.copy(resources_dir() / "models" / "demo-int4.safetensors", model)
    out = tmp_path / "star.png"
    code = main(["--data-dir", str(tmp_path / "data"), "generate", "a red star", "--model", os.fsdecode(model),
                 "--steps", "1", "--width", "64", "--height", "64", "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert parse_parameters(read_png_text(out)["parameters"])["model"] == "mod\\xe9le"
