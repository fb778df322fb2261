""""Add LoRA…" on a file the LoRA panel lists already: the row stayed as it was (off) and nothing was said, though
picked files are switched on."""

from __future__ import annotations

import shutil

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from app.data_dir import resolve_data_dir
from app.lora_header import read_header
from app.settings import LoraSetting, Settings, save_settings
from gpu.lora import read_lora
from gpu.paths import resources_dir
from tests.app.gui import generate_one, used_restored, window_without_engine
from tests.app.test_lora_panel import _tiny_lora
from tests.lora_files import sdxl_like, text_encoder_lora

EXAMPLE = resources_dir() / "loras" / "monochrome-style.safetensors"


def test_adding_a_listed_lora_again_switches_it_on_and_says_so(qtbot, bare_window, tmp_path, monkeypatch):
    """"Add LoRA…" on a file the panel lists, switched off (by another path to it: a link): its row is switched on,
    not listed twice, and the status bar says it was listed already, as the Models panel says of a model."""
    controller = bare_window.controller
    said, shown = [], []
    controller.status_message.connect(said.append)
    controller.error.connect(shown.append)
    style = tmp_path / "style.safetensors"
    shutil.copy(EXAMPLE, style)
    (tmp_path / "link.safetensors").symlink_to(style)
    (entry,) = controller.loras.add_files([style], enabled=False)[0]
    rows = len(controller.loras.entries)
    picked = [str(tmp_path / "link.safetensors")]
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: (picked, ""))

    qtbot.mouseClick(bare_window.lora_panel.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not bare_window.lora_panel.state.adds.busy, timeout=30000)  # read on a thread
    assert entry.enabled and len(controller.loras.entries) == rows
    assert bare_window.lora_panel.row_for("style").enabled.isChecked()
    assert said == ["The LoRA 'style' is already in the LoRA panel; it is switched on."] and shown == []
    assert bare_window.statusBar().currentMessage() == said[0]


def test_adding_a_listed_lora_whose_file_is_back_shows_the_file_as_it_reads_now(qtbot, data_root, tmp_path,
                                                                                 monkeypatch):  # fmt: skip
    """A row kept from the last session while its file was missing (a drive not plugged in), the file back and
    picked with "Add LoRA…": the row was switched on, but still said "file not found" and no job would take it
    until the next Generate; a file replaced by another LoRA kept the old one's info and trigger words. The row
    shows the file as it reads now, each time."""
    style = tmp_path / "style.safetensors"
    save_settings(data_root / "settings.json", Settings(loras=[LoraSetting(str(style), True, 0.8, "", "")]))
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    controller, panel = window.controller, window.lora_panel
    said = []
    controller.status_message.connect(said.append)
    (entry,) = [e for e in controller.loras.entries if e.path == style]
    assert not entry.enabled and panel.row_for("style").info.text() == f"file not found: {style}"
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(style)], ""))

    shutil.copy(EXAMPLE, style)  # the file is back
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.state.adds.busy, timeout=30000)  # read on a thread
    row = panel.row_for("style")
    assert said == ["The LoRA 'style' is already in the LoRA panel; it is switched on."]
    assert row.enabled.isChecked() and controller.loras.unusable() == []
    assert row.info.text() == read_header(EXAMPLE).info and row.triggers.text() == "monochrome"
    assert not row.text_row.isVisibleTo(row)

    _tiny_lora(style, rank=3, words="ink")  # another LoRA saved over it, the row on already
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.state.adds.busy, timeout=30000)  # read on a thread
    assert row.info.text() == read_header(style).info != read_header(EXAMPLE).info  # the row on screen
    assert row.triggers.text() == "ink" and controller.loras.trigger_text() == "ink"

    text_encoder_lora(style)  # and another, with CLIP and T5 parts: its "Text" strength shows
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.state.adds.busy, timeout=30000)  # read on a thread
    row = panel.row_for("style")
    assert row.info.text() == read_header(style).info and row.text_row.isVisibleTo(row)
    assert not controller.loras.refresh()  # nothing left for the next Generate to find
    assert controller.loras.requests() == [(str(style), 0.8)]  # the strength kept from the last session


