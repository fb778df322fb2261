"""The Quantize wizard's source page follows the library: a wizard opened as the window shows, before the engine had
read the library, listed no library model for good and checked "" as a folder (".: not a diffusers pipeline folder"),
Next greyed; a pipeline added while it was open was offered neither as a source nor as a base."""

from __future__ import annotations

from PySide6.QtWidgets import QWizard

from app.data_dir import resolve_data_dir
from tests.app.gui import window_without_engine
from tests.bfl_files import pipeline_copy


def test_a_wizard_opened_as_the_engine_starts_offers_the_library_once_read_and_models_added_later(
        qtbot, data_root, demo_model, tmp_path):  # fmt: skip
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    window.quantize_panel.open_button.click()  # as a user clicks right after the window shows, as run_app shows it
    wizard = window.quantize_panel.wizard
    page, state = wizard.source_page, wizard.source_state
    next_button = wizard.button(QWizard.WizardButton.NextButton)
    assert page.source.count() == 0 and not next_button.isEnabled()
    assert page.problem.text().startswith("No diffusers pipeline in your library yet: pick a FLUX.1 pipeline folder "
                                          "with Other folder…"), page.problem.text()  # fmt: skip

    with qtbot.waitSignal(window.controller.engine_ready, timeout=60000):
        window.start()
    qtbot.waitUntil(lambda: state.ready, timeout=60000)
    assert page.source.currentData() == state.source == "demo" and page.problem.isHidden()
    assert next_button.isEnabled() and state.calibration is not None

    # A pipeline added while the wizard is open is offered as a source and as a base; the source chosen stays.
    with qtbot.waitSignal(window.controller.add_ended, timeout=60000) as added:
        window.controller.add_model(pipeline_copy(demo_model, tmp_path / "mine"), select=False)
    name = added.args[1]
    assert isinstance(name, str), name
    assert [page.source.itemData(i) for i in range(page.source.count())] == ["demo", name]
    assert name in [page.base.itemData(i) for i in range(page.base.count())]
    assert state.source == "demo" and next_button.isEnabled()
    wizard.close()
