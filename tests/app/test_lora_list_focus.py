"""The keyboard focus in the LoRA list stays where the user put it. A row with a "Text" strength made as it
scrolled into sight (or as a folder's rows came) flashed a window of its own for a moment, which took the focus
from the row being typed in; scrolling while another window was active dropped that row's controls, the focus
back at the prompt on return; a removed row's focus went to the control at the same place of the next row, none
where that one has a "Text" strength; and the focus on Cancel or "Skipped files…" as it hid went to row 0,
scrolling the list to the top."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog, QLineEdit, QVBoxLayout, QWidget

from tests.app.test_lora_folder_scan import _comfy_folder, _scan_thread, held_reads  # noqa: F401
from tests.app.test_lora_list import flux_lora
from tests.app.test_lora_list_keys import _focus, _listed


def _scroll_to_the_end(panel) -> None:
    """The list scrolled down to its end, a wheel's step at a time (each row coming into sight on the way), the
    window system's events handled after each (as between the wheel's)."""
    bar = panel.view.verticalScrollBar()
    for at in [*range(bar.value(), bar.maximum(), 40), bar.maximum()]:
        bar.setValue(at)
        QApplication.processEvents()


def test_typing_in_a_row_goes_on_as_a_row_with_a_text_strength_scrolls_into_sight(qtbot, bare_window,  # noqa: F811
                                                                                  tmp_path):  # fmt: skip
    panel, _state = _listed(qtbot, bare_window, tmp_path, 40, text_parts=(25,))
    row = panel.row_for("style 02")
    _focus(qtbot, row.triggers)
    qtbot.keyClicks(row.triggers, "ink")
    _scroll_to_the_end(panel)  # past "style 25"
    assert QApplication.activeWindow() is bare_window
    assert QApplication.focusWidget() is row.triggers
    qtbot.keyClicks(row.triggers, " wash")
    assert row.entry.trigger_words == "ink wash"


def test_typing_in_a_row_goes_on_as_a_folder_adds_rows_with_a_text_strength(qtbot, bare_window, tmp_path,  # noqa: F811
                                                                            monkeypatch):  # fmt: skip
    panel, state = _listed(qtbot, bare_window, tmp_path, 0)
    bare_window.resize(bare_window.width(), 1600)  # room for rows below the shipped one, alone in the list:
    row = panel.row_for("monochrome-style")  # the folder's rows come into sight
    _focus(qtbot, row.triggers)
    words = row.triggers.text()  # the shipped LoRA's
    qtbot.keyClicks(row.triggers, ", ink")
    folder = tmp_path / "more"
    for i in range(3):
        flux_lora(folder / f"more {i}.safetensors", text_part=True)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    with qtbot.waitSignal(state.folder_scan.scanning_changed, check_params_cb=lambda on: not on, timeout=60000):
        panel.add_folder_button.click()
    assert state.entries[1].name in [panel.view.model_.entry(i).name for i in panel.view.rows_in_sight()]
    assert QApplication.activeWindow() is bare_window
    assert QApplication.focusWidget() is row.triggers
    qtbot.keyClicks(row.triggers, " wash")
    assert row.triggers.text() == row.entry.trigger_words == f"{words}, ink wash"


@pytest.mark.parametrize("other_has_focus", [False, True], ids=["another program", "another window of the app"])
def test_scrolling_while_another_window_is_active_keeps_the_row_typed_in(qtbot, bare_window, tmp_path,  # noqa: F811
                                                                        other_has_focus):  # fmt: skip
    panel, _state = _listed(qtbot, bare_window, tmp_path, 60)
    row = panel.row_for("style 02")
    _focus(qtbot, row.triggers)
    qtbot.keyClicks(row.triggers, "ink wash")
    other = QWidget()  # a browser to look trigger words up in, or "Skipped files…" (a widget of the app's own)
    if other_has_focus:
        QVBoxLayout(other).addWidget(QLineEdit())
    qtbot.addWidget(other)
    other.show()
    with qtbot.waitActive(other):
        other.activateWindow()
    _scroll_to_the_end(panel)  # the wheel over the window, inactive
    with qtbot.waitActive(bare_window):
        bare_window.activateWindow()
    assert QApplication.focusWidget() is row.triggers
    assert row.triggers.text() == "ink wash"


def test_a_removed_rows_focus_goes_to_the_same_control_of_the_next_row(qtbot, bare_window, tmp_path):  # noqa: F811
    panel, state = bare_window.lora_panel, bare_window.controller.loras
    state.add_files([flux_lora(tmp_path / "a.safetensors"), flux_lora(tmp_path / "b.safetensors", text_part=True),
                     flux_lora(tmp_path / "c.safetensors")], enabled=False)  # fmt: skip
    with qtbot.waitActive(bare_window):
        bare_window.activateWindow()
    _focus(qtbot, panel.row_for("a").triggers)
    state.remove(panel.row_for("a").entry)  # b has two stops more before its trigger words, the first greyed
    assert QApplication.focusWidget() is panel.row_for("b").triggers
    _focus(qtbot, panel.row_for("b").text_same)
    state.remove(panel.row_for("b").entry)  # c has no "Text" strength: the stop after it
    assert QApplication.focusWidget() is panel.row_for("c").triggers


def test_the_focus_on_a_button_that_hides_stays_by_it_and_the_list_where_it_is(qtbot, bare_window, held_reads,  # noqa: F811
                                                                              tmp_path, monkeypatch):  # fmt: skip
    from app.lora_scan import Skipped

    panel, state = _listed(qtbot, bare_window, tmp_path, 30)
    panel.row_for("style 20")  # the user looks halfway down the list
    in_sight = panel.view.rows_in_sight()

    state.folder_scan.scan_status = "Added 30 FLUX.1 LoRAs from x. Skipped 1 file: 1 LoRA this app cannot apply."
    state.folder_scan.scan_skipped = (Skipped(tmp_path / "x.safetensors", "unusable", "no"),)
    _focus(qtbot, panel.skipped_button)
    state.folder_scan.scan_status, state.folder_scan.scan_skipped = "", ()  # the words go, a while after the scan
    assert QApplication.focusWidget() is panel.add_folder_button
    assert panel.view.rows_in_sight() == in_sight

    folder = _comfy_folder(tmp_path / "loras")  # its reading waits (held_reads)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    qtbot.keyClick(panel.add_folder_button, Qt.Key.Key_Space)  # "Add folder…" greys as the folder is read
    assert state.folder_scan.scanning
    assert QApplication.focusWidget() is panel.cancel_scan_button
    assert panel.view.rows_in_sight() == in_sight
    qtbot.waitUntil(lambda: panel.scan_label.text() == "Reading LoRAs… 0/3", timeout=30000)
    thread = _scan_thread()
    qtbot.keyClick(panel.cancel_scan_button, Qt.Key.Key_Space)
    assert not state.folder_scan.scanning
    assert QApplication.focusWidget() is panel.add_folder_button
    assert panel.view.rows_in_sight() == in_sight
    held_reads.set()
    thread.join(30)


@pytest.mark.parametrize("text_part", [True, False], ids=["gained", "lost"])
def test_the_focus_in_a_row_rebuilt_for_a_text_part_stays_on_its_control(qtbot, bare_window, tmp_path,  # noqa: F811
                                                                         text_part):  # fmt: skip
    """A row's file gained (or lost) a CLIP/T5 part: its row is made anew with (or without) a "Text" strength, and
    the focus in it went wherever Qt's chain of widgets led from the row closed."""
    panel, state = bare_window.lora_panel, bare_window.controller.loras
    lora = flux_lora(tmp_path / "a.safetensors", text_part=not text_part)
    state.add_files([lora, flux_lora(tmp_path / "b.safetensors")], enabled=True)  # read again at each job
    with qtbot.waitActive(bare_window):
        bare_window.activateWindow()
    old = panel.row_for("a")
    index = panel.view.model_.index(state.entries.index(old.entry))
    _focus(qtbot, old.triggers)
    flux_lora(lora, text_part=text_part)  # rewritten by the program that trains it
    state.refresh()  # as before a job
    qtbot.waitUntil(lambda: panel.view.indexWidget(index) not in (None, old))  # made anew as the list lays out
    assert panel.row_for("a").text_encoders == (("text_encoder",) if text_part else ())
    assert QApplication.focusWidget() is panel.row_for("a").triggers
