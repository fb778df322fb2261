"""The docks on the real window: at the usual window sizes and small ones (800x600, the window's minimum) they
scroll only up and down, nothing in them cut off at their right edge; the mouse wheel over the prompt dock's fields
scrolls it."""

from __future__ import annotations

import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QLabel, QPushButton, QScrollArea, QWidget

from app.generation_state import RANDOM_SEED_MAX, SEED_MAX
from gpu.generation.png_metadata import write_png
from tests.app.gui import restored_from, wheel


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


def _resize(qtbot, window, size: tuple[int, int]) -> None:
    window.resize(*size)
    qtbot.waitUntil(lambda: (window.width(), window.height()) == size, timeout=5000)
    qtbot.wait(50)  # the layout settles (rows wrap, the docks' minimums follow)


@pytest.mark.parametrize("size", [(800, 600), (1000, 700), (1280, 800), (1400, 860)])
def test_the_prompt_dock_does_not_scroll_sideways(qtbot, window, size):
    """At 1000x700 the seed row (field, Random, Lock) and the size presets were wider than the dock: the panel
    scrolled sideways, the Lock check box and the spin boxes' arrows out of view at its right edge. At 800x600
    the form's labels and fields side by side were: the size presets go below their label there."""
    _resize(qtbot, window, size)
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
    # A whole seed still shows in the seed field (its first digits were cut off once), the longest too, with
    # Random and Lock below it where there is no room beside it; nothing wider, the dock as wide as before.
    edit, dock_width = panel.seed_edit, window.prompt_dock.width()
    for seed in (RANDOM_SEED_MAX, SEED_MAX):
        window.controller.prompt.seed = seed
        qtbot.waitUntil(lambda seed=seed: edit.contentsRect().width() >= edit.fontMetrics().horizontalAdvance(
            str(seed)))  # fmt: skip
        assert scroll.horizontalScrollBar().maximum() == 0 and window.prompt_dock.width() == dock_width
        for widget in (panel.seed_random, panel.seed_lock):
            assert widget.mapTo(viewport, QPoint(widget.width(), 0)).x() <= viewport.width(), widget.text()


def _smallest(window) -> tuple[int, int]:
    hint = window.minimumSizeHint()
    return hint.width(), hint.height()


@pytest.mark.parametrize("size", [(800, 600), _smallest])
def test_no_dock_scrolls_sideways_in_a_small_window(qtbot, window, size):
    """Under about 1000 px wide every dock was narrower than its panel and scrolled sideways (the Models, LoRA
    and history buttons, the LoRA rows cut off). A dock is now never narrower than its panel, and the panels
    wrap their rows so that the window still fits 800x600; its minimum size is where they are all wrapped."""
    if callable(size):
        size = size(window)
        assert size[0] <= 1366 // 2  # a window snapped to half of a 1366x768 laptop screen
    assert size[0] <= 800 and size[1] <= 600  # a small laptop screen
    _resize(qtbot, window, size)
    for scroll in window.findChildren(QScrollArea):  # the docks', and the LoRA rows' own
        if scroll.isVisible():
            assert scroll.horizontalScrollBar().maximum() == 0, scroll.objectName() or type(scroll.parent()).__name__
            panel = scroll.widget()
            assert panel.width() <= scroll.viewport().width(), scroll.objectName()
    # The buttons show their whole text, beside each other where there is room and below each other where not.
    for button in window.findChildren(QPushButton):
        if button.isVisible():
            assert button.width() >= min(button.sizeHint().width(), button.maximumWidth()), button.text()
    panel = window.gallery_panel
    assert panel.button_grid.columns == (4 if panel.width() >= panel.button_grid.sizeHint().width() else 2)


_FIELDS = ("seed", "steps", "guidance", "width", "height", "batch_count")


