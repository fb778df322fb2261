"""Gallery, history, drag-and-drop restore and start-up reconciliation, on the real window."""

from __future__ import annotations

import json
import re

from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from app.data_dir import resolve_data_dir
from app.image_files import read_image_settings
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import drop_file, open_window, pane_text, saved_as, trash_listing

A1111 = ("a castle on a hill, dramatic sky\nNegative prompt: blurry, lowres\n"
         "Steps: 7, Sampler: Euler a, CFG scale: 5.5, Seed: 1234, Size: 320x192, Model: sdxl")  # fmt: skip


def test_drop_a1111_png_restores_settings(qtbot, tmp_path, window):
    path = tmp_path / "other_tool.png"
    info = PngInfo()
    info.add_text("parameters", A1111)
    Image.new("RGB", (32, 32)).save(path, pnginfo=info)
    drop_file(window.prompt_panel, path)
    state = window.controller.prompt
    assert state.prompt == "a castle on a hill, dramatic sky"
    assert state.negative_prompt == "blurry, lowres"
    assert (state.steps, state.guidance, state.seed, state.width, state.height) == (7, 5.5, 1234, 320, 192)
    assert state.seed_locked
    # the widgets follow the state
    assert window.prompt_panel.prompt_edit.toPlainText() == "a castle on a hill, dramatic sky"
    assert window.prompt_panel.seed_edit.value() == 1234


def test_drop_our_png_and_a_png_without_metadata(qtbot, tmp_path, window):
    ours = tmp_path / "ours.png"
    settings = {"prompt": "multi\nline prompt", "negative_prompt": "", "seed": 99, "steps": 3, "guidance": 2.0,
                "width": 144, "height": 160, "model": "demo"}  # fmt: skip
    write_png(ours, Image.new("RGB", (16, 16)), settings)
    drop_file(window.prompt_panel, ours)
    state = window.controller.prompt
    assert state.prompt == "multi\nline prompt"  # newlines survive: chunks are read directly
    assert (state.seed, state.steps, state.width, state.height) == (99, 3, 144, 160)
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    drop_file(window.prompt_panel, plain)
    assert window.error_dialog is not None
    assert window.error_dialog.text() == ("Nothing was restored from plain.png: it carries no generation settings "
                                          "(no A1111, ComfyUI or Nibble Studio text chunk).")  # fmt: skip


def test_reconcile_after_simulated_crash(qtbot, data_root):
    data = resolve_data_dir(data_root)
    # crash between "PNG written" and "row committed": a file without a row
    orphan = data.images / "2026-01-01" / "120000-5-0.png"
    orphan.parent.mkdir(parents=True)
    write_png(orphan, Image.new("RGB", (16, 16), "red"), {"prompt": "orphan fox", "seed": 5, "steps": 2})
    # a row whose file vanished (deleted outside the app, disk trouble)
    store = Store(data.database)
    store.add_image("2026-01-01/gone.png", {"prompt": "lost owl"}, created=1.0)
    store.close()
    window = open_window(qtbot, data_root)
    gallery = window.controller.gallery
    assert window.controller.reconcile_report.imported == 1
    assert window.controller.reconcile_report.missing == 1
    by_prompt = {gallery.record(r).prompt: gallery.record(r) for r in range(gallery.rowCount())}
    assert set(by_prompt) == {"orphan fox", "lost owl"}
    assert by_prompt["lost owl"].missing and not by_prompt["orphan fox"].missing
    assert by_prompt["orphan fox"].settings["seed"] == 5
    window.gallery_panel.select_row(gallery.row_of(by_prompt["lost owl"].id))
    assert "missing" in pane_text(qtbot, window.gallery_panel)
    # reuse settings from the imported entry
    window.gallery_panel.select_row(gallery.row_of(by_prompt["orphan fox"].id))
    window.gallery_panel.reuse_settings()
    assert window.controller.prompt.prompt == "orphan fox"


