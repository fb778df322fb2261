"""The Models panel's details on the real window: nothing cut off at the usual window sizes."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QLabel, QScrollArea


def _cut_off(panel) -> list[str]:
    """The labels of ``panel`` whose text needs more room than they have (a wrapped one: more lines)."""
    cut = []
    for label in panel.findChildren(QLabel):
        if not label.isVisible() or not label.text():
            continue
        needed = label.heightForWidth(label.width()) if label.wordWrap() else label.sizeHint().height()
        if label.height() < needed or (not label.wordWrap() and label.width() < label.sizeHint().width()):
            cut.append(label.text())
    return cut


@pytest.mark.parametrize("size", [(1400, 860), (1280, 800)])
def test_runs_on_shows_the_path_whole_and_its_reasons_as_tooltip(qtbot, window, size):
    """demo-int4's "Runs on:" line listed the path and every fused backend's refusal: five lines in a dock
    of usual height, cut off mid-line. The engine gives the path alone; the whole text is the tooltip."""
    window.resize(*size)
    controller = window.controller
    assert controller.select_model("demo-int4")
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo-int4", timeout=60000)
    qtbot.wait(50)  # the layout settles
    panel = window.model_panel
    info = controller.model_info
    summary, whole = info.execution_summary, info.execution_path
    assert panel.runs_on.text() == f"Runs on: {summary}" and panel.runs_on.isVisible()
    if summary.startswith("PyTorch reference on "):  # here: why no fused kernel runs it, in the tooltip only
        assert whole.startswith(f"{summary} (") and panel.runs_on.toolTip() == whole
    else:  # a fused backend on a GPU: nothing more to say, or its notes in the tooltip
        assert whole.startswith(summary) and panel.runs_on.toolTip() in ("", whole)
    assert not _cut_off(panel), _cut_off(panel)


def test_the_models_dock_does_not_scroll_sideways_at_1000x700(qtbot, window):
    """Its three buttons in one row were wider than the dock below about 1000 px: the whole panel scrolled
    sideways, the ends of the details and the memory plan out of view. Nor is a label squeezed under the next
    one (the details lost "Size on disk" that way): a dock too short scrolls up and down."""
    window.resize(1000, 700)
    qtbot.waitUntil(lambda: window.width() == 1000 and window.height() == 700, timeout=5000)
    qtbot.wait(50)  # the layout settles
    scroll = window.findChild(QScrollArea, "modelDockScroll")
    assert scroll.horizontalScrollBar().maximum() == 0
    panel = window.model_panel
    for button in (panel.add_folder_button, panel.add_file_button, panel.remove_button):
        # whole, and its text whole: the labels say what each does
        where = QRect(button.mapTo(scroll.viewport(), QPoint(0, 0)), button.size())
        assert button.isVisible() and scroll.viewport().rect().contains(where), button.text()
        assert button.width() >= button.sizeHint().width(), button.text()
    assert not _cut_off(panel), _cut_off(panel)


def test_sizes_in_the_details_keep_their_unit_on_the_same_line(qtbot, window):
    """"Size on disk: 26.1 MiB" could wrap between "26.1" and "MiB" in a narrow dock: the space is a no-break one."""
    import re

    controller = window.controller
    qtbot.waitUntil(lambda: controller.model_info is not None, timeout=60000)
    text = window.model_panel.details.text()
    assert re.search(r"Size on disk: \d+\.\d\u00a0MiB", text), text
    assert not re.search(r"\d [KMGT]?i?B\b", text), text


def test_a_model_picked_during_a_job_keeps_the_fields_edited_since(qtbot, window):
    """The model's defaults arrive after the running job; they went over every field, undoing the steps and
    guidance the user had set meanwhile. Now only the fields left as they were take them."""
    controller, state = window.controller, window.controller.prompt
    state.prompt, state.steps, state.width = "a green square", 40, 192
    with qtbot.waitSignal(controller.job.step_changed, timeout=120000, check_params_cb=lambda s: s >= 1):
        controller.generate()
    assert controller.select_model("demo-int4")
    window.prompt_panel.steps_spin.setValue(3)
    window.prompt_panel.guidance_spin.setValue(2.5)
    controller.cancel()
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo-int4", timeout=60000)
    defaults = controller.model_info.defaults
    assert (state.steps, state.guidance) == (3, 2.5)  # was: the model's 16 and 5.0
    assert state.width == defaults["width"] != 192 and state.height == defaults["height"]  # not edited: the model's


def test_before_the_models_are_listed_remove_is_greyed(bare_window):
    """Until the engine lists the library there is no model to take off: Remove was enabled and did nothing, and an
    empty "Runs on" line took a row under the details."""
    panel = bare_window.model_panel
    assert panel.list.count() == 0 and panel.details.text() == "Starting the engine…"
    assert not panel.remove_button.isEnabled()
    assert not panel.runs_on.isVisibleTo(panel)
