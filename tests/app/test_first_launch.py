"""A first launch takes the model's own defaults; a later launch keeps what the user left."""

from __future__ import annotations

import json

from app.data_dir import resolve_data_dir
from app.main_window import MainWindow


def _launch(qtbot, root):
    window = MainWindow(resolve_data_dir(root))
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.controller.engine_ready, timeout=60000):
        window.start()
    qtbot.waitUntil(lambda: window.controller.model_info is not None, timeout=60000)
    return window


def test_first_launch_uses_model_defaults_then_remembers_user_values(qtbot, data_root, demo_model):
    defaults = json.loads((demo_model / "nibble.json").read_text())
    window = _launch(qtbot, data_root)
    state = window.controller.prompt
    qtbot.waitUntil(lambda: state.width == defaults["width"], timeout=10000)
    assert (state.width, state.height, state.steps) == (defaults["width"], defaults["height"], defaults["steps"])
    assert state.guidance == defaults["guidance"]
    state.width, state.steps = 192, 7
    window.close()

    again = _launch(qtbot, data_root)
    assert (again.controller.prompt.width, again.controller.prompt.steps) == (192, 7)
    again.close()
