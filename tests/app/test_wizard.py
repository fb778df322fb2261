"""The quantize wizard on the real window: quantize the demo model, compare, add to library, generate."""

from __future__ import annotations

from PySide6.QtWidgets import QWizard

from gpu.checkpoint.format import read_checkpoint_meta


def test_wizard_quantizes_adds_to_library_and_generates(qtbot, window):
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    assert wizard.isVisible()
    wizard.compare_steps = 2
    assert wizard.source_page.value() == "demo"
    wizard.next()  # -> method
    wizard.method_page.rank.setValue(8)
    assert wizard.method_page.shared_smoothing.isChecked() and wizard.config().shared_smoothing
    wizard.next()  # -> calibration and memory
    wizard.calibration_page.laptop_preset()
    assert wizard.calibration_page.gpu_gib.value() == 14.0
    wizard.calibration_page.count.setValue(2)
    wizard.calibration_page.steps.setValue(2)
    with qtbot.waitSignal(wizard.run_page.completeChanged, timeout=600000):
        wizard.next()  # -> run page: starts quantizing
    assert wizard.result_path, wizard.run_page.log.toPlainText()
    layers = read_checkpoint_meta(wizard.result_path).layers
    assert layers["transformer_blocks.0.attn.to_k"]["smooth_group"][0] == "transformer_blocks.0.attn.to_q"
    assert "layer" in wizard.run_page.log.toPlainText().lower() or wizard.run_page.log.blockCount() > 3
    assert wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.next()  # -> result page
    assert len(wizard.comparisons) == 4
    assert all(c.psnr > 0 for c in wizard.comparisons)
    with qtbot.waitSignal(window.controller.library_changed, timeout=60000):
        wizard.result_page.add_button.click()
    names = [e.name for e in window.controller.entries]
    assert wizard.added_name in names
    wizard.close()

    controller = window.controller
    controller.select_model(wizard.added_name, apply_defaults=False)
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == wizard.added_name, timeout=60000)
    assert controller.model_info.kind == "svdq"
    assert "Runs on" in window.model_panel.details.text()
    controller.prompt.prompt = "a blue circle"
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as blocker:
        controller.generate()
    assert blocker.args[0][0].settings["model"] == wizard.added_name


def test_wizard_cancel(qtbot, window):
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.next()
    wizard.next()
    wizard.calibration_page.count.setValue(64)
    wizard.next()
    wizard.cancel()
    qtbot.waitUntil(lambda: "Cancelled" in wizard.run_page.log.toPlainText()
                    or "Failed" in wizard.run_page.log.toPlainText(), timeout=120000)
    assert "Cancelled" in wizard.run_page.log.toPlainText()
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.close()


def test_cancelling_the_comparison_keeps_the_finished_model_offered(qtbot, window):
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.compare_steps = 40  # the cancel lands among the comparison renders, not after them
    wizard.next()
    wizard.method_page.rank.setValue(8)
    wizard.next()
    wizard.calibration_page.count.setValue(2)
    wizard.calibration_page.steps.setValue(2)
    wizard._thread.worker.quantized.connect(lambda path: wizard.cancel())
    with qtbot.waitSignal(wizard.run_page.completeChanged, timeout=600000):
        wizard.next()
    log = wizard.run_page.log.toPlainText()
    assert "Comparison cancelled" in log and wizard.comparisons == []
    assert read_checkpoint_meta(wizard.result_path).layers  # complete and valid
    wizard.next()  # -> result page
    with qtbot.waitSignal(window.controller.library_changed, timeout=60000):
        wizard.result_page.add_button.click()
    assert wizard.added_name in [e.name for e in window.controller.entries]
    wizard.close()


def test_closed_wizards_threads_stop_with_the_app(qtbot, window):
    """Cancel a run by closing the wizard, open a new one, quit: no quantize thread may outlive the window (a
    QThread destroyed while running aborts the app on exit)."""
    panel = window.quantize_panel
    panel.open_wizard()
    first = panel.wizard
    first.next()
    first.next()
    first.calibration_page.count.setValue(64)
    first.next()  # starts quantizing
    first.close()  # the dialog's X: cancels the run
    panel.open_wizard()
    second = panel.wizard
    assert second is not first
    threads = [first._thread.thread, second._thread.thread]
    try:
        window.close()
        assert [t.isRunning() for t in threads] == [False, False]
    finally:  # on failure, stop them here rather than crash the test process later
        for thread in threads:
            thread.quit()
            thread.wait(60000)


def test_wizard_never_replaces_an_existing_model(qtbot, window):
    """A model already saved under the name the wizard would pick (same source, method, precision, rank) stays
    as it is: the new run writes a name of its own."""
    existing = window.controller.data.quantized / "demo-svdquant-int4-r32.safetensors"
    existing.write_bytes(b"the user's own model")
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.next()
    wizard.next()
    wizard.next()  # starts quantizing
    assert wizard.out_path == existing.with_name("demo-svdquant-int4-r32-2.safetensors")
    wizard.cancel()
    qtbot.waitUntil(lambda: "Cancelled" in wizard.run_page.log.toPlainText(), timeout=120000)
    assert existing.read_bytes() == b"the user's own model"
    wizard.close()
