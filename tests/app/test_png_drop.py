"""Dropping PNGs on the prompt panel: what could not be restored is said, naming the file and why.

A size the model cannot make was clamped, A1111's random seed -1 skipped, steps past the form's limit clamped,
all without a word; of several dropped images all but the first were ignored silently, even when the first had
no settings and the second had."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import QUrl

from gpu.generation.png_metadata import write_png
from gpu.version import APP_NAME
from tests.app.gui import drop_urls


def _drop(widget, *paths: Path) -> None:
    """Drops ``paths`` at once on ``widget``, as a file manager does with a selection."""
    drop_urls(widget, [QUrl.fromLocalFile(str(path)) for path in paths])


def _a1111(path: Path, text: str) -> Path:
    info = PngInfo()
    info.add_text("parameters", text)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


def _drop_graph(window, path: Path, graph: dict) -> list:
    """Drops on the prompt panel a PNG at ``path`` holding ComfyUI's ``graph`` (its ``prompt`` chunk) -> the errors
    and notices the controller said."""
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph))
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    shown: list = []
    window.controller.error.connect(shown.append)
    _drop(window.prompt_panel, path)
    return shown


def test_dropped_files_say_what_was_not_restored(qtbot, tmp_path, window):
    controller, state = window.controller, window.controller.prompt
    shown: list = []
    controller.error.connect(shown.append)
    state.prompt, state.seed, state.seed_locked, state.width, state.height = "kept", 11, False, 128, 128

    jpeg = tmp_path / "photo.png"
    Image.new("RGB", (8, 8)).save(jpeg, format="JPEG")
    (tmp_path / "empty.png").write_bytes(b"")
    _drop(window.prompt_panel, tmp_path / "empty.png", jpeg)
    assert [(e.kind, e.message) for e in shown] == [
        ("user", "None of the dropped images carries generation settings: empty.png (the file is empty (0 bytes)), "
                 "photo.png (it is a JPEG image, not a PNG).")]  # fmt: skip
    assert "Drop a PNG saved by Nibble Studio" in shown[0].hint and state.prompt == "kept"
    shown.clear()
    _drop(window.prompt_panel, jpeg)  # one file: why it has none (it said only "carries no generation settings")
    assert [(e.kind, e.message) for e in shown] == [
        ("user", "Nothing was restored from photo.png: it is a JPEG image, not a PNG.")]  # fmt: skip

    # A1111's "random" seed, a size that is no multiple of 16, steps past the form's limit: said, none copied
    shown.clear()
    _drop(window.prompt_panel, _a1111(tmp_path / "odd.png", "a castle\nSteps: 500, Seed: -1, Size: 1000x100000"))
    assert state.prompt == "a castle" and state.seed == 11 and not state.seed_locked
    assert (state.steps, state.width, state.height) == (150, 1008, 2048)  # 1000: half a step, up
    assert [e.kind for e in shown] == ["notice"]
    assert shown[0].message == (
        "Settings restored from odd.png, but not all as saved: its seed -1 is A1111's 'random seed': the seed the "
        "image was made with was not saved; the seed stays 11; its steps value 500 is outside the form's 1 to 150; "
        "set to 150; its size 1000x100000 is not one the model can make (sides of 64 to 2048 px, multiples of 16); the "
        "size is 1008x2048."
    )

    # several at once: an empty one, then two usable ones; the first usable is restored, the others named
    shown.clear()
    good = _a1111(tmp_path / "good.png", "from good\nSteps: 3, Seed: 42, Size: 256x192")
    other = _a1111(tmp_path / "other.png", "from other\nSteps: 5")
    _drop(window.prompt_panel, tmp_path / "empty.png", good, other)
    assert (state.prompt, state.seed, state.steps, state.width, state.height) == ("from good", 42, 3, 256, 192)
    assert state.seed_locked
    assert [e.message for e in shown] == [
        "Settings restored from good.png, but not all as saved: the other dropped images (other.png) were not "
        "used: the form holds one image's settings; empty.png (the file is empty (0 bytes)), dropped before it, "
        "carry no generation settings."
    ]
    assert window.error_dialog is not None and "good.png" in window.error_dialog.text()

    # settings read, but a damaged chunk beside them (the LoRAs of our own chunk, say): named with the rest
    shown.clear()
    damaged = _a1111(tmp_path / "damaged.png", "a bridge\nSteps: 4, Seed: 5, Size: 128x128")
    data = bytearray(damaged.read_bytes())
    end = data.rindex(b"IEND") - 4
    chunk = b"tEXt" + b"nibble\x00{}"
    data[end:end] = len(chunk[4:]).to_bytes(4, "big") + chunk + b"\x00\x00\x00\x00"  # a CRC that is wrong
    damaged.write_bytes(bytes(data))
    _drop(window.prompt_panel, damaged)
    assert state.prompt == "a bridge" and [e.kind for e in shown] == ["notice"]
    assert "damaged.png" in shown[0].message and "'nibble'" in shown[0].message


def test_our_png_comes_back_exactly_and_quietly(qtbot, tmp_path, window):
    """What ``main.py generate`` writes (its settings, as ``save_image`` passes them): every field the form
    holds comes back as it was, and nothing is said beyond the status line."""
    settings = {"prompt": 'un café 🐱, "quoted"\nline two: x ', "negative_prompt": "blurry, Steps: 3", "steps": 2,
                "guidance": 2.5, "seed": 9_000_000_000_000_000_000, "width": 80, "height": 64, "model": "demo",
                "sampler": "Euler", "version": "NibbleStudio-0.1.0"}  # fmt: skip
    path = write_png(tmp_path / "nibble-9.png", Image.new("RGB", (80, 64)), settings)
    shown: list = []
    window.controller.error.connect(shown.append)
    _drop(window.prompt_panel, path)
    state, panel = window.controller.prompt, window.prompt_panel
    for key in ("prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height", "model"):
        assert getattr(state, key) == settings[key], key
    assert panel.prompt_edit.toPlainText() == settings["prompt"] and panel.seed_edit.value() == settings["seed"]
    assert (panel.width_spin.value(), panel.height_spin.value()) == (80, 64) and shown == []


def test_rounded_values_are_said_as_rounded_and_a_reused_gallery_entry_says_what_it_could_not_take(
    qtbot, tmp_path, window
):
    """A value the form rounds (steps 20.5 from a hand-made chunk) was said to be "outside the form's 1 to 150";
    and reusing a gallery entry whose settings the form cannot take (an older image, a hand-edited database)
    clamped them without a word, where dropping the same PNG said so; one with none said only "Restored: nothing"
    in the status bar, where dropping it said why."""
    from app.store import ImageRecord

    controller, state = window.controller, window.controller.prompt
    shown: list = []
    controller.error.connect(shown.append)
    made = write_png(tmp_path / "ours.png", Image.new("RGB", (8, 8)), {"prompt": "a lake", "steps": 20.5})
    _drop(window.prompt_panel, made)
    assert state.steps == 20 and [e.kind for e in shown] == ["notice"]
    assert "its steps value 20.5 is rounded to 20" in shown[0].message

    shown.clear()
    record = ImageRecord(1, "old/huge.png", "a tower", {"prompt": "a tower", "steps": 999, "width": 130},
                         0.0, False, False)  # fmt: skip
    controller.reuse_settings(record)
    assert state.prompt == "a tower" and state.steps == 150
    assert [e.kind for e in shown] == ["notice"] and shown[0].message.startswith(
        "Settings restored from huge.png, but not all as saved: its steps value 999 is outside the form's 1 to "
        "150; set to 150; its size 130x? is not one the model can make")

    # one with no settings at all (a plain PNG put in the images folder): was "Restored: nothing" in the status bar
    shown.clear()
    plain = ImageRecord(2, "old/plain.png", "", {}, 0.0, False, False)
    controller.gallery.path_of(plain).parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(controller.gallery.path_of(plain))
    window.statusBar().clearMessage()
    controller.reuse_settings(plain)
    assert state.prompt == "a tower" and window.statusBar().currentMessage() == ""
    assert [(e.kind, e.message) for e in shown] == [("user", "Nothing was restored from plain.png: it carries no "
                                                     "generation settings (no A1111, ComfyUI or Nibble Studio text "
                                                     "chunk).")]  # fmt: skip
    assert shown[0].hint.startswith("Reuse the settings of an image made here")

    # one whose settings are read from its file (a ComfyUI PNG): what the file could not give is said, as a drop of
    # it says (a reuse said nothing of LoRAs applied by a custom node)
    import json

    comfy = ImageRecord(3, "old/comfy.png", "", {}, 0.0, False, False)
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 9, "steps": 4, "positive": ["6", 0],
                                                         "model": ["5", 0]}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox"}},
             "5": {"class_type": "NunchakuFluxLoraLoader", "inputs": {"lora_name": "ink.safetensors",
                                                                      "model": ["9", 0]}}}  # fmt: skip
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph))
    Image.new("RGB", (8, 8)).save(controller.gallery.path_of(comfy), pnginfo=info)
    _drop(window.prompt_panel, controller.gallery.path_of(comfy))
    dropped = [(e.kind, e.message) for e in shown[1:]]
    assert dropped == [("notice", "Settings restored from comfy.png, but not all as saved: its ComfyUI graph applies "
                                  "LoRAs with a node this app does not read (NunchakuFluxLoraLoader, node 5): those "
                                  "LoRAs are not restored.")]  # fmt: skip
    shown.clear()
    state.prompt = "a tower"
    controller.reuse_settings(comfy)
    assert state.prompt == "a fox" and [(e.kind, e.message) for e in shown] == dropped
    # the same file as the images folder's import stores it: its settings kept, its reader's problems not
    from app.reconcile import read_new_file

    imported = ImageRecord(4, "old/comfy.png", "a fox", read_new_file("old/comfy.png", str(
        controller.gallery.path_of(comfy)))[1], 0.0, False, False)  # fmt: skip
    assert imported.settings["prompt"] == "a fox"
    shown.clear()
    state.prompt = "a tower"
    controller.reuse_settings(imported)
    assert state.prompt == "a fox" and [(e.kind, e.message) for e in shown] == dropped


def test_an_image_made_without_a_negative_prompt_clears_the_forms(qtbot, tmp_path, window):
    """The form's negative prompt stayed when the dropped image had none (A1111 text leaves the line out, a
    ComfyUI FLUX graph zeroes the negative conditioning): the next image then differed from the dropped one."""
    state = window.controller.prompt
    state.negative_prompt = "blurry"
    _drop(window.prompt_panel, _a1111(tmp_path / "plain.png", "a harbour\nSteps: 4, Seed: 3, Size: 128x128"))
    assert (state.prompt, state.negative_prompt) == ("a harbour", "")
    state.negative_prompt = "blurry"
    _drop(window.prompt_panel, _a1111(tmp_path / "neg.png", "a dock\nNegative prompt: fog\nSteps: 4"))
    assert (state.prompt, state.negative_prompt) == ("a dock", "fog")
    _drop(window.prompt_panel, _a1111(tmp_path / "no-prompt.png", "Steps: 7, Seed: 3"))  # settings, no prompt
    assert state.steps == 7 and state.prompt == "a dock"  # an empty prompt does not empty the form's


def test_an_image_made_with_an_empty_prompt_clears_the_prompt_and_says_so(qtbot, tmp_path, window):
    """``main.py generate ""`` makes an image; restored, its empty prompt was taken as "not given": the prompt
    typed before stayed, the seed was locked, and the next image silently differed."""
    controller, state = window.controller, window.controller.prompt
    shown: list = []
    controller.error.connect(shown.append)
    state.prompt = "an old prompt"
    ours = {"prompt": "", "negative_prompt": "", "seed": 5, "steps": 2, "version": f"{APP_NAME}-0.1.0"}
    made = write_png(tmp_path / "empty-prompt.png", Image.new("RGB", (8, 8)), ours)
    _drop(window.prompt_panel, made)
    assert state.prompt == "" and state.seed == 5 and state.seed_locked
    assert [(e.kind, e.message) for e in shown] == [
        ("notice", "Settings restored from empty-prompt.png, but not all as saved: its prompt is empty, and the app "
                   "makes no image without one: type a prompt to generate.")]  # fmt: skip

    # A ComfyUI graph holds its (empty) text too; A1111 text of a settings line alone cannot tell: the prompt stays
    import json

    shown.clear()
    state.prompt = "an old prompt"
    graph = {"3": {"class_type": "KSampler", "inputs": {"seed": 9, "steps": 4, "cfg": 1.0, "positive": ["6", 0]}},
             "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ""}}}  # fmt: skip
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph))
    Image.new("RGB", (8, 8)).save(tmp_path / "comfy.png", pnginfo=info)
    _drop(window.prompt_panel, tmp_path / "comfy.png")
    assert state.prompt == "" and state.seed == 9 and "its prompt is empty" in shown[0].message
    state.prompt = "an old prompt"
    _drop(window.prompt_panel, _a1111(tmp_path / "line.png", "Steps: 3, Seed: 4"))
    assert state.prompt == "an old prompt" and state.seed == 4


def test_a_comfyui_hires_fix_dropped_says_what_was_not_restored_and_the_size_new_images_have(qtbot, tmp_path,
                                                                                              window):  # fmt: skip
    """A ComfyUI image made in two passes (768x768, upscaled to 1152x1152 and sampled again) restored its first
    pass's settings without a word: the next image was the first pass alone, at two thirds of the size. Now the
    notice says so, as for an A1111/Forge image's hires fix."""
    from tests.test_comfyui_restore_gaps import HIRES, HIRES_SAID

    graph = {key: node for key, node in HIRES.items() if key != "16"}  # its model's loader: no other notice
    graph["3"] = {**HIRES["3"], "inputs": {**HIRES["3"]["inputs"], "seed": 77}}
    state = window.controller.prompt
    shown = _drop_graph(window, tmp_path / "hires.png", graph)
    assert (state.prompt, state.seed, state.steps, state.width, state.height) == (
        "a bottle with a galaxy inside", 77, 12, 768, 768)  # fmt: skip
    assert [(e.kind, e.message) for e in shown] == [
        ("notice", f"Settings restored from hires.png, but not all as saved: {HIRES_SAID}.")]  # fmt: skip


