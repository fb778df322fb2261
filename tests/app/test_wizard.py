"""The quantize wizard on the real window: quantize the demo model, compare, add to library, generate."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import shiboken6
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWizard
from safetensors.torch import load_file, save_file

from app.quantize_source import output_stem
from app.wording import human_bytes
from gpu.checkpoint.format import read_checkpoint_meta
from gpu.paths import resources_dir
from gpu.quantize_defaults import DEFAULT_ALPHA_POINTS
from tests.app.gui import accept_dialog_later, answer_stop
from tests.bfl_files import pipeline_copy, save_bfl_transformer

RESOURCES = resources_dir() / "models"
DEMO = RESOURCES / "demo"
# The alpha search of runs whose grid is not what their test is about: 0, 0.5, 1 quantizes the demo model in about
# half the default 11 points' time.
QUICK_ALPHA_POINTS = 3


def test_wizard_quantizes_adds_to_library_and_generates(qtbot, window):
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    assert wizard.isVisible()
    wizard.compare_steps = 2
    assert wizard.source_page.value() == "demo"
    wizard.next()  # -> method
    wizard.method_page.rank.setValue(8)
    assert wizard.method_page.shared_smoothing.isChecked() and wizard.config().shared_smoothing
    assert wizard.method_page.alpha_points.value() == DEFAULT_ALPHA_POINTS
    wizard.method_page.alpha_points.setValue(3)  # the CLI's --alpha-points; the wizard had no such field
    page = wizard.method_page
    page.method.setCurrentIndex(page.method.findData("naive"))  # no smoothing: nothing to search
    assert not page.alpha_points.isEnabled() and not page.shared_smoothing.isEnabled()
    page.method.setCurrentIndex(page.method.findData("svdquant"))
    assert page.alpha_points.isEnabled() and page.shared_smoothing.isEnabled()
    wizard.next()  # -> calibration and memory
    wizard.calibration_page.laptop_preset()
    assert wizard.calibration_page.gpu_gib.value() == 14.0
    wizard.calibration_page.count.setValue(2)
    wizard.calibration_page.steps.setValue(2)
    # The time left beside each line of the log as it comes: the layers' estimate, then none while the model is
    # written and the comparison renders (it said "About 0 min 0 s left" there, for minutes on a 12B model).
    log, time_left = wizard.run_page.log, wizard.run_page.eta
    said: list[tuple[str, str]] = []
    log.textChanged.connect(lambda: said.append((log.document().lastBlock().text(), time_left.text())))
    with qtbot.waitSignal(wizard.run_page.completeChanged, timeout=600000):
        wizard.next()  # -> run page: starts quantizing
    assert wizard.run_state.result_path, wizard.run_page.log.toPlainText()
    layers = [left for line, left in said if line.startswith("block ")]
    assert layers and all(left.startswith("About ") for left in layers), said
    after = said[next(i for i, (line, _) in enumerate(said) if line.startswith("writing ")):]
    assert any(line.startswith("Rendering comparison images") for line, _ in after), said
    assert all(left == "" for _, left in after), after
    meta = read_checkpoint_meta(wizard.run_state.result_path)
    assert meta.calibration["alpha_points"] == 3
    layers = meta.layers
    assert layers["transformer_blocks.0.attn.to_k"]["smooth_group"][0] == "transformer_blocks.0.attn.to_q"
    assert "layer" in wizard.run_page.log.toPlainText().lower() or wizard.run_page.log.blockCount() > 3
    assert wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    assert wizard.run_page.cancel_button.text() == "Stop"  # not a second "Cancel" beside the wizard's
    wizard.next()  # -> result page
    # What was made, how big and where, beside the scores: it said "Saved to PATH" alone
    result = Path(wizard.run_state.result_path)
    assert wizard.result_page.summary.text().startswith(
        f"Saved {result.name} ({human_bytes(result.stat().st_size)}) in {result.parent}: demo quantized with "
        "svdquant, INT4, rank 8. Mean PSNR ")  # fmt: skip
    assert len(wizard.run_state.comparisons) == 4
    assert all(c.psnr > 0 for c in wizard.run_state.comparisons)
    # Finish alone: a "Cancel" here cancelled nothing, and added the model all the same (R51)
    assert not wizard.button(QWizard.WizardButton.CancelButton).isVisible()
    assert wizard.button(QWizard.WizardButton.FinishButton).isVisible()
    with qtbot.waitSignal(window.controller.add_ended, timeout=60000):
        wizard.result_page.add_button.click()
    names = [e.name for e in window.controller.entries]
    assert wizard.run_state.added_name in names
    wizard.close()

    controller = window.controller  # the model added is the one in use now
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == wizard.run_state.added_name, timeout=60000)
    assert controller.prompt.model == wizard.run_state.added_name
    assert controller.model_info.kind == "svdq"
    assert window.model_panel.runs_on.text().startswith("Runs on: ")
    controller.prompt.prompt = "a blue circle"
    controller.prompt.steps = 2  # that the added model generates, not how well: the demo's 16 steps add nothing
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as blocker:
        controller.generate()
    assert blocker.args[0][0].settings["model"] == wizard.run_state.added_name


def test_wizard_cancel(qtbot, window):
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.next()
    wizard.next()
    wizard.calibration_page.count.setValue(64)
    wizard.next()
    wizard.cancel()
    qtbot.waitUntil(lambda: "Stopped" in wizard.run_page.log.toPlainText()
                    or "Failed" in wizard.run_page.log.toPlainText(), timeout=120000)
    assert "Stopped" in wizard.run_page.log.toPlainText()
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.close()


def test_cancelling_the_comparison_keeps_the_finished_model_offered(qtbot, window, tmp_path):
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.compare_steps = 40  # the cancel lands among the comparison renders, not after them
    wizard.next()
    wizard.method_page.rank.setValue(8)
    wizard.method_page.alpha_points.setValue(QUICK_ALPHA_POINTS)
    wizard.next()
    wizard.calibration_page.count.setValue(2)
    wizard.calibration_page.steps.setValue(2)
    # The wizard's own slot, so that the cancel runs on the GUI thread as a click would: a lambda ran it on the
    # worker's thread, touching the wizard's widgets from there (a segfault in one CI run).
    wizard._thread.worker.quantized.connect(wizard.cancel)
    with qtbot.waitSignal(wizard.run_page.completeChanged, timeout=600000):
        wizard.next()
    log = wizard.run_page.log.toPlainText()
    assert "Comparison stopped" in log and wizard.run_state.comparisons == []
    assert read_checkpoint_meta(wizard.run_state.result_path).layers  # complete and valid
    wizard.next()  # -> result page
    # The file moved away before Add: the library refuses it, and the button offers the add again (it read
    # "Added" for a model that was not listed).
    result, aside = Path(wizard.run_state.result_path), Path(wizard.run_state.result_path + ".aside")
    result.rename(aside)
    with qtbot.waitSignal(window.controller.error, timeout=60000):
        wizard.result_page.add_button.click()
    button = wizard.result_page.add_button
    assert button.isEnabled() and button.text() == "Add to library"
    assert wizard.run_state.added_name is None and result.stem not in [e.name for e in window.controller.entries]
    aside.rename(result)
    # Neither an add the user made meanwhile (the Models panel's, queued first) nor an error of no add (Generate
    # with no prompt, while the wizard's add is under way) is the wizard's: the first was taken for its add (its
    # name another model's), the second for its refusal (its own add's end then ignored, and the model added again
    # at the app's quit, though the user may have removed it since).
    controller = window.controller
    shutil.copy(RESOURCES / "demo-int4.safetensors", tmp_path / "mine.safetensors")
    controller.add_model(tmp_path / "mine.safetensors")
    controller.prompt.prompt = ""
    with qtbot.waitSignal(controller.add_ended, timeout=60000,
                          check_params_cb=lambda _asked, name: name == result.stem):
        button.click()
        controller.generate()  # "Type a prompt first.", before either add has ended (they end on this thread)
    window.error_dialog.accept()
    assert "mine" in [e.name for e in controller.entries] and wizard.run_state.added_name == result.stem
    assert wizard.run_state.added_name in [e.name for e in controller.entries]
    assert not button.isEnabled() and button.text() == "Added"

    # Back and a run of another rank: its model is not the one added. It was taken for it (the wizard's close left
    # it out of the library), and the add of the run before it, ending during it, marked its page "Added".
    second = _run_again(qtbot, wizard, 16)
    assert wizard.run_state.added_name is None and button.isEnabled() and button.text() == "Add to library"
    button.click()  # and Back before this add has ended: it ends during the next run
    third = _run_again(qtbot, wizard, 24)
    qtbot.waitUntil(lambda: second.stem in [e.name for e in controller.entries], timeout=60000)
    assert wizard.run_state.added_name is None and button.isEnabled() and button.text() == "Add to library"
    with qtbot.waitSignal(controller.add_ended, timeout=60000):
        wizard.close()  # adds the result shown
    assert {result.stem, second.stem, third.stem} <= {e.name for e in controller.entries}
    assert controller.prompt.model == third.stem


def _run_again(qtbot, wizard, rank: int) -> Path:
    """Back from the result page to the method page, ``rank`` chosen, the run again to its result page; its model."""
    while wizard.currentPage() is not wizard.method_page:
        wizard.back()
    wizard.method_page.rank.setValue(rank)
    wizard.next()
    with qtbot.waitSignal(wizard.run_page.completeChanged, timeout=600000):
        wizard.next()
    assert wizard.run_state.result_path, wizard.run_page.log.toPlainText()
    wizard.next()  # -> result page
    return Path(wizard.run_state.result_path)


def test_closed_wizards_threads_stop_with_the_app(qtbot, window, monkeypatch):
    """Cancel a run by closing the wizard, open a new one, quit: no quantize thread may outlive the window (a
    QThread destroyed while running aborts the app on exit)."""
    panel = window.quantize_panel
    panel.open_wizard()
    first = panel.wizard
    first.next()
    first.next()
    first.calibration_page.count.setValue(64)
    first.next()  # starts quantizing
    answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, [])
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


def test_no_back_while_a_run_works_and_running_again_after_a_cancel(qtbot, window):
    """Back during a run let Next queue a second job behind the first (the engine would refuse it: the same
    output is locked by our own process). Back is greyed until the run has stopped; then the settings can be
    changed and the run started again."""
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.compare_steps = 2
    back = wizard.button(QWizard.WizardButton.BackButton)
    next_button = wizard.button(QWizard.WizardButton.NextButton)
    wizard.next()
    wizard.method_page.rank.setValue(8)
    wizard.method_page.alpha_points.setValue(QUICK_ALPHA_POINTS)
    wizard.next()
    wizard.calibration_page.count.setValue(64)  # long enough to be still running below
    wizard.next()  # starts quantizing
    assert wizard.currentPage() is wizard.run_page
    assert not back.isEnabled() and not next_button.isEnabled() and wizard.run_state.running
    back.click()
    wizard.back()  # the slot itself, as a shortcut would call it
    assert wizard.currentPage() is wizard.run_page
    qtbot.waitUntil(lambda: wizard.run_page.log.blockCount() > 2, timeout=60000)  # the engine is at work
    assert not back.isEnabled()  # still greyed after QWizard updated its buttons for the progress
    with qtbot.waitSignal(wizard.run_state.run_ended, timeout=120000):
        wizard.run_page.cancel_button.click()
        assert not wizard.run_page.cancel_button.isEnabled()  # pressed once; the run stops at its next check
    log = wizard.run_page.log.toPlainText()
    assert "Stopped. Nothing was added." in log and wizard.run_state.result_path is None
    assert "Stopping…" in log and "Cancel" not in log  # the button says Stop: the log says what it did in its words
    assert back.isEnabled() and not next_button.isEnabled() and not wizard.run_page.cancel_button.isEnabled()
    back.click()  # to change the settings
    assert wizard.currentPage() is wizard.calibration_page
    assert next_button.text() == "Quantize"  # not "Commit", as it is while a run works
    wizard.calibration_page.count.setValue(2)
    wizard.calibration_page.steps.setValue(2)
    with qtbot.waitSignal(wizard.run_state.run_ended, timeout=600000):
        wizard.next()  # runs again
    log = wizard.run_page.log.toPlainText()
    assert wizard.run_state.result_path and "being written by another" not in log, log
    assert "Stopped" not in log and wizard.run_page.cancel_button.isEnabled() is False
    assert next_button.isEnabled() and back.isEnabled()
    wizard.next()  # -> result page
    assert len(wizard.run_state.comparisons) == 4
    wizard.close()


def test_a_wizard_closed_mid_run_and_opened_again_runs_after_the_old_run_stops(qtbot, window, monkeypatch):
    """Closing the wizard cancels its run, but the run stops only at its next check (a layer of a big model
    takes seconds); a run in the wizard opened again wrote the same output and was refused by the engine's
    lock, held by that stopping run of our own process."""
    panel = window.quantize_panel
    panel.open_wizard()
    first = panel.wizard
    first.next()
    first.method_page.rank.setValue(8)
    first.method_page.alpha_points.setValue(QUICK_ALPHA_POINTS)
    first.next()
    first.calibration_page.count.setValue(64)
    first.next()  # starts quantizing
    qtbot.waitUntil(lambda: first.run_page.log.blockCount() > 2, timeout=60000)  # the engine holds the lock
    stopping = threading.Event()

    def slow_step(_event) -> None:  # on the worker thread, inside the engine: a step that cannot stop at once
        if stopping.is_set():
            time.sleep(0.5)

    first._thread.worker.progress.connect(slow_step, Qt.ConnectionType.DirectConnection)
    stopping.set()
    first_log: list[str] = []  # the closed wizard is let go of (deleted) once its run ended: its words kept here
    first.run_state.logged.connect(first_log.append)
    first.run_state.failed.connect(lambda *_: first_log.append("a failure said"))
    answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, [])
    first.close()  # the dialog's X: cancels the run
    panel.open_wizard()
    second = panel.wizard
    assert second is not first and panel._wizards == [first, second]  # the closed one's run still stops
    let_go = threading.Event()
    first.destroyed.connect(let_go.set)
    second.compare_steps = 2
    second.next()
    second.method_page.rank.setValue(8)  # the same settings: the same output name as the stopping run
    second.method_page.alpha_points.setValue(QUICK_ALPHA_POINTS)
    second.next()
    second.calibration_page.count.setValue(2)
    second.calibration_page.steps.setValue(2)
    with qtbot.waitSignal(second.run_state.run_ended, timeout=600000):
        second.next()
    log = second.run_page.log.toPlainText()
    assert second.run_state.result_path and "being written by another" not in log, log
    assert "Waiting for the quantize run of the wizard you closed to stop" in log
    assert any(line.startswith("Stopped") for line in first_log) and "a failure said" not in first_log
    qtbot.waitUntil(let_go.is_set, timeout=10000)  # its run ended: the panel lets go of it
    assert panel._wizards == [second] and second.turns._earlier == []
    second.close()


def test_a_closed_wizard_is_let_go_of(qtbot, window):
    """Every wizard ever opened stayed in the Quantize panel's list, its pages and states with it, for the whole
    session: one closed with no run is let go of, and deleted."""
    panel = window.quantize_panel
    panel.open_wizard()
    wizard = panel.wizard
    held = (wizard.source_state, wizard._thread.thread, wizard._thread.worker)  # what it held, deleted with it
    deleted = threading.Event()
    wizard.destroyed.connect(deleted.set)
    wizard.close()
    qtbot.waitUntil(deleted.is_set, timeout=10000)
    assert panel._wizards == [] and panel.wizard is None
    qtbot.waitUntil(lambda: not any(shiboken6.isValid(thing) for thing in held), timeout=5000)
    panel.open_wizard()  # a new one opens as before
    assert panel._wizards == [panel.wizard] and panel.wizard.isVisible()


def test_a_wizard_closed_while_its_run_waits_behind_a_file_check_still_ends_it(qtbot, window, tmp_path,
                                                                                  monkeypatch):
    """The worker thread runs the engine's check of a picked file and the run, one after the other. A run handed
    over while a check was still going, then the wizard closed: the thread was told to quit, which drops calls
    queued to it, so the run never ran and never ended. The wizard stayed "running", and a wizard opened next
    waited for it for ever."""
    import gpu.streaming.source

    real = gpu.streaming.source.bfl_file_source

    def slow_check(path):  # a big checkpoint's check, still going when the run is handed over
        time.sleep(2)
        return real(path)

    monkeypatch.setattr(gpu.streaming.source, "bfl_file_source", slow_check)
    panel = window.quantize_panel
    panel.open_wizard()
    first = panel.wizard
    first.source_page.use_path(str(_single_file(tmp_path)))  # the check starts on the worker thread
    first.source_page.source.setCurrentIndex(first.source_page.source.findData("demo"))  # then a library model
    first.next()
    first.next()
    first.next()  # the run, queued behind the check once named
    qtbot.waitUntil(lambda: first.run_state.job is not None)
    assert first.run_state.running and first.currentPage() is first.run_page
    answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, [])
    first.let_go.disconnect()  # kept to be read here: the panel deletes a closed wizard once its run ended
    first.close()
    qtbot.waitUntil(lambda: not first.run_state.running, timeout=60000)
    assert "Stopped. Nothing was added." in first.run_page.log.toPlainText()
    qtbot.waitUntil(lambda: not first._thread.thread.isRunning(), timeout=10000)  # and its thread ends


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
    qtbot.waitUntil(lambda: wizard.run_state.out_path is not None)  # named on a thread
    assert wizard.run_state.out_path == existing.with_name("demo-svdquant-int4-r32-2.safetensors")
    wizard.cancel()
    qtbot.waitUntil(lambda: "Stopped" in wizard.run_page.log.toPlainText(), timeout=120000)
    assert existing.read_bytes() == b"the user's own model"
    wizard.close()


# -- single-file checkpoints (ComfyUI / Forge / Civitai: one .safetensors with the transformer only) --------------
def _single_file(tmp_path: Path, name: str = "my-finetune.safetensors", prefix: str = "") -> Path:
    return save_bfl_transformer(DEMO, tmp_path / name, prefix)


def _checked(qtbot, wizard) -> None:
    """Waits for the engine's check of the picked file (on the worker thread)."""
    qtbot.waitUntil(lambda: not wizard.source_state.checking, timeout=60000)


