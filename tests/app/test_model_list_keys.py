"""The Models list from the keyboard: the highlighted row is the model the next jobs use. The arrow keys moved the
highlight alone and Enter did nothing (only a mouse click picked), so the list showed one model and jobs ran on
another."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from tests.app.gui import added_copy, generate_one


def _keys(qtbot, window, *keys: Qt.Key) -> None:
    """``keys`` pressed in the Models list, the window active and the list focused (as after Tab or a click)."""
    panel = window.model_panel
    with qtbot.waitActive(window):
        window.activateWindow()
    panel.list.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is panel.list)
    for key in keys:
        qtbot.keyClick(panel.list, key)


def _highlighted(window) -> str:
    return window.model_panel.list.currentItem().data(Qt.ItemDataRole.UserRole)


def _missing_mine(qtbot, window, tmp_path):
    """(the errors said from now on, the path of 'mine', where its file is): 'mine' added, then listed as missing
    (its file moved away), 'demo' selected."""
    controller = window.controller
    errors = []
    controller.error.connect(errors.append)
    mine, away = tmp_path / "mine.safetensors", tmp_path / "away.safetensors"
    added_copy(qtbot, controller, mine)
    controller.select_model("demo")
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo", timeout=60000)
    mine.rename(away)
    with qtbot.waitSignal(controller.library_changed, timeout=60000):
        controller._read_library.emit(0)
    return errors, mine, away


def test_the_arrow_keys_pick_the_model_jobs_use(qtbot, window):
    controller = window.controller
    assert _highlighted(window) == controller.prompt.model == "demo"
    _keys(qtbot, window, Qt.Key.Key_Down)
    assert _highlighted(window) == controller.prompt.model == "demo-int4"
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo-int4", timeout=60000)
    _keys(qtbot, window, Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_Return)
    assert _highlighted(window) == controller.prompt.model == "demo-int4"
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo-int4", timeout=60000)

    assert generate_one(qtbot, controller).settings["model"] == "demo-int4"


def test_the_keys_pass_over_a_missing_model_and_enter_looks_at_its_file_again(qtbot, window, tmp_path):
    """Passing over a missing model with the keys showed it and looked at its file at once: refused with a dialog,
    which took the next key press. It is only shown now; Enter looks at its file again. Going on to the model in use
    leaves the look of one passed deciding nothing (its file back, it was selected after the user had left it)."""
    controller = window.controller
    errors, mine, away = _missing_mine(qtbot, window, tmp_path)

    _keys(qtbot, window, Qt.Key.Key_End)  # onto 'mine': shown, no dialog; the model in use stays
    qtbot.wait(500)
    assert errors == [] and controller.prompt.model == "demo" and _highlighted(window) == "mine"
    assert "Press Enter to look at its file again" in window.model_panel.details.text()
    _keys(qtbot, window, Qt.Key.Key_Return)  # looked at again, refused
    qtbot.waitUntil(lambda: bool(errors), timeout=60000)
    assert "'mine'" in errors[-1].message and controller.prompt.model == "demo"
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    window.error_dialog.accept()
    assert _highlighted(window) == "mine"  # kept so, for Remove

    away.rename(mine)  # the drive back: Enter, then Home straight back to the model in use before the look ends
    _keys(qtbot, window, Qt.Key.Key_Return, Qt.Key.Key_Home)
    qtbot.wait(1500)
    assert controller.prompt.model == _highlighted(window) == "demo" and len(errors) == 1
    panel = window.model_panel  # its facts shown again, and the built-in model cannot be removed
    assert "mine" not in panel.details.text() and panel.runs_on.isVisible() and not panel.remove_button.isEnabled()
    _keys(qtbot, window, Qt.Key.Key_End, Qt.Key.Key_Return)  # picked, its file there
    qtbot.waitUntil(lambda: controller.prompt.model == "mine", timeout=60000)
    assert _highlighted(window) == "mine" and len(errors) == 1


def test_a_click_on_a_missing_model_is_one_pick_however_long_the_button_is_held(qtbot, window, tmp_path):
    """The press that highlights a row picks it (a missing model's file is looked at again), and the click that
    ends at its release does not pick it a second time (refused twice: two dialogs). A click on the row
    highlighted already is a pick again."""
    controller, panel = window.controller, window.model_panel
    errors, mine, away = _missing_mine(qtbot, window, tmp_path)
    at = panel.list.visualItemRect(next(panel.list.item(r) for r in range(panel.list.count())
                                        if panel.list.item(r).data(Qt.ItemDataRole.UserRole) == "mine")).center()

    qtbot.mousePress(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=at)
    qtbot.wait(500)
    assert errors == [] and _highlighted(window) == "mine"  # the press only shows it
    qtbot.mouseRelease(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=at)
    qtbot.waitUntil(lambda: bool(errors), timeout=60000)  # the click looks at it again: refused
    qtbot.wait(500)
    assert len(errors) == 1 and _highlighted(window) == "mine"
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    window.error_dialog.accept()

    away.rename(mine)  # back: a click on the highlighted row looks at it again
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton, pos=at)
    qtbot.waitUntil(lambda: controller.prompt.model == "mine", timeout=60000)
    assert len(errors) == 1
