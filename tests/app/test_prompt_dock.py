"""The Prompt dock on the real window: at the usual window sizes it scrolls only up and down, nothing in it cut
off at its right edge."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QLabel, QScrollArea, QWidget

from app.generation_state import RANDOM_SEED_MAX


def _needed_widths(panel) -> dict[QWidget, int]:
    """The widths at which the panel's fields show all they have to: a button, check box or combo box its whole
    text (its size hint; a combo box's is its longest item), a spin box its longest value (its minimum size hint).
    The text boxes and the progress bar show their content at any width; they must only lie in view."""
    needed: dict[QWidget, int] = {w: 0 for w in (panel.prompt_edit, panel.negative_edit, panel.progress)}
    for widget in (panel.seed_random, panel.seed_lock, panel.size_preset, panel.generate_button,
                   panel.cancel_button):
        needed[widget] = widget.sizeHint().width()
    for widget in (panel.seed_edit, panel.steps_spin, panel.guidance_spin, panel.width_spin, panel.height_spin,
                   panel.batch_spin):
        needed[widget] = widget.minimumSizeHint().width()
    for label in panel.findChildren(QLabel):  # the form's labels, "×"; the status line is word-wrapped
        if label.text() and label.isVisible() and not label.wordWrap():
            needed[label] = label.sizeHint().width()
    return needed


@pytest.mark.parametrize("size", [(1000, 700), (1280, 800), (1400, 860)])
def test_the_prompt_dock_does_not_scroll_sideways(qtbot, window, size):
    """At 1000x700 the seed row (field, Random, Lock) and the size presets were wider than the dock: the panel
    scrolled sideways, the Lock check box and the spin boxes' arrows out of view at its right edge."""
    window.resize(*size)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == size, timeout=5000)
    qtbot.wait(50)  # the layout settles
    scroll = window.findChild(QScrollArea, "promptDockScroll")
    assert scroll.horizontalScrollBar().maximum() == 0
    viewport = scroll.viewport()
    panel = window.prompt_panel
    for widget, width in _needed_widths(panel).items():
        left = widget.mapTo(viewport, QPoint(0, 0)).x()
        name = getattr(widget, "text", lambda: "")() or type(widget).__name__
        assert widget.isVisible() and left >= 0 and left + widget.width() <= viewport.width(), name
        assert widget.width() >= width, name
    if size == (1400, 860):  # the usual layout as it was: Random and Lock beside the seed field
        assert panel.seed_random.mapTo(panel, QPoint(0, 0)).y() == panel.seed_edit.mapTo(panel, QPoint(0, 0)).y()
    # A whole random seed still shows in the seed field (its first digits were cut off once).
    window.controller.prompt.seed = RANDOM_SEED_MAX
    edit = panel.seed_edit
    assert edit.contentsRect().width() >= edit.fontMetrics().horizontalAdvance(str(RANDOM_SEED_MAX))
