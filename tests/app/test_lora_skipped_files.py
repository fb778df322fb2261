"""A ComfyUI or Forge LoRA folder read with its subfolders holds SDXL and SD 1.5 LoRAs and whole checkpoints
beside the FLUX.1 LoRAs: each became a row saying why it could not be used (hundreds of them). A folder now adds
its FLUX.1 LoRAs only, and its end-of-reading words count the files it skipped by kind; "Skipped files…" lists
each one and why (so does the log). "Add LoRA…" of one such file still refuses it by name
(``test_lora_panel.test_picking_a_lora_for_another_model_refuses_it_by_name``)."""

from __future__ import annotations

from header_files import bfl_tensors, header_only
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from tests.app.test_lora_list import flux_lora

_SDXL = "lora_unet_down_blocks_0_attentions_0_proj_in"


def _sdxl_lora(path):
    return header_only(path, {f"{_SDXL}.lora_down.weight": ("F16", (4, 320)),
                              f"{_SDXL}.lora_up.weight": ("F16", (320, 4))})  # fmt: skip


def _read_folder(qtbot, monkeypatch, window, folder) -> None:
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    state = window.controller.loras
    with qtbot.waitSignal(state.folder_scan.scanning_changed, check_params_cb=lambda on: not on, timeout=60000):
        qtbot.mouseClick(window.lora_panel.add_folder_button, Qt.MouseButton.LeftButton)


def test_a_folder_adds_its_flux_loras_and_counts_the_files_it_skips(qtbot, bare_window, tmp_path, monkeypatch,  # noqa: F811
                                                                    caplog):  # fmt: skip
    panel, state = bare_window.lora_panel, bare_window.controller.loras
    folder = tmp_path / "loras"
    flux_lora(folder / "flux" / "ink.safetensors")
    flux_lora(folder / "flux" / "Detail.SafeTensors", text_part=True)
    for name in ("anime", "film grain", "pixel art"):
        _sdxl_lora(folder / "sdxl" / f"{name}.safetensors")
    header_only(folder / "checkpoints" / "flux1-dev.safetensors", bfl_tensors())  # a whole model, no LoRA
    (folder / "half.safetensors").write_bytes(b"\x10\x00")  # a download cut short
    before = [e.name for e in state.entries]
    with caplog.at_level("INFO", logger="app.lora_folder_scan"):
        _read_folder(qtbot, monkeypatch, bare_window, folder)

    assert [e.name for e in state.entries] == [*before, "Detail", "ink"]
    assert panel.scan_label.text() == (
        f"Added 2 FLUX.1 LoRAs from {folder}. Skipped 5 files: 3 LoRAs for Stable Diffusion 1.x/2.x/SDXL, 1 file "
        "that cannot be read or is damaged, 1 file that is no LoRA (a checkpoint, a VAE…)."
    )
    assert bare_window.error_dialog is None  # nothing wrong: the folder held FLUX.1 LoRAs
    assert panel.skipped_button.isVisible()
    qtbot.mouseClick(panel.skipped_button, Qt.MouseButton.LeftButton)
    dialog = panel.skipped_dialog
    assert dialog.isVisible() and dialog.text() == panel.scan_label.text()
    details = dialog.detailedText()
    assert details.startswith("3 LoRAs for Stable Diffusion 1.x/2.x/SDXL:\n  sdxl/anime.safetensors: anime.safetensors "
                              "is a LoRA for Stable Diffusion 1.x/2.x/SDXL (UNet), not FLUX.1")  # fmt: skip
    assert "\n\n1 file that is no LoRA (a checkpoint, a VAE…):\n  checkpoints/flux1-dev.safetensors: " \
           "flux1-dev.safetensors is a FLUX.1 model (a single-file checkpoint), not a LoRA" in details  # fmt: skip
    assert "half.safetensors: not a safetensors file (only 2 bytes)" in details
    assert "sdxl/pixel art.safetensors" in caplog.text and "checkpoints/flux1-dev.safetensors" in caplog.text
    dialog.close()

    # The same folder again: nothing new, the skipped ones counted again; a folder of another model's LoRAs
    # only is said, as one without any LoRA file is.
    _read_folder(qtbot, monkeypatch, bare_window, folder)
    assert panel.scan_label.text().startswith(f"Added 0 FLUX.1 LoRAs from {folder}. 2 were listed already. Skipped 5")
    _read_folder(qtbot, monkeypatch, bare_window, folder / "sdxl")
    qtbot.waitUntil(lambda: bare_window.error_dialog is not None and bare_window.error_dialog.isVisible())
    assert bare_window.error_dialog.text() == (
        f"The folder {folder / 'sdxl'} and its subfolders hold no FLUX.1 LoRA: of their 3 .safetensors files, 3 "
        "LoRAs for Stable Diffusion 1.x/2.x/SDXL."
    )
    assert [e.name for e in state.entries] == [*before, "Detail", "ink"]
