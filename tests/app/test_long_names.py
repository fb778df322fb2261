"""Names without spaces (Civitai's file names: "jibMixFlux_v8_AccentuEight_realism_finetune_svdq_int4_r32") in the
labels that show them wrap in their dock: the window keeps its width, at its minimum too (652 px, half of a
1366x768 screen), and the names are still whole in the labels' text, in what is copied from them and in what a
screen reader reads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lora_files import save_peft_lora
from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible, QGuiApplication
from PySide6.QtWidgets import QLabel

MODEL = "jibMixFlux_v8_AccentuEight_realism_finetune_svdq_int4_r32"
LORA = "FLUX_Realism_LoRA_v2_by_SomeAuthor_000004500"


@pytest.fixture
def long_lora(demo_model, tmp_path) -> Path:
    """A LoRA of the demo model of a long name, made before the window opens (``test_lora_panel.style_lora``)."""
    made = save_peft_lora(demo_model, tmp_path / "made", rank=4, alpha=4.0, seed=3, effect=0.3)
    return made.rename(tmp_path / f"{LORA}.safetensors")


def test_a_job_on_a_model_and_lora_of_long_names_keeps_the_windows_width(qtbot, long_lora, window, demo_model,
                                                                          tmp_path):
    """The Models panel's "Model: <name>", the prompt panel's "Loading <name>…" and the LoRA panel's "Last image
    used <name> …" were as wide as the name: the docks, and the window, widened (848 px from 683) for good."""
    window.resize(683, 700)
    qtbot.waitUntil(lambda: window.width() == 683)
    narrowest = window.minimumSizeHint().width()
    model = tmp_path / MODEL
    shutil.copytree(demo_model, model)
    window.controller.add_model(model)
    details = window.model_panel.details
    qtbot.waitUntil(lambda: f"Model: {MODEL}" in details.text(), timeout=30000)
    entry = window.controller.loras.add_file(long_lora)
    window.lora_panel.row_for(entry.name).enabled.setChecked(True)
    said: list[str] = []
    window.controller.job.status_changed.connect(said.append)
    window.controller.prompt.prompt = "a red circle"
    with qtbot.waitSignal(window.controller.job_finished, timeout=60000):
        window.controller.generate()
    qtbot.wait(50)  # the layout settles
    assert f"Loading {MODEL}…" in said
    assert f"Last image used {LORA} (rank 4)" in window.lora_panel.cost.text()
    assert window.minimumSizeHint().width() == narrowest and window.width() == 683
    # What a screen reader reads (Qt's own text of the label): it read the marks, one between every letter.
    assert _read_aloud(details) == details.text()

    # Selected and copied (the details can be): the text as set, without the marks that let it wrap.
    details.setSelection(0, len(QLabel.text(details)))  # all it shows
    QGuiApplication.clipboard().clear()
    qtbot.keyClick(details, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == details.text().replace("\xa0", " ")  # as Qt copies a no-break space


def _read_aloud(label: QLabel) -> str:
    """The label's name as a screen reader gets it."""
    return QAccessible.queryAccessibleInterface(label).text(QAccessible.Text.Name)


def test_long_words_may_break_after_their_separators_or_anywhere(qapp):
    """Words of up to ``LONG_RUN`` characters are kept whole; longer ones break after ``_ . - / \\``, and pieces
    between those longer than that anywhere but before an accent. The label's text, and its name read aloud, are
    the text as set; a name given to the label is kept."""
    from app.widgets.wrapped_label import ZERO_WIDTH_SPACE, WrappedLabel, breakable

    assert breakable("Loading demo… done in 12.0 s") == "Loading demo… done in 12.0 s"
    assert breakable(f"Model: {MODEL}").split(ZERO_WIDTH_SPACE) == [
        "Model: jibMixFlux_", "v8_", "AccentuEight_", "realism_", "finetune_", "svdq_", "int4_", "r32"]
    assert breakable("a" * 15).count(ZERO_WIDTH_SPACE) == 14
    assert ZERO_WIDTH_SPACE + "\u0301" not in breakable("e\u0301" * 10)
    label = WrappedLabel(f"Runs on: /models/{MODEL}.safetensors")
    assert label.text() == _read_aloud(label) == f"Runs on: /models/{MODEL}.safetensors"
    label.setText(f"Loading {MODEL}…")
    assert _read_aloud(label) == f"Loading {MODEL}…"
    label.setText("")
    assert _read_aloud(label) == ""
    label.setAccessibleName("Model file")
    label.setText(f"Runs on: /models/{MODEL}.safetensors")
    assert _read_aloud(label) == "Model file"
    assert label.minimumSizeHint().width() < label.fontMetrics().horizontalAdvance(MODEL) / 3