def test_an_a1111_hires_fix_written_without_its_upscale_is_said_as_one_not_as_an_img2img(qtbot, tmp_path, window):
    """Dropped, an A1111-style image whose hires fix is written by its "Hires upscaler: None" and "Hires steps" alone
    (no "Hires upscale" nor "Hires resize"; its "Denoising strength" the second pass's): the notice said it was made
    from another picture and that new images start from noise, of a txt2img. It says its second pass now."""
    from tests.test_a1111_restore_gaps import FORGE_HIRES

    text = FORGE_HIRES.replace("Hires upscale: 2, ", "").replace("4x-UltraSharp", "None")
    shown: list = []
    window.controller.error.connect(shown.append)
    _drop(window.prompt_panel, _a1111(tmp_path / "hires.png", text))
    assert [e.message for e in shown if "hires.png" in e.message] == [
        "Settings restored from hires.png, but not all as saved: its second pass (Hires steps 10, Hires upscaler "
        "None: its size beside the first pass's not known) is not restored: new images are its first pass, "
        "896x1152."]  # fmt: skip (was: "it was made from another picture (img2img, Denoising strength 0.45), …")


def test_a_comfyui_image_upscaled_after_its_one_pass_dropped_says_so(qtbot, tmp_path, window):
    """A ComfyUI image made in one pass, then enlarged by an upscale model before it was saved, restored its pass's
    settings without a word: the next image was the picture before the upscale, a quarter of its size. Now the
    notice says the upscale is not restored, and the size new images have."""
    from tests.test_comfyui_restore_gaps import HIRES

    graph = {key: node for key, node in HIRES.items() if key not in ("10", "11", "16")}  # no model: no other notice
    graph["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["16", 2]}}
    graph["30"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}}
    graph["31"] = {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["30", 0], "image": ["8", 0]}}
    graph["9"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["31", 0]}}
    state = window.controller.prompt
    shown = _drop_graph(window, tmp_path / "upscaled.png", graph)
    assert (state.prompt, state.steps, state.width, state.height) == ("a bottle with a galaxy inside", 12, 768, 768)
    assert [(e.kind, e.message) for e in shown] == [
        ("notice", "Settings restored from upscaled.png, but not all as saved: it was upscaled after its pass "
                   "(ImageUpscaleWithModel with 4x-UltraSharp.pth), which is not restored: new images are its picture "
                   "before that, 768x768.")]  # fmt: skip (was: no notice)