def _pick(qtbot, wizard, path: Path) -> None:
    """``path`` picked as the source (as from the Single file… dialog), and the engine's check of it done."""
    wizard.source_page.use_path(str(path))
    _checked(qtbot, wizard)


def test_a_single_file_quantizes_with_its_base_and_generates(qtbot, window, tmp_path):
    """A ComfyUI all-in-one file: the demo pipeline, the one library model that fits, is preselected as the
    base; the result page shows only the quantized model's images and says why; the model generates."""
    single = _single_file(tmp_path, prefix="model.diffusion_model.")
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.compare_steps = 2
    page = wizard.source_page
    assert not page.base_box.isVisible()  # a library pipeline needs no base
    page.use_path(str(single))
    assert page.base_box.isVisible() and "ComfyUI all-in-one" in page.description.text()
    _checked(qtbot, wizard)
    assert wizard.source_state.base == "demo" and page.base.currentData() == "demo"
    assert not page.problem.isVisible() and not page.base_problem.isVisible()
    assert wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.next()  # -> method
    wizard.method_page.rank.setValue(8)
    wizard.method_page.alpha_points.setValue(QUICK_ALPHA_POINTS)
    wizard.next()  # -> calibration
    wizard.calibration_page.count.setValue(2)
    wizard.calibration_page.steps.setValue(2)
    with qtbot.waitSignal(wizard.run_page.completeChanged, timeout=600000):
        wizard.next()  # -> run
    log = wizard.run_page.log.toPlainText()
    assert wizard.run_state.result_path, log
    assert wizard.run_state.out_path.name == "my-finetune-svdquant-int4-r8.safetensors"
    assert "calibration prompts from demo" in log
    assert read_checkpoint_meta(wizard.run_state.result_path).base_model["path"] == str(DEMO.resolve())
    wizard.next()  # -> result
    assert len(wizard.run_state.comparisons) == 4
    # no made-up 16-bit reference
    assert all(c.original is None and c.psnr is None for c in wizard.run_state.comparisons)
    summary = wizard.result_page.summary.text()
    assert "No comparison with the 16-bit model: my-finetune.safetensors is a single-file checkpoint" in summary
    headers = [wizard.result_page.grid.itemAtPosition(0, c) for c in range(4)]
    assert [h.widget().text() for h in headers if h] == ["<b>Prompt</b>", "<b>Quantized</b>"]
    with qtbot.waitSignal(window.controller.add_ended, timeout=60000):
        wizard.result_page.add_button.click()
    assert wizard.run_state.added_name == "my-finetune-svdquant-int4-r8"
    assert wizard.run_state.added_name in [e.name for e in window.controller.entries]
    wizard.close()

    controller = window.controller  # the model added is the one in use now
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == wizard.run_state.added_name, timeout=60000)
    assert controller.prompt.model == wizard.run_state.added_name
    controller.prompt.prompt = "a blue circle"
    controller.prompt.steps = 2  # that the added model generates, not how well: the demo's 16 steps add nothing
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as blocker:
        controller.generate()
    assert blocker.args[0][0].settings["model"] == wizard.run_state.added_name