def test_the_wheel_over_the_prompt_panels_fields_scrolls_the_dock_and_changes_nothing(qtbot, window):
    """The prompt dock scrolls at the window's usual sizes (1280x800 too). Wheeling it down to reach Generate, each
    field that came under the pointer took the wheel: Steps went 2 -> 1, Guidance 5 -> 4.9, the size 128 -> 112,
    the size preset jumped to another size, and the dock stopped scrolling there; the next job ran them, not a word
    said. As in the LoRA list (``WheelWhenFocused``), the wheel is a field's only while it has the focus."""
    window.resize(1000, 700)
    with qtbot.waitActive(window):
        window.activateWindow()
    panel, state = window.prompt_panel, window.controller.prompt
    panel.prompt_edit.setFocus()  # the user typed the prompt; the fields below have no focus
    qtbot.waitUntil(lambda: QApplication.focusWidget() is panel.prompt_edit)
    scroll = window.prompt_dock.widget()
    bar = scroll.verticalScrollBar()
    qtbot.waitUntil(lambda: bar.maximum() > 0)  # the dock scrolls at this size
    for name in ("seed_edit", "steps_spin", "guidance_spin", "width_spin", "height_spin", "batch_spin",
                 "size_preset"):  # fmt: skip
        field = getattr(panel, name)
        scroll.ensureWidgetVisible(field)
        before, at = [getattr(state, f) for f in _FIELDS], bar.value()
        notches = 1 if at < bar.maximum() else -1  # the way the dock can go
        wheel(field, notches)
        assert [getattr(state, f) for f in _FIELDS] == before, f"the wheel over {name} changed the panel"
        assert (bar.value() - at) * notches > 0, f"the wheel over {name} did not scroll the dock"
        assert QApplication.focusWidget() is panel.prompt_edit, f"the wheel gave {name} the focus"

    # Clicked (or Tabbed to), the field takes the wheel, as a spin box does.
    for name, field in (("steps", panel.steps_spin), ("width", panel.width_spin), ("guidance", panel.guidance_spin)):
        scroll.ensureWidgetVisible(field)
        before = getattr(state, name)
        field.setFocus(Qt.FocusReason.MouseFocusReason)
        qtbot.waitUntil(lambda field=field: QApplication.focusWidget() is field)
        wheel(field, -1)  # up: more
        assert getattr(state, name) > before, name


def test_a_long_seed_restored_shows_whole_in_the_seed_field(qtbot, tmp_path, window):
    """ComfyUI's random seeds run to 19 digits or more; those up to 2^63-1 are restored. At 1280x800 the seed field
    (111 px, room for 2147483647) showed such a seed scrolled to its end, its first digits cut off without a mark:
    5123456789012345678 and 1123456789012345678 looked the same, as "…3456789012345678", a seed neither image had.
    The field is what the user reads the seed from (and types it back from, elsewhere). It is wider while it holds
    a long seed, Random and Lock below it where the dock has no room beside it; a random seed has them beside it
    again, the dock as wide as it was all along."""
    controller, panel = window.controller, window.prompt_panel
    field, row, dock_width = panel.seed_edit, panel.seed_row, window.prompt_dock.width()
    shown = []
    for seed in (5_123_456_789_012_345_678, 1_123_456_789_012_345_678):  # only their first digit differs
        path = write_png(tmp_path / f"{seed}.png", Image.new("RGB", (16, 16)),
                         {"prompt": "a long seed", "model": "demo", "seed": seed})  # fmt: skip
        assert restored_from(controller, [path])
        assert controller.prompt.seed == seed == field.value()
        qtbot.waitUntil(lambda: row.wrapped)  # at 1280x800
        assert field.contentsRect().width() >= field.fontMetrics().horizontalAdvance(str(seed))
        shown.append(field.grab().toImage())
    assert shown[0] != shown[1], "two seeds that differ in their first digit look the same in the seed field"
    assert panel.seed_lock.mapTo(row, QPoint(panel.seed_lock.width(), 0)).x() <= row.width()
    panel.seed_random.click()
    qtbot.waitUntil(lambda: not row.wrapped)
    assert panel.seed_random.mapTo(panel, QPoint(0, 0)).y() == field.mapTo(panel, QPoint(0, 0)).y()
    assert window.prompt_dock.width() == dock_width
