"""The Quantize wizard while the calibration prompts are encoded: the progress bar counts them, and Cancel stops the
run after the prompt under way (it went on through every prompt, minutes with T5-XXL, the bar idle)."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from tests.app.gui import answer_stop, hold_run_at, small_run


def test_the_encoding_moves_the_bar_and_a_cancel_stops_it(qtbot, window, monkeypatch):
    answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, [])  # a failing test's close stops the run
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    small_run(wizard)
    wizard.calibration_page.count.setValue(40)
    reached, release = hold_run_at(wizard, "stage", "encoded 4/40 prompts")
    wizard.next()
    qtbot.waitUntil(reached.is_set, timeout=30000)
    qtbot.waitUntil(lambda: wizard.run_page.bar.value() == 4)
    assert wizard.run_page.bar.maximum() == 40
    with qtbot.waitSignal(wizard.run_ended, timeout=60000):
        wizard.cancel()
        release.set()
    log = wizard.run_page.log.toPlainText()
    assert "encoded 4/40 prompts" in log and "encoded 8/40" not in log  # stopped at the next prompt
    assert "recording calibration samples" not in log and "Cancelled." in log
    wizard.close()