def test_a_single_file_needs_a_base_that_fits(qtbot, window, tmp_path):
    single = _single_file(tmp_path)
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    page, state = wizard.source_page, wizard.source_state
    next_button = wizard.button(QWizard.WizardButton.NextButton)
    _pick(qtbot, wizard, single)
    assert next_button.isEnabled()
    page.base.setCurrentIndex(0)  # "Choose the base pipeline…"
    assert state.base == "" and not next_button.isEnabled()
    assert "holds only the transformer: choose the FLUX.1 pipeline it was made for" in page.base_problem.text()
    wizard.next()
    assert wizard.currentPage() is page  # not past the source page, whatever the route
    wrong = tmp_path / "wide-encoders"  # a pipeline whose text encoders are wider than the file takes
    pipeline_copy(DEMO, wrong, joint_attention_dim=4096)
    state.add_base_folder(str(wrong))
    assert page.base.currentData() == str(wrong) and not next_button.isEnabled()
    assert ("my-finetune.safetensors does not fit wide-encoders: joint_attention_dim 128 vs 4096"
            in page.base_problem.text())  # fmt: skip
    state.add_base_folder(str(tmp_path))  # no pipeline at all
    assert "not a diffusers pipeline folder" in page.base_problem.text() and not next_button.isEnabled()
    page.base.setCurrentIndex(page.base.findData("demo"))
    assert not page.base_problem.isVisible() and next_button.isEnabled()
    page.source.setCurrentIndex(page.source.findData("demo"))  # back to a library pipeline: no base needed
    assert not page.base_box.isVisible() and next_button.isEnabled() and wizard.config().base is None
    wizard.close()