# What the engine writes for an image made with a LoRA (gpu.generation.service), internal keys included.
ENGINE_SETTINGS = {
    "prompt": "a lighthouse at dusk", "negative_prompt": "blurry", "seed": 4242, "steps": 4, "guidance": 3.5,
    "width": 256, "height": 192, "model": "demo", "model_hash": "ff1a01d748", "sampler": "Euler",
    "precision": "bf16", "execution_path": "PyTorch float32 on CPU", "memory_policy": "cpu",
    "version": "NibbleStudio-0.1.0", "loras": "monochrome-style: 0123abcd",
    "lora_list": [{"name": "monochrome-style", "file": "/x/monochrome-style.safetensors", "strength": 0.8,
                   "hash": "0123abcd", "format": "peft", "rank": 4, "trigger_words": ["mono"]}],
    "duration_s": 83.4, "created": "2026-01-02T03:04:05+00:00",
}  # fmt: skip


def _no_line_break_between_numbers_and_units(pane) -> None:
    """However narrow the pane, its lines never break between a number and its unit ("Time taken: 0.3" with
    "s" alone on the next line), nor between "strength" or the app's name and their number: each line is laid
    out as the pane lays it out, at every width from the longest such group to the whole line."""
    from PySide6.QtGui import QTextLayout, QTextOption

    joined = re.compile(r"(?<=\d)\s(?=(s|min)\b)|(?<=strength)\s(?=\d)|(?<=NibbleStudio)\s(?=\d)")
    option = QTextOption()
    option.setWrapMode(pane.wordWrapMode())
    for line in pane.document().toRawText().split("\u2029"):  # the text as shown (toPlainText: no-break spaces too)
        kept = {m.end() for m in joined.finditer(line)}
        if not kept:
            continue
        layout = QTextLayout(line, pane.font())
        layout.setTextOption(option)
        # Widths at which the joined words fit on a line (narrower, the pane breaks anywhere, letters included).
        groups = [word.replace("\0", " ") for word in joined.sub("\0", line).split() if "\0" in word]
        metrics = pane.fontMetrics()
        narrowest = max(metrics.horizontalAdvance(group) for group in groups) + 2
        for width in range(narrowest, metrics.horizontalAdvance(line) + 10, 2):
            layout.beginLayout()
            starts = []
            while (row := layout.createLine()).isValid():
                row.setLineWidth(width)
                starts.append(row.textStart())
            layout.endLayout()
            assert not kept & set(starts), (line, width)


def test_metadata_pane_is_a_readable_summary(qtbot, data_root):
    data = resolve_data_dir(data_root)
    path = data.images / "2026-01-02" / "030405-4242-0.png"
    path.parent.mkdir(parents=True)
    write_png(path, Image.new("RGB", (16, 16)), ENGINE_SETTINGS)  # imported at start-up, like any PNG of ours
    window = open_window(qtbot, data_root)
    window.gallery_panel.select_row(0)
    text = pane_text(qtbot, window.gallery_panel)
    from datetime import datetime, timezone

    local = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M")
    assert text.splitlines() == [
        "Prompt: a lighthouse at dusk",
        "Negative prompt: blurry",
        "Seed: 4242",
        "Steps: 4",
        "Guidance: 3.5",
        "Size: 256×192",
        "Model: demo",
        "LoRAs: monochrome-style (strength 0.80)",
        "",
        "How it ran",
        "Ran on: PyTorch float32 on CPU",
        "Time taken: 1 min 23 s",
        f"Created: {local}",
        "App version: NibbleStudio 0.1.0",
        "",
        f"File: {path}",
    ]
    _no_line_break_between_numbers_and_units(window.gallery_panel.metadata)
    # no internal keys, no Python reprs, no second copy of the same facts (the A1111 text)
    for internal in ("memory_policy", "model_hash", "lora_list", "duration_s", "Settings:", "{", "[", "CFG scale"):
        assert internal not in text
    assert window.gallery_panel.metadata.textInteractionFlags() & Qt.TextInteractionFlag.TextSelectableByMouse
    # the file keeps everything: only the pane's wording changed
    assert read_image_settings(path) == ENGINE_SETTINGS


