"""A first launch takes the model's own defaults; a later launch keeps what the user left."""

from __future__ import annotations

import json

from app.data_dir import resolve_data_dir
from app.main_window import MainWindow
from tests.app.gui import restored_from


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


def test_closing_before_the_engine_is_ready_saves_no_placeholders_and_keeps_what_the_user_set(qtbot, data_root,
                                                                                                  demo_model):
    """A first launch closed before the engine was ready saved the panel's placeholders (256x256, 4 steps, 3.5) as
    the user's: the next start showed and ran them, never the model's defaults."""
    defaults = json.loads((demo_model / "nibble.json").read_text())
    window = MainWindow(resolve_data_dir(data_root))
    qtbot.addWidget(window)
    window.show()
    window.controller.prompt.width = 192  # set by the user before the engine was ready: kept
    window.close()
    saved = json.loads((data_root / "settings.json").read_text())["last_job"]
    assert [saved[key] for key in ("width", "height", "steps", "guidance")] == [192, 0, 0, None]

    again = _launch(qtbot, data_root)
    state = again.controller.prompt
    qtbot.waitUntil(lambda: state.steps == defaults["steps"], timeout=10000)
    assert (state.width, state.height, state.guidance) == (192, defaults["height"], defaults["guidance"])
    again.close()


def test_an_image_restored_while_the_engine_starts_gets_its_model_and_keeps_its_settings(qtbot, data_root, tmp_path):
    """Reuse and drops work while the engine starts (seconds, on a real model). The library was not listed yet:
    every model was "not in your library" (said falsely, the model never switched), and then a first launch's
    model defaults overwrote the restored values that happened to equal the panel's placeholders."""
    from PIL import Image

    from gpu.generation.png_metadata import write_png
    from gpu.version import APP_NAME

    window = MainWindow(resolve_data_dir(data_root))
    qtbot.addWidget(window)
    window.show()
    controller, state = window.controller, window.controller.prompt
    shown: list = []
    controller.error.connect(shown.append)
    placeholders = state.model_default_fields()
    made = {"prompt": "a red star", "negative_prompt": "", "seed": 77, "model": "demo-int4",
            "version": f"{APP_NAME}-0.1.0", **placeholders}  # fmt: skip
    restored_from(controller, [write_png(tmp_path / "made.png", Image.new("RGB", (16, 16)), made)])
    job = controller.generate()  # runs on the panel's model, as the image's is not known yet: said
    assert job is not None and job.request.model == "demo"
    assert [e.message for e in shown] == ["This job runs on 'demo': the model of the image you restored, "
                                          "'demo-int4', is selected once the engine has started."]  # fmt: skip
    shown.clear()
    with qtbot.waitSignal(controller.engine_ready, timeout=60000):
        window.start()
    qtbot.waitUntil(lambda: controller.model_info is not None and not controller.queue._jobs, timeout=120000)
    assert state.model == "demo-int4" and (state.prompt, state.seed) == ("a red star", 77)
    assert state.model_default_fields() == placeholders
    assert [e.message for e in shown if e.kind != "notice" or "not in your library" in e.message] == []
    window.close()


def test_a_job_before_the_engine_is_ready_on_the_restored_images_own_model_says_nothing(qtbot, data_root, tmp_path):
    """The notice that the job runs on the panel's model came also where that is the image's model."""
    from PIL import Image

    from gpu.generation.png_metadata import write_png
    from gpu.version import APP_NAME

    window = MainWindow(resolve_data_dir(data_root))
    qtbot.addWidget(window)
    window.show()
    controller = window.controller
    shown: list = []
    controller.error.connect(shown.append)
    made = {"prompt": "a red star", "seed": 7, "model": controller.prompt.model, "version": f"{APP_NAME}-0.1.0"}
    restored_from(controller, [write_png(tmp_path / "made.png", Image.new("RGB", (16, 16)), made)])
    assert controller.generate() is not None and shown == []
    with qtbot.waitSignal(controller.engine_ready, timeout=60000):
        window.start()
    qtbot.waitUntil(lambda: controller.model_info is not None and not controller.queue._jobs, timeout=120000)
    assert shown == []
    window.close()


def test_a_model_added_before_the_engine_is_ready_comes_with_its_own_defaults(qtbot, data_root, demo_model, tmp_path):
    """A first launch, and Add clicked while the engine starts: the add waits for the start, whose model's defaults
    (the demo's) replace the panel's placeholders; the added model's defaults then went only to the fields still
    showing the placeholders (those of the click, taken as what the user had left), that is none: the model added
    and selected ran at the demo's size, steps and guidance. The start-up's defaults are not the user's edits; a field
    the user set after the click is."""
    import shutil

    other = tmp_path / "other"
    shutil.copytree(demo_model, other)
    (other / "nibble.json").write_text(json.dumps({"width": 192, "height": 160, "steps": 7, "guidance": 2.0}))
    window = MainWindow(resolve_data_dir(data_root))
    qtbot.addWidget(window)
    window.show()
    controller, state = window.controller, window.controller.prompt
    window.start()
    with qtbot.waitSignal(controller.add_ended, timeout=60000):
        controller.add_model(other)  # what the panel's "Add folder…" does with the folder picked
        state.height = 224  # the user's, set after the click: kept
        assert not controller.engine_started
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "other", timeout=60000)
    assert (state.model, state.width, state.height, state.steps, state.guidance) == ("other", 192, 224, 7, 2.0)
    window.close()
