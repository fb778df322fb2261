"""The prompt panel shows what a job runs with: the size it makes (on the latent grid), the model's defaults when
a model is picked and Generate is clicked at once, and, at a first launch, the model's defaults though the
settings were saved before the engine was ready (or the values a job queued meanwhile used)."""

from __future__ import annotations

import json
import shutil
import threading

import pytest
from PySide6.QtCore import Qt

from app.data_dir import resolve_data_dir
from app.generation_state import SEED_MAX, PromptState, snap16
from tests.app.gui import TEST_STEPS, engine_held_at, window_without_engine


@pytest.fixture
def held_start(monkeypatch) -> threading.Event:
    """The engine's start held, its service made, until the event is set: a slow start (in the packaged app
    torch takes seconds to import), during which the window is up and the user may act."""
    import gpu.system_info

    go = threading.Event()
    detect = gpu.system_info.detect_gpu

    def held():  # on the engine thread, inside its start-up
        assert go.wait(60)
        return detect()

    monkeypatch.setattr(gpu.system_info, "detect_gpu", held)
    yield go
    go.set()  # before the window closes (its engine thread must not be held then)


def _defaults(model) -> tuple[int, int, int, float]:
    d = json.loads((model / "nibble.json").read_text())
    return d["width"], d["height"], d["steps"], d["guidance"]


def _panel(state: PromptState) -> tuple[int, int, int, float]:
    return state.width, state.height, state.steps, state.guidance


def test_a_side_off_the_grid_rounds_half_up_and_the_size_fields_snap_and_step_on_it(qtbot, data_root):
    """100 x 72 made a 96 x 64 image (round half to even) while the fields kept 100 x 72, and the arrows went
    100 -> 116. Now a side typed snaps (half up) when the field is left, and the arrows step from multiple to
    multiple."""
    assert [snap16(v) for v in (72, 88, 100, 104, 8)] == [80, 96, 96, 112, 16]
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    state, spin = window.controller.prompt, window.prompt_panel.width_spin
    spin.setFocus()
    for typed, keys, shown in (("100", [Qt.Key.Key_Up], 112), ("100", [Qt.Key.Key_Down], 96),
                               ("72", [Qt.Key.Key_Return], 80), ("104", [Qt.Key.Key_Up, Qt.Key.Key_Up], 128)):
        spin.selectAll()
        qtbot.keyClicks(spin, typed)
        for key in keys:
            qtbot.keyClick(spin, key)
        assert (spin.value(), state.width) == (shown, shown), typed
    spin.setValue(96)
    qtbot.keyClick(spin, Qt.Key.Key_Up)
    assert spin.value() == 112


def test_a_first_launch_takes_the_models_defaults_though_the_settings_were_saved_before_the_engine_was_ready(
        qtbot, data_root, demo_model, held_start):  # fmt: skip
    """The window's first resize starts the settings' autosave, which wrote the panel's placeholder size into the
    settings before a slow engine start was ready; the launch then counted as a later one, and the model's
    defaults never reached the panel."""
    data = resolve_data_dir(data_root)
    window = window_without_engine(qtbot, data)
    window.start()
    qtbot.waitUntil(data.settings.is_file, timeout=10000)  # the autosave, the engine still held
    held_start.set()
    qtbot.waitUntil(lambda: window.controller.model_info is not None, timeout=60000)
    assert _panel(window.controller.prompt) == _defaults(demo_model)


def test_a_job_queued_before_the_engine_is_ready_is_what_the_panel_shows_after(qtbot, data_root, held_start):
    """A first launch's Generate clicked while the engine starts ran with the panel's values, then the model's
    defaults went over them: the panel no longer showed what ran. A side off the grid (set while the field had
    the focus, Ctrl+Enter) ran snapped while the field showed it as typed."""
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    controller, state = window.controller, window.controller.prompt
    window.start()
    state.prompt, state.width = "a red circle", 100
    job = controller.generate()
    controller.cancel_all()  # it need not run: what it asked for is what counts
    request = job.request
    assert (request.width, state.width, window.prompt_panel.width_spin.value()) == (96, 96, 96)
    held_start.set()
    qtbot.waitUntil(lambda: controller.model_info is not None and not controller.job.busy, timeout=60000)
    assert _panel(state) == (request.width, request.height, request.steps, request.guidance)


def test_a_model_picked_then_generate_at_once_runs_with_its_defaults(qtbot, window, demo_model, tmp_path):
    """The new model's defaults came with its description, after the click: the job ran with the old model's
    size, steps and guidance, then the panel showed the new model's. The library knows them at the pick."""
    other = tmp_path / "other"
    shutil.copytree(demo_model, other)
    (other / "nibble.json").write_text(json.dumps({"width": 192, "height": 160, "steps": 7, "guidance": 2.0}))
    controller, state = window.controller, window.controller.prompt
    with qtbot.waitSignal(controller.add_ended, timeout=60000):
        controller.add_model(other)
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "other", timeout=60000)
    assert _panel(state) == (192, 160, 7, 2.0)
    state.prompt = "a red circle"
    assert controller.select_model("demo")
    job = controller.generate()  # before the engine has described it
    controller.cancel_all()
    request = job.request
    assert (request.width, request.height, request.steps, request.guidance) == _defaults(demo_model)
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo" and not controller.job.busy,
                    timeout=60000)  # fmt: skip
    assert _panel(state) == _defaults(demo_model)