def test_metadata_pane_of_another_programs_image_says_where_its_settings_came_from(qtbot, data_root):
    data = resolve_data_dir(data_root)
    path = data.images / "other" / "a1111.png"
    path.parent.mkdir(parents=True)
    info = PngInfo()
    info.add_text("parameters", A1111)
    Image.new("RGB", (16, 16)).save(path, pnginfo=info)
    window = open_window(qtbot, data_root)
    window.gallery_panel.select_row(0)
    lines = pane_text(qtbot, window.gallery_panel).splitlines()
    assert lines[:7] == ["Prompt: a castle on a hill, dramatic sky", "Negative prompt: blurry, lowres", "Seed: 1234",
                          "Steps: 7", "Guidance: 5.5", "Size: 320×192", "Model: sdxl"]  # fmt: skip
    assert "How it ran" not in lines  # none of it was stored
    assert lines[-3:] == ['Read from the image\'s A1111 "parameters" text (made with another program).', "",
                          f"File: {path}"]  # fmt: skip


def test_gallery_search_favorite_delete_undo(qtbot, data_root):
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    for i in range(3):
        rel = f"d/{i}.png"
        write_png(data.images / rel, Image.new("RGB", (16, 16)), {"prompt": f"cat {i}" if i else "dog"})
        store.add_image(rel, {"prompt": f"cat {i}" if i else "dog"}, created=float(i))
    store.close()
    window = open_window(qtbot, data_root)
    panel, gallery = window.gallery_panel, window.controller.gallery
    assert gallery.rowCount() == 3
    panel.search.setText("cat")
    qtbot.keyClick(panel.search, Qt.Key.Key_Return)  # at once (typing, after a pause)
    assert gallery.rowCount() == 2
    panel.search.setText("")
    panel.select_row(0)
    panel.toggle_favorite()
    panel.favorites_only.setChecked(True)
    assert gallery.rowCount() == 1
    panel.favorites_only.setChecked(False)
    panel.select_row(0)
    deleted = gallery.record(0)
    panel.delete_selected()
    assert gallery.rowCount() == 2
    assert not (data.images / deleted.path).exists() and (data.trash / deleted.path).exists()
    assert panel.undo_button.isEnabled()
    qtbot.mouseClick(panel.undo_button, Qt.MouseButton.LeftButton)
    assert gallery.rowCount() == 3 and (data.images / deleted.path).exists()
    # Its file removed from the trash by hand (or by another program) before Undo: the entry comes back marked
    # missing, and the user is told which (was: back without a word, as if its picture were coming).
    errors = []
    window.controller.error.connect(errors.append)
    panel.select_row(0)
    panel.delete_selected()
    (data.trash / deleted.path).unlink()
    panel.undo_button.click()
    assert gallery.rowCount() == 3 and gallery.record(0).id == deleted.id and gallery.record(0).missing
    assert window.controller.store.image(deleted.id).missing  # as the next start would find it
    assert [e.message for e in errors] == [
        f"The file of '{deleted.prompt}' was no longer in the trash folder {data.trash}; its entry is back in the "
        "gallery without a picture, marked missing."
    ]
    assert str(data.images / deleted.path) in errors[0].hint
    panel.select_row(0)
    assert pane_text(qtbot, panel).startswith("⚠ File missing")
    panel.copy_prompt()
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text() == gallery.record(0).prompt


def test_history_dedup_search_reuse_clear(qtbot, window):
    history = window.controller.history
    for prompt in ("a fox", "a cat", "a fox"):
        history.add(prompt, "")
    assert history.rowCount() == 2
    assert history.record(0).prompt == "a fox" and history.record(0).uses == 2
    window.history_panel.search.setText("cat")
    qtbot.keyClick(window.history_panel.search, Qt.Key.Key_Return)
    assert history.rowCount() == 1
    window.history_panel.reuse(history.index(0))
    assert window.controller.prompt.prompt == "a cat"
    window.history_panel.search.setText("")
    history.clear()
    assert history.rowCount() == 0