def _dev_style_file(tmp_path: Path) -> Path:
    """The demo transformer with a guidance embedding (as FLUX.1-dev has; the demo, like schnell, has none)."""
    width = json.loads((DEMO / "transformer" / "config.json").read_bytes())["num_attention_heads"] * 128
    g = torch.Generator().manual_seed(0)
    guidance = {f"guidance_in.{layer}.{p}": (torch.randn(shape, generator=g) * 0.02).to(torch.bfloat16)
                for layer, fan_in in (("in_layer", 256), ("out_layer", width))
                for p, shape in (("weight", (width, fan_in)), ("bias", (width,)))}  # fmt: skip
    return save_bfl_transformer(DEMO, tmp_path / "flux1-dev-finetune.safetensors", extra=guidance)


def _dev_style_base(tmp_path: Path) -> Path:
    """The demo pipeline, its transformer config saying it has a guidance embedding (FLUX.1-dev style)."""
    return pipeline_copy(DEMO, tmp_path / "FLUX.1-dev", guidance_embeds=True)


def test_a_base_of_the_other_flux_variant_is_warned_about_not_refused(qtbot, window, tmp_path):
    """A FLUX.1-dev-style file with a schnell-style base (or the reverse) was accepted without a word: the base's
    scheduler and generation settings shape the calibration trajectories, so the file is calibrated on the other
    variant's. A warning naming both and what it costs; Next stays enabled; a matching base is preselected."""
    dev_file, dev_base = _dev_style_file(tmp_path), _dev_style_base(tmp_path)
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    page, state = wizard.source_page, wizard.source_state
    next_button = wizard.button(QWizard.WizardButton.NextButton)
    _pick(qtbot, wizard, dev_file)
    assert "with guidance (FLUX.1-dev style)" in page.description.text()
    assert state.base == "demo"  # the one library pipeline that fits: schnell-style
    warning = page.base_warning.text()
    assert page.base_warning.isVisible(), "a dev-style file with a schnell-style base passed without a word"
    assert ("flux1-dev-finetune.safetensors is a FLUX.1-dev-style model (with a guidance embedding), but demo is "
            "a FLUX.1-schnell-style pipeline") in warning  # fmt: skip
    assert "(16 steps, guidance 5.0) drive the calibration" in warning  # the demo's own nibble.json
    assert "calibrated on FLUX.1-schnell-like trajectories" in warning and "Choose a FLUX.1-dev pipeline" in warning
    assert not page.base_problem.isVisible() and next_button.isEnabled()  # a warning, not a block
    state.add_base_folder(str(dev_base))  # the matching base: nothing to warn about
    assert state.base == str(dev_base) and not page.base_warning.isVisible() and next_button.isEnabled()
    _pick(qtbot, wizard, dev_file)  # picked again: of the two that fit, the matching one is preselected
    assert state.base == str(dev_base) and not page.base_warning.isVisible()

    schnell_file = _single_file(tmp_path, "schnell-finetune.safetensors")  # the reverse
    _pick(qtbot, wizard, schnell_file)
    assert state.base == "demo" and not page.base_warning.isVisible()  # the matching one of the two
    page.base.setCurrentIndex(page.base.findData(str(dev_base)))
    warning = page.base_warning.text()
    assert ("schnell-finetune.safetensors is a FLUX.1-schnell-style model (without a guidance embedding), but "
            "FLUX.1-dev is a FLUX.1-dev-style pipeline") in warning  # fmt: skip
    assert "(16 steps, guidance 5.0) drive the calibration" in warning  # the copy's nibble.json (the demo's)
    assert page.base_warning.isVisible() and next_button.isEnabled()
    page.source.setCurrentIndex(page.source.findData("demo"))  # a library pipeline needs no base: no warning
    assert state.base_warning == "" and not page.base_box.isVisible()
    wizard.close()