def test_a_first_launch_keeps_what_the_user_set_while_the_engine_started(qtbot, data_root, demo_model, held_start):
    """The model's defaults go to the fields left as they were: a size typed (or an image's settings reused)
    while the engine started was overwritten by them when it was ready."""
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    state = window.controller.prompt
    window.start()
    state.width, state.steps = 512, 30
    held_start.set()
    qtbot.waitUntil(lambda: window.controller.model_info is not None, timeout=60000)
    _, height, _, guidance = _defaults(demo_model)
    assert _panel(state) == (512, height, 30, guidance)


def test_clicking_the_selected_model_again_keeps_the_panel(qtbot, window):
    """Clicked in the list again (to read its details), the selected model's defaults went over the size, steps
    and guidance the user had set."""
    state, panel = window.controller.prompt, window.model_panel
    qtbot.waitUntil(lambda: window.controller.model_info is not None, timeout=60000)
    state.width, state.steps = 512, 30
    item = next(panel.list.item(i) for i in range(panel.list.count())
                if panel.list.item(i).data(Qt.ItemDataRole.UserRole) == state.model)  # fmt: skip
    panel.list.itemClicked.emit(item)
    assert (state.width, state.steps) == (512, 30)


def test_esc_after_the_last_step_says_it_is_too_late(qtbot, window):
    """The engine checks for a cancel at each denoising step: after the last image's last step it only decodes
    and saves, and Esc then said "Cancelling…" while the image came all the same ("Done"). Before that step it
    still cancels. The engine's thread is held at the step while Esc is pressed."""
    controller = window.controller
    state = controller.prompt
    state.prompt, state.width, state.height, state.steps = "a red circle", 64, 64, TEST_STEPS
    for step, said, ended, images in ((TEST_STEPS - 1, "Cancelling…", "Cancelled", 0),
                                      (TEST_STEPS, "Too late to cancel: the image is being finished",
                                       "Done: 1 image", 1)):  # fmt: skip
        with engine_held_at(controller, lambda progress, step=step: progress.step == step) as reached:
            controller.generate()
            qtbot.waitUntil(lambda step=step: reached.is_set() and controller.job.step == step, timeout=120000)
            qtbot.keyClick(window, Qt.Key.Key_Escape)
            assert controller.job.status == said
        qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
        assert (controller.job.status, controller.gallery.rowCount()) == (ended, images)


def test_a_value_typed_outside_a_fields_range_is_refused_at_generate_naming_the_field(qtbot, window):
    """"30" typed in Width (64 to 2048) and Ctrl+Enter pressed in the field ran the width it held before, 128,
    while the field still showed "30 px"; "0" in Images ran one image; a locked seed's field cleared ran the seed
    it held. Now Generate refuses, naming the field and its range, and runs once the fields show values they take
    (a seed field cleared with Lock unticked runs: the job takes a new random seed, which the field then shows).
    So do the Generate button clicked and Generate > Generate from the menu bar: the focus they took made the field
    put back the value it held (128), and that one ran. The field shows what was typed after the refusal too."""
    controller, panel = window.controller, window.prompt_panel
    controller.prompt.prompt, controller.prompt.seed_locked = "a red circle", True
    window.activateWindow()
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Generate")

    def click_button(_field: object) -> None:
        qtbot.mouseClick(panel.generate_button, Qt.MouseButton.LeftButton)

    def from_the_menu(_field: object) -> None:
        menu.popup(window.mapToGlobal(window.rect().center()))
        qtbot.waitUntil(menu.isVisible)
        qtbot.mouseClick(menu, Qt.MouseButton.LeftButton, pos=menu.actionGeometry(window.generate_action).center())

    def ctrl_enter(field: object) -> None:
        qtbot.keyClick(field, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)

    for field, typed, said, fixed, generate in (
            (panel.width_spin, "30", "Width shows “30”, and takes 64 to 2048 px", "96", click_button),
            (panel.batch_spin, "0", "Images shows “0”, and takes 1 to 16", "1", from_the_menu),
            (panel.seed_edit, "", f"Seed is empty, and takes 0 to {SEED_MAX}", "", ctrl_enter)):  # fmt: skip
        field.setFocus()
        field.selectAll()
        qtbot.keyClick(field, Qt.Key.Key_Delete)
        qtbot.keyClicks(field, typed)
        shown, dialog = field.text(), window.error_dialog
        generate(field)
        assert window.error_dialog is not dialog and said in window.error_dialog.text(), (field.text(), shown)
        assert not controller.job.busy and controller.gallery.rowCount() == 0
        window.error_dialog.accept()
        assert field.text() == shown  # still there to be put right
        field.setFocus()
        field.selectAll()
        qtbot.keyClicks(field, fixed)
    panel.seed_lock.click()  # unlocked, the seed field still empty
    with qtbot.waitSignal(controller.job_finished, timeout=60000) as blocker:
        qtbot.keyClick(panel.seed_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    [made] = blocker.args[0]
    assert (made.settings["width"], controller.prompt.width) == (96, 96)
    assert panel.seed_edit.text() == str(made.settings["seed"])
