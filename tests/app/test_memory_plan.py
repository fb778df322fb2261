"""The model panel shows the engine's memory plan for the selected model, through the real window and engine."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.image_files import read_image_settings


def test_model_panel_shows_the_memory_plan_and_images_record_it(qtbot, window):
    controller = window.controller
    label = window.model_panel.memory
    qtbot.waitUntil(lambda: controller.memory.name != "", timeout=60000)
    policy = controller.model_info.memory_policy  # what the engine planned for the demo on this machine
    assert controller.memory.name == policy.name
    assert label.text() == controller.memory.text == f"Memory plan: {policy.description}"
    assert label.isVisibleTo(window.model_panel)
    import torch

    if not torch.cuda.is_available():
        assert policy.name == "cpu"
        assert label.text().startswith("Memory plan: No CUDA GPU: the whole pipeline")
    else:  # the demo is tiny: everything fits on any GPU
        assert policy.name == "gpu-resident" and policy.fits
    assert controller.memory.fits and label.styleSheet() == ""

    window.prompt_panel.prompt_edit.setPlainText("a small blue cross")
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as blocker:
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
    (record,) = blocker.args[0]
    settings = read_image_settings(controller.gallery.path_of(record))
    assert settings["memory_policy"] == policy.name
    # after loading, the engine reports the policy it applied; the label still shows it
    assert controller.memory.name == policy.name and label.text() == f"Memory plan: {policy.description}"
    # every finished job reports the model as it left it (a LoRA can change the plan and the execution path)
    before = controller.model_info
    with qtbot.waitSignal(controller.model_info_changed, timeout=120000):
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
    assert controller.model_info is not before
    assert controller.model_info.execution_path == settings["execution_path"]


def test_an_over_budget_plan_is_shown_as_a_warning(qtbot, window):
    from gpu.runtime.memory_policy import GiB, choose_policy

    over = choose_policy(6 * GiB)  # FLUX.1-dev INT4 on a 6 GB GPU
    assert not over.fits
    window.controller.memory.show_policy(over)
    label = window.model_panel.memory
    assert "run out of memory" in label.text() and "color" in label.styleSheet()
    window.controller.memory.show_policy(None)  # nothing new known: the panel keeps what it shows
    assert "run out of memory" in label.text()
