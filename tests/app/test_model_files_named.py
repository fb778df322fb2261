"""What the quantize wizard's source page and the Models panel's file dialog say about model files: a Forge NF4
file was described as "Single-file FLUX.1 checkpoint …, 0.0 M parameters in U8" with Next enabled once a base was
found (none could ever fit), a FLUX.1 Fill folder passed as a source, and the "Add SVDQ file…" dialog offered
``*.svdq`` files, which the library then refused as "not a model"."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from app.quantize_source import QuantizeSource
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from tests.header_files import forge_nf4_tensors, header_only

DEMO_INT4 = resources_dir() / "models" / "demo-int4.safetensors"


def test_the_source_page_names_a_forge_nf4_file(tmp_path):
    nf4 = header_only(tmp_path / "flux1-dev-bnb-nf4-v2.safetensors", forge_nf4_tensors())
    state = QuantizeSource([])
    state.choose(str(nf4))
    assert not state.ready and state.description == "" and not state.needs_base
    assert state.problem.startswith("flux1-dev-bnb-nf4-v2.safetensors: a bitsandbytes NF4 FLUX.1 file (Forge); "
                                    "Nibble Studio cannot read bitsandbytes 4-bit weights (quantize the 16-bit "
                                    "FLUX.1 model (e.g. flux1-dev.safetensors")  # fmt: skip


def test_the_source_page_refuses_a_flux_fill_folder(demo_model: Path, tmp_path):
    folder = tmp_path / "FLUX.1-Fill-dev"
    shutil.copytree(demo_model, folder)
    index = json.loads((folder / "model_index.json").read_bytes())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "FluxFillPipeline"}))
    state = QuantizeSource([])
    state.choose(str(folder))
    assert not state.ready and state.problem.startswith("FLUX.1-Fill-dev: a FluxFillPipeline folder; it needs an "
                                                        "input image")  # fmt: skip


def test_the_add_file_dialog_offers_only_names_the_library_reads(qtbot, window, monkeypatch, tmp_path):
    asked: list[str] = []

    def dialog(*args, **kwargs):
        asked.append(args[3])  # (parent, caption, folder, filter)
        return "", ""  # cancelled

    monkeypatch.setattr(QFileDialog, "getOpenFileName", dialog)
    qtbot.mouseClick(window.model_panel.add_file_button, Qt.MouseButton.LeftButton)
    (models, *_) = asked[0].split(";;")
    suffixes = re.findall(r"\*(\.\w+)", models) + re.findall(r"\((\.\w+)", window.model_panel.add_file_button.toolTip())
    assert suffixes
    for suffix in suffixes:  # was: *.svdq, refused as "not a model" once picked
        path = tmp_path / f"model{suffix}"
        shutil.copyfile(DEMO_INT4, path)
        assert ModelLibrary(tmp_path / "data").add(path).kind == "svdq"
