"""Keys and the mouse wheel in the LoRA list are its rows' controls' alone. A key a control did not take (Space or
a letter on a slider, Down in the trigger words, End on a check box) went on to the list view, which scrolled the
row being edited away, searched the rows' names, or switched on its current row at Space: a row perhaps out of
sight, last clicked on its label, that the next image then used. The wheel over a slider changed its strength
rather than scrolling the list."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget

from app.widgets.lora_row import NameCheckBox
from tests.app.gui import loras_added, wheel
from tests.app.test_lora_list import flux_lora


def _listed(qtbot, window, tmp_path, count: int, text_parts: tuple[int, ...] = ()):
    """The window's LoRA panel and state with ``count`` more LoRAs, switched off ("style 00"…), the window
    active (keys go to the focus)."""
    panel, state = window.lora_panel, window.controller.loras
    state.add_files([flux_lora(tmp_path / f"style {i:02d}.safetensors", text_part=i in text_parts)
                     for i in range(count)], enabled=False)  # fmt: skip
    with qtbot.waitActive(window):
        window.activateWindow()
    return panel, state


def _focus(qtbot, widget: QWidget) -> None:
    widget.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is widget)


def test_space_on_a_slider_switches_no_other_lora_on(qtbot, bare_window, tmp_path):  # noqa: F811
    panel, state = _listed(qtbot, bare_window, tmp_path, 80)
    enabled = [e.name for e in state.entries if e.enabled]
    qtbot.mouseClick(panel.row_for("style 03").strength_label, Qt.MouseButton.LeftButton)  # the list's current row
    bar = panel.view.verticalScrollBar()
    for at in range(bar.value(), bar.maximum() + 1, 60):  # the wheel down to the end: "style 03" far out of sight,
        bar.setValue(at)  # its controls long dropped
    row = panel.row_for("style 75")
    _focus(qtbot, row.slider)
    qtbot.keyClick(row.slider, Qt.Key.Key_Space)
    assert [e.name for e in state.entries if e.enabled] == enabled
    assert QApplication.focusWidget() is row.slider

    _focus(qtbot, row.enabled)  # the row's own check box still switches it
    qtbot.keyClick(row.enabled, Qt.Key.Key_Space)
    assert [e.name for e in state.entries if e.enabled] == [*enabled, "style 75"]


@pytest.mark.parametrize(("control", "key"), [
    ("triggers", Qt.Key.Key_Down),  # a line edit takes no Down: the list's current row went down, scrolling
    ("triggers", Qt.Key.Key_PageDown),
    ("slider", Qt.Key.Key_M),  # a search of the rows' names: "monochrome-style", at the top
    ("enabled", Qt.Key.Key_End),  # the last row
])  # fmt: skip
def test_a_key_in_a_row_leaves_the_list_where_it_is(qtbot, bare_window, tmp_path, control, key):  # noqa: F811
    panel, _state = _listed(qtbot, bare_window, tmp_path, 30)
    row = panel.row_for("style 15")
    widget = getattr(row, control)
    _focus(qtbot, widget)
    bar = panel.view.verticalScrollBar()
    at, in_sight = bar.value(), panel.view.rows_in_sight()
    for _ in range(12):
        qtbot.keyClick(widget, key)
    assert (bar.value(), panel.view.rows_in_sight()) == (at, in_sight)
    assert QApplication.focusWidget() is widget


def test_the_wheel_over_a_strength_scrolls_the_list_unless_the_strength_has_the_focus(qtbot, bare_window,  # noqa: F811
                                                                                     tmp_path):  # fmt: skip
    panel, state = _listed(qtbot, bare_window, tmp_path, 30, text_parts=(3,))
    entry = next(e for e in state.entries if e.name == "style 03")
    state.set_text_strength(entry, 0.5)  # a "Text" strength of its own: its box takes values
    bar = panel.view.verticalScrollBar()
    for control in ("slider", "text_value"):
        widget = getattr(panel.row_for("style 03"), control)
        at = bar.value()
        wheel(widget, 1)
        assert (entry.strength, entry.text_strength) == (1.0, 0.5)
        assert bar.value() > at, control

    row = panel.row_for("style 03")  # clicked or Tabbed to, the wheel is the control's
    _focus(qtbot, row.slider)
    wheel(row.slider, 1)
    assert entry.strength < 1.0
    _focus(qtbot, row.text_value)
    wheel(row.text_value, 1)
    assert entry.text_strength < 0.5


def test_a_lora_named_with_an_ampersand_shows_it_and_no_alt_key_switches_it(qtbot, bare_window, tmp_path):
    """A LoRA whose file name has an '&' (Civitai's "R&B style", "Salt & Pepper") shows it in its row, and Alt+B
    typed elsewhere leaves it as it is (R53: the row's name is a check box's text, where Qt read '&' as the mark
    of a keyboard shortcut: it showed "RB style", B underlined, and Alt+B anywhere in the window switched the LoRA
    on or off, unseen where its row was scrolled away)."""
    window = bare_window
    path = flux_lora(tmp_path / "R&B style.safetensors")
    loras_added(qtbot, window.controller, [path])
    entry = next(e for e in window.controller.loras.entries if e.path == path)
    assert entry.enabled
    row = window.lora_panel.row_for("R&B style")
    with qtbot.waitActive(window):
        window.activateWindow()
    prompt = window.prompt_panel.prompt_edit
    _focus(qtbot, prompt)  # the user types the prompt
    QTest.keyClick(window.windowHandle(), Qt.Key.Key_B, Qt.KeyboardModifier.AltModifier)  # as the system sends it
    qtbot.wait(400)  # a button's shortcut clicks it after 100 ms
    assert entry.enabled, "Alt+B in the prompt switched the LoRA off"
    assert QApplication.focusWidget() is prompt
    # "R&&B style" is how a check box shows "R&B style"
    assert row.enabled.text() == "R&&B style" and row.enabled.full_text() == "R&B style"
    narrow = NameCheckBox("Salt & Pepper & Ink & Smoke & Rain & Snow")  # cut short with "…", then escaped
    qtbot.addWidget(narrow)
    narrow.show()
    narrow.resize(narrow.minimumSizeHint().width() + 30, narrow.height())
    qtbot.waitUntil(lambda: narrow.text().endswith("…"))
    assert "&" not in narrow.text().replace("&&", "") and "&&" in narrow.text(), narrow.text()
