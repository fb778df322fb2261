""""Add LoRA…" on a file the LoRA panel lists already: the row stayed as it was (off) and nothing was said, though
picked files are switched on."""

from __future__ import annotations

import shutil

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from gpu.paths import resources_dir

EXAMPLE = resources_dir() / "loras" / "monochrome-style.safetensors"


def test_adding_a_listed_lora_again_switches_it_on_and_says_so(qtbot, bare_window, tmp_path, monkeypatch):
    """"Add LoRA…" on a file the panel lists, switched off (by another path to it: a link): its row is switched on,
    not listed twice, and the status bar says it was listed already, as the Models panel says of a model."""
    controller = bare_window.controller
    said, shown = [], []
    controller.status_message.connect(said.append)
    controller.error.connect(shown.append)
    style = tmp_path / "style.safetensors"
    shutil.copy(EXAMPLE, style)
    (tmp_path / "link.safetensors").symlink_to(style)
    (entry,) = controller.loras.add_files([style], enabled=False)[0]
    rows = len(controller.loras.entries)
    picked = [str(tmp_path / "link.safetensors")]
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: (picked, ""))

    qtbot.mouseClick(bare_window.lora_panel.add_button, Qt.MouseButton.LeftButton)
    assert entry.enabled and len(controller.loras.entries) == rows
    assert bare_window.lora_panel.row_for("style").enabled.isChecked()
    assert said == ["The LoRA 'style' is already in the LoRA panel; it is switched on."] and shown == []
    assert bare_window.statusBar().currentMessage() == said[0]
