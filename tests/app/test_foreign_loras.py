"""Dropping an image made by A1111/Forge or ComfyUI brings its LoRAs back in the LoRA panel: only our own images
did, so the user had to find and switch on each LoRA by hand (and the A1111 tags stayed in the prompt).

A LoRA is the row of its name at once; only one found by its hash alone (a renamed file) is looked for in the
files' contents, on a thread of its own: hashed on the window's thread, 150 LoRAs of 100-300 MB froze it for
minutes at the first drop of an image whose LoRA the user did not have, or had in another version."""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import QCoreApplication

import app.lora_reuse
from app.lora_state import LoraState
from tests.app.gui import drop_file, loras_added, loras_restored, refs_restored
from tests.app.test_lora_panel import _tiny_lora


def _png(path: Path, key: str, text: str) -> Path:
    info = PngInfo()
    info.add_text(key, text)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


def _a1111_hash(path: Path) -> str:
    """A1111's short LoRA hash: the first 12 hex digits of the SHA-256 of the file after its header."""
    data = path.read_bytes()
    return hashlib.sha256(data[8 + struct.unpack("<Q", data[:8])[0] :]).hexdigest()[:12]


class _Hashing:
    """``content_hashes`` as the image's LoRAs' hash search calls it (``app.lora_reuse.entry_hashes``), noting each
    file it reads and on which thread; with ``hold`` it waits at each file until ``release``, so that a test acts
    while a search runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, hold: bool = False) -> None:
        self.read: list[str] = []
        self.threads: set[threading.Thread] = set()
        self.go, self.reading = threading.Event(), threading.Event()
        if not hold:
            self.go.set()
        real: Callable[[Path], tuple[str, ...]] = app.lora_reuse.content_hashes

        def hashes(path: Path) -> tuple[str, ...]:
            self.threads.add(threading.current_thread())
            self.read.append(Path(path).name)
            self.reading.set()
            assert self.go.wait(10)
            return real(path)

        monkeypatch.setattr(app.lora_reuse, "content_hashes", hashes)

    def hold(self) -> None:
        """Holds the next search at the first file it reads, and waits until it is there."""
        self.go.clear()
        self.reading.clear()

    def held(self) -> None:
        """Waits until a held search reads its first file."""
        assert self.reading.wait(10)

    def release(self) -> None:
        """Lets the searches go on, waits for them to end, and hands their results to the (Qt) thread."""
        self.go.set()
        for thread in self.threads:
            thread.join(10)
            assert not thread.is_alive()
        QCoreApplication.processEvents()


def test_a1111_and_comfyui_images_switch_on_their_loras_and_name_the_missing_ones(qtbot, window, tmp_path,
                                                                                    monkeypatch):  # fmt: skip
    controller, loras = window.controller, window.controller.loras
    hashing = _Hashing(monkeypatch)
    ink = _tiny_lora(tmp_path / "Ink_Style.safetensors")
    detail = _tiny_lora(tmp_path / "renamed-detail.safetensors", rank=2)  # A1111 named it "detail": by hash only
    loras_added(qtbot, controller, [ink, detail])
    rows = {e.path.name: e for e in loras.entries}
    shipped = next(e for e in loras.entries if e.name == "monochrome-style")
    loras.set_enabled(shipped, True)
    shown: list = []
    controller.error.connect(shown.append)

    a1111 = _png(tmp_path / "forge.png", "parameters",
                 "a cat, <lora:ink_style:0.8>, <lora:detail:0.5:3>, <lora:gone:1>\n"
                 f'Steps: 2, Seed: 7, Size: 128x128, Lora hashes: "detail: {_a1111_hash(detail)}"')  # fmt: skip
    hashing.hold()  # the search by content held: the panel as the drop set it, till it ends
    drop_file(window.prompt_panel, a1111)
    assert controller.prompt.prompt == "a cat" and controller.prompt.seed == 7  # the tags are no prompt words
    loras_restored(qtbot, loras)
    # once the rows' files are read: the row of its name, and none of the image's strange ones said yet (the search
    # goes on)
    assert {e.path.name: (e.strength, e.text_strength) for e in loras.entries if e.enabled} == {
        "Ink_Style.safetensors": (0.8, None)}  # fmt: skip
    assert not shipped.enabled and not [e for e in shown if "LoRA" in e.message]
    hashing.release()
    qtbot.waitUntil(lambda: rows["renamed-detail.safetensors"].enabled)  # found by its content, off this thread
    assert threading.main_thread() not in hashing.threads and hashing.threads
    on = {e.path.name: (e.strength, e.text_strength) for e in loras.entries if e.enabled}
    assert on == {"Ink_Style.safetensors": (0.8, None), "renamed-detail.safetensors": (2.0, 0.5)}
    assert not shipped.enabled  # not in the image: off, as for our own images
    missing = [e for e in shown if "not in the LoRA panel" in e.message]
    assert [e.message for e in missing] == ["The image used 1 LoRA not in the LoRA panel ('gone'); new images are "
                                            "made without it."]  # fmt: skip
    assert "Add the LoRA file in the LoRA panel" in missing[0].hint
    assert any("strength 3 for the LoRA 'renamed-detail' is beyond the -2 to 2" in e.message for e in shown)
    read = list(hashing.read)
    loras.set_enabled(rows["renamed-detail.safetensors"], False)
    drop_file(window.prompt_panel, a1111)  # again: each file's hashes are kept while it is unchanged
    qtbot.waitUntil(lambda: rows["renamed-detail.safetensors"].enabled)
    assert hashing.read == read

    shown.clear()
    graph = {
        "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors"}},
        "2": {"class_type": "LoraLoader", "inputs": {"lora_name": "styles/ink_style.safetensors", "strength_model": 0.6,
              "strength_clip": 0.3, "model": ["1", 0], "clip": ["9", 0]}},
        "4": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "missing_one.safetensors",
              "strength_model": 1.0, "model": ["2", 0]}},
        "5": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "not_here_either.safetensors",
              "strength_model": 1.0, "model": ["4", 0]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["2", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 11, "steps": 2, "cfg": 1.0, "positive": ["6", 0],
              "latent_image": ["7", 0], "model": ["5", 0]}},
        "7": {"class_type": "EmptyLatentImage", "inputs": {"width": 128, "height": 128, "batch_size": 1}},
    }  # fmt: skip
    drop_file(window.prompt_panel, _png(tmp_path / "comfy.png", "prompt", json.dumps(graph)))
    loras_restored(qtbot, window.controller.loras)
    assert controller.prompt.prompt == "a fox" and controller.prompt.seed == 11
    on = {e.path.name: (e.strength, e.text_strength) for e in loras.entries if e.enabled}
    assert on == {"Ink_Style.safetensors": (0.6, 0.3)} and not rows["renamed-detail.safetensors"].enabled
    assert [e.message for e in shown] == [  # its model, which the library lacks, is said too
        "The image was made with the model 'flux1-dev', which is not in your library. Its other settings were "
        "restored; new images use 'demo'.",
        "The image used 2 LoRAs not in the LoRA panel ('missing_one', 'not_here_either'); new images are made "
        "without them."]  # fmt: skip


def test_an_a1111_image_of_a_lora_with_a_comma_in_its_name_switches_it_on_at_its_tags_strength(qtbot, bare_window,
                                                                                                 tmp_path):  # fmt: skip
    """A1111/Forge (and this app) write a LoRA named "Ink, Style" as the tag ``<lora:Ink, Style:0.8>`` and, with
    ',' and ':' taken out, as ``Lora hashes: "Ink Style: <hash>"``. Reading it back must give one LoRA at 0.8 (R53:
    the hash was looked up by the tag's name as is, and "Ink Style" was a second LoRA, at strength 1, with a notice
    that its strength is not known)."""
    window = bare_window
    controller, loras = window.controller, window.controller.loras
    ink = _tiny_lora(tmp_path / "Ink, Style.safetensors")
    loras_added(qtbot, controller, [ink])
    row = next(e for e in loras.entries if e.path == ink)
    loras.set_enabled(row, False)
    shown: list = []
    controller.error.connect(shown.append)
    image = _png(tmp_path / "forge.png", "parameters",
                 "a cat, <lora:Ink, Style:0.8>\n"
                 f'Steps: 2, Seed: 7, Size: 128x128, Lora hashes: "Ink Style: {_a1111_hash(ink)}"')  # fmt: skip
    drop_file(window.prompt_panel, image)
    for _ in range(50):  # any search of the files by hash has its time to end and say what it did not find
        QCoreApplication.processEvents()
        qtbot.wait(20)
    assert row.enabled and row.strength == 0.8
    assert [e.message for e in shown if "LoRA" in e.message] == []


def _state(tmp_path: Path, *names: str) -> LoraState:
    """A LoRA panel's state listing a tiny LoRA of each name, each of its own content (rank)."""
    state = LoraState()
    state.add_files([_tiny_lora(tmp_path / f"{name}.safetensors", rank=rank) for rank, name in enumerate(names, 1)],
                    enabled=False)  # fmt: skip
    return state


