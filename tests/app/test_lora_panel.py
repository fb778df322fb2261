"""The LoRA panel drives a real generation: add a file, enable it, set its strength with the slider; the image
changes, carries ``Lora hashes`` in its A1111 metadata, and disabling the LoRA gives the original image back."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from lora_files import save_peft_lora
from PIL import Image
from PySide6.QtCore import Qt

from app.settings import load_settings
from gpu.generation.png_metadata import parse_parameters, read_png_text
from tests.app.gui import open_window


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

    # "reuse settings" brings back the LoRAs an image was made with, and switches them off for one made without
    row.slider.setValue(40)
    window.controller.reuse_settings(styled)
    assert window.controller.loras.requests() == [(str(lora.resolve()), 1.5)]
    assert panel.row_for(entry.name).enabled.isChecked()
    window.controller.reuse_settings(plain)
    assert window.controller.loras.requests() == []
    # the LoRA's file moved to another folder: the user is told; once that file is listed, it is found by name
    (tmp_path / "other").mkdir()
    moved = Path(shutil.move(lora, tmp_path / "other" / lora.name))
    window.controller.loras.remove(entry)
    with qtbot.waitSignal(window.controller.error, timeout=5000) as blocker:
        window.controller.reuse_settings(styled)
    assert blocker.args[0].kind == "notice" and str(lora.resolve()) in blocker.args[0].message
    assert window.controller.loras.requests() == []
    window.controller.loras.add_file(moved)
    window.controller.reuse_settings(styled)
    assert window.controller.loras.requests() == [(str(moved.resolve()), 1.5)]


def entry_hash(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def test_the_lora_list_survives_a_restart_and_a_missing_file_keeps_its_row(qtbot, data_root, tmp_path):
    from gpu.paths import resources_dir

    lora = tmp_path / "mine.safetensors"
    shutil.copy(resources_dir() / "loras" / "monochrome-style.safetensors", lora)
    window = open_window(qtbot, data_root)
    entry = window.controller.loras.add_file(lora)
    row = window.lora_panel.row_for("mine")
    row.enabled.setChecked(True)
    row.slider.setValue(-70)
    row.triggers.setText("my own words")
    window.close()

    again = open_window(qtbot, data_root)
    assert again.controller.loras.requests() == [(str(entry.path), -0.7)]
    row = again.lora_panel.row_for("mine")
    assert row.enabled.isChecked() and row.slider.value() == -70 and row.triggers.text() == "my own words"
    again.close()

    lora.unlink()  # moved away, or on a drive that is not plugged in
    third = open_window(qtbot, data_root)
    row = third.lora_panel.row_for("mine")
    assert not row.enabled.isChecked() and row.triggers.text() == "my own words"
    assert "file not found" in row.entry.info
    qtbot.waitUntil(lambda: third.error_dialog is not None and third.error_dialog.isVisible())
    assert str(entry.path) in third.error_dialog.text()
    third.error_dialog.accept()
    assert third.controller.loras.requests() == []  # jobs run without it
    third.close()
    assert str(entry.path) in [s.path for s in load_settings(data_root / "settings.json").loras]  # remembered


def test_a_lora_file_with_a_malformed_header_is_listed_not_raised(qtbot, window, tmp_path):
    folder = tmp_path / "loras"
    folder.mkdir()
    header = b'{"a.lora_A.weight": 3}'  # JSON, but not a tensor table
    (folder / "odd.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    (folder / "list.safetensors").write_bytes((5).to_bytes(8, "little") + b"[1,2]")
    added = window.controller.loras.add_folder(folder)
    assert [e.name for e in added] == ["list", "odd"]
    assert added[0].info == "the header is not a JSON object: the file is corrupt"
    assert added[1].info == "the header's entry for tensor 'a.lora_A.weight' is malformed: the file is corrupt"


def test_a_png_with_a_damaged_lora_list_restores_what_it_can_and_says_what_not(qtbot, window, tmp_path):
    """A PNG that says it is ours but whose ``lora_list`` is damaged (hand-edited, another tool's): dropping it
    raised in the middle of restoring (the prompt set, the LoRAs not, and no word to the user)."""
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    from gpu.generation.png_metadata import write_png
    from gpu.version import APP_NAME

    controller = window.controller
    shipped = next(e for e in controller.loras.entries if e.name == "monochrome-style")
    settings = {"prompt": "a restored prompt", "seed": 5, "version": f"{APP_NAME}-0.1.0", "lora_list": [
        "monochrome-style",  # a bare name, not an entry
        {"file": "loras/a\x00b.safetensors", "name": "nul"},  # a name no file can have
        {"file": str(shipped.path), "name": "monochrome-style", "strength": "strong"},
    ]}
    png = tmp_path / "damaged-loras.png"
    write_png(png, Image.new("RGB", (16, 16)), settings)
    shown: list = []
    controller.error.connect(shown.append)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(png))])
    window.prompt_panel.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                                             Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier))
    assert controller.prompt.prompt == "a restored prompt" and controller.prompt.seed == 5
    assert shipped.enabled and shipped.strength == 1.0  # the usable entry is used, at the default strength
    messages = " | ".join(e.message for e in shown)
    assert "names no LoRA (monochrome-style)" in messages and "'nul'" in messages and "strong" in messages