def test_files_that_are_no_flux_checkpoint_are_named_on_the_source_page(qtbot, window, tmp_path):
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    page = wizard.source_page
    next_button = wizard.button(QWizard.WizardButton.NextButton)
    sdxl = tmp_path / "juggernaut.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.ones(2)}, str(sdxl))
    page.use_path(str(sdxl))
    assert "juggernaut.safetensors: a Stable Diffusion 1.x/2.x or SDXL checkpoint (UNet), not FLUX.1" \
        in page.problem.text()  # fmt: skip
    assert page.problem.isVisible() and not page.base_box.isVisible() and not next_button.isEnabled()
    page.use_path(str(RESOURCES / "demo-int4.safetensors"))
    assert "already a quantized (SVDQ) model" in page.problem.text() and not next_button.isEnabled()
    # Complete by its header, yet a tensor short: the engine's own check (on the worker thread) names it.
    single = _single_file(tmp_path, "cut.safetensors")
    tensors = load_file(single)
    del tensors["double_blocks.1.img_attn.proj.weight"]
    save_file(tensors, str(single))
    page.use_path(str(single))
    assert not next_button.isEnabled()  # while the engine checks
    _checked(qtbot, wizard)
    assert "the transformer lacks 1 tensors (transformer_blocks.1.attn.to_out.0.weight)" in page.problem.text()
    assert not next_button.isEnabled()
    # Gone when picked again from the list: said as missing, not as "not a diffusers pipeline folder".
    single.unlink()
    page.source.setCurrentIndex(page.source.findData("demo"))
    page.source.setCurrentIndex(page.source.findData(str(single)))
    assert page.problem.text() == (f"{single}: no such file or folder (it was moved, renamed or deleted since it "
                                   "was picked: pick it again where it is now)")  # fmt: skip
    assert not next_button.isEnabled()
    wizard.close()


