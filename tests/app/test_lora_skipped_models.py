"""A folder's skipped files: a whole model whose keys look like another family's LoRA's (an SD3 transformer's
``joint_blocks.``, a pipeline file's ``text_encoder.``) was counted as a "LoRA for Stable Diffusion 3" or "for a
text encoder"; it is a file that is no LoRA. And "Skipped files…" opened again shows the one dialog again: each
time made another, the last one hidden but kept as long as the panel."""

from __future__ import annotations

from header_files import bfl_tensors, header_only
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.lora_header import NOT_LORA, _kind
from gpu.lora.keys import LoraError
from tests.app.test_lora_list import flux_lora
from tests.app.test_lora_skipped_files import _read_folder

_SD3_LORA = "lora_unet_joint_blocks_0_x_block_attn_qkv"


def test_whole_models_are_counted_as_no_lora_whatever_their_keys_look_like(qtbot, bare_window, tmp_path,  # noqa: F811
                                                                          monkeypatch):  # fmt: skip
    panel = bare_window.lora_panel
    folder = tmp_path / "models"
    flux_lora(folder / "ink.safetensors")
    sd3 = {"joint_blocks.0.x_block.attn.qkv.weight": ("F16", (96, 32)), "joint_blocks.0.x_block.attn.proj.weight":
           ("F16", (32, 32))}  # fmt: skip
    header_only(folder / "sd3 transformer.safetensors", sd3)
    header_only(folder / "pipeline.safetensors",
                {"text_encoder.text_model.encoder.layers.0.mlp.fc1.weight": ("F16", (64, 16))})  # fmt: skip
    header_only(folder / "sd3 style.safetensors", {f"{_SD3_LORA}.lora_down.weight": ("F16", (4, 32)),
                                                   f"{_SD3_LORA}.lora_up.weight": ("F16", (96, 4))})  # fmt: skip
    _read_folder(qtbot, monkeypatch, bare_window, folder)
    assert panel.scan_label.text() == (
        f"Added 1 FLUX.1 LoRA from {folder}. Skipped 3 files: 2 files that are no LoRA (checkpoints, VAEs…), 1 LoRA "
        "for Stable Diffusion 3."
    )
    details = panel.state.folder_scan.skipped_text()
    assert "sd3 transformer.safetensors is a model, not a LoRA: a Stable Diffusion 3 checkpoint" in details
    assert "sd3 style.safetensors is a LoRA for Stable Diffusion 3, not FLUX.1" in details


def test_a_file_without_lora_weights_is_no_lora_whatever_family_it_is_said_to_be():
    assert _kind(LoraError("x is a model", family="Stable Diffusion 3", weights=False)) == NOT_LORA
    assert _kind(LoraError("x is a LoRA for SD3", family="Stable Diffusion 3")) == "Stable Diffusion 3"


def test_skipped_files_opened_again_is_the_same_dialog(qtbot, bare_window, tmp_path, monkeypatch):  # noqa: F811
    panel = bare_window.lora_panel
    folder = tmp_path / "models"
    flux_lora(folder / "ink.safetensors")
    (folder / "half.safetensors").write_bytes(b"\x10\x00")
    _read_folder(qtbot, monkeypatch, bare_window, folder)
    for _ in range(3):
        qtbot.mouseClick(panel.skipped_button, Qt.MouseButton.LeftButton)
        panel.skipped_dialog.close()
    (folder / "cut.safetensors").write_bytes(b"\x10\x00")
    _read_folder(qtbot, monkeypatch, bare_window, folder)  # the same folder again: it shows the new list
    qtbot.mouseClick(panel.skipped_button, Qt.MouseButton.LeftButton)
    assert panel.findChildren(QMessageBox) == [panel.skipped_dialog]
    assert panel.skipped_dialog.isVisible()
    assert panel.skipped_dialog.text() == panel.scan_label.text()
    assert "cut.safetensors" in panel.skipped_dialog.detailedText()


def test_add_lora_on_a_model_file_says_it_is_a_model_and_where_it_goes(tmp_path):
    """"Add LoRA…" on a whole model said only "none of its keys name a FLUX.1 layer", not that it is a model."""
    from app.lora_state import LoraState
    from gpu.paths import resources_dir

    sd3 = header_only(tmp_path / "sd3 medium.safetensors", {
        "model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": ("F16", (96, 32)),
        "first_stage_model.decoder.conv_in.weight": ("F16", (8, 4, 3, 3))})  # fmt: skip
    flux = header_only(tmp_path / "flux1-dev.safetensors", bfl_tensors())
    pipeline = header_only(tmp_path / "pipeline.safetensors", {
        "transformer.transformer_blocks.0.attn.to_q.weight": ("F16", (32, 32)),
        "text_encoder.text_model.encoder.layers.0.mlp.fc1.weight": ("F16", (64, 16)),
        "vae.decoder.conv_in.weight": ("F16", (8, 4, 3, 3))})  # fmt: skip
    svdq = resources_dir() / "models" / "demo-int4.safetensors"
    state = LoraState()
    added, refused, _listed = state.add_files([sd3, flux, pipeline, svdq])
    assert added == [] and len(refused) == 4
    assert "sd3 medium.safetensors is a model, not a LoRA: a Stable Diffusion 3 checkpoint" in refused[0]
    assert ("flux1-dev.safetensors is a FLUX.1 model (a single-file checkpoint), not a LoRA: quantize it with the "
            "Quantize wizard") in refused[1]  # fmt: skip
    assert "pipeline.safetensors is a model, not a LoRA: a pipeline's weights in one file (text_encoder, " \
           "transformer, vae)" in refused[2]  # fmt: skip
    assert "demo-int4.safetensors is a quantized FLUX.1 model (SVDQ), not a LoRA: add it under Models" in refused[3]
    assert not any("none of its keys" in r for r in refused)
