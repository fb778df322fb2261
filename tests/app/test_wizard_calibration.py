"""The Quantize wizard while the calibration prompts are encoded: the progress bar counts them, and Cancel stops the
run after the prompt under way (it went on through every prompt, minutes with T5-XXL, the bar idle)."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from tests.app.gui import answer_stop, hold_run_at, small_run
from tests.bfl_files import save_bfl_transformer


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
    with qtbot.waitSignal(wizard.run_state.run_ended, timeout=60000):
        wizard.cancel()
        release.set()
    log = wizard.run_page.log.toPlainText()
    assert "encoded 4/40 prompts" in log and "encoded 8/40" not in log  # stopped at the next prompt
    assert "recording calibration samples" not in log and "Stopped." in log
    wizard.close()


def test_the_calibration_page_shows_the_prompts_and_steps_a_run_uses(qtbot, window, tmp_path):
    """The page offered "Built-in everyday prompts", which did nothing (the demo model calibrates on its own 256),
    a Prompts field up to 512 whatever the set held (a run used fewer, said nowhere), and "model default" steps
    that were at most 8 of them. It shows the source's own set and its size, caps the field to it (the count asked
    for comes back with a source that has more), and the default steps in numbers."""
    import json
    import shutil

    from gpu.paths import resources_dir

    demo = resources_dir() / "models" / "demo"
    plain = tmp_path / "plain"  # the demo without a set of its own: the built-in prompts
    shutil.copytree(demo, plain)
    defaults = json.loads((plain / "nibble.json").read_text())
    del defaults["calibration_prompts"]
    (plain / "nibble.json").write_text(json.dumps({**defaults, "steps": 4}))
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    page = wizard.calibration_page
    assert page.prompt_set.text() == "The model's own calibration prompts (256)"
    assert page.count.maximum() == 256 and page.steps.specialValueText() == "default (8)"
    assert "model's own 16 steps, at most 8" in page.steps.toolTip()
    page.count.setValue(200)
    wizard.source_page.use_path(str(plain))
    assert page.prompt_set.text() == "The built-in everyday prompts (145)"
    assert page.count.maximum() == 145 and page.count.value() == 145 == wizard.config().calib_prompts
    assert page.steps.specialValueText() == "default (4)"  # the model's own 4, under 8
    wizard.source_page.use_path(str(demo))
    assert page.count.value() == 200  # asked for, and the demo's set has them
    wizard.close()


def test_what_a_run_would_stop_on_in_the_sources_calibration_is_named_on_the_source_page(qtbot, window, tmp_path):
    """A pipeline folder whose nibble.json is damaged, or whose calibration prompts file holds no prompt, was "ready"
    on the source page; the calibration page then said it calibrates with the built-in prompts and FLUX.1-dev's
    steps (none of which the run would use), and the run failed once named and started. (R51)"""
    import shutil

    from gpu.paths import resources_dir

    demo = resources_dir() / "models" / "demo"
    damaged, empty = tmp_path / "damaged", tmp_path / "empty"
    for folder in (damaged, empty):
        shutil.copytree(demo, folder)
    (damaged / "nibble.json").write_text("{oops")
    (empty / "calibration_prompts.txt").write_text("# none yet\n\n")
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    state = wizard.source_state
    wizard.source_page.use_path(str(damaged))
    assert not state.ready and "nibble.json" in state.problem and state.calibration is None, state.problem
    next_button = wizard.button(wizard.WizardButton.NextButton)
    assert "nibble.json" in wizard.source_page.problem.text() and not next_button.isEnabled()
    wizard.source_page.use_path(str(empty))
    assert not state.ready and "holds no prompts" in state.problem, state.problem
    wizard.source_page.use_path(str(demo))  # a good one: ready again, its own set shown
    assert state.ready and state.problem == "" and state.calibration.available == 256
    # A single file's base calibrates it: the same is said of the base
    single = save_bfl_transformer(demo, tmp_path / "my-finetune.safetensors")
    wizard.source_page.use_path(str(single))
    qtbot.waitUntil(lambda: not state.checking, timeout=60000)
    assert state.ready and state.base == "demo"
    state.add_base_folder(str(damaged))
    assert not state.ready and "nibble.json" in wizard.source_page.base_problem.text() and state.calibration is None
    wizard.close()


def test_the_calibration_prompts_are_read_once_per_choice(qtbot, window, tmp_path, monkeypatch):
    """Each choice of a source (or of a single file's base) read its pipeline's calibration prompts file two to five
    times on the window's thread: once to find what a run would stop on in it, again to show the set on the
    calibration page, and again at each of the source's properties that changed (a file of thousands of prompts on
    a network drive, read over and over). It is read once per choice, and the page shows what that read found."""
    import json
    import shutil
    from pathlib import Path

    from gpu.paths import resources_dir

    demo = resources_dir() / "models" / "demo"
    plain = tmp_path / "plain"  # the demo without a set of its own: the built-in prompts
    shutil.copytree(demo, plain)
    defaults = json.loads((plain / "nibble.json").read_text())
    del defaults["calibration_prompts"]
    (plain / "nibble.json").write_text(json.dumps(defaults))
    single = save_bfl_transformer(demo, tmp_path / "my-finetune.safetensors")
    reads: list[str] = []
    read_text = Path.read_text

    def counted(path: Path, *args, **kwargs) -> str:
        if path.name == "calibration_prompts.txt":
            reads.append(str(path))
        return read_text(path, *args, **kwargs)

    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    state, page = wizard.source_state, wizard.calibration_page
    monkeypatch.setattr(Path, "read_text", counted)
    built_in, own = str(resources_dir() / "calibration_prompts.txt"), str(demo / "calibration_prompts.txt")
    for path, prompts_file, available in ((plain, built_in, 145), (demo, own, 256), (single, own, 256)):
        reads.clear()
        wizard.source_page.use_path(str(path))
        assert reads == [prompts_file], path
        assert state.calibration.available == available and page.count.maximum() == available
    qtbot.waitUntil(lambda: not state.checking, timeout=60000)
    assert state.ready and state.base == "demo"
    reads.clear()
    state.add_base_folder(str(plain))  # another base for the file: its set, read once
    assert reads == [built_in] and state.calibration.available == 145
    wizard.close()
