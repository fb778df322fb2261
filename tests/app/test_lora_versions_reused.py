"""Reusing one of our images whose LoRA file name is listed more than once (diffusers and PEFT name every LoRA
pytorch_lora_weights.safetensors; users keep v1/ and v2/ folders): the first row of that name was switched on,
whatever hash the image recorded, and nothing was said, so the image did not come back. The row whose file has the
image's hash is looked for now, as for another program's image: on a thread of its own, the first row on
meanwhile."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from PIL import Image
from PySide6.QtCore import Qt
from safetensors.torch import load_file, save_file

from app.lora_state import LoraState
from gpu.generation.png_metadata import write_png
from gpu.lora import read_lora
from gpu.paths import resources_dir
from tests.app.gui import drop_file, refs_restored, used_restored
from tests.app.test_foreign_loras import _Hashing
from tests.app.test_lora_panel import _tiny_lora


def _versions(tmp_path: Path) -> tuple[Path, Path]:
    """Two versions of one LoRA of the demo model, each named style.safetensors, in v1/ and v2/."""
    v1, v2 = tmp_path / "v1" / "style.safetensors", tmp_path / "v2" / "style.safetensors"
    v1.parent.mkdir()
    v2.parent.mkdir()
    shipped = resources_dir() / "loras" / "monochrome-style.safetensors"
    shutil.copy(shipped, v1)
    save_file({k: v * 1.5 if "lora_B" in k else v for k, v in load_file(shipped).items()}, v2)
    return v1, v2


def test_of_several_rows_of_the_images_file_name_the_one_with_its_hash_is_used(qtbot, tmp_path, monkeypatch):
    """v1 is on at once, v2 (the image's hash) replaces it once its contents are searched, off the Qt thread; so
    for a row at the image's very path (its file saved over since); an entry without a hash reads no file."""
    hashing = _Hashing(monkeypatch)
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    state = LoraState()
    state.add_files([_tiny_lora(tmp_path / "other.safetensors"), _tiny_lora(tmp_path / "v1" / "style.safetensors", 2),
                     _tiny_lora(tmp_path / "v2" / "style.safetensors", 3)], enabled=False)  # fmt: skip
    other, v1, v2 = state.entries
    said: list[tuple[list[str], list[str]]] = []
    used = {"name": "style", "file": "style.safetensors", "strength": 0.8, "hash": read_lora(v2.path).short_hash}
    hashing.hold()  # the search of the contents held: the rows as the drop switched them on, till it ends
    assert used_restored(qtbot, state, [used], lambda *a: said.append(a)) == []
    assert [e.enabled for e in state.entries] == [False, True, False] and said == []
    hashing.release()
    qtbot.waitUntil(lambda: v2.enabled)
    assert [e.enabled for e in state.entries] == [False, False, True] and v2.strength == 0.8 and said == [([], [])]
    assert sorted(hashing.read) == ["style.safetensors"] * 2 and threading.main_thread() not in hashing.threads

    hashing.read.clear()
    hashing.hold()
    v1.hashes = None  # its file hashed again (v2's kept): the search is held there while the drop's rows are seen
    assert used_restored(qtbot, state, [{**used, "file": str(v1.path), "strength": 0.5}],
                         lambda *a: said.append(a)) == []  # fmt: skip
    assert [(e.enabled, e.strength) for e in (v1, v2)] == [(True, 0.5), (False, 0.8)]  # its very path: on at once
    hashing.release()
    # ... and searched first: saved over since (here, the image's hash is v2's), the row with the hash replaces it
    qtbot.waitUntil(lambda: v2.enabled)
    assert [(e.enabled, e.strength) for e in (v1, v2)] == [(False, 0.5), (True, 0.5)] and said[1] == ([], [])
    assert hashing.read == ["style.safetensors"]  # v1's alone: v2's hashes kept per file version
    hashing.read.clear()
    assert used_restored(qtbot, state, [{**used, "hash": None}], lambda *a: said.append(a)) == []
    assert [e.enabled for e in state.entries] == [False, True, False]
    assert hashing.read == []  # the hashes kept per file version: no file read again
    assert said == [([], [])] * 3 and state.hash_search._search is None


def test_reusing_an_image_made_with_the_second_version_brings_that_version_back(qtbot, window, tmp_path):
    """Through the window and its engine: the image made with v2 at 0.8, dropped while v1 is on, switches v2 on."""
    controller = window.controller
    v1, v2 = _versions(tmp_path)
    first, second = controller.loras.add_files([v1, v2], enabled=False)[0]
    controller.loras.set_enabled(second, True)
    controller.loras.set_strength(second, 0.8)
    window.prompt_panel.prompt_edit.setPlainText("a red circle on a blue background")
    controller.prompt.steps, controller.prompt.width, controller.prompt.height = 1, 64, 64
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as blocker:
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
    made = blocker.args[0][0]
    assert made.settings["lora_list"][0]["file"] == "style.safetensors"
    png = tmp_path / "made.png"
    write_png(png, Image.new("RGB", (16, 16)), made.settings)

    controller.loras.set_enabled(second, False)
    controller.loras.set_enabled(first, True)
    drop_file(window.prompt_panel, png)
    qtbot.waitUntil(lambda: second.enabled and not first.enabled)
    assert controller.loras.requests() == [(str(v2), 0.8)]
    assert window.error_dialog is None or not window.error_dialog.isVisible()


def test_several_rows_of_the_images_file_name_none_with_its_hash_are_said(qtbot, tmp_path):
    """A third version, not listed: the first row stayed on, and nothing was said."""
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    state = LoraState()
    state.add_files([_tiny_lora(tmp_path / "v1" / "style.safetensors", 2),
                     _tiny_lora(tmp_path / "v2" / "style.safetensors", 3)], enabled=False)  # fmt: skip
    said: list[tuple[list[str], list[str]]] = []
    used = {"name": "style", "file": "style.safetensors", "strength": 0.8, "hash": "0123456789ab"}
    assert used_restored(qtbot, state, [used], lambda *a: said.append(a)) == []
    qtbot.waitUntil(lambda: bool(said))
    assert [e.enabled for e in state.entries] == [True, False]
    assert said == [([], [f"The image used the LoRA 'style' with the hash 0123456789ab, which none of the LoRA files "
                          f"of that name listed here has: {state.entries[0].path} is on instead, and new images may "
                          "differ."])]  # fmt: skip
    # The first row damaged since it was listed: the next one that can be used is on at the drop, and said so
    said.clear()
    state.entries[0].path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    assert used_restored(qtbot, state, [used], lambda *a: said.append(a)) == []
    assert [e.enabled for e in state.entries] == [False, True]
    qtbot.waitUntil(lambda: bool(said))
    assert said[0][1] == [f"The image used the LoRA 'style' with the hash 0123456789ab, which none of the LoRA files "
                          f"of that name listed here has: {state.entries[1].path} is on instead, and new images may "
                          "differ."]  # fmt: skip
    # Every row of the name damaged: none is on, and that is said once (the first row's problem at the drop; a
    # second sentence, "… which none of the LoRA files of that name listed here has: none of them is on.", repeated it)
    said.clear()
    state.entries[1].path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    at_drop = used_restored(qtbot, state, [used], lambda *a: said.append(a))
    qtbot.waitUntil(lambda: bool(said))
    assert [e.enabled for e in state.entries] == [False, False] and "cannot be used now" in at_drop[0]
    assert said == [([], [])]


def test_another_programs_lora_of_several_rows_the_first_usable_one_is_on(qtbot, tmp_path):
    """An A1111-style ref by name and an unknown hash, two rows of that name, the first damaged: the second is on."""
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    state = LoraState()
    state.add_files([_tiny_lora(tmp_path / "v1" / "style.safetensors", 2),
                     _tiny_lora(tmp_path / "v2" / "style.safetensors", 3)], enabled=False)  # fmt: skip
    state.entries[0].path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    said: list[tuple[list[str], list[str]]] = []
    assert refs_restored(qtbot, state, [{"name": "style", "hash": "0123456789ab", "strength": 0.7}],
                         lambda *a: said.append(a)) == []  # fmt: skip
    assert [e.enabled for e in state.entries] == [False, True] and state.entries[1].strength == 0.7
    qtbot.waitUntil(lambda: bool(said))
    assert f"{state.entries[1].path} is on instead" in said[0][1][0]
