"""A number typed past a field's limit in the prompt panel, a LoRA's "Text" strength or the wizard's memory budgets
is brought to the limit when typing ends, and the status bar says why. Qt refused the key that took the number past
the limit and kept the digits before it: 4096 typed in Width stood as 409, then snapped to 416, the size the next
job made, nothing said."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractSpinBox

from gpu.system_info import GpuInfo
from tests.app.gui import lora_with_own_text_strength


def _typed(qtbot, field: QAbstractSpinBox, text: str) -> None:
    """``text`` typed over ``field``'s, the field not left."""
    field.setFocus()
    qtbot.waitUntil(field.hasFocus)
    field.selectAll()
    qtbot.keyClicks(field, text)


def _typed_and_left(qtbot, field: QAbstractSpinBox, text: str) -> None:
    """``text`` typed over ``field``'s, then Tab pressed: the focus goes on, typing has ended."""
    _typed(qtbot, field, text)
    qtbot.keyClick(field, Qt.Key.Key_Tab)
    assert not field.hasFocus()


def test_a_number_typed_past_a_prompt_fields_maximum_is_brought_down_to_it_and_said(qtbot, window):
    controller, panel = window.controller, window.prompt_panel
    state = controller.prompt
    window.activateWindow()  # the Tab's focus change is what ends an edit
    qtbot.waitUntil(window.isActiveWindow)
    for field, name, typed, limit, said in (
            (panel.steps_spin, "steps", "4096", 150, "Steps takes 1 to 150: the 4096 typed was set to 150."),
            (panel.width_spin, "width", "4096", 2048, "Width takes 64 to 2048 px: the 4096 typed was set to 2048."),
            (panel.height_spin, "height", "3000", 2048, "Height takes 64 to 2048 px: the 3000 typed was set to 2048."),
            (panel.batch_spin, "batch_count", "100", 16, "Images takes 1 to 16: the 100 typed was set to 16."),
            (panel.guidance_spin, "guidance", "75", 50.0, "Guidance takes 0 to 50: the 75 typed was set to 50.00."),
    ):  # fmt: skip
        _typed_and_left(qtbot, field, typed)
        # was: 40 steps, 409 px snapped to 416, 300 px to 304, 10 images, a guidance of 7
        assert (field.value(), getattr(state, name)) == (limit, limit), typed
        assert field.cleanText() == field.textFromValue(limit)
        assert window.statusBar().currentMessage() == said
    assert window.error_dialog is None


def test_a_number_past_the_maximum_not_yet_left_is_refused_at_generate_naming_the_field(qtbot, window):
    """As "30" in Width (``test_panel_shows_what_runs``): what the field shows is what runs, or nothing runs."""
    controller, panel = window.controller, window.prompt_panel
    controller.prompt.prompt = "a red circle"
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    _typed(qtbot, panel.steps_spin, "4096")
    assert panel.steps_spin.cleanText() == "4096"  # was: 40, each digit past 150 refused
    qtbot.keyClick(panel.steps_spin, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert "Steps shows “4096”, and takes 1 to 150" in window.error_dialog.text()
    assert not controller.job.busy and controller.gallery.rowCount() == 0
    window.error_dialog.accept()


def test_a_loras_text_strength_typed_past_its_limits_is_brought_to_them_and_said(qtbot, window, tmp_path):
    both, row = lora_with_own_text_strength(qtbot, window, tmp_path / "with clip.safetensors")
    state = window.controller.loras
    # was: the 3 refused after the sign (the strength before it kept, without a word), the 3 refused
    for typed, limit in (("-3", -2.0), ("3", 2.0), ("2.5", 2.0)):
        _typed_and_left(qtbot, row.text_value, typed)
        assert row.text_value.value() == limit and state.requests() == [(str(both), 1.0, limit)], typed
        assert window.statusBar().currentMessage() == (f"Text strength of with clip takes -2 to 2: the {typed} "
                                                       f"typed was set to {row.text_value.textFromValue(limit)}.")
    assert window.error_dialog is None


def test_a_memory_budget_typed_past_its_maximum_is_brought_down_to_it(qtbot, window):
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    page = wizard.calibration_page
    page.show_gpu(GpuInfo("NVIDIA GeForce RTX 4060 Laptop GPU", 89, 8 * 2**30, 7 * 2**30))  # the budget not greyed
    wizard.activateWindow()
    qtbot.waitUntil(wizard.isActiveWindow)
    _typed_and_left(qtbot, page.gpu_gib, "500")
    assert page.gpu_gib.value() == page.gpu_gib.maximum() == 192  # was: 50
    assert wizard.config().gpu_budget_gib == 192
    wizard.close()