def test_gallery_stays_fast_with_10000_images(qtbot, data_root):
    import time

    data = resolve_data_dir(data_root)
    store = Store(data.database)
    store._db.execute("BEGIN")
    store._db.executemany(
        "INSERT INTO images (path, prompt, search_key, settings, created) VALUES (?1, ?2, search_key(?2), ?3, ?4)",
        [(f"bulk/{i}.png", f"prompt number {i}", json.dumps({"prompt": f"prompt number {i}"}), float(i))
         for i in range(10000)])  # fmt: skip
    store._db.execute("COMMIT")
    store.close()
    (data.images / "bulk").mkdir()
    Image.new("RGB", (64, 64)).save(data.images / "bulk" / "x.png")  # files mostly missing: flagged, fine
    start = time.perf_counter()
    window = open_window(qtbot, data_root)
    gallery = window.controller.gallery
    assert gallery.rowCount() == 10001
    view = window.gallery_panel.view
    start = time.perf_counter()
    for row in range(0, 10000, 500):
        view.scrollTo(gallery.index(row))
        qtbot.wait(1)
    assert time.perf_counter() - start < 3.0
    start = time.perf_counter()
    window.gallery_panel.search.setText("\"number 99\"")  # a phrase: number 99, 990-999, 9900-9999
    qtbot.keyClick(window.gallery_panel.search, Qt.Key.Key_Return)
    assert gallery.rowCount() == 111 and time.perf_counter() - start < 1.0


def test_delete_that_cannot_reach_the_trash_keeps_the_image_and_says_why(qtbot, data_root):
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    for i, day in enumerate(("a", "b")):
        write_png(data.images / day / "x.png", Image.new("RGB", (16, 16)), {"prompt": f"owl {i}"})
        store.add_image(f"{day}/x.png", {"prompt": f"owl {i}"}, created=float(i))
    store.close()
    (data.trash / "b").write_bytes(b"")  # a file where the trash needs a folder (as a read-only trash would)
    window = open_window(qtbot, data_root)
    panel, gallery = window.gallery_panel, window.controller.gallery
    errors = []
    window.controller.error.connect(errors.append)
    panel.view.selectAll()
    panel.delete_selected()  # the last row ("a/x.png", oldest) goes first; "b/x.png" cannot
    assert [gallery.record(r).path for r in range(gallery.rowCount())] == ["b/x.png"]
    assert (data.images / "b" / "x.png").is_file() and (data.trash / "a" / "x.png").is_file()
    assert len(errors) == 1 and str(data.trash / "b") in errors[0].message
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    window.error_dialog.accept()
    assert panel.undo_button.isEnabled()  # the deletion that did happen can be undone
    panel.undo_button.click()
    assert gallery.rowCount() == 2 and (data.images / "a" / "x.png").is_file()


def test_restoring_an_image_whose_model_is_gone_says_so(qtbot, tmp_path, window):
    path = tmp_path / "old.png"
    write_png(path, Image.new("RGB", (16, 16)), {"prompt": "a fox", "seed": 3, "model": "removed-model"})
    drop_file(window.prompt_panel, path)
    state = window.controller.prompt
    assert (state.prompt, state.seed, state.model) == ("a fox", 3, "demo")
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    assert "'removed-model'" in window.error_dialog.text() and "'demo'" in window.error_dialog.text()
    # ComfyUI's: the model its graph loaded (was: the settings restored onto the demo model without a word)
    graph = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["4", 1]}},
             "3": {"class_type": "KSampler", "inputs": {"seed": 99, "steps": 5, "model": ["4", 0],
                   "positive": ["6", 0]}}}  # fmt: skip
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph))
    Image.new("RGB", (8, 8)).save(tmp_path / "comfy.png", pnginfo=info)
    window.error_dialog.close()
    drop_file(window.prompt_panel, tmp_path / "comfy.png")
    assert (state.prompt, state.seed, state.model) == ("a lighthouse", 99, "demo")
    qtbot.waitUntil(lambda: window.error_dialog.isVisible() and "'sd_xl_base_1.0'" in window.error_dialog.text())
    assert "not in your library" in window.error_dialog.text()


