"""The LoRA panel's rows are a list view whose rows in sight have their controls (``LoraRow``): a folder of 2,000
LoRAs made 2,000 rows of a dozen widgets each, 6 to 9 s of the Qt thread with the window frozen. Tab still goes
through every row's controls in order, scrolling the list, and removing a row keeps the focus in the list."""

from __future__ import annotations

from pathlib import Path

from header_files import header_only
from PySide6.QtCore import QRect, Qt
from PySide6.QtWidgets import QApplication, QFileDialog

from app.widgets.lora_list import SPARE_EDITORS
from app.widgets.lora_row import LoraRow

_KOHYA = "lora_unet_double_blocks_0_img_attn_proj"
_CLIP = "lora_te1_text_model_encoder_layers_0_mlp_fc1"


def flux_lora(path: Path, text_part: bool = False) -> Path:
    """A FLUX.1 LoRA's header over zero data (the panel reads headers only); ``text_part``: with a CLIP part."""
    tensors = {f"{_KOHYA}.lora_down.weight": ("F32", (1, 8)), f"{_KOHYA}.lora_up.weight": ("F32", (8, 1))}
    if text_part:
        tensors |= {f"{_CLIP}.lora_down.weight": ("F32", (1, 8)), f"{_CLIP}.lora_up.weight": ("F32", (8, 1))}
    return header_only(path, tensors)


def _controls(panel) -> list[LoraRow]:
    """Every row's controls the panel holds (not the list's two hidden ones it measures row heights on)."""
    return [row for row in panel.findChildren(LoraRow) if row.isVisibleTo(panel)]


def _in_sight(panel, widget) -> bool:
    view = panel.view.viewport()
    return QRect(widget.mapTo(view, widget.rect().topLeft()), widget.size()).intersects(view.rect())


def test_a_folder_of_2000_loras_makes_controls_for_the_rows_in_sight_only(qtbot, bare_window, tmp_path,  # noqa: F811
                                                                          monkeypatch):  # fmt: skip
    panel, state = bare_window.lora_panel, bare_window.controller.loras
    folder = tmp_path / "loras"
    for i in range(2000):
        flux_lora(folder / f"style {i:04d}.safetensors", text_part=i % 7 == 0)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    with qtbot.waitSignal(state.folder_scan.scanning_changed, check_params_cb=lambda on: not on, timeout=60000):
        qtbot.mouseClick(panel.add_folder_button, Qt.MouseButton.LeftButton)
    view = panel.view
    assert view.model().rowCount() == len(state.entries) == 2001
    in_sight = view.rows_in_sight()
    assert 0 < len(in_sight) < 20
    # Controls for the rows in sight, and at most a few seen last (the list moved as the scan added rows above the
    # ones first in sight): not one per LoRA of the folder
    held = [row.entry for row in panel.rows]
    assert all(state.entries[i] in held for i in in_sight)
    assert len(_controls(panel)) == len(held) <= len(in_sight) + SPARE_EDITORS
    assert {row.width() for row in panel.rows} == {view.viewport().width()}  # as wide as the list, scroll bar up

    view.scrollToBottom()  # the last rows get controls as they come into sight; those seen before, a few stay
    rows = panel.rows
    assert rows[-1].entry is state.entries[-1] and _in_sight(panel, rows[-1])
    assert len(_controls(panel)) <= len(view.rows_in_sight()) + SPARE_EDITORS
    row = panel.row_for("style 1002")  # scrolled into sight, as the controls of a row a test (or Tab) asks for
    assert _in_sight(panel, row) and row.entry is state.entries[1003]
    assert row.slider.accessibleName() == "Strength of style 1002"
    assert row.triggers.accessibleName() == "Trigger words of style 1002"
    assert row.remove_button.accessibleName() == "Remove style 1002"
    assert row.enabled.accessibleName() == "style 1002"  # the whole name, though the box may cut it short
    assert row.info.text() == "kohya, rank 1, 2 tensors; changes the transformer"
    assert panel.row_for("style 0007").text_value.accessibleName() == "Text strength of style 0007"