def _two_versions(tmp_path: Path, *names: str) -> LoraState:
    """``_state`` of ``names``, then two versions of the LoRA "ink", each of its own content: v1/ink, v2/Ink."""
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    state = _state(tmp_path, *names)
    state.add_files([_tiny_lora(tmp_path / "v1" / "ink.safetensors", rank=2),
                     _tiny_lora(tmp_path / "v2" / "Ink.safetensors", rank=3)], enabled=False)  # fmt: skip
    return state


def test_a_row_of_the_lora_name_is_used_without_reading_any_file(qtbot, tmp_path, monkeypatch):
    """The image's LoRA in another version (its hash is no row's): the row of its name, any case, is on at once
    and nothing is read, where every listed file was hashed first (minutes for 150 large LoRAs)."""
    hashing = _Hashing(monkeypatch)
    state = _state(tmp_path, "Ink", "a", "b", "c")
    said: list[tuple[list[str], list[str]]] = []
    ref = {"name": "ink", "strength": 0.7, "text_strength": None, "hash": "0123456789ab"}
    assert refs_restored(qtbot, state, [ref, {"name": "gone", "strength": 1.0}],
                         lambda *args: said.append(args)) == []  # fmt: skip
    assert [(e.name, e.strength) for e in state.entries if e.enabled] == [("Ink", 0.7)]
    assert said == [(["gone"], [])]  # settled before it returned: no search
    assert hashing.read == [] and all(e.hashes is None for e in state.entries)


