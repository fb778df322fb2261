"""How a quantize run of the wizard ends: a comparison that fails after the model was written, a close while the
run works (asked first), a cancel (what is kept, and where), the finished model on Finish, the next run's name."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWizard

from app.engine_errors import EngineError
from app.quantize_outputs import free_output_path
from app.quantize_worker import run_error
from gpu.checkpoint.format import read_checkpoint_meta
from gpu.errors import BadRequestError, ModelLoadError
from gpu.paths import resources_dir
from gpu.quantizer import QuantizeConfig  # before gpu.streaming.engine, which imported first is circular
from gpu.streaming.parts_folder import parts_dir
from tests.app.gui import answer_stop, held, hold_run_at, record_alerts, small_run, user_elsewhere


def test_a_failed_comparison_is_a_warning_and_finish_adds_the_model(qtbot, window, monkeypatch):
    """The comparison renders the 16-bit model, which a 16 GB laptop's GPU may not hold: its out-of-memory error
    was the run's failure, though the model file was written; Next was greyed, the model could not be added, and
    the page said to go back and quantize again. Then: Finish adds the model (closing left it unlisted). A file the
    user saved in the parts folder during the run stays, with the folder: the engine's words for it reached only
    the run page's log, and the result page says them."""
    from gpu.generation.service import GenerationService

    def out_of_memory(*_args, **_kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(GenerationService, "generate", out_of_memory)
    alerted = record_alerts(monkeypatch)
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    small_run(wizard)
    second_block, release = hold_run_at(wizard, "layer", "block 2/")
    with qtbot.waitSignal(wizard.run_state.run_ended, timeout=600000):
        wizard.next()
        try:
            qtbot.waitUntil(second_block.is_set, timeout=120000)
            parts = parts_dir(wizard.run_state.out_path)
            (parts / "notes.txt").write_text("the user's")
            user_elsewhere(qtbot)  # the user went to another program meanwhile: flagged once the run ends
        finally:
            release.set()
    assert alerted == [wizard]
    log = wizard.run_page.log.toPlainText()
    assert "Failed" not in log and not wizard.run_page.error.isVisible(), log
    assert "Warning: the comparison images could not be rendered: The GPU ran out of memory" in log
    assert wizard.error_dialog is None
    assert read_checkpoint_meta(wizard.run_state.result_path).layers  # complete and valid
    assert wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.next()  # -> result page
    summary = wizard.result_page.summary.text()
    said = f"Saved {Path(wizard.run_state.result_path).name} ("
    assert summary.startswith(said) and "rank 8. No comparison images: The GPU ran out of memory" in summary
    assert wizard.result_page.parts_left.text() == (
        f"{parts} is kept: it holds files the quantizer did not write (notes.txt), which are not deleted; its own "
        f"files there are. Move them elsewhere: a run into {wizard.run_state.out_path.name} refuses the folder while "
        "they are in it.")  # fmt: skip
    assert wizard.result_page.parts_left.isVisible()
    result = wizard.run_state.result_path
    with qtbot.waitSignal(wizard.finished), qtbot.waitSignal(window.controller.add_ended, timeout=60000) as added:
        wizard.button(QWizard.WizardButton.FinishButton).click()  # "Add to library" not pressed
    assert added.args[1] in [e.name for e in window.controller.entries if str(e.path) == result]


def test_closing_a_running_wizard_asks_and_a_cancel_says_what_is_kept(qtbot, window, monkeypatch):
    """Esc, the wizard's X and the main window's close cancelled a run without a word (hours of work on a 12B
    model); the log's "Stopped. Nothing was added." did not say the finished blocks are kept, nor where; the ETA
    stayed. Then a run with other settings took the same name, and the engine deleted those blocks to start over."""
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    small_run(wizard)
    second_block, release = hold_run_at(wizard, "layer", "block 2/")
    wizard.next()  # starts quantizing
    try:
        _stop_asked(qtbot, monkeypatch, window, wizard, second_block, release)
    finally:  # a failed assert leaves no run blocked, nor a "Stop quantizing?" that the window's close would show
        release.set()
        if wizard.run_state.job is not None:
            wizard.run_state.job.cancel.set()


def _stop_asked(qtbot, monkeypatch, window, wizard, second_block: threading.Event,
                release: threading.Event) -> None:  # fmt: skip
    """The rest of the test above, with the run held in its second block until ``release``."""
    log = wizard.run_page.log
    # The event's queued copy reaches the page after the held one: the log has it, and the ETA, once it arrived.
    qtbot.waitUntil(lambda: second_block.is_set() and "block 2/" in log.toPlainText(), timeout=120000)
    assert wizard.run_page.eta.text() != ""
    parts = parts_dir(wizard.run_state.out_path)
    kept = (f"The calibration samples and 1 finished block are kept in {parts}: run again with the same settings to "
            "resume.")  # fmt: skip

    seen: list[str] = []
    answer_stop(monkeypatch, QMessageBox.StandardButton.No, seen)
    wizard.close()  # the X
    qtbot.keyClick(wizard, Qt.Key.Key_Escape)
    window.close()  # the main window's X
    assert len(seen) == 3 and all(text.startswith(f"Stop quantizing? {kept}") for text in seen), seen
    assert wizard.isVisible() and window.isVisible()
    assert wizard.run_state.running and not wizard.run_state.job.cancel.is_set()

    answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, seen)
    with qtbot.waitSignal(wizard.run_state.run_ended, timeout=120000):
        wizard.close()
        release.set()
    assert not wizard.isVisible() and len(seen) == 4
    assert f"Stopped. Nothing was added. {kept}" in wizard.run_page.log.toPlainText()
    assert wizard.run_page.eta.text() == ""
    stopped = wizard.config()
    assert isinstance(stopped, QuantizeConfig)

    # The same settings resume into that name; other ones (another alpha grid) take a name of their own.
    window.quantize_panel.open_wizard()
    other = window.quantize_panel.wizard
    small_run(other, alpha_points=5)
    with qtbot.waitSignal(other.run_state.run_ended, timeout=120000):
        other.next()  # starts quantizing
        qtbot.waitUntil(lambda: other.run_state.job is not None)  # once named (on a thread)
        other.cancel()
    out = wizard.run_state.out_path
    assert other.run_state.out_path == out.with_name(out.stem + "-2.safetensors")
    other_log = other.run_page.log.toPlainText()
    assert f"{parts.name} holds the blocks of an earlier run made with other settings. They stay in " \
           f"{parts.parent} and resume when you run with that run's settings" in other_log  # fmt: skip
    assert free_output_path(parts.parent, out.stem, wizard.run_state.job.source, stopped) == out
    assert (parts / "manifest.json").is_file()  # the earlier blocks are still there