def test_picking_a_listed_lora_whose_file_is_refused_now_shows_why_and_switches_it_off(qtbot, window, tmp_path,
                                                                                       monkeypatch):  # fmt: skip
    """A listed LoRA's file replaced by one no job could apply (a LoRA for another model, a damaged download) and
    picked again with "Add LoRA…": the pick was refused with a dialog, but the row kept the old file's info and
    stayed on, as if it were fine. The row now shows why, and is switched off, so the next job runs without it; the
    other rows are as they were."""
    controller, panel = window.controller, window.lora_panel
    style, other = tmp_path / "style.safetensors", tmp_path / "other.safetensors"
    shutil.copy(EXAMPLE, style)
    shutil.copy(EXAMPLE, other)
    picked = [str(style), str(other)]
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: (picked, ""))
    qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not panel.state.adds.busy, timeout=30000)  # read on a thread
    assert panel.row_for("style").enabled.isChecked() and panel.row_for("style").triggers.text() == "monochrome"
    before = [(e.name, e.enabled, e.info, e.trigger_words) for e in controller.loras.entries if e.path != style]
    shown = []
    controller.error.connect(shown.append)

    for damage in (sdxl_like, lambda path: path.write_bytes(b"\0" * 100)):  # another model's LoRA; a damaged file
        damage(style)
        picked[:] = [str(style)]
        qtbot.mouseClick(panel.add_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: not panel.state.adds.busy, timeout=30000)  # read on a thread
        problem = read_header(style).problem
        assert problem and len(shown) == 1
        assert shown[0].message == (f"{style} is not a LoRA that can be used: {problem}. Its row in the LoRA panel "
                                    "now says why, and is switched off.")
        shown.clear()
        row = panel.row_for("style")
        assert row.info.text() == problem and not row.enabled.isChecked()  # was: the old file's info, on
        assert row.triggers.text() == "monochrome"  # the user's words are kept, for when the file is put back
        assert [(e.name, e.enabled, e.info, e.trigger_words)
                for e in controller.loras.entries if e.path != style] == before  # fmt: skip
        made = generate_one(qtbot, controller)  # runs, without it
        assert [lora["name"] for lora in made.settings["lora_list"]] == ["other"]


def test_reusing_an_image_whose_listed_lora_file_is_refused_now_shows_why_on_its_row(qtbot, bare_window, tmp_path):
    """An image reused (Reuse settings, a drop) whose LoRA's listed file was replaced since by one no job could apply:
    the notice said so and the LoRA was left off, but its row kept the old file's info, as if it were fine (a row
    that was on, switched off unsaid there), and a second sentence said its hash matched none of the files of that
    name: "none of them is on". The row now shows why, as "Add LoRA…" of it does, and nothing more is said."""
    controller, panel = bare_window.controller, bare_window.lora_panel
    style = tmp_path / "style.safetensors"
    used = {"name": "style", "file": str(style), "strength": 0.8, "hash": read_lora(EXAMPLE).short_hash}
    settled: list[tuple[list[str], list[str]]] = []
    for was_on in (True, False):
        shutil.copy(EXAMPLE, style)
        controller.loras.add_files([style], enabled=was_on)  # shown as it reads: fine
        fine = read_header(style).info
        assert panel.row_for("style").info.text() == fine and panel.row_for("style").enabled.isChecked() == was_on
        sdxl_like(style)  # another model's LoRA saved over it
        problem = read_header(style).problem
        settled.clear()
        notices = used_restored(qtbot, controller.loras, [used], lambda *said: settled.append(said))
        assert notices == [f"The image used the LoRA 'style' ({style}), which cannot be used now: {problem}; new "
                           "images are made without it."]  # fmt: skip
        row = panel.row_for("style")
        assert row.info.text() == problem and not row.enabled.isChecked()
        qtbot.waitUntil(lambda: bool(settled), timeout=30000)  # its file searched for the image's hash
        assert settled == [([], [])], was_on  # not said again