def test_a_late_match_is_dropped_when_the_panel_changed_or_another_image_came(qtbot, tmp_path, monkeypatch):
    """The search ends after the user switched a row, or after another image was dropped: their choice, or that
    image's LoRAs, stay as they are. A LoRA no file has is named still after the user's change (it is no less
    missing); nothing is said of an image dropped before another."""
    hashing = _Hashing(monkeypatch, hold=True)
    state = _state(tmp_path, "a", "b", "renamed")
    a, b, renamed = state.entries
    said: list[tuple[list[str], list[str]]] = []
    digest = _a1111_hash(renamed.path)
    refs_restored(qtbot, state, [{"name": "detail", "strength": 0.5, "hash": digest},
                                 {"name": "gone", "strength": 1.0, "hash": "0123456789ab"}],
                  lambda *args: said.append(args))  # fmt: skip
    hashing.held()
    state.set_enabled(a, True)  # as the row's checkbox does, while the search runs
    hashing.release()
    assert [e.enabled for e in state.entries] == [True, False, False] and said == [(["gone"], [])]
    said.clear()

    hashing.hold()
    for entry in state.entries:
        entry.hashes = None  # each file is read again: the search is held at the first
    refs_restored(qtbot, state, [{"name": "detail", "strength": 0.5, "hash": digest}],
                  lambda *args: said.append(args))  # fmt: skip
    hashing.held()
    refs_restored(qtbot, state, [{"name": "B", "strength": 0.3}], lambda *args: said.append(args))  # the next image
    hashing.release()
    assert [(e.name, e.strength) for e in state.entries if e.enabled] == [("b", 0.3)] and said == [([], [])]

    hashing.hold()
    for entry in state.entries:
        entry.hashes = None
    refs_restored(qtbot, state, [{"name": "detail", "strength": 0.5, "hash": digest}],
                  lambda *args: said.append(args))  # fmt: skip
    hashing.held()
    QCoreApplication.instance().aboutToQuit.emit()  # the app quits: the search stops after the file it reads
    hashing.release()
    assert hashing.read == ["a.safetensors", "b.safetensors", "renamed.safetensors"] + ["a.safetensors"] * 2
    assert not renamed.enabled
    assert said == [([], [])]


def test_of_several_rows_of_the_lora_name_the_one_with_its_hash_is_used(qtbot, tmp_path, monkeypatch):
    """Two versions of one LoRA listed (two folders): the first is on at once, and the one whose content has the
    image's hash replaces it once the search ends; the files of other names are not read."""
    hashing = _Hashing(monkeypatch)
    state = _two_versions(tmp_path, "other")
    other, old, new = state.entries
    said: list[tuple[list[str], list[str]]] = []
    hashing.hold()
    refs_restored(qtbot, state, [{"name": "ink", "strength": 0.6, "hash": _a1111_hash(new.path)}],
                  lambda *a: said.append(a))  # fmt: skip
    assert [e.enabled for e in state.entries] == [False, True, False] and said == []
    hashing.release()
    qtbot.waitUntil(lambda: new.enabled)
    assert [e.enabled for e in state.entries] == [False, False, True] and new.strength == 0.6 and said == [([], [])]
    assert sorted(hashing.read) == ["Ink.safetensors", "ink.safetensors"]