def test_a_failed_run_shows_the_engines_words_on_the_run_page(qtbot, window, tmp_path):
    single = _single_file(tmp_path)
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    _pick(qtbot, wizard, single)
    wizard.next()
    wizard.next()
    error = wizard.run_page.error
    tensors = load_file(single)
    single.unlink()  # gone between picking it and the run (a USB stick pulled out)
    seen: list[str] = []
    accept_dialog_later(seen)
    with qtbot.waitSignal(wizard.run_page.completeChanged, timeout=120000):
        wizard.next()
    assert error.isVisible() and error.text().startswith("The run failed: my-finetune.safetensors: cannot read")
    qtbot.waitUntil(lambda: len(seen) == 1)  # the dialog as well, for a user who looks away from the log
    assert "my-finetune.safetensors: cannot read the file" in seen[0]
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
    wizard.back()  # to the calibration page: the run page's error is for the run that failed
    del tensors["single_blocks.3.linear2.weight"]  # back, but a tensor short (replaced by an incomplete copy)
    save_file(tensors, str(single))
    accept_dialog_later(seen)
    with qtbot.waitSignal(wizard.run_page.completeChanged, timeout=120000):
        wizard.next()
    assert "the transformer lacks 1 tensors (single_transformer_blocks.3.proj_out.weight)" in error.text()
    qtbot.waitUntil(lambda: len(seen) == 2)
    assert "The file is incomplete or another model." in seen[1]  # the dialog shows hints as sentences
    wizard.close()


def test_sources_of_one_name_are_told_apart_and_the_librarys_folder_is_its_entry(qtbot, window, tmp_path):
    """The library's demo, a copy of it picked elsewhere and the library's own folder picked by path were listed as
    "demo", "demo", "demo", with nothing that said which was chosen; the library's folder was offered again, once
    more with a trailing separator. (R51)"""
    other = tmp_path / "elsewhere" / "demo"
    shutil.copytree(DEMO, other)
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    combo, state = wizard.source_page.source, wizard.source_state
    wizard.source_page.use_path(str(other))
    assert state.source == str(other) and state.ready
    for spelling in (str(DEMO), str(DEMO) + os.sep, str(other) + os.sep):
        wizard.source_page.use_path(spelling)  # the library's folder is its entry; the copy is offered once
    assert state.source == str(other) and combo.currentData() == str(other)
    shown = [(combo.itemText(i), combo.itemData(i), combo.itemData(i, Qt.ItemDataRole.ToolTipRole))
             for i in range(combo.count())]  # fmt: skip
    assert shown == [("demo", "demo", str(DEMO)), (f"demo — {other.parent}", str(other), str(other))], shown
    wizard.source_page.use_path(str(DEMO))
    assert state.source == "demo" and combo.currentData() == "demo" and state.ready
    wizard.close()