def test_an_a1111_extras_upscale_dropped_says_so(qtbot, tmp_path, window):
    """An image upscaled in A1111/Forge's Extras tab (R-ESRGAN 4x+), dropped: its ``parameters`` are the picture's
    it was given, and were restored without a word, the next image a quarter of its size. The notice says the
    upscale is not restored, in the words of a ComfyUI image upscaled after its pass, and the size new images have."""
    from tests.test_a1111_restore_gaps import A1111_TXT2IMG, EXTRAS_4X, _extras_png

    text = A1111_TXT2IMG.replace("Model: flux1-dev-bnb-nf4-v2, ", "")  # a model not in the library: another notice
    state = window.controller.prompt
    shown: list = []
    window.controller.error.connect(shown.append)
    _drop(window.prompt_panel, _extras_png(tmp_path / "00012-1234.png", text, EXTRAS_4X))
    assert (state.prompt, state.seed, state.steps, state.width, state.height) == (
        "a lighthouse at dusk", 1234, 20, 896, 1152)  # fmt: skip
    assert [(e.kind, e.message) for e in shown if "00012-1234.png" in e.message] == [
        ("notice", "Settings restored from 00012-1234.png, but not all as saved: it was upscaled after its pass "
                   "(Extras: Postprocess upscale by 4, Postprocess upscaler R-ESRGAN 4x+), which is not restored: new "
                   "images are its picture before that, 896x1152.")]  # fmt: skip (was: no notice)


