"""Tab through the real window: the panels in the order they are laid out, and no empty stops."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QScrollArea

from tests.app.test_lora_panel import _tiny_lora

PANELS = ("prompt_panel", "lora_panel", "gallery_panel", "model_panel", "quantize_panel", "history_panel")


def _tab_round(qtbot, window) -> list:
    """The widgets Tab stops at, from the prompt box round to it again."""
    start = window.prompt_panel.prompt_edit
    start.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is start)
    stops = [start]
    for _ in range(200):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        widget = QApplication.focusWidget()
        if widget is start:
            return stops
        stops.append(widget)
    raise AssertionError(f"Tab never came back to the prompt: {stops}")


def _panel(window, widget) -> str:
    return next((name for name in PANELS if getattr(window, name).isAncestorOf(widget)), type(widget).__name__)


def test_tab_goes_left_column_then_centre_then_right_column(qtbot, window, tmp_path):
    """Tab went Prompt → Models → Quantization → History → LoRAs → Gallery; in the LoRA panel the rows came
    after "Insert trigger words"; the LoRA list's scroll area (and each dock's) was an empty stop."""
    # Focus moves only in the active window (Tab goes nowhere in another). pytest-qt's waitActive is a context
    # manager: it waits when its block ends, so a plain call waited for nothing.
    with qtbot.waitActive(window):
        window.activateWindow()
    window.controller.loras.add_file(_tiny_lora(tmp_path / "added later.safetensors"))  # rows made after start
    lora = window.lora_panel
    qtbot.waitUntil(lambda: len(lora.rows) == 2 and all(row.isVisible() for row in lora.rows))

    stops = _tab_round(qtbot, window)
    panels = [_panel(window, w) for w in stops]
    assert [p for i, p in enumerate(panels) if i == 0 or panels[i - 1] != p] == list(PANELS), panels
    assert not [w for w in stops if isinstance(w, QScrollArea)]  # the LoRA list's, the docks': no stops
    in_lora = [w for w in stops if lora.isAncestorOf(w)]
    rows = [w for row in lora.rows for w in row.focus_chain]
    assert in_lora == [lora.add_button, lora.add_folder_button, *rows, lora.insert_button], in_lora


def _out_of_view(widget) -> bool:
    """Whether ``widget``'s middle lies outside the part of its dock's panel in view (False outside the docks)."""
    scroll = widget.parentWidget()
    while scroll is not None and not scroll.objectName().endswith("DockScroll"):
        scroll = scroll.parentWidget()
    if scroll is None:
        return False
    viewport = scroll.viewport()
    return not viewport.rect().contains(widget.mapTo(viewport, widget.rect().center()))


def test_tab_and_shift_tab_scroll_the_dock_to_the_field_they_reach(qtbot, bare_window):
    """A dock scrolled to what Tab reached within it only: at 800x600 Tab from another dock put the focus in the
    prompt box, or on "Quantize this model…", scrolled out of sight, Shift+Tab on Generate; what was typed next
    went there unseen. Not to a field the mouse gives the focus (a click, the wheel): the dock stays as it was."""
    window = bare_window
    window.resize(800, 600)
    with qtbot.waitActive(window):
        window.activateWindow()
    qtbot.waitUntil(lambda: (window.width(), window.height()) == (800, 600))
    start = window.prompt_panel.prompt_edit
    for key in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab):
        start.setFocus()
        qtbot.waitUntil(lambda: QApplication.focusWidget() is start)
        hidden = []
        for _ in range(100):  # once round the window, back to the prompt box
            qtbot.keyClick(QApplication.focusWidget(), key)
            widget = QApplication.focusWidget()
            if _out_of_view(widget):
                hidden.append(getattr(widget, "text", lambda: "")() or type(widget).__name__)
            if widget is start:
                break
        assert widget is start and not hidden, (key, hidden)

    # The mouse's focus leaves the dock where it is: the wheel over a spin box half out of view gave it the focus
    # (Qt's WheelFocus, no button held; the wheel now scrolls the dock, ``WheelWhenFocused``), and the dock scrolled
    # 84 px under the pointer; a click neither. The app's focus is shown, as Tab's.
    prompt = window.prompt_panel
    for field, reason in ((prompt.steps_spin, "wheel"), (prompt.batch_spin, "wheel"), (prompt.steps_spin, "click"),
                          (prompt.batch_spin, "click"), (prompt.batch_spin, "app")):  # fmt: skip
        start.setFocus()
        qtbot.waitUntil(lambda: QApplication.focusWidget() is start)
        seen = _half_out_of_view(field)
        if reason == "click":
            qtbot.mouseClick(field, Qt.MouseButton.LeftButton, pos=QPoint(4, seen))
        else:
            field.setFocus(Qt.FocusReason.MouseFocusReason if reason == "wheel" else Qt.FocusReason.OtherFocusReason)
        assert QApplication.focusWidget() is field
        assert _out_of_view(field) == (reason != "app"), (field, reason)


def _half_out_of_view(field) -> int:
    """Scrolls ``field``'s dock to show half of it, above or below the other half, and gives a height in it that
    shows."""
    scroll = field.parentWidget()
    while not scroll.objectName().endswith("DockScroll"):
        scroll = scroll.parentWidget()
    bar, height = scroll.verticalScrollBar(), scroll.viewport().height()
    middle = field.mapTo(scroll.widget(), field.rect().center()).y()
    above = middle + 2 <= bar.maximum()  # its upper half scrolled above the view, else its lower half below it
    bar.setValue(middle + 2 if above else middle - height - 1)
    seen = field.height() * 3 // 4 if above else field.height() // 4
    assert _out_of_view(field) and scroll.viewport().rect().contains(field.mapTo(scroll.viewport(), QPoint(4, seen)))
    return seen
