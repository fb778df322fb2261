"""Every decimal field takes "." and "," as the decimal mark, whatever the locale: the other mark was taken as a group
separator and dropped without a word. The guidance field's own test is in test_guidance_restored; these are the
quantize wizard's GPU and RAM budgets (a "3,5" GiB budget ran as 35 GiB in the C locale) and a LoRA's "Text"
strength ("0,3" became 3 in the C locale, "0.3" 3 in a German one)."""

from __future__ import annotations

from PySide6.QtCore import QLocale, Qt
from PySide6.QtWidgets import QAbstractSpinBox

from gpu.system_info import GpuInfo
from tests.app.gui import lora_with_own_text_strength

LOCALES = ((QLocale.c(), "."), (QLocale(QLocale.Language.German, QLocale.Country.Germany), ","))


def _typed(qtbot, field: QAbstractSpinBox, text: str) -> None:
    field.setFocus()
    field.selectAll()
    qtbot.keyClicks(field, text)
    qtbot.keyClick(field, Qt.Key.Key_Tab)


def test_the_wizards_memory_budgets_take_either_decimal_mark(qtbot, window):
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    page = wizard.calibration_page
    # As where the engine found a GPU: without one the GPU budget is greyed (this machine has none), takes no typing
    page.show_gpu(GpuInfo("NVIDIA GeForce RTX 4060 Laptop GPU", 89, 8 * 2**30, 7 * 2**30))
    wizard.activateWindow()  # the Tab's focus change is what ends an edit
    qtbot.waitUntil(wizard.isActiveWindow)
    for locale, point in LOCALES:
        for field in (page.gpu_gib, page.ram_gib):
            field.setLocale(locale)  # the field's own: the process's locale is left to the other tests
            for typed in ("3,5", "3.5"):
                _typed(qtbot, field, typed)
                assert (field.value(), field.text()) == (3.5, f"3{point}50 GiB"), (typed, point)
    config = wizard.config()
    assert (config.gpu_budget_gib, config.ram_budget_gib) == (3.5, 3.5)  # what the run is given
    # The locale's group separator before three digits stays one: 1000 GiB of RAM, not 1.
    en_us = QLocale(QLocale.Language.English, QLocale.Country.UnitedStates)
    german = LOCALES[1][0]
    for locale, typed, taken in ((QLocale.c(), "1,000", 1000.0), (en_us, "1,024", 1024.0), (german, "1.000", 1000.0),
                                 (german, "1.000,5", 1000.5), (en_us, "1,000.5", 1000.5)):  # fmt: skip
        page.ram_gib.setLocale(locale)
        _typed(qtbot, page.ram_gib, typed)
        assert page.ram_gib.value() == taken, (locale.name(), typed)
    # Below the field's minimum (1 GiB) the value before it stays, as for "0.5": Qt's own clean-up dropped the C
    # locale's group separator from "0,5" and took 5 GiB.
    page.ram_gib.setLocale(QLocale.c())
    _typed(qtbot, page.ram_gib, "0,5")
    assert page.ram_gib.value() == 1000.5
    wizard.close()


def test_a_loras_text_strength_takes_either_decimal_mark(qtbot, window, tmp_path):
    both, row = lora_with_own_text_strength(qtbot, window, tmp_path / "with clip.safetensors")
    state = window.controller.loras
    for locale, point in LOCALES:
        row.text_value.setLocale(locale)
        for typed in ("0,3", "0.3", "-1,25"):
            _typed(qtbot, row.text_value, typed)
            taken = float(typed.replace(",", "."))
            assert row.text_value.text() == f"{taken:.2f}".replace(".", point), (typed, point)
            assert state.requests() == [(str(both), 1.0, taken)], (typed, point)
