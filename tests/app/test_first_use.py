"""What a first-time user met walking through the window: a window larger than a laptop screen, a seed shown
without its first digits, Tab typed into the prompt, a "Save as…" with no word after it, a "Quantize this
model…" that ignored the selected model."""

from __future__ import annotations

import shutil

from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtWidgets import QApplication, QWidget

from app.generation_state import RANDOM_SEED_MAX
from gpu.paths import resources_dir
from tests.app.gui import saved_as


def _generate_one(qtbot, window) -> None:
    window.controller.prompt.prompt = "a red circle"
    with qtbot.waitSignal(window.controller.job_finished, timeout=120000):
        window.controller.generate()


def _on_screen(window, widget: QWidget) -> bool:
    """``widget`` lies wholly inside the window (not cut off by its edge)."""
    top_left = widget.mapTo(window, QPoint(0, 0))
    return window.rect().contains(QRect(top_left, widget.size()))


def test_the_window_fits_a_small_laptop_screen(qtbot, window):
    # The docks' contents set a minimum of 1386x831: the window could not be made smaller than a 1366x768 screen.
    window.resize(1000, 700)
    qtbot.waitUntil(lambda: window.width() == 1000 and window.height() == 700, timeout=5000)
    gallery = window.gallery_panel
    for button in (gallery.reuse_button, gallery.save_button, gallery.delete_button, gallery.empty_trash_button):
        assert _on_screen(window, button), button.text()
    # At the first start's size the Generate button is in view (a dock smaller than its panel scrolls).
    window.resize(1280, 800)
    qtbot.waitUntil(lambda: window.width() == 1280 and window.height() == 800, timeout=5000)
    generate = window.prompt_panel.generate_button
    assert not generate.visibleRegion().isEmpty() and _on_screen(window, generate)


def test_the_seed_field_shows_a_whole_random_seed(window):
    edit = window.prompt_panel.seed_edit
    window.controller.prompt.seed = RANDOM_SEED_MAX
    assert edit.contentsRect().width() >= edit.fontMetrics().horizontalAdvance(str(RANDOM_SEED_MAX))


def test_tab_moves_out_of_the_prompt_boxes(qtbot, window):
    panel = window.prompt_panel
    window.activateWindow()
    panel.prompt_edit.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is panel.prompt_edit, timeout=5000)
    qtbot.keyClicks(panel.prompt_edit, "a red circle")
    qtbot.keyClick(panel.prompt_edit, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is panel.negative_edit
    qtbot.keyClick(panel.negative_edit, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is panel.seed_edit
    state = window.controller.prompt
    assert (state.prompt, state.negative_prompt) == ("a red circle", "")  # no tab characters typed in


def test_save_as_says_where_the_image_went(qtbot, window, tmp_path):
    _generate_one(qtbot, window)
    record = window.controller.gallery.record(0)
    written = saved_as(qtbot, window.controller, record, tmp_path / "mine")
    assert written == tmp_path / "mine.png" and written.is_file()
    assert window.statusBar().currentMessage() == (f"The image {window.controller.gallery.path_of(record).name} "
                                                   f"was saved as {written}.")


def test_quantize_this_model_starts_on_the_selected_model(qtbot, window, tmp_path):
    controller = window.controller
    mine = tmp_path / "my-flux"
    shutil.copytree(resources_dir() / "models" / "demo", mine)
    with qtbot.waitSignal(controller.add_ended, timeout=60000):
        controller.add_model(mine)
    assert controller.prompt.model == "my-flux"
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    assert wizard.source_page.source.currentData() == "my-flux"
    assert wizard.source_state.source == "my-flux"  # what the run quantizes, not only what the list shows
    wizard.close()
