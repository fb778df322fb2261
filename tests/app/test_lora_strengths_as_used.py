"""A LoRA's strength off the panel's 0.01 steps (0.333, as the command line, A1111 or ComfyUI give it) was applied as
it is but shown as 0.33, in the row and its "Text" strength (which, given a value of its own, then took 0.33). It is
shown as it is used: 0.333.

A strength that is no number (inf, NaN: a hand-edited or damaged settings.json) became 2.0 (or 1.0) without a word,
and stayed on: the engine refuses such a strength, and the app now says it too, naming the LoRA; its row is kept,
switched off, at strength 1 (its text strength "the same"). A strength beyond what the engine applies is set to the
nearest it applies, and said, as for an image's."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt

from app.data_dir import resolve_data_dir
from app.lora_entry import strength_text
from tests.app.gui import window_without_engine
from tests.app.test_lora_list import flux_lora


def test_strengths_are_shown_as_used_and_one_that_is_no_number_is_refused_by_name(qtbot, data_root, tmp_path):
    files = {name: flux_lora(tmp_path / f"{name}.safetensors", text_part=True) for name in ("third", "inf", "nan",
                                                                                             "three")}  # fmt: skip
    rows = [{"path": str(files["third"]), "enabled": True, "strength": 0.333},
            {"path": str(files["inf"]), "enabled": True, "strength": float("inf")},
            {"path": str(files["nan"]), "enabled": True, "strength": 0.5, "text_strength": float("nan")},
            {"path": str(files["three"]), "enabled": True, "strength": 3.0}]  # fmt: skip
    (data_root / "settings.json").write_text(json.dumps({"version": 2, "loras": rows}))  # Infinity, NaN as JSON reads
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    panel, state = window.lora_panel, window.controller.loras

    notices = [n for n in window.controller.notices if "strength" in n.message]
    inf, nan, three = (panel.row_for(name).entry for name in ("inf", "nan", "three"))
    assert (inf.enabled, inf.strength, panel.row_for("inf").value.text()) == (False, 1.0, "1.00")  # was on, at 2.0
    assert (nan.enabled, nan.strength, nan.text_strength) == (False, 0.5, None)  # was on, silently "the same"
    assert (three.enabled, three.strength) == (True, 2.0)
    assert [(n.kind, n.message, n.hint) for n in notices] == [
        ("notice", f"The LoRA file {files['inf']} has the strength inf in your settings, which is no number a LoRA "
                   "can be applied at: it is switched off, at strength 1.",
         "Set the strength you want in the LoRA panel, then switch it on again."),
        ("notice", f"The LoRA file {files['nan']} has the text strength nan in your settings, which is no number a "
                   "LoRA can be applied at: it is switched off, its text strength the same as its strength.",
         "Set the strength you want in the LoRA panel, then switch it on again."),
        ("notice", f"The LoRA file {files['three']} has the strength 3 in your settings, beyond the -2 to 2 this app "
                   "applies: it is used at 2.", "Set the strength you want in the LoRA panel."),
    ]  # fmt: skip

    third = panel.row_for("third")
    assert third.entry.strength == 0.333 and third.value.text() == "0.333"  # was 0.33
    assert third.text_value.text() == "0.333" and third.text_same.isChecked()  # "same": the strength, as used
    third.text_same.setChecked(False)  # a text strength of its own, from the strength as it is
    assert third.entry.text_strength == 0.333  # was 0.33
    state.switch_to({id(third.entry): (0.825, None)})  # an A1111 image's <lora:third:0.825>, alone
    assert third.value.text() == "0.825" and third.text_value.text() == "0.825"

    window.close()  # what is saved is what is used: 0.825 as it is, no inf or NaN
    saved = json.loads((data_root / "settings.json").read_text())["loras"]
    assert [(s["strength"], s["text_strength"], s["enabled"]) for s in saved if "monochrome" not in s["path"]] == [
        (0.825, None, True), (1.0, None, False), (0.5, None, False), (2.0, None, False)]  # fmt: skip


def test_a_strength_that_is_no_number_of_a_row_that_was_off_is_not_said_as_switched_off(qtbot, data_root, tmp_path):
    """settings.json keeps an ``inf`` strength of a row the user had switched off. The start-up notice said "it is
    switched off, at strength 1" and "Set the strength you want in the LoRA panel, then switch it on again": it was
    off, and never on ("again"); the notice for a missing file is given only for a row that was on. It now says what
    the row takes, and that it stays as it was."""
    lora = flux_lora(tmp_path / "ink.safetensors", text_part=True)
    rows = [{"path": str(lora), "enabled": False, "strength": float("inf"), "text_strength": float("nan")}]
    (data_root / "settings.json").write_text(json.dumps({"version": 2, "loras": rows}))
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    [said] = [n for n in window.controller.notices if "strength" in n.message]
    assert (said.message, said.hint) == (
        f"The LoRA file {lora} has the strength inf in your settings, which is no number a LoRA can be applied at: it "
        "is at strength 1 now; and the text strength nan in your settings, which is no number a LoRA can be applied "
        "at: its text strength is the same as its strength now.", "Set the strength you want in the LoRA panel.")
    entry = window.lora_panel.row_for("ink").entry
    assert (entry.enabled, entry.strength, entry.text_strength) == (False, 1.0, None)


def test_a_strength_too_small_for_six_decimals_does_not_read_as_zero(qtbot, bare_window, tmp_path):
    """An image's LoRA at strength 1e-07 (a program's rounding of 0): the LoRA is applied at it (only 0 is left
    out), and its row showed "0.00", which reads as not applied. It is shown as 1e-07."""
    state, panel = bare_window.controller.loras, bare_window.lora_panel
    [entry] = state.add_files([flux_lora(tmp_path / "ink.safetensors")]).added
    state.switch_to({id(entry): (1e-7, None)})  # the image's <lora:ink:0.0000001>, reused
    assert entry.strength == 1e-7 and entry.request() == (str(entry.path), 1e-7)  # what a job applies
    assert panel.row_for("ink").value.text() == "1e-07"  # was: "0.00"


def test_a_text_strength_too_small_for_six_decimals_is_shown_as_used(qtbot, bare_window, tmp_path):
    """The "Text" strength box held six decimals: a strength of 1e-07 (applied: only 0 is left out) showed "0.00"
    in it, "the same" as the strength beside it, which said 1e-07; given a value of its own, the box still said
    "0.00" for a text strength of 1e-07. It shows the value as used, as the row's other strength does, and what is
    typed or stepped in it is taken as it shows."""
    state, panel = bare_window.controller.loras, bare_window.lora_panel
    [entry] = state.add_files([flux_lora(tmp_path / "ink.safetensors", text_part=True)]).added
    row = panel.row_for("ink")
    state.switch_to({id(entry): (1e-7, None)})  # an image's <lora:ink:0.0000001>, reused: "same"
    assert (row.value.text(), row.text_value.text()) == ("1e-07", "1e-07")  # was: "1e-07", "0.00"
    row.text_same.setChecked(False)  # a text strength of its own, from the strength as it is
    assert entry.text_strength == 1e-7 and row.text_value.text() == "1e-07"  # was: "0.00"
    state.switch_to({id(entry): (1.0, 3e-7)})  # <lora:ink:te=0.0000003:unet=1>
    assert (row.value.text(), row.text_value.text()) == ("1.00", "3e-07")  # was: "1.00", "0.00"
    row.text_value.stepBy(1)  # a step up from it: what the box shows is what is used
    assert entry.text_strength == row.text_value.value() and row.text_value.text() == strength_text(
        entry.text_strength)  # fmt: skip
    row.text_value.setFocus()
    row.text_value.lineEdit().selectAll()
    qtbot.keyClicks(row.text_value, "0")
    qtbot.keyClick(row.text_value, Qt.Key.Key_Return)
    assert entry.text_strength == 0.0 and row.text_value.text() == "0.00"  # typed: taken as typed