def test_a_file_the_user_puts_at_the_runs_output_meanwhile_is_kept_and_the_run_says_how_to_finish(qtbot, window):
    """The wizard's run replaced whatever was at its output name as it ended: a model the user copied into the
    models folder under that name during a run of hours was gone. Now it stays, and the run says how to finish."""
    from tests.app.gui import accept_dialog_later

    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    small_run(wizard)
    second_block, release = hold_run_at(wizard, "layer", "block 2/")
    seen: list[str] = []
    accept_dialog_later(seen)
    with qtbot.waitSignal(wizard.run_state.run_ended, timeout=600000):
        wizard.next()
        try:
            qtbot.waitUntil(second_block.is_set, timeout=120000)
            out = wizard.run_state.out_path
            out.write_bytes(b"the user's own model")
        finally:
            release.set()
    assert out.read_bytes() == b"the user's own model"
    text = wizard.run_page.error.text()
    assert f"{out} appeared while this run worked, and is kept: the quantized model was not written over it" in text
    assert f"Move that file elsewhere, then run again: the run resumes from the finished blocks in {parts_dir(out)}" \
        in text and "NIBBLE_DATA_DIR" not in text and "Go back" not in text  # fmt: skip
    assert (parts_dir(out) / "manifest.json").is_file()
    qtbot.waitUntil(lambda: len(seen) == 1)
    wizard.close()


def test_errors_no_setting_fixes_do_not_send_the_user_back_to_the_settings(tmp_path):
    """A damaged or missing model file ended with "Go back to change the settings."."""
    assert not run_error(ModelLoadError("flux.safetensors: cannot read the file", "download it again"), tmp_path)[1]
    assert not run_error(FileNotFoundError(2, "No such file", "ae.safetensors"), tmp_path)[1]
    assert run_error(BadRequestError("rank 512 is larger than the layer", "use a smaller rank"), tmp_path)[1]