def test_output_names_for_sources_without_a_name(tmp_path):
    """A drive root or / as the source folder named the output "-svdquant-int4-r32.safetensors"."""
    assert output_stem("/") == "model"
    assert output_stem("D:\\") == "D"  # on Linux a Windows root is one odd name; still a usable one
    (tmp_path / "model_index.json").write_text(json.dumps({"_name_or_path": "black-forest-labs/FLUX.1-dev"}))
    assert output_stem("/", tmp_path) == "FLUX.1-dev"
    assert output_stem("/models/.hidden") == "hidden"  # never a hidden file
    assert output_stem("/x/flux1-dev fp16 (Civitai).safetensors") == "flux1-dev_fp16_Civitai"
    assert len(output_stem("/x/" + "a" * 300 + ".safetensors")) == 80
    # Letters of every script are kept: these were "model" (and the next one "model-…-2"), "Mod_le_r_aliste" (R51)
    assert output_stem("/models/流量模型") == "流量模型" and output_stem("/m/Фото-модель") == "Фото-модель"
    assert output_stem("/m/Modèle réaliste.safetensors") == "Modèle_réaliste"
    assert output_stem("/m/Mode\u0300le") == "Modèle"  # as macOS gives it: e and a combining accent
    # Scripts that write vowels as combining marks: "ह_न_द", "தம_ழ" (R52)
    assert output_stem("/models/हिन्दी") == "हिन्दी" and output_stem("/models/தமிழ்") == "தமிழ்"
    assert output_stem("/m/a<b>:c|d?e*f\"g") == "a_b_c_d_e_f_g"  # what Windows refuses in a name
    # Windows devices whatever follows the dot ("nul.x-svdquant-int4-r32.safetensors" wrote nothing there)
    assert [output_stem(f"/m/{name}") for name in ("nul.x", "CON", "com1.safetensors", "lpt9.v2.safetensors")] == [
        "nul_.x", "CON_", "com1_", "lpt9_.v2"]
    assert output_stem("/m/console") == "console" and output_stem("/m/nul_") == "nul_"
    long = output_stem("/m/" + "模" * 100)
    assert long == "模" * 53 and len(long.encode()) <= 160  # Linux allows 255 bytes per name, the method's after it
    # a Hugging Face cache snapshot picked with "Other folder…": the library's name, not its commit's
    assert output_stem("/hub/models--org--Flux/snapshots/0ef5ff1234") == "Flux"


def test_a_run_stopped_under_the_name_an_earlier_version_gave_its_source_is_resumed(qtbot, window, tmp_path,
                                                                                    monkeypatch):  # fmt: skip
    """Before letters of every script were kept, "Modèle" was named "Mod_le": a run of it stopped then was listed
    by Unfinished runs… as resumed by these settings, yet the next run started over under the new name beside it,
    its finished blocks (hours on FLUX.1) left unused. (R52)"""
    import json

    from app.quantize_outputs import resume_key, unfinished_runs
    from tests.app.gui import hold_run_at, small_run

    source = tmp_path / "Modèle"
    shutil.copytree(DEMO, source)
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.source_page.use_path(str(source))
    small_run(wizard)
    key = resume_key(str(source), wizard.config())
    assert key is not None
    old = wizard.models_folder() / "Mod_le-svdquant-int4-r8.safetensors"  # the name an earlier version gave
    parts = old.with_name(old.name + ".parts")
    parts.mkdir(parents=True)
    (parts / "manifest.json").write_text(json.dumps({"key": key.key, "settings": key.settings, "done": {}}))
    assert [run.resumes for run in unfinished_runs(wizard.models_folder(), str(source), wizard.config())] == [True]
    answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, [])
    reached, release = hold_run_at(wizard, "stage", "")
    wizard.next()  # Quantize
    try:
        qtbot.waitUntil(reached.is_set, timeout=60000)
        assert wizard.run_state.out_path == old  # was: Modèle-svdquant-int4-r8.safetensors, started over
    finally:
        wizard.cancel()
        release.set()
    qtbot.waitUntil(lambda: not wizard.run_state.running, timeout=60000)
    wizard.close()


def test_the_button_that_starts_the_run_says_quantize(qtbot, window):
    """On the calibration page "Next >" started the long quantization without saying so."""
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    next_button = wizard.button(QWizard.WizardButton.NextButton)
    plain = next_button.text()
    assert plain != "Quantize"
    wizard.next()  # -> method
    assert next_button.text() == plain
    wizard.next()  # -> calibration and memory: Next starts the run
    assert wizard.currentPage() is wizard.calibration_page and next_button.text() == "Quantize"
    wizard.back()
    assert next_button.text() == plain
    wizard.close()


def test_the_rank_and_precision_are_greyed_for_methods_that_ignore_them(qtbot):
    """Round-to-nearest, SmoothQuant and NF4 ignore the rank (layer_spec gives their layers rank 0), yet the field
    stayed enabled, as if it changed something. NF4 ignores the precision too (its weights are NF4), which stayed
    enabled and went into the file's name: "demo-nf4-int8" and "demo-nf4-int4" were the same file."""
    from app.quantize_outputs import output_name
    from app.widgets.quantize_method_page import MethodPage
    from gpu.modules.layer_spec import spec_for

    page = MethodPage()
    qtbot.addWidget(page)
    enabled = {}
    for index in [*range(1, page.method.count()), 0]:  # index 0 last: set first, it emitted no change
        page.method.setCurrentIndex(index)
        method = page.method.currentData()
        enabled[method] = page.rank.isEnabled()
        assert enabled[method] == (spec_for(method, "int4", 8, "w4a4").rank > 0), method  # as the engine uses it
        precision = page.precision.isEnabled()
        assert precision == any(spec_for(method, "int4", 8, role) != spec_for(method, "int8", 8, role)
                                for role in ("w4a4", "w4a16")), method  # fmt: skip
        # and the file's name says a rank and a precision only where there is one ("demo-naive-int4-r32" had none)
        name = output_name("demo", SimpleNamespace(method=method, precision="int4", rank=32))
        assert name == f"demo-{method}" + ("-int4" if precision else "") + ("-r32" if enabled[method] else ""), name
    assert enabled == {"svdquant": True, "naive": False, "smoothquant": False, "svd": True, "lorc": True,
                       "nf4": False}


