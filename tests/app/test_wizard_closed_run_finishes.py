"""A quantize run whose wizard was closed while it wrote the model file (past its last cancel check) finishes the
file; the close had nothing to add yet, and the model was listed only at the app's quit or its next start. It is
added as soon as it is written, as a close adds a finished model, but not selected: minutes after the close, the
user works with another model and settings of their own, which selecting it replaced (their next Generate ran the
new model, with its steps)."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from tests.app.gui import answer_stop, hold_run_at, small_run


def test_a_model_written_after_its_wizard_was_closed_is_added_at_once_not_selected(qtbot, window, monkeypatch):
    controller = window.controller
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    small_run(wizard, alpha_points=2)
    wizard.calibration_page.count.setValue(1)
    wizard.calibration_page.steps.setValue(1)
    writing, release = hold_run_at(wizard, "stage", "writing ")  # past the run's last cancel check
    wizard.next()  # starts quantizing
    said: list[str] = []
    controller.status_message.connect(said.append)
    try:
        qtbot.waitUntil(writing.is_set, timeout=300000)
        seen: list[str] = []
        answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, seen)
        wizard.close()
        assert len(seen) == 1 and not wizard.isVisible() and wizard.run_state.job.cancel.is_set()
        model = controller.prompt.model
        controller.prompt.steps = 7  # the user's own, set after the close
        with qtbot.waitSignal(controller.add_ended, timeout=120000) as added:
            release.set()
    finally:
        release.set()
    name = wizard.run_state.out_path.stem
    assert added.args[1:] == [name] and name in [e.name for e in controller.entries]
    assert wizard.run_state.added_name == name
    qtbot.waitUntil(lambda: any(f"'{name}' was added" in line for line in said), timeout=60000)
    assert f"The model '{name}' was added to the library; '{model}' stays selected." in said, said
    assert controller.prompt.model == model and controller.prompt.steps == 7
    qtbot.waitUntil(lambda: not wizard.run_state.running, timeout=60000)
