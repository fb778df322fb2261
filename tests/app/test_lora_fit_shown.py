"""A LoRA for another model (FLUX.1-dev's 3072-wide layers on the 256-wide demo model) was listed like any other,
and refused only once Generate was clicked and its job had read the file whole (hundreds of MB). Its row now says
so as soon as it is listed with the selected model, switched on or off, from its header's shapes alone, by the
rule the engine applies (``gpu.lora.fit``); each model selected judges the rows anew.

Generate with such a LoRA switched on is refused at the click, naming it, as with any LoRA switched on that no
job could apply, rather than making the image without it: the user asked for the LoRA, an image without it would
look as if it had been applied (a job of minutes on a real model), and the row said why beforehand. Its file is
never read. A LoRA that fits is unaffected, and so is one whose only misfit is a part switched to strength 0 (the
engine leaves that part out)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from lora_files import flux_dev_lora, save_peft_lora
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from safetensors.torch import save_file

from app.theme import WARNING_COLOR
from tests.app.gui import added_copy, loras_added
from tests.app.test_lora_panel import _generate, _refused

DEV_WIDTHS = "made for a model with 3072-wide layers; this model's are 256 wide"


@pytest.fixture
def style_lora(demo_model, tmp_path) -> Path:
    """A PEFT LoRA of the demo model, made before the window opens (diffusers imported on two threads at once
    raced: ``tests/app/test_lora_panel.py``)."""
    return save_peft_lora(demo_model, tmp_path / "style", rank=4, alpha=4.0, seed=3, effect=0.3)


def _colour(row) -> QColor:
    return row.info.palette().color(QPalette.ColorRole.WindowText)


def test_a_lora_for_another_flux_size_is_marked_in_its_row_and_never_applied(qtbot, style_lora, window, tmp_path,
                                                                             tensor_reads):  # fmt: skip
    controller, panel = window.controller, window.lora_panel
    dev = flux_dev_lora(tmp_path / "dev style.safetensors", rank=32)  # a 220 MB LoRA for FLUX.1-dev
    loras_added(qtbot, controller, [dev, style_lora])  # "Add LoRA…": both listed and switched on, no dialog
    assert window.error_dialog is None or not window.error_dialog.isVisible()

    row = panel.row_for("dev style")
    said = (f"Does not fit the model 'demo': {DEV_WIDTHS} (lora_unet_double_blocks_0_img_attn_qkv expects 3072 "
            "inputs but transformer_blocks.0.attn.to_q has 256); 227 more of its 228 layers do not fit either.")
    assert row.info.text() == f"{said}\nkohya, rank 32, 684 tensors; changes the transformer"
    assert _colour(row) == QColor(WARNING_COLOR) and said in row.enabled.toolTip()
    fits = panel.row_for("pytorch_lora_weights")
    assert fits.entry.misfit == "" and fits.info.text().startswith("diffusers/PEFT, rank 4")
    assert _colour(fits) == QColor(Qt.GlobalColor.gray)
    assert row.enabled.isChecked() and fits.enabled.isChecked()

    window.prompt_panel.prompt_edit.setPlainText("a red circle on a blue background")
    text = _refused(qtbot, window)  # at the click, once per click, no job queued
    assert text == (
        f"The LoRA file {dev} does not fit the model 'demo': {DEV_WIDTHS} (lora_unet_double_blocks_0_img_attn_qkv "
        "expects 3072 inputs but transformer_blocks.0.attn.to_q has 256); 227 more of its 228 layers do not fit "
        "either. It is switched on, so no image was made. Switch it off or remove it in the LoRA panel, or select a "
        "model it was made for, then click Generate again.")  # fmt: skip

    row.enabled.setChecked(False)  # off, it is still marked: the user sees why before switching it on again
    assert row.entry.misfit and _colour(row) == QColor(WARNING_COLOR)
    made = _generate(qtbot, window)[0]
    assert [entry["name"] for entry in made.settings["lora_list"]] == ["pytorch_lora_weights"]
    assert "dev style.safetensors" not in tensor_reads and "pytorch_lora_weights.safetensors" in tensor_reads


def _with_clip_l(path: Path) -> Path:
    """A kohya LoRA of the demo transformer's first image attention output (256 -> 256) with a part for CLIP-L's
    first q_proj (768 wide; the demo's CLIP is 128 wide)."""
    g = torch.Generator().manual_seed(0)
    proj, clip = "lora_unet_double_blocks_0_img_attn_proj", "lora_te1_text_model_encoder_layers_0_self_attn_q_proj"
    save_file({f"{proj}.lora_down.weight": torch.randn(4, 256, generator=g) * 0.3,
               f"{proj}.lora_up.weight": torch.randn(256, 4, generator=g) * 0.3,
               f"{clip}.lora_down.weight": torch.randn(4, 768, generator=g),
               f"{clip}.lora_up.weight": torch.randn(768, 4, generator=g)}, path)  # fmt: skip
    return path


def test_a_part_at_strength_zero_is_not_judged_and_each_model_judges_anew(qtbot, window, tmp_path):
    controller, panel = window.controller, window.lora_panel
    loras_added(qtbot, controller, [_with_clip_l(tmp_path / "clip l.safetensors")])
    row = panel.row_for("clip l")
    # the layer by its path in the demo's CLIP file (with "text_model." or without, as transformers saved it)
    assert re.fullmatch(
        r"Does not fit the model 'demo': its CLIP text encoder part is made for one with 768-wide layers; this "
        r"model's are 128 wide \(lora_te1_text_model_encoder_layers_0_self_attn_q_proj expects 768 inputs but "
        r"(text_model\.)?encoder\.layers\.0\.self_attn\.q_proj has 128\)\.\n"
        r"kohya, rank 4, 4 tensors; changes the transformer \+ CLIP text encoder", row.info.text())  # fmt: skip
    row.text_same.setChecked(False)
    row.text_value.setValue(0.0)  # its CLIP part left out: what is applied fits, and the row says nothing
    assert row.entry.misfit == "" and row.info.text() == row.entry.info and _colour(row) == QColor(Qt.GlobalColor.gray)
    window.prompt_panel.prompt_edit.setPlainText("a red circle on a blue background")
    [made] = _generate(qtbot, window)
    assert made.settings["lora_list"][0]["changes"] == ["transformer"]
    row.text_value.setValue(0.5)
    assert row.entry.misfit.startswith("does not fit the model 'demo': its CLIP text encoder part")

    # Another model selected: each row is judged against its layers, named by it, once the engine describes it
    dev = flux_dev_lora(tmp_path / "dev style.safetensors", rank=4)
    controller.loras.add_file(dev)  # listed switched off, as a folder's LoRAs are: marked all the same
    assert controller.loras.entries[-1].misfit.startswith(f"does not fit the model 'demo': {DEV_WIDTHS}")
    name = added_copy(qtbot, controller, tmp_path / "models" / "demo 4-bit.safetensors")
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == name, timeout=60000)
    assert panel.row_for("dev style").entry.misfit.startswith(f"does not fit the model '{name}': {DEV_WIDTHS}")
    assert panel.row_for("clip l").entry.misfit.startswith(f"does not fit the model '{name}': its CLIP")
    assert panel.row_for("monochrome-style").entry.misfit == ""  # the shipped example fits the 4-bit demo too