def test_the_ram_budget_fits_the_machine(qtbot, monkeypatch):
    """The RAM budget defaulted to 24 GiB whatever the machine had: on a 16 GB laptop the activations were kept in
    RAM, and the machine swapped or the app was killed. A budget above the installed RAM is warned about."""
    import app.widgets.quantize_calibration_page as page_module
    from gpu.quantize_defaults import DEFAULT_RAM_BUDGET_GIB

    monkeypatch.setattr(page_module, "installed_ram_bytes", lambda: 16 * 10**9)  # a "16 GB" laptop
    page = page_module.CalibrationPage()
    qtbot.addWidget(page)
    assert page.ram_gib.value() == pytest.approx(0.75 * 16 * 10**9 / 2**30, abs=0.05)
    page.ram_gib.setValue(14.0)  # within the RAM: no warning (it is checked at each change)
    assert page.ram_warning.isHidden()
    page.ram_gib.setValue(24.0)
    assert not page.ram_warning.isHidden()
    assert page.ram_warning.text().startswith("This computer has 14.9 GiB of RAM, less than this budget")
    page.laptop_preset()
    assert page.ram_warning.isHidden()
    monkeypatch.setattr(page_module, "installed_ram_bytes", lambda: None)  # unknown: the engine's default
    unknown = page_module.CalibrationPage()
    qtbot.addWidget(unknown)
    assert unknown.ram_gib.value() == DEFAULT_RAM_BUDGET_GIB
    unknown.ram_gib.setValue(64.0)
    assert unknown.ram_warning.isHidden()  # the RAM unknown: nothing to warn about


def test_a_finished_model_left_unadded_goes_into_the_library_when_the_app_quits(qtbot, window, tmp_path):
    """The result page's model was added only by its button or by closing the wizard: Back and another run, or
    the app quitting, left it unlisted in the hidden models folder. Any way the wizard is left, it is added (the
    add is queued to the engine before the engine stops, which handles what it was asked before its quit)."""
    from gpu.paths import resources_dir

    model = window.controller.data.quantized / "finished.safetensors"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes((resources_dir() / "models" / "demo-int4.safetensors").read_bytes())
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.run_state.result_path = str(model)  # as a run that finished leaves it on the result page
    assert "The model is complete (finished.safetensors)" in wizard.run_state.kept_note()
    with qtbot.waitSignal(window.controller.add_ended, timeout=60000) as added:
        window.quantize_panel.shutdown()
    assert added.args[1:] == ["finished"]


def test_a_run_renders_its_source_at_16_bits_as_the_source_was_when_it_started(qtbot, window, monkeypatch):
    """Whether the run compares with its source rendered at 16 bits (a pipeline: yes; a single file: no) was read
    when its output's name came back from its thread: a source picked on the source page meanwhile decided it."""
    import gpu.streaming.run_inputs as run_inputs

    release = threading.Event()  # the output's name is chosen on a thread: held there until the source changed
    monkeypatch.setattr(run_inputs, "resume_key", held(run_inputs.resume_key, release))
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    small_run(wizard)
    try:
        wizard.next()  # Quantize the demo pipeline: its output being named
        assert wizard.run_state.running and wizard.run_state.job is None
        wizard.source_state.choose(str(resources_dir() / "models" / "demo-int4.safetensors"))  # a single file
        assert wizard.source_state.is_file
    finally:
        release.set()
    qtbot.waitUntil(lambda: wizard.run_state.job is not None, timeout=60000)
    job = wizard.run_state.job
    wizard.cancel()  # before the assertions: a window closed on a running wizard asks first, in a modal box
    qtbot.waitUntil(lambda: not wizard.run_state.running, timeout=120000)
    assert job.source == "demo" and job.compare_original


def test_a_failed_runs_error_is_on_the_page_before_its_end_is_said(qtbot, window, monkeypatch):
    """The run's end was said before its failure: the run page's completeChanged (QWizard updating its buttons)
    came while the page had no error text yet, and the wizard's error dialog opened over a page without it."""
    import app.widgets.quantize_wizard as quantize_wizard

    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    page_text_at: dict[str, str] = {}
    shown = quantize_wizard.show_error

    def show_error(parent, error):
        page_text_at["dialog"] = wizard.run_page.error.text()
        return shown(parent, error)

    monkeypatch.setattr(quantize_wizard, "show_error", show_error)
    wizard.run_state.ended.connect(lambda *_: page_text_at.setdefault("ended", wizard.run_page.error.text()))
    wizard.run_page.completeChanged.connect(lambda: page_text_at.setdefault("complete", wizard.run_page.error.text()))
    wizard.run_state.failed_with(EngineError("user", "models: the folder cannot be written", "free some space"))
    said = "The run failed: models: the folder cannot be written. Free some space. Go back to change the settings."
    assert page_text_at == {"dialog": said, "ended": said, "complete": said}
    wizard.error_dialog.close()