def test_tab_goes_through_every_rows_controls_scrolling_the_list(qtbot, bare_window, tmp_path):  # noqa: F811
    """Rows out of sight have no controls for Qt's own Tab order: the panel's goes on to them, in order, each
    scrolled into sight; a "Text" strength set to "same" (greyed) is no stop, as before."""
    panel, state = bare_window.lora_panel, bare_window.controller.loras
    state.add_files([flux_lora(tmp_path / f"style {i:02d}.safetensors", text_part=i in (3, 5)) for i in range(12)])
    state.set_text_strength(state.entries[6], 0.5)  # "style 05": a text strength of its own, a stop
    assert len(panel.view.rows_in_sight()) < len(state.entries)  # some rows are out of sight
    with qtbot.waitActive(bare_window):
        bare_window.activateWindow()
    panel.add_folder_button.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is panel.add_folder_button)

    stops = []
    while QApplication.focusWidget() is not panel.insert_button and len(stops) < 100:
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        focused = QApplication.focusWidget()
        stops.append(focused)
        if focused is not panel.insert_button:
            assert _in_sight(panel, focused), focused
    expected = []
    for entry in state.entries:
        row = panel.row_for(entry.name)
        expected += [w for w in row.focus_chain if w is not row.text_value or entry.name == "style 05"]
        assert (row.text_value in row.focus_chain) == (entry.name in ("style 03", "style 05"))
    assert stops == [*expected, panel.insert_button]
    assert [w.accessibleName() for w in stops[:4]] == ["monochrome-style", "Remove monochrome-style",
                                                       "Strength of monochrome-style",
                                                       "Trigger words of monochrome-style"]  # fmt: skip

    back = []
    for _ in range(len(expected) + 1):  # Shift+Tab: the same way back, to "Add folder…"
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Backtab)
        back.append(QApplication.focusWidget())
    assert back == [*reversed(expected), panel.add_folder_button]


def test_removing_a_row_leaves_the_focus_in_the_list(qtbot, bare_window, tmp_path):  # noqa: F811
    """The focus on a row's ✕ went wherever Qt's order led once its row was deleted; it goes to the ✕ of the
    row that takes its place now (the row before, for the last one; "Add LoRA…" once none is left)."""
    panel, state = bare_window.lora_panel, bare_window.controller.loras
    state.add_files([flux_lora(tmp_path / f"style {i}.safetensors") for i in range(3)])
    with qtbot.waitActive(bare_window):
        bare_window.activateWindow()
    names = [e.name for e in state.entries]
    panel.row_for(names[1]).remove_button.setFocus()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Space)
    assert [e.name for e in state.entries] == [names[0], *names[2:]]
    assert QApplication.focusWidget() is panel.row_for(names[2]).remove_button
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Space)
    assert QApplication.focusWidget() is panel.row_for(names[3]).remove_button
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Space)  # the last row: the focus goes to the row before
    assert [e.name for e in state.entries] == names[:1]
    assert QApplication.focusWidget() is panel.row_for(names[0]).remove_button
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Space)
    assert state.entries == [] and QApplication.focusWidget() is panel.add_button


def test_a_closed_panel_is_not_told_of_its_lora_list_any_more(qtbot):
    """The state outlives its panel (a window closed during a test, its state kept by the app's quit signal): the
    words of a folder read were cleared 15 s after it ended, into the deleted panel's label, which raised."""
    from types import SimpleNamespace

    from PySide6.QtCore import QCoreApplication, QEvent

    from app.lora_scan import Skipped
    from app.lora_state import LoraState
    from app.widgets.lora_panel import LoraPanel

    state = LoraState()
    panel = LoraPanel(SimpleNamespace(loras=state, prompt=None, status_message=print))
    panel.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    state.folder_scan.scan_status = "Added 3 FLUX.1 LoRAs from a folder."
    state.folder_scan.scan_skipped = (Skipped(Path("x.safetensors"), "unusable", "not a LoRA"),)
    state.folder_scan.scanning = True
    state.changed.emit()
    state.cost_changed.emit("")