def test_a_comfyui_image_upscaled_in_extras_dropped_says_so(qtbot, tmp_path, window):
    """A ComfyUI image (its ``prompt`` graph, no ``parameters``) upscaled in A1111/Forge's Extras tab, which keeps its
    chunks: its first pass's settings were restored without a word, only the A1111 reader given what Extras did."""
    from tests.test_a1111_restore_gaps import EXTRAS_4X
    from tests.test_comfyui_restore_gaps import HIRES

    graph = {key: node for key, node in HIRES.items() if key not in ("10", "11", "16")}  # no model: no other notice
    graph["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["16", 2]}}
    info = PngInfo()
    for key, text in (("prompt", json.dumps(graph)), ("postprocessing", EXTRAS_4X), ("extras", EXTRAS_4X)):
        info.add_text(key, text)
    Image.new("RGB", (8, 8)).save(tmp_path / "00013.png", pnginfo=info)
    state = window.controller.prompt
    shown: list = []
    window.controller.error.connect(shown.append)
    _drop(window.prompt_panel, tmp_path / "00013.png")
    assert (state.prompt, state.steps, state.width, state.height) == ("a bottle with a galaxy inside", 12, 768, 768)
    assert [(e.kind, e.message) for e in shown] == [
        ("notice", "Settings restored from 00013.png, but not all as saved: it was upscaled after its pass (Extras: "
                   "Postprocess upscale by 4, Postprocess upscaler R-ESRGAN 4x+), which is not restored: new images "
                   "are its picture before that, 768x768.")]  # fmt: skip (was: no notice)
