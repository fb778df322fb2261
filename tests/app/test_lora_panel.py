"""The LoRA panel drives a real generation: add a file, enable it, set its strength with the slider; the image
changes, carries ``Lora hashes`` in its A1111 metadata, and disabling the LoRA gives the original image back."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from lora_files import save_peft_lora, sdxl_like
from PIL import Image
from PySide6.QtCore import Qt

from app.settings import load_settings
from gpu.generation.png_metadata import parse_parameters, read_png_text
from tests.app.gui import drop_file, loras_restored, open_window, used_restored
from tests.test_lora_folder import refuse_to_list


def _generate(qtbot, window) -> list:
    with qtbot.waitSignal(window.controller.job_finished, timeout=120000) as blocker:
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
    return blocker.args[0]


def _pixels(window, record) -> np.ndarray:
    with Image.open(window.controller.gallery.path_of(record)) as im:
        return np.asarray(im.convert("RGB")).copy()


@pytest.fixture
def style_lora(demo_model, tmp_path) -> Path:
    """A PEFT LoRA of the demo model, made before the window opens: importing diffusers' pipelines here while the
    engine worker imports them on its thread raced (diffusers' lazy module then said it has no FluxPipeline)."""
    return save_peft_lora(demo_model, tmp_path / "style", rank=4, alpha=4.0, seed=3, effect=0.3)


def test_lora_panel_applies_and_removes_a_lora(qtbot, style_lora, window, tmp_path):
    lora = style_lora
    panel = window.lora_panel
    entry = window.controller.loras.add_file(lora)
    row = panel.row_for(entry.name)
    assert "diffusers/PEFT, rank 4" in entry.info
    window.prompt_panel.prompt_edit.setPlainText("a red circle on a blue background")
    window.controller.prompt.seed_locked = True

    plain = _generate(qtbot, window)[0]
    row.enabled.setChecked(True)
    row.slider.setValue(150)
    assert window.controller.loras.requests() == [(str(lora.resolve()), 1.5)]
    styled = _generate(qtbot, window)[0]
    assert styled.settings["lora_list"][0]["strength"] == 1.5
    text = read_png_text(window.controller.gallery.path_of(styled))["parameters"]
    assert "Lora hashes: " in text
    params = parse_parameters(text)
    assert params["loras"] == f"{lora.stem}: {entry_hash(lora)}"
    assert not np.array_equal(_pixels(window, plain), _pixels(window, styled))
    # the dock reports the cost measured against the LoRA-free image of the same size made just before
    assert "time per step" in panel.cost.text() and f"{lora.stem} (rank 4)" in panel.cost.text()
    assert isinstance(styled.settings["lora_overhead_pct"], float)

    row.enabled.setChecked(False)
    again = _generate(qtbot, window)[0]
    assert "loras" not in again.settings
    assert panel.cost.text() == ""
    assert np.array_equal(_pixels(window, plain), _pixels(window, again))  # removal is bit-exact

    # "reuse settings" brings back the LoRAs an image was made with, and switches them off for one made without
    row.slider.setValue(40)
    window.controller.reuse_settings(styled)
    loras_restored(qtbot, window.controller.loras)
    assert window.controller.loras.requests() == [(str(lora.resolve()), 1.5)]
    assert panel.row_for(entry.name).enabled.isChecked()
    window.controller.reuse_settings(plain)
    loras_restored(qtbot, window.controller.loras)
    assert window.controller.loras.requests() == []
    # the LoRA's file moved to another folder: the user is told; once that file is listed, it is found by name
    (tmp_path / "other").mkdir()
    moved = Path(shutil.move(lora, tmp_path / "other" / lora.name))
    window.controller.loras.remove(entry)
    with qtbot.waitSignal(window.controller.error, timeout=5000) as blocker:
        window.controller.reuse_settings(styled)
        loras_restored(qtbot, window.controller.loras)
    assert blocker.args[0].kind == "notice" and f"({lora.name})" in blocker.args[0].message  # the name: no folders
    assert window.controller.loras.requests() == []
    window.controller.loras.add_file(moved)
    window.controller.reuse_settings(styled)
    loras_restored(qtbot, window.controller.loras)
    assert window.controller.loras.requests() == [(str(moved.resolve()), 1.5)]


def entry_hash(path) -> str:
    """A1111's and Civitai's (AutoV3) short hash of a LoRA: the SHA-256 of its data after the header."""
    import hashlib
    import struct

    data = path.read_bytes()
    return hashlib.sha256(data[8 + struct.unpack("<Q", data[:8])[0] :]).hexdigest()[:12]


def test_the_lora_list_survives_a_restart_and_a_missing_file_keeps_its_row(qtbot, data_root, tmp_path):
    """Also: trigger words the user did not edit follow a file replaced while the app was closed, or while it was
    missing. The saved words of the old file came back as if typed (they differed from the new header's), and
    every Generate put them in the prompt while the info line described the new file."""
    from gpu.paths import resources_dir

    lora = tmp_path / "mine.safetensors"
    shutil.copy(resources_dir() / "loras" / "monochrome-style.safetensors", lora)
    theirs = _tiny_lora(tmp_path / "theirs.safetensors", words="a words")
    window = open_window(qtbot, data_root)
    entry = window.controller.loras.add_file(lora)
    window.controller.loras.add_file(theirs, enabled=True)
    row = window.lora_panel.row_for("mine")
    row.enabled.setChecked(True)
    row.slider.setValue(-70)
    row.triggers.setText("my own words")
    window.close()

    _tiny_lora(lora, words="b words")  # other LoRAs saved over both while the app was closed
    _tiny_lora(theirs, words="b words")
    again = open_window(qtbot, data_root)
    assert again.controller.loras.requests() == [(str(entry.path), -0.7), (str(theirs), 1.0)]
    row = again.lora_panel.row_for("mine")
    assert row.enabled.isChecked() and row.slider.value() == -70 and row.triggers.text() == "my own words"
    assert again.lora_panel.row_for("theirs").triggers.text() == "b words"
    assert again.controller.loras.trigger_text() == "my own words, b words"
    again.close()

    lora.unlink()  # moved away, or on a drive that is not plugged in
    theirs.unlink()
    third = open_window(qtbot, data_root)
    row = third.lora_panel.row_for("mine")
    assert not row.enabled.isChecked() and row.triggers.text() == "my own words"
    assert "file not found" in row.entry.info
    qtbot.waitUntil(lambda: third.error_dialog is not None and third.error_dialog.isVisible())
    assert str(entry.path) in third.error_dialog.text()
    third.error_dialog.accept()
    assert third.controller.loras.requests() == []  # jobs run without it
    _tiny_lora(lora, words="c words")  # both back, as other LoRAs, and switched on again
    _tiny_lora(theirs, words="c words")
    for name in ("mine", "theirs"):
        third.lora_panel.row_for(name).enabled.setChecked(True)
    assert len(third.controller.loras.requests()) == 2
    assert [third.lora_panel.row_for(n).triggers.text() for n in ("mine", "theirs")] == ["my own words", "c words"]
    third.close()
    assert str(entry.path) in [s.path for s in load_settings(data_root / "settings.json").loras]  # remembered


def test_a_lora_file_with_a_malformed_header_is_skipped_not_raised(qtbot, window, tmp_path, caplog):
    """A folder's files that are no usable FLUX.1 LoRA are skipped (a folder the user picks says so on the
    panel: ``test_lora_skipped_files``), each logged with why."""
    folder = tmp_path / "loras"
    folder.mkdir()
    header = b'{"a.lora_A.weight": 3}'  # JSON, but not a tensor table
    (folder / "odd.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)
    (folder / "list.safetensors").write_bytes((5).to_bytes(8, "little") + b"[1,2]")
    _tiny_lora(folder / "good.safetensors")
    with caplog.at_level("INFO", logger="app.lora_state"):
        added = window.controller.loras.add_folder(folder)
    assert [e.name for e in added] == ["good"]
    assert "list.safetensors: the header is not a JSON object: the file is corrupt" in caplog.text
    assert "odd.safetensors: the header's entry for tensor 'a.lora_A.weight' is malformed: the file is corrupt" \
        in caplog.text  # fmt: skip


def test_a_png_with_a_damaged_lora_list_restores_what_it_can_and_says_what_not(qtbot, window, tmp_path):
    """A PNG that says it is ours but whose ``lora_list`` is damaged (hand-edited, another tool's): dropping it
    raised in the middle of restoring (the prompt set, the LoRAs not, and no word to the user)."""
    from gpu.generation.png_metadata import write_png
    from gpu.version import APP_NAME

    controller = window.controller
    shipped = next(e for e in controller.loras.entries if e.name == "monochrome-style")
    settings = {
        "prompt": "a restored prompt",
        "seed": 5,
        "version": f"{APP_NAME}-0.1.0",
        "lora_list": [
            "monochrome-style",  # a bare name, not an entry
            {"file": "loras/a\x00b.safetensors", "name": "nul"},  # a name no file can have
            {"file": str(shipped.path), "name": "monochrome-style", "strength": "strong"},
        ],
    }
    png = tmp_path / "damaged-loras.png"
    write_png(png, Image.new("RGB", (16, 16)), settings)
    shown: list = []
    controller.error.connect(shown.append)
    drop_file(window.prompt_panel, png)
    loras_restored(qtbot, window.controller.loras)
    assert controller.prompt.prompt == "a restored prompt" and controller.prompt.seed == 5
    assert shipped.enabled and shipped.strength == 1.0  # the usable entry is used, at the default strength
    messages = " | ".join(e.message for e in shown)
    assert "names no LoRA (monochrome-style)" in messages and "'nul'" in messages and "strong" in messages

    # an integer strength too large for a float: float() raises OverflowError, neither TypeError nor ValueError
    settings["lora_list"] = [{"file": str(shipped.path), "name": "monochrome-style", "strength": 10**400}]
    settings["prompt"] = "a huge strength"
    write_png(png, Image.new("RGB", (16, 16)), settings)
    shown.clear()
    drop_file(window.prompt_panel, png)
    loras_restored(qtbot, window.controller.loras)
    assert controller.prompt.prompt == "a huge strength" and shipped.enabled and shipped.strength == 1.0
    assert any("monochrome-style" in e.message and "no number" in e.message for e in shown)


def _tiny_lora(path: Path, rank: int = 1, words: str = "") -> Path:
    """A small valid kohya-named FLUX.1 LoRA (one layer): enough for the panel, which reads headers only.
    ``words``: the trigger words its metadata gives."""
    import torch
    from safetensors.torch import save_file

    base = "lora_unet_double_blocks_0_img_attn_proj"
    save_file(
        {
            f"{base}.lora_down.weight": torch.zeros(rank, 8),
            f"{base}.lora_up.weight": torch.zeros(8, rank),
            f"{base}.alpha": torch.tensor(float(rank)),
        },
        path,
        metadata={"trigger_words": words} if words else None,
    )
    return path


def test_adding_files_that_are_no_lora_refuses_each_by_name(qtbot, window, demo_model, tmp_path, monkeypatch):
    """ "Add LoRA…" listed every picked file, switched on, whatever it was: a pickle .ckpt (its magic bytes read as
    a header "truncated or not a safetensors file"), an empty or half-downloaded file. No word at the time, and
    every job after failed on it until the user found the row and switched it off."""
    import torch
    from PySide6.QtWidgets import QFileDialog

    good = _tiny_lora(tmp_path / "good one.safetensors")
    (tmp_path / "empty.safetensors").write_bytes(b"")
    full = save_peft_lora(demo_model, tmp_path / "peft", rank=2).read_bytes()
    (tmp_path / "half.safetensors").write_bytes(full[: len(full) // 2])
    torch.save({"lora_down": torch.zeros(2, 2)}, tmp_path / "old.ckpt")
    picked = [str(tmp_path / n) for n in ("old.ckpt", "good one.safetensors", "empty.safetensors", "half.safetensors")]
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: (picked, ""))
    state = window.controller.loras
    before = [e.name for e in state.entries]
    qtbot.mouseClick(window.lora_panel.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.lora_panel.state.adds.busy, timeout=30000)  # read on a thread

    assert [e.name for e in state.entries] == [*before, "good one"]
    assert state.requests() == [(str(good.resolve()), 1.0)]
    assert window.lora_panel.row_for("good one").enabled.isChecked()
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    text = window.error_dialog.text()
    for name in ("old.ckpt", "empty.safetensors", "half.safetensors"):
        assert str(tmp_path / name) in text
    assert "pickle" in text and "truncated" in text and "only 0 bytes" in text
    assert "good one" not in text


def test_a_folder_of_many_loras_is_listed_at_once(qtbot, window, tmp_path, monkeypatch):
    """Each LoRA of a folder rebuilt the whole panel: a folder of 150 froze the window for about a minute."""
    from PySide6.QtWidgets import QFileDialog

    folder = tmp_path / "many loras"
    folder.mkdir()
    for i in range(120):
        _tiny_lora(folder / f"style {i:03d} ✓.safetensors")
    rebuilds: list[None] = []
    window.controller.loras.changed.connect(lambda: rebuilds.append(None))
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    scan = window.controller.loras.folder_scan
    with qtbot.waitSignal(scan.scanning_changed, check_params_cb=lambda on: not on, timeout=60000):
        qtbot.mouseClick(window.lora_panel.add_folder_button, Qt.MouseButton.LeftButton)
    assert len(rebuilds) == 1
    assert window.lora_panel.view.model().rowCount() == 1 + 120  # the shipped example and the folder's
    assert window.lora_panel.row_for("style 119 ✓").entry.info == "kohya, rank 1, 3 tensors; changes the transformer"
    assert window.controller.loras.requests() == []  # a folder's LoRAs come switched off

    # a folder of pickle LoRAs only: said, instead of nothing happening
    pickles = tmp_path / "pickles"
    pickles.mkdir()
    (pickles / "old style.ckpt").write_bytes(b"PK\x03\x04")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(pickles))
    qtbot.mouseClick(window.lora_panel.add_folder_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    assert str(pickles) in window.error_dialog.text() and "old style.ckpt" in window.error_dialog.text()


def test_a_hand_edited_lora_list_in_the_settings_never_stops_the_app(qtbot, data_root, tmp_path, caplog):
    """A NUL byte in a LoRA's path stopped the app at start-up (ValueError out of Path.resolve); a strength of
    NaN came back as 2.0, the maximum, switched on (then 1.0, on, unsaid): it is refused as the engine refuses it,
    named, its row switched off at strength 1. A file saved as on that is no FLUX.1 LoRA (replaced by an SDXL
    one since) stayed on, without a word, and every job failed on it. A path listed twice had its first row's
    trigger words overwritten by the second's; a folder where the file was was said to be "missing"."""
    import json

    lora = _tiny_lora(tmp_path / "mine.safetensors")
    sdxl = sdxl_like(tmp_path / "sdxl style.safetensors")
    folder = tmp_path / "now a folder.safetensors"
    folder.mkdir()
    (data_root / "settings.json").write_text(
        json.dumps(
            {
                "version": 2,
                "loras": [
                    {"path": "C:/loras/a\x00b.safetensors", "enabled": True},
                    {"path": str(lora), "enabled": True, "strength": float("nan"), "trigger_words": "my words"},
                    {"path": str(sdxl), "enabled": True, "trigger_words": "sdxl words", "header_words": 5},
                    {"path": str(tmp_path / "." / lora.name), "enabled": False, "trigger_words": "second words"},
                    {"path": str(folder), "enabled": True},
                ],
            }
        )
    )  # json writes NaN as the bare word NaN, which it reads back as a float
    window = open_window(qtbot, data_root)
    state = window.controller.loras
    assert state.requests() == []
    assert window.lora_panel.row_for("mine").slider.value() == 100
    assert (f"The LoRA file {lora.resolve()} has the strength nan in your settings, which is no number a LoRA can be "
            "applied at: it is switched off, at strength 1.") in window.error_dialog.text()  # fmt: skip
    assert window.lora_panel.row_for("mine").triggers.text() == "my words"  # the first of its two rows
    assert f"names {lora.resolve()} more than once" in caplog.text
    assert window.error_dialog is not None and "a\\x00b.safetensors" in window.error_dialog.text()
    row = window.lora_panel.row_for("sdxl style")  # listed, switched off, with what is wrong
    assert not row.enabled.isChecked() and row.triggers.text() == "sdxl words" and "SDXL" in row.entry.info
    assert (f"The LoRA file {sdxl.resolve()} (on in your last session) cannot be used: sdxl style.safetensors is "
            "a LoRA for Stable Diffusion 1.x/2.x/SDXL (UNet), not FLUX.1") in window.error_dialog.text()  # fmt: skip
    assert (f"The LoRA file {folder.resolve()} (on in your last session) cannot be used: it is a folder, not a LoRA "
            "file. It is switched off") in window.error_dialog.text()  # fmt: skip
    assert window.lora_panel.row_for(folder.stem).entry.info == "it is a folder, not a LoRA file"
    window.close()
    saved = load_settings(data_root / "settings.json").loras
    assert [(s.path, s.strength, s.enabled) for s in saved if s.path == str(lora.resolve())] == [
        (str(lora.resolve()), 1.0, False)]  # fmt: skip
    assert str(sdxl.resolve()) in [s.path for s in saved]  # remembered, off


def test_a_folder_that_cannot_be_read_is_said_not_raised(qtbot, window, tmp_path, monkeypatch):
    """A folder the user may not list (another user's, a network share gone away): glob finds nothing in it, and
    listing it to name its pickle files raised PermissionError out of the click; the message would have said
    "holds no .safetensors LoRA files", which nobody knows."""
    from PySide6.QtWidgets import QFileDialog

    locked = tmp_path / "locked"
    locked.mkdir()
    refuse_to_list(monkeypatch, locked)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(locked))
    before = list(window.controller.loras.entries)
    qtbot.mouseClick(window.lora_panel.add_folder_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    text = window.error_dialog.text()
    assert str(locked) in text and "cannot be read" in text and "Permission denied" in text
    assert window.controller.loras.entries == before


def test_a_lora_cost_within_timing_noise_is_about_the_same():
    """On a CPU the LoRA dock said "-1.2% time per step vs. … without LoRAs": noise, read as a result."""
    from app.lora_cost import cost_sentence

    used = {"lora_list": [{"name": "style", "rank": 4}]}
    for noise in (-1.2, 0.0, 2.9):
        assert cost_sentence({**used, "lora_overhead_pct": noise}) == (
            "Last image used style (rank 4): about the same time per step as the same model and size without LoRAs."
        )
    assert "+12.5% time per step" in cost_sentence({**used, "lora_overhead_pct": 12.5})
    assert "-4.0% time per step" in cost_sentence({**used, "lora_overhead_pct": -4.0})


def _refused(qtbot, window) -> str:
    """Generate clicked three times: the error as the user sees it (the dialog's text and hint), said at the
    click, once per click, with no job queued; the dialog closed."""
    controller, seen = window.controller, []
    controller.error.connect(seen.append)
    for _ in range(3):
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
        assert not controller.job.busy and len(seen) == 1  # was: a job queued, failing later in a dialog of its own
        qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
        text = f"{window.error_dialog.text()} {window.error_dialog.informativeText()}"
        window.error_dialog.accept()
        seen.clear()
    controller.error.disconnect(seen.append)
    return text


def test_picking_a_lora_for_another_model_refuses_it_by_name(qtbot, window, tmp_path, monkeypatch):
    """An SDXL LoRA (or one whose text-encoder keys name no layer of FLUX.1's) was listed, switched on, and every
    job after failed on it until the user found its row and switched it off. A FLUX.1 LoRA with CLIP and T5 parts
    (refused until the engine applied them) is listed, its row saying what it changes."""
    import torch
    from lora_files import text_encoder_lora
    from PySide6.QtWidgets import QFileDialog

    sdxl = sdxl_like(tmp_path / "sdxl style.safetensors")
    g = "lora_te2_text_model_encoder_layers_0_mlp_fc1"  # SDXL's CLIP-G: no layer of FLUX.1's T5
    odd = text_encoder_lora(
        tmp_path / "with clip-g.safetensors",
        extra={f"{g}.lora_down.weight": torch.zeros(4, 8), f"{g}.lora_up.weight": torch.zeros(8, 4)},
    )
    both = text_encoder_lora(tmp_path / "with clip.safetensors")
    picked = [str(sdxl), str(odd), str(both)]
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: (picked, ""))
    state = window.controller.loras
    before = [e.name for e in state.entries]
    qtbot.mouseClick(window.lora_panel.add_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not window.lora_panel.state.adds.busy, timeout=30000)  # read on a thread
    assert [e.name for e in state.entries] == [*before, "with clip"] and state.requests() == [(str(both), 1.0)]
    info = window.lora_panel.row_for("with clip").entry.info
    assert info == "kohya, rank 4, 15 tensors; changes the transformer + CLIP text encoder + T5 text encoder"
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    text = window.error_dialog.text()
    assert str(sdxl) in text and "is a LoRA for Stable Diffusion 1.x/2.x/SDXL (UNet), not FLUX.1" in text
    assert f"{odd} is not a LoRA that can be used: 1 text-encoder key(s) name no layer of FLUX.1's CLIP or T5 " \
           f"text encoder: {g}." in text  # fmt: skip
    assert str(both) not in text

    # the file replaced on disk by another usable LoRA: the row said what the old one was until the app restarted
    window.error_dialog.accept()
    text_encoder_lora(both, clip=False, t5=False)
    assert state.requests() == [(str(both), 1.0)]  # what "Generate" sends: the rows are looked at again
    assert window.lora_panel.row_for("with clip").info.text() == "kohya, rank 4, 3 tensors; changes the transformer"


def test_a_listed_lora_replaced_or_deleted_is_refused_at_generate_by_name_and_leaves_the_model(qtbot, window,
                                                                                               tmp_path):  # fmt: skip
    """A LoRA switched on that changed on disk (a file for another model saved over a listed one, or the file
    deleted) is refused when Generate is clicked, naming the file and what to do, and no job is queued: each
    click queued a job that failed at its LoRA step, one dialog per job. The model is as it was."""
    from gpu.paths import resources_dir

    lora = tmp_path / "my style ü.safetensors"
    shutil.copy(resources_dir() / "loras" / "monochrome-style.safetensors", lora)
    window.prompt_panel.prompt_edit.setPlainText("a red circle on a blue background")
    window.controller.prompt.seed_locked = True
    window.controller.prompt.steps = 4
    plain = _pixels(window, _generate(qtbot, window)[0])
    window.controller.loras.add_files([lora])  # switched on
    styled = _pixels(window, _generate(qtbot, window)[0])
    assert not np.array_equal(plain, styled)

    sdxl_like(lora)  # another download saved over it
    text = _refused(qtbot, window)
    assert text.startswith(f"The LoRA file {lora} cannot be used: ") and "not FLUX.1" in text
    assert "Switch it off or remove it in the LoRA panel, or put a usable FLUX.1 LoRA back at that path, then" in text
    lora.unlink()
    assert _refused(qtbot, window) == (
        f"The LoRA file {lora} is missing. It is switched on, so no image was made. Switch it off or remove it in "
        "the LoRA panel, or put the file back (or reconnect its drive), then click Generate again.")

    window.lora_panel.row_for("my style ü").enabled.setChecked(False)
    assert np.array_equal(_pixels(window, _generate(qtbot, window)[0]), plain)  # the model is as it was


def test_reusing_an_image_whose_lora_file_is_no_usable_lora_now_leaves_it_off(qtbot, tmp_path):
    """ "Reuse settings" switched on every listed LoRA the image named, even one replaced since by another model's
    LoRA (the header check of "Add LoRA…" was not made), and every job after failed on it."""
    from app.lora_state import LoraState
    from gpu.paths import resources_dir

    lora = tmp_path / "style.safetensors"
    shutil.copy(resources_dir() / "loras" / "monochrome-style.safetensors", lora)
    state = LoraState()
    entry = state.add_file(lora)
    used = [{"name": "style", "file": str(lora), "strength": 0.8}]
    assert used_restored(qtbot, state, used) == [] and entry.enabled and entry.strength == 0.8
    entry.enabled = False
    sdxl_like(lora)  # another download saved over it
    notices = used_restored(qtbot, state, used)
    assert not entry.enabled and len(notices) == 1
    assert notices[0].startswith(f"The image used the LoRA 'style' ({lora}), which cannot be used now: ")
    assert "Stable Diffusion" in notices[0] and notices[0].endswith("new images are made without it.")


def test_an_image_whose_lora_strengths_are_true_or_false_says_so(qtbot, tmp_path):
    """An image's ``lora_list`` is any program's JSON: true read as strength 1 and false as text strength 0 (the
    LoRA's CLIP/T5 parts off), without a word. They are no numbers, as in another program's LoRA tags and nodes."""
    from app.lora_state import LoraState

    state = LoraState()
    entry = state.add_file(_tiny_lora(tmp_path / "style.safetensors"))
    notices = used_restored(qtbot, state, [{"name": "style", "file": str(entry.path), "strength": True,
                                            "text_strength": False}])  # fmt: skip
    assert notices == [
        "The image's strength for the LoRA 'style' is no number (True); it is used at 1.0.",
        "The image's text strength for the LoRA 'style' is no number (False); its CLIP/T5 parts are used at its "
        "strength.",
    ]
    assert entry.enabled and (entry.strength, entry.text_strength) == (1.0, None)


def test_a_lora_file_that_may_not_be_read_at_start_up_says_so(qtbot, tmp_path, monkeypatch):
    """A LoRA on in the last session behind a folder that may not be searched (EACCES) read as "the LoRA list in
    your settings names a file that cannot exist" and was dropped from the list."""
    import errno
    import os

    from app.lora_state import LoraState
    from app.settings import LoraSetting

    locked = _tiny_lora(tmp_path / "locked.safetensors")
    stat = Path.stat

    def refusing_stat(self: Path, **kwargs) -> os.stat_result:  # tests run as root, whom chmod does not stop
        if self == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return stat(self, **kwargs)

    monkeypatch.setattr(Path, "stat", refusing_stat)
    state = LoraState()
    [notice] = state.restore([LoraSetting(str(locked), True, 0.5, "my words")])
    assert notice.text == (f"The LoRA file {locked} (on in your last session) cannot be used: the file cannot be "
                           "read (Permission denied): check that you may read it and its folders. It is switched off, "
                           "so jobs run without it.")  # fmt: skip
    [entry] = state.entries
    assert entry.path == locked and not entry.enabled and entry.trigger_words == "my words"


def test_a_replaced_lora_brings_its_trigger_words_and_generate_looks_at_enabled_rows_only(qtbot, window, tmp_path,
                                                                                           monkeypatch):  # fmt: skip
    """A listed file replaced by another LoRA got the new info line at Generate but kept the old file's trigger
    words; they follow the file now, unless the user edited them. And each Generate stat'ed every listed file, on
    or off, on the Qt thread (150 LoRAs on a network share stalled the window): only the enabled ones now."""
    state, panel = window.controller.loras, window.lora_panel
    on, edited, off = (_tiny_lora(tmp_path / f"{n}.safetensors", words="old words") for n in ("on", "edited", "off"))
    state.add_files([on, edited])
    state.add_file(off)
    panel.row_for("edited").triggers.setText("my own words")  # typed by the user
    for path in (on, edited, off):
        _tiny_lora(path, rank=2, words="new words")  # another LoRA saved over each (another size)

    looked: list[Path] = []
    stat = Path.stat

    def recording_stat(self: Path, **kwargs):
        looked.append(self)
        return stat(self, **kwargs)

    monkeypatch.setattr(Path, "stat", recording_stat)
    assert state.requests() == [(str(on), 1.0), (str(edited), 1.0)]  # what "Generate" sends
    assert off not in looked
    assert [panel.row_for(n).triggers.text() for n in ("on", "edited", "off")] == [
        "new words", "my own words", "old words",
    ]  # fmt: skip
    assert [panel.row_for(n).info.text().split(", ")[1] for n in ("on", "edited", "off")] == ["rank 2"] * 2 + ["rank 1"]


def test_a_lora_with_a_text_part_gets_a_text_strength_of_its_own(qtbot, window, data_root, tmp_path):
    """One strength went to every part of a LoRA; a style LoRA's CLIP/T5 part often overcooks prompts, and
    ComfyUI (strength_clip) and A1111 (te=) let users set it apart. The row of a file with such a part has a "Text"
    field ("same": the strength, until unticked); a file without one has none. The image records both (its PNG, the
    gallery's summary, the cost line), dropping its PNG brings both back (one made before, without a text
    strength: "same"), and the settings keep it."""
    from lora_files import text_encoder_lora

    from app.image_files import read_image_settings
    from app.image_summary import settings_lines
    from app.lora_state import LoraState
    from gpu.generation.png_metadata import write_png

    both = text_encoder_lora(tmp_path / "with clip.safetensors")
    state, panel, controller = window.controller.loras, window.lora_panel, window.controller
    state.add_files([both, _tiny_lora(tmp_path / "plain.safetensors")])
    row = panel.row_for("with clip")
    assert row.text_row.isVisibleTo(row) and not panel.row_for("plain").text_row.isVisibleTo(row)
    assert "has no CLIP or T5 part" in panel.row_for("plain").strength_label.toolTip()
    panel.row_for("plain").enabled.setChecked(False)
    assert row.text_same.isChecked() and not row.text_value.isEnabled()
    row.slider.setValue(80)
    assert row.text_value.value() == 0.8 and state.requests() == [(str(both), 0.8)]  # "same" shows the strength
    qtbot.mouseClick(row.text_same, Qt.MouseButton.LeftButton)
    assert row.text_value.isEnabled()
    row.text_value.setValue(0.3)
    row.slider.setValue(90)
    assert row.text_value.value() == 0.3 and state.requests() == [(str(both), 0.9, 0.3)]

    window.prompt_panel.prompt_edit.setPlainText("a red circle on a blue background")
    controller.prompt.steps, controller.prompt.width, controller.prompt.height = 1, 64, 64
    made = _generate(qtbot, window)[0]
    png = controller.gallery.path_of(made)
    [used] = read_image_settings(png)["lora_list"]
    assert (used["strength"], used["text_strength"], used["changes"]) == (0.9, 0.3, ["transformer", *TEXT_PARTS])
    assert "LoRAs: with clip (strength\xa00.90, text\xa00.30)" in settings_lines(made.settings)
    assert "with clip (rank 4; strength 0.90, text 0.30)" in panel.cost.text()

    qtbot.mouseClick(row.text_same, Qt.MouseButton.LeftButton)  # back to "same", at another strength
    row.slider.setValue(100)
    assert state.requests() == [(str(both), 1.0)]
    drop_file(window.prompt_panel, png)
    loras_restored(qtbot, window.controller.loras)
    row = panel.row_for("with clip")
    assert state.requests() == [(str(both), 0.9, 0.3)] and not row.text_same.isChecked()
    assert row.text_value.value() == 0.3 and row.slider.value() == 90
    older = {**made.settings, "lora_list": [{k: v for k, v in used.items() if k != "text_strength"}]}
    write_png(tmp_path / "older.png", Image.new("RGB", (16, 16)), older)
    drop_file(window.prompt_panel, tmp_path / "older.png")
    loras_restored(qtbot, window.controller.loras)
    row = panel.row_for("with clip")
    assert state.requests() == [(str(both), 0.9)] and row.text_same.isChecked() and row.text_value.value() == 0.9

    row.text_same.setChecked(False)
    row.text_value.setValue(-0.5)
    window.close()
    saved = {s.path: s for s in load_settings(data_root / "settings.json").loras}
    assert saved[str(both)].text_strength == -0.5 and saved[str(tmp_path / "plain.safetensors")].text_strength is None
    again = LoraState()  # as the next start reads them
    assert again.restore([saved[str(both)]]) == [] and again.requests() == [(str(both), 0.9, -0.5)]


TEXT_PARTS = ("text_encoder", "text_encoder_2")


def test_old_and_hand_edited_settings_give_a_text_strength_or_the_same(tmp_path):
    """A settings file saved before the text strength was kept (no such key) means "the same as the strength"; a
    damaged value (text, true) too; NaN too, but said, and the row is switched off (it was on, unsaid: the engine
    refuses such a strength); one out of range is brought within -2..2, and said."""
    import json

    from app.lora_state import LoraState

    both = text_encoder_lora_path(tmp_path)
    path = tmp_path / "settings.json"
    rows = [{"path": str(both), "enabled": True, "strength": 0.5}]
    cases = ((None, None, ""), ("abc", None, ""), (True, None, ""), (float("nan"), None, "which is no number"),
             (7, 2.0, "beyond"), (0, 0.0, ""))  # fmt: skip
    for value, expected, said in cases:
        row = dict(rows[0]) if value is None else {**rows[0], "text_strength": value}
        path.write_text(json.dumps({"version": 2, "loras": [row]}))
        state = LoraState()
        notices = state.restore(load_settings(path).loras)
        assert [said in n.text for n in notices] == ([True] if said else []), value
        assert state.entries[0].text_strength == expected, value
        on = [] if "no number" in said else [(str(both), 0.5) if expected is None else (str(both), 0.5, expected)]
        assert state.requests() == on, value


def text_encoder_lora_path(tmp_path: Path) -> Path:
    from lora_files import text_encoder_lora

    return text_encoder_lora(tmp_path / "with clip.safetensors")


def test_a_change_updates_the_rows_in_place_and_reusing_the_same_loras_changes_nothing(qtbot, tmp_path):
    """Each ``LoraState.changed`` (an add, a remove, a reused image, a changed file at Generate) rebuilt every row:
    0.45 s with 200 LoRAs, and reusing one of our images emitted it even when the panel was as the image says.
    The rows of entries that stay are kept now, shown as their entries are, and no change emits nothing."""
    from types import SimpleNamespace

    from app.lora_state import LoraState
    from app.widgets.lora_panel import LoraPanel

    files = [_tiny_lora(tmp_path / f"style {i}.safetensors", words=f"w{i}") for i in range(3)]
    state = LoraState()
    state.add_files(files[:2])
    panel = LoraPanel(SimpleNamespace(loras=state, prompt=None, status_message=print))
    qtbot.addWidget(panel)
    panel.resize(400, 900)  # room for every row: the list makes controls for the rows in sight only
    panel.show()
    qtbot.waitExposed(panel)
    first, second = panel.rows
    state.add_file(files[2])
    assert panel.rows[:2] == [first, second] and len(panel.rows) == 3
    third = panel.rows[2]
    assert panel.tab_chain()[-2] is third.triggers  # the new row's stops are in the Tab chain

    changes: list[None] = []
    state.changed.connect(lambda: changes.append(None))
    used = [{"name": "style 1", "file": str(files[1]), "strength": 0.5, "text_strength": 0.25}]
    assert used_restored(qtbot, state, used) == []
    assert changes == [None] and panel.rows == [first, second, third]
    assert [row.enabled.isChecked() for row in panel.rows] == [False, True, False]
    assert second.slider.value() == 50 and second.value.text() == "0.50"
    assert second.entry.text_strength == 0.25 and not second.text_same.isChecked()  # the widgets set nothing back
    assert state.requests() == [(str(files[1]), 0.5, 0.25)]  # sent as the image gave it: the engine's to drop
    used_restored(qtbot, state, used)  # the panel is as the image says already
    assert changes == [None]

    _tiny_lora(files[1], rank=2, words="new words")  # another LoRA saved over the enabled one
    assert state.refresh() and panel.rows == [first, second, third]
    assert second.info.text().split(", ")[1] == "rank 2" and second.triggers.text() == "new words"
    state.set_strength(third.entry, 0.3)  # not through its slider: the row shows it all the same
    assert third.slider.value() == 30 and third.value.text() == "0.30"
    state.remove(first.entry)
    assert panel.rows == [second, third] and second.geometry().top() < third.geometry().top()