def test_the_rank_starts_at_1_and_the_gpu_budget_above_0(qtbot):
    """Rank 0 made an SVDQuant file without its branch, the SmoothQuant baseline's model under another name (SVD and
    LoRC: round-to-nearest's), which the engine now refuses: the field starts at 1 and its tooltip names the
    baselines to pick instead. A GPU budget of 0 GiB was taken silently."""
    from app.widgets.quantize_calibration_page import CalibrationPage
    from app.widgets.quantize_method_page import MethodPage

    method, calibration = MethodPage(), CalibrationPage()
    qtbot.addWidget(method)
    qtbot.addWidget(calibration)
    method.rank.setValue(0)
    assert method.rank.value() == 1 and method.rank.text() == "1"
    assert "pick the SmoothQuant baseline" in method.rank.toolTip()
    method.rank.setValue(8)
    assert method.rank.text() == "8"
    calibration.gpu_gib.setValue(0.0)
    assert calibration.gpu_gib.value() > 0


def test_the_rank_goes_no_further_than_the_sources_layers_take(qtbot, window, tmp_path):
    """The rank field went to 256 on every source, while the engine refuses a branch larger than a layer's own
    weight (129 and up on the demo's 256-wide layers): the run failed once started. The field is bounded by the
    engine's limit for the chosen source, library pipeline or single file, and the run takes the largest rank it
    allows; a source whose sizes are not known leaves the engine's limit for any model, 1024."""
    from gpu.errors import BadRequestError
    from gpu.quantizer import QuantizeConfig
    from gpu.streaming.run_inputs import resume_key

    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    rank = wizard.method_page.rank
    assert wizard.source_page.value() == "demo"
    rank.setValue(200)
    assert rank.maximum() == rank.value() == 128 and "at most 128" in rank.toolTip()
    assert resume_key("demo", QuantizeConfig(rank=128)).settings
    with pytest.raises(BadRequestError, match="rank 129 would make") as refused:
        resume_key("demo", QuantizeConfig(rank=129))
    assert refused.value.hint == "use a rank of at most 128"
    nothing = tmp_path / "nothing.safetensors"
    nothing.write_bytes(b"not a model")
    wizard.source_page.use_path(str(nothing))
    assert wizard.source_page.problem.isVisible()
    rank.setValue(200)
    assert rank.maximum() == 1024 and rank.value() == 200 and "at most" not in rank.toolTip()
    _pick(qtbot, wizard, _single_file(tmp_path))
    assert not wizard.source_page.problem.isVisible()
    assert rank.maximum() == rank.value() == 128
    wizard.source_page.use_path(str(nothing))  # the 200 set for it comes back with it (it stayed at 128)
    assert rank.maximum() == 1024 and rank.value() == 200
    wizard.close()


def test_a_run_that_cannot_write_into_the_models_folder_names_it_and_the_real_remedy(qtbot, window, monkeypatch):
    """The engine's hint for a write error ("choose another --out", "choose another folder") and the run page's
    "Go back to change the settings" sent the user to a setting the wizard does not have: it always writes into
    the app's models folder. First, a run whose device lookup fails (a broken CUDA install): the error escaped the
    worker's slot, the page stayed "running" and every wizard opened later waited for it; it now fails and the
    next run starts."""
    import gpu.generation.pipeline_loader
    import gpu.quantizer  # noqa: F401 - before the patch: the quantizer binds default_device as it imports
    from app.quantize_outputs import output_name
    from gpu.output_lock import lock_path

    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.next()
    wizard.next()
    seen: list[str] = []

    def broken_cuda():
        raise OSError("Error loading caffe2_nvrtc.dll or one of its dependencies")

    monkeypatch.setattr(gpu.generation.pipeline_loader, "default_device", broken_cuda)
    accept_dialog_later(seen)
    with qtbot.waitSignal(wizard.run_page.completeChanged, timeout=60000):
        wizard.next()
    monkeypatch.undo()
    assert not wizard.run_state.running and "Failed: " in wizard.run_page.log.toPlainText()
    qtbot.waitUntil(lambda: len(seen) == 1)
    assert "caffe2_nvrtc.dll" in seen[0]
    wizard.back()

    models = window.controller.data.quantized
    out = models / f"{output_name('demo', wizard.config())}.safetensors"
    # A folder where the run keeps its lock file (a file or folder at OUT.parts only makes it take another name).
    lock_path(out).mkdir(parents=True)
    accept_dialog_later(seen)
    with qtbot.waitSignal(wizard.run_page.completeChanged, timeout=120000):
        wizard.next()
    text = wizard.run_page.error.text()
    assert f"cannot write {out}" in text and f"the app's models folder, {models}" in text
    assert "NIBBLE_DATA_DIR" in text and "--out" not in text and "Go back" not in text
    qtbot.waitUntil(lambda: len(seen) == 2)
    assert "NIBBLE_DATA_DIR" in seen[1] and "--out" not in seen[1]
    wizard.close()


def test_a_run_refused_because_another_run_writes_its_file_says_to_wait(tmp_path):
    """Every output error of a wizard run got the models-folder remedy ("move aside what is in the way, or start
    with another data folder"), also another run's lock on the file (a command-line quantize writing it), where
    the remedy is to wait."""
    from app.quantize_worker import run_error
    from gpu.output_lock import output_lock

    target = tmp_path / "models" / "demo-svdquant-int4-r32.safetensors"
    target.parent.mkdir()
    with output_lock(target, "quantize run"):
        with pytest.raises(Exception) as busy, output_lock(target, "quantize run"):
            pass
    error, setting_fixes_it = run_error(busy.value, target.parent)
    assert "is being written by another quantize run" in error.message and not setting_fixes_it
    assert error.hint.startswith("Wait for that run to finish") and "data folder" not in error.hint
