"""The LoRA panel drives a real generation: add a file, enable it, set its strength with the slider; the image
changes, carries ``Lora hashes`` in its A1111 metadata, and disabling the LoRA gives the original image back."""

from __future__ import annotations

import numpy as np
from lora_files import save_peft_lora
from PIL import Image
from PySide6.QtCore import Qt

from gpu.generation.png_metadata import parse_parameters, read_png_text


def _generate(qtbot, window) -> list:
    with qtbot.waitSignal(window.controller.job_finished, timeout=120000) as blocker:
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
    return blocker.args[0]


def _pixels(window, record) -> np.ndarray:
    with Image.open(window.controller.gallery.path_of(record)) as im:
        return np.asarray(im.convert("RGB")).copy()


def test_lora_panel_applies_and_removes_a_lora(qtbot, window, demo_model, tmp_path):
    lora = save_peft_lora(demo_model, tmp_path / "style", rank=4, alpha=4.0, seed=3, effect=0.3)
    panel = window.lora_panel
    entry = window.controller.loras.add_file(lora)
    row = panel.row_for(entry.name)
    assert "diffusers/PEFT, rank 4" in entry.info
    window.prompt_panel.prompt_edit.setPlainText("a red circle on a blue background")
    window.controller.prompt.seed_locked = True

    plain = _generate(qtbot, window)[0]
    row.enabled.setChecked(True)
    row.slider.setValue(150)
    assert window.controller.loras.requests() == [(str(lora.resolve()), 1.5)]
    styled = _generate(qtbot, window)[0]
    assert styled.settings["lora_list"][0]["strength"] == 1.5
    text = read_png_text(window.controller.gallery.path_of(styled))["parameters"]
    assert "Lora hashes: " in text
    params = parse_parameters(text)
    assert params["loras"] == f"{lora.stem}: {entry_hash(lora)}"
    assert not np.array_equal(_pixels(window, plain), _pixels(window, styled))
    # the dock reports the cost measured against the LoRA-free image of the same size made just before
    assert "% time per step" in panel.cost.text() and f"{lora.stem} (rank 4)" in panel.cost.text()
    assert isinstance(styled.settings["lora_overhead_pct"], float)

    row.enabled.setChecked(False)
    again = _generate(qtbot, window)[0]
    assert "loras" not in again.settings
    assert panel.cost.text() == ""
    assert np.array_equal(_pixels(window, plain), _pixels(window, again))  # removal is bit-exact


def entry_hash(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