def test_images_leave_the_gallery_with_their_settings(qtbot, tmp_path, data_root, monkeypatch):
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    for i in range(2):
        write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (16, 16), (200, 10 * i, 0)), {"prompt": f"owl {i}"})
        store.add_image(f"d/{i}.png", {"prompt": f"owl {i}"}, created=float(i))
    store.close()
    window = open_window(qtbot, data_root)
    panel, gallery, controller = window.gallery_panel, window.controller.gallery, window.controller
    errors = []
    controller.error.connect(errors.append)
    # drag out: the PNG files themselves; Ctrl+C: the current image's pixels, for image editors
    panel.view.selectAll()
    assert panel.view.dragEnabled() and gallery.flags(gallery.index(0)) & Qt.ItemFlag.ItemIsDragEnabled
    urls = gallery.mimeData([gallery.index(r) for r in range(2)]).urls()
    assert sorted(u.toLocalFile() for u in urls) == [str(data.images / "d" / f"{i}.png") for i in (0, 1)]
    panel.select_row(1)
    panel.copy_image()
    from PySide6.QtGui import QGuiApplication

    qtbot.waitUntil(lambda: QGuiApplication.clipboard().image().pixelColor(3, 3).getRgb()[:3] == (200, 0, 0),
                    timeout=30000)  # decoded on a thread  # fmt: skip
    # Save as: a byte copy (settings kept), ".png" added to a bare name, through the real button and dialog call
    panel.select_row(0)
    record = gallery.record(0)
    source = gallery.path_of(record)
    monkeypatch.setattr("app.widgets.gallery_panel.ask_png_name", lambda *a: str(tmp_path / "keep"))
    with qtbot.waitSignal(controller.image_save.ended, timeout=30000):  # copied on a thread
        panel.save_button.click()
    assert (tmp_path / "keep.png").read_bytes() == source.read_bytes()
    # refused, each naming the file and why, and nothing replaced
    (tmp_path / "other.jpg").write_bytes(b"mine")
    assert saved_as(qtbot, controller, record, tmp_path / "other.jpg") is None
    assert (tmp_path / "other.jpg").read_bytes() == b"mine"
    assert saved_as(qtbot, controller, record, tmp_path / "keep.png" / "x.png") is None  # a file as the folder
    assert len(errors) == 2 and "only .png keeps" in errors[0].message
    assert str(tmp_path / "keep.png" / "x.png") in errors[1].message
    assert (tmp_path / "keep.png").read_bytes() == source.read_bytes()


def test_empty_trash_asks_then_deletes_for_good(qtbot, data_root):
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    for i in range(3):
        write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (16, 16)), {"prompt": f"owl {i}"})
        store.add_image(f"d/{i}.png", {"prompt": f"owl {i}"}, created=float(i))
    store.close()
    (data.trash / "old").mkdir(parents=True)
    (data.trash / "old" / "lost-row.png").write_bytes(b"x")  # a trashed file whose row a repair lost
    window = open_window(qtbot, data_root)
    panel, gallery = window.gallery_panel, window.controller.gallery
    panel.view.selectAll()
    panel.select_row(0)
    panel.delete_selected()
    assert gallery.rowCount() == 2 and trash_listing(qtbot, gallery).size[0] == 2

    def answer(button):
        def click() -> None:
            box = getattr(panel, "trash_dialog", None)
            if box is None or not box.isVisible():
                QTimer.singleShot(20, click)
                return
            box.button(button).click()

        QTimer.singleShot(20, click)

    def answered() -> bool:  # the trash is listed on a thread, then the confirmation asks
        return getattr(panel, "trash_dialog", None) is not None and not panel.trash_dialog.isVisible()

    answer(QMessageBox.StandardButton.Cancel)
    panel.empty_trash_button.click()
    qtbot.waitUntil(answered)
    assert trash_listing(qtbot, gallery).size[0] == 2 and panel.undo_button.isEnabled()  # Cancel keeps everything
    panel.trash_dialog = None
    answer(QMessageBox.StandardButton.Yes)
    panel.empty_trash_button.click()
    qtbot.waitUntil(answered)
    assert trash_listing(qtbot, gallery).size == (0, 0) and not panel.undo_button.isEnabled()
    assert gallery.rowCount() == 2 and all(gallery.path_of(gallery.record(r)).is_file() for r in range(2))
    window.close()
    again = open_window(qtbot, data_root)  # the rows are gone too: nothing to undo, nothing flagged missing
    assert again.controller.gallery.rowCount() == 2 and again.controller.gallery.undo_count == 0


