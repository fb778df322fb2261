"""The Models panel's "Add SVDQ file…" dialog offered "*.safetensors", which GTK's dialog (and the desktop portal's)
on Linux matches as written: ``MINE.SAFETENSORS``, which the library adds, could not be picked. It now shares the
LoRA panel's filter (``app.widgets.file_filters``), which matches any case in every dialog."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from tests.app.gui import shown_by_file_dialogs as _shown


def test_the_add_file_dialog_shows_safetensors_files_in_any_case(qtbot, window, monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (asked.append(a[3]), ("", ""))[1])
    qtbot.mouseClick(window.model_panel.add_file_button, Qt.MouseButton.LeftButton)
    models, everything = asked[0].split(";;")
    patterns = models[models.index("(") + 1 : -1].split()
    names = ["flux-int4.safetensors", "MINE.SAFETENSORS", "Flux.SafeTensors"]
    assert [name for name in names if not _shown(name, patterns)] == [], patterns  # was: MINE.SAFETENSORS hidden by GTK
    assert not _shown("flux.gguf", patterns) and everything.endswith("(*)")
