"""Seeds over the full 0..2^63-1 range the engine accepts, and restored values kept inside the panel's limits.

A PNG made with ``main.py generate --seed 3000000000`` once left the app unable to start: the seed box (a
QSpinBox, 32-bit) could not show it, the state kept it anyway and settings.json carried it to the next start.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QFocusEvent
from PySide6.QtWidgets import QApplication

from app.generation_state import GUIDANCE_MAX, SEED_MAX, PromptState
from app.settings import LastJob
from app.widgets.integer_edit import IntegerEdit
from gpu.generation.png_metadata import NIBBLE_KEY, write_png
from tests.app.gui import open_window, restored_from

BIG_SEED = 3_000_000_000  # above a QSpinBox's 2^31-1


@pytest.mark.parametrize("bad", [2**70, SEED_MAX + 1, -5, 1e400, float("nan"), "abc", "12abc", 3.5, True, [1], {}])
def test_a_seed_outside_the_range_is_ignored(qapp, bad):
    state = PromptState()
    state.seed = 42
    applied = state.apply_settings({"seed": bad, "prompt": "still restored"})
    assert state.seed == 42 and "seed" not in applied and not state.seed_locked
    assert state.prompt == "still restored"


def test_restored_numbers_are_fitted_to_the_panel(qapp):
    state = PromptState()
    assert state.apply_settings({"seed": str(SEED_MAX)}) == ["seed"] and state.seed == SEED_MAX
    state.apply_settings({"seed": 7.0, "height": 7, "width": 99999, "steps": 1000, "guidance": -3})
    assert (state.seed, state.height, state.width, state.steps, state.guidance) == (7, 64, 2048, 150, 0.0)
    state.apply_settings({"steps": 0, "guidance": 1e300, "width": "210", "height": 2**80})
    assert (state.steps, state.guidance, state.width, state.height) == (1, GUIDANCE_MAX, 208, 2048)
    state.apply_settings({"steps": "many", "guidance": float("inf"), "width": None, "height": [3]})
    assert (state.steps, state.guidance, state.width, state.height) == (1, GUIDANCE_MAX, 208, 2048)  # all skipped
    assert state.apply_settings("not a dict") == []  # type: ignore[arg-type]


def test_last_job_values_outside_the_panel_are_dropped_or_clamped(qapp):
    state = PromptState()
    state.load_last_job(LastJob(seed=2**70, steps=9999, guidance=1e300, width=7, height=5000, batch_count=99))
    assert (state.seed, state.steps, state.guidance, state.width, state.height, state.batch_count) == (
        0, 150, GUIDANCE_MAX, 64, 2048, 16)
    state.load_last_job(LastJob(seed=BIG_SEED, batch_count=-3, steps=0, width=0))
    assert (state.seed, state.batch_count, state.steps, state.width) == (BIG_SEED, 1, 150, 64)  # 0: kept


def test_integer_edit_holds_64_bit_values_exactly(qtbot):
    edit = IntegerEdit(0, SEED_MAX)
    qtbot.addWidget(edit)
    values = []
    edit.valueChanged.connect(values.append)
    edit.setValue(SEED_MAX)
    assert edit.text() == str(SEED_MAX) and edit.value() == SEED_MAX and values == [SEED_MAX]
    edit.clear()
    qtbot.keyClicks(edit, "9" * 25)  # the digit that would pass the maximum is refused
    assert edit.value() == int("9" * 18) and edit.text() == "9" * 18
    edit.clear()
    qtbot.keyClicks(edit, "-1x2")  # no sign (the minimum is 0), no letters
    assert edit.text() == "12" and edit.value() == 12
    edit.clear()  # half-typed: the value in use stays, and comes back when the field is left
    assert edit.value() == 12
    QApplication.sendEvent(edit, QFocusEvent(QEvent.Type.FocusOut, Qt.FocusReason.TabFocusReason))
    assert edit.text() == "12"
    edit.setValue(-4)
    assert edit.value() == 0


def _png(path, **settings):
    write_png(path, Image.new("RGB", (16, 16)), {"prompt": "from the command line", "model": "demo", **settings})
    return path


def test_restore_a_64_bit_seed_and_start_again(qtbot, tmp_path, data_root):
    window = open_window(qtbot, data_root)
    panel, state = window.prompt_panel, window.controller.prompt
    assert restored_from(window.controller, [_png(tmp_path / "cli.png", seed=BIG_SEED, steps=3, height=7)])
    assert state.seed == BIG_SEED and panel.seed_edit.text() == str(BIG_SEED) and panel.seed_edit.value() == BIG_SEED
    assert state.seed_locked and panel.seed_lock.isChecked()
    assert state.height == 64 == panel.height_spin.value()  # 7 is below the panel's minimum
    assert state.steps == 3 == panel.steps_spin.value()
    window.close()
    assert json.loads((data_root / "settings.json").read_text())["last_job"]["seed"] == BIG_SEED

    again = open_window(qtbot, data_root)  # used to abort here, in the seed box's setValue
    assert again.controller.prompt.seed == BIG_SEED == again.prompt_panel.seed_edit.value()
    # the engine takes it too: the image is made with exactly that seed
    again.controller.prompt.prompt = "big seed"
    with qtbot.waitSignal(again.controller.job_finished, timeout=120000) as blocker:
        again.controller.generate()
    assert blocker.args[0][0].settings["seed"] == BIG_SEED


def test_bad_seeds_in_a_png_are_ignored_without_errors(qtbot, tmp_path, window):
    state, panel = window.controller.prompt, window.prompt_panel
    state.seed = 11
    for index, seed in enumerate(["1e400", str(2**70), "-5", '"abc"']):
        path = tmp_path / f"bad{index}.png"
        info = PngInfo()  # hand-written chunk: JSON numbers that no Python int or float holds exactly
        info.add_itxt(NIBBLE_KEY, f'{{"prompt": "bad seed {index}", "seed": {seed}, "height": 7}}')
        Image.new("RGB", (8, 8)).save(path, pnginfo=info)
        assert restored_from(window.controller, [path])
        assert state.prompt == f"bad seed {index}" and state.seed == 11 and panel.seed_edit.value() == 11
        assert state.height == 64 == panel.height_spin.value()


def test_a_hand_edited_settings_file_starts(qtbot, data_root):
    last_job = {"seed": 2**70, "steps": 10**12, "guidance": 1e300, "width": 7, "height": 2**40, "batch_count": 999,
                "prompt": "hand edited", "model": "demo"}
    (data_root / "settings.json").write_text(json.dumps({"version": 2, "last_job": last_job}))
    window = open_window(qtbot, data_root)  # open_window then sets the test size/steps/batch itself
    state = window.controller.prompt
    assert state.prompt == "hand edited" and state.seed == 0 == window.prompt_panel.seed_edit.value()
    assert state.guidance == GUIDANCE_MAX == window.prompt_panel.guidance_spin.value()


def test_a_typed_seed_is_the_one_the_next_job_uses(qtbot, window):
    """Typed with Lock unticked, the seed was replaced by a random one at Generate, without a word."""
    state, panel = window.controller.prompt, window.prompt_panel
    state.prompt = "a typed seed"
    assert not state.seed_locked
    window.activateWindow()
    panel.seed_edit.setFocus()
    panel.seed_edit.selectAll()
    qtbot.keyClick(panel.seed_edit, Qt.Key.Key_Delete)  # cleared: no seed chosen, the old one comes back on Tab
    assert not state.seed_locked
    qtbot.keyClicks(panel.seed_edit, str(BIG_SEED + 7))
    qtbot.keyClick(panel.seed_edit, Qt.Key.Key_Tab)
    assert panel.seed_lock.isChecked()
    with qtbot.waitSignal(window.controller.job_finished, timeout=120000) as blocker:
        qtbot.mouseClick(panel.generate_button, Qt.MouseButton.LeftButton)
    assert blocker.args[0][0].settings["seed"] == BIG_SEED + 7 == panel.seed_edit.value() == state.seed
    panel.seed_random.click()  # a new random seed (the lock stays: every job uses that one)
    assert state.seed != BIG_SEED + 7 and state.seed_locked


def test_a_seed_pasted_with_white_space_around_it_is_the_seed_the_next_job_uses(qtbot, window):
    """Copied from a web page or a line of text, a seed comes with a space or a line end: Ctrl+V in the seed field
    did nothing at all (the old seed stayed, not a word), while Steps or Width take " 12 " or "12\\n" as 12."""
    controller, panel = window.controller, window.prompt_panel
    state = controller.prompt
    state.prompt = "a seed pasted"
    with qtbot.waitActive(window):
        window.activateWindow()
    panel.seed_edit.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is panel.seed_edit)
    # A no-break space or a tab too: a web page's text, a table's cell.
    for pasted, seed in ((" 4242 ", 4242), ("\u00a0\t77 ", 77), ("3000000007\n", 3_000_000_007)):
        QApplication.clipboard().setText(pasted)
        panel.seed_edit.selectAll()
        qtbot.keyClick(panel.seed_edit, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
        assert panel.seed_edit.value() == seed == state.seed, repr(pasted)
        assert panel.seed_edit.text() == str(seed)  # the number alone, as a spin box shows it
        assert state.seed_locked  # a seed typed in (or pasted) is the one the next job uses
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as done:
        controller.generate()
    assert done.args[0][0].settings["seed"] == 3_000_000_007


def test_a_seed_whose_batch_runs_past_the_largest_seed_is_refused_at_generate(qtbot, window):
    """Seed 9223372036854775807 (the field's largest, which it says it takes) with Images 2: Generate queued the job,
    and the engine refused it only when its turn came, behind the jobs queued before it (minutes later, the user
    away): "seed … with 2 images runs past 2^63-1". Every other field problem is refused at Generate, naming the
    field and what it takes, before anything is queued."""
    controller = window.controller
    state = controller.prompt
    errors: list = []
    controller.error.connect(errors.append)
    state.prompt = "the last seeds"
    state.seed, state.seed_locked, state.batch_count = SEED_MAX, True, 2
    job = controller.generate()
    assert job is None and controller.queue.idle, "queued, to fail when its turn comes"
    assert len(errors) == 1 and errors[0].kind == "user"
    said = f"{errors[0].message} {errors[0].hint}"
    assert "Seed" in said and "Images" in said and str(SEED_MAX - 1) in said, said
    # The largest seed that works for 2 images does: its images take the last two seeds.
    state.seed = SEED_MAX - 1
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as done:
        assert controller.generate() is not None
    assert [image.settings["seed"] for image in done.args[0]] == [SEED_MAX - 1, SEED_MAX] and len(errors) == 1