def test_a_png_from_another_program_whose_metadata_is_odd_never_stops_the_app(qtbot, data_root, tmp_path):
    """A PNG with a "prompt" chunk shaped like a ComfyUI graph, but not quite (a node whose inputs are a list),
    copied into the images folder: the reader tripped on it at start-up and the app did not start at all.
    Now it is imported without settings, and dropping it says it carries none."""
    data = resolve_data_dir(data_root)
    info = PngInfo()
    info.add_text("prompt", json.dumps({"3": {"class_type": "KSampler", "inputs": [7, 42]}}))
    (data.images / "other").mkdir(parents=True)
    odd = data.images / "other" / "from-another-tool.png"
    Image.new("RGB", (16, 16), "red").save(odd, pnginfo=info)
    window = open_window(qtbot, data_root)
    gallery = window.controller.gallery
    assert gallery.rowCount() == 1 and gallery.record(0).path == "other/from-another-tool.png"
    window.gallery_panel.select_row(0)
    window.gallery_panel.reuse_settings()  # nothing to reuse, and no exception
    window.controller.prompt.prompt = "kept"
    drop_file(window.prompt_panel, odd)
    assert window.error_dialog is not None
    assert window.error_dialog.text() == ("Nothing was restored from from-another-tool.png: its ComfyUI prompt graph "
                                          "chunk ('prompt') holds no settings that can be read.")  # fmt: skip
    assert window.controller.prompt.prompt == "kept"


def test_an_image_whose_name_is_no_valid_text_is_named_and_the_app_starts(qtbot, data_root):
    """On Linux a file name is any bytes: a PNG named in Latin-1 (an old archive unpacked as is) in the images
    folder made the database refuse its name at start-up, and the app did not start at all."""
    import os

    data = resolve_data_dir(data_root)
    write_png(data.images / "fine.png", Image.new("RGB", (16, 16)), {"prompt": "a fine name"})
    latin1 = os.path.join(os.fsencode(data.images), b"caf\xe9.png")
    with open(latin1, "wb") as f:
        Image.new("RGB", (16, 16)).save(f, format="PNG")
    window = open_window(qtbot, data_root)
    gallery = window.controller.gallery
    assert [gallery.record(r).prompt for r in range(gallery.rowCount())] == ["a fine name"]
    assert window.error_dialog is not None and window.error_dialog.isVisible()
    text = window.error_dialog.text()
    assert "1 image" in text and "not valid text" in text and "caf\ufffd.png" in text
    assert "Rename" in window.error_dialog.informativeText()
    window.error_dialog.accept()
    assert os.path.isfile(latin1)  # left as it is


def test_metadata_pane_names_the_loras_of_another_programs_image():
    """An A1111/Forge image's LoRAs (its <lora:…> tags, read as ``lora_refs``) were left out of the pane, which
    named only ours (``lora_list``): now in the same words, the text strength where it is one of its own."""
    from app.image_summary import settings_lines
    from gpu.generation.png_metadata import parse_parameters

    settings = parse_parameters("a cat, <lora:ink_style:0.8>, <lora:detail:0.5:1.5>, <lora:same:0.7:0.7>\n"
                                'Steps: 2, Seed: 7, Size: 128x128, Lora hashes: "detail: 0123456789ab"')  # fmt: skip
    assert "LoRAs: ink_style (strength\xa00.80), detail (strength\xa01.50, text\xa00.50), same (strength\xa00.70)" in (
        settings_lines(settings))  # fmt: skip
    assert not [line for line in settings_lines(parse_parameters("a cat\nSteps: 2")) if "LoRA" in line]
