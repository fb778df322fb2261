"""A single-file quantize source had to be named ``.safetensors`` in lower case, and the wizard's Single file…
dialog offered "*.safetensors", which GTK's dialog matches as written, while the library takes any case
(``is_safetensors_name``): ``FLUX.SAFETENSORS``, as Windows users save it, could not be picked, and typed in it
was refused ("rename it"). Both now take any case."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog, QWizard

from gpu.paths import resources_dir
from tests.app.gui import shown_by_file_dialogs as _shown
from tests.bfl_files import save_bfl_transformer


def test_a_single_file_named_in_upper_case_is_offered_and_taken_as_a_source(qtbot, window, tmp_path, monkeypatch):
    upper = save_bfl_transformer(resources_dir() / "models" / "demo", tmp_path / "FLUX-FINETUNE.SAFETENSORS")
    asked: list[str] = []
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (asked.append(a[3]), (str(upper), ""))[1])
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    page = wizard.source_page
    page._browse_file()  # the Single file… button
    models, everything = asked[0].split(";;")
    patterns = models[models.index("(") + 1 : -1].split()
    assert _shown(upper.name, patterns) and _shown("flux.safetensors", patterns), patterns
    assert not _shown("flux.gguf", patterns) and everything.endswith("(*)")
    qtbot.waitUntil(lambda: not wizard.source_state.checking, timeout=60000)  # the engine's check of the file
    assert wizard.source_state.source == str(upper) and page.problem.text() == ""
    assert "Single-file FLUX.1 checkpoint" in page.description.text() and wizard.source_state.base == "demo"
    assert wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.close()
