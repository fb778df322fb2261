"""The restore notice of a ComfyUI image, as a review found it: passes said grouped by kind, not in the order they
ran; a file that may be one of two upscales said as only the first; a resize keeping proportions said without its
size; a graph that also saves its first pass's picture said as if the file had its hires fix for sure; and an
upscale in A1111/Forge's Extras tab of a ComfyUI image not said at all."""

from __future__ import annotations

import json
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from gpu.generation.image_metadata import inspect_image
from tests.test_a1111_restore_gaps import EXTRAS_4X
from tests.test_comfyui_restore_gaps import FACE, HIRES, HIRES_SAID, USDU, _node, _picture_pass, _png

FIRST = "new images are its first pass, 768x768"
BEFORE = "which is not restored: new images are its picture before that, 768x768"
HIRES_FIX = HIRES_SAID.partition(" is not restored")[0]


def _one_pass(**nodes: dict[str, Any]) -> dict[str, Any]:
    """``HIRES``'s first pass alone, decoded (node 8) and saved (node 9), with ``nodes`` added by their ids."""
    graph = {k: v for k, v in HIRES.items() if k not in ("10", "11")}
    graph["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["16", 2]}}
    graph["30"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}}
    return {**graph, **nodes}


def test_passes_are_said_in_the_order_they_ran(tmp_path):
    """FaceDetailer, then Ultimate SD Upscale, then FaceDetailer again was said "its 2 detailer passes (…node 31;
    …node 33) and its hires fix (…node 32…)", as if both detailers ran before the upscale. Only passes of one kind
    that ran one after another are said together; a kind met again is "another"."""
    assert _picture_pass(tmp_path, FACE, USDU, FACE) == [
        "its detailer pass (FaceDetailer node 31 at denoise 0.5), its hires fix (UltimateSDUpscale node 32 by 2 with "
        "4x-UltraSharp.pth at denoise 0.2: a second pass at a larger size) and another detailer pass (FaceDetailer "
        f"node 33 at denoise 0.5) are not restored: {FIRST}"]  # fmt: skip
    assert _picture_pass(tmp_path, USDU, FACE, USDU) == [
        "its hires fix (UltimateSDUpscale node 31 by 2 with 4x-UltraSharp.pth at denoise 0.2: a second pass at a "
        "larger size), its detailer pass (FaceDetailer node 32 at denoise 0.5) and another hires fix "
        "(UltimateSDUpscale node 33 by 2 with 4x-UltraSharp.pth at denoise 0.2: one more pass at a larger size) are "
        f"not restored: {FIRST}"]  # fmt: skip
    # passes of one kind one after another are still said together
    assert _picture_pass(tmp_path, USDU, FACE, FACE)[0].startswith(
        "its hires fix (UltimateSDUpscale node 31 by 2 with 4x-UltraSharp.pth at denoise 0.2: a second pass at a "
        "larger size) and its 2 detailer passes (FaceDetailer node 32 at denoise 0.5; FaceDetailer node 33 at "
        "denoise 0.5) are")  # fmt: skip


def test_two_saves_of_different_resizes_are_both_said(tmp_path):
    """One node saves the upscale model's picture, another the same scaled by 0.5: a PNG each, the same graph in
    both, so this file may be either. Only the first chain was said, with "was"."""
    graph = _one_pass(**{
        "31": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["30", 0], "image": ["8", 0]}},
        "32": {"class_type": "SaveImage", "inputs": {"filename_prefix": "4x", "images": ["31", 0]}},
        "33": {"class_type": "ImageScaleBy", "inputs": {"upscale_method": "lanczos", "scale_by": 0.5,
               "image": ["31", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "2x", "images": ["33", 0]}}})  # fmt: skip
    model = "ImageUpscaleWithModel with 4x-UltraSharp.pth"
    assert _png(tmp_path, "prompt", graph).problems == [
        f"it may have been resized after its pass ({model}, ImageScaleBy by 0.5; or {model}; the graph saves both), "
        f"{BEFORE}"]  # fmt: skip (was: "it was resized after its pass (…, ImageScaleBy by 0.5), …")
    # and the picture before them too
    graph["34"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    assert _png(tmp_path, "prompt", graph).problems == [
        f"it may have been resized after its pass ({model}, ImageScaleBy by 0.5; or {model}; the graph saves both, "
        f"and the picture before them too), {BEFORE}"]  # fmt: skip
    # after a hires fix
    hires = {**HIRES, **{k: v for k, v in graph.items() if k in ("30", "31", "32", "33")}, "9": graph["9"]}
    assert _png(tmp_path, "prompt", hires).problems == [
        f"{HIRES_FIX} and its resize after it ({model}, ImageScaleBy by 0.5; or {model}; the graph saves both) are not "
        f"restored: {FIRST}"]  # fmt: skip
    # two saves of the same resize: one way, said as before
    graph = _one_pass(**{k: v for k, v in graph.items() if k in ("31", "32")})
    graph["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["31", 0]}}
    assert _png(tmp_path, "prompt", graph).problems == [f"it was upscaled after its pass ({model}), {BEFORE}"]


def test_a_resize_keeping_proportions_says_its_size(tmp_path):
    """ImageScale or LatentUpscale with one side 0 (ComfyUI keeps the picture's proportions by the other) was named
    without its size: "(ImageScale)"."""
    scale = {"class_type": "ImageScale", "inputs": {"image": None, "upscale_method": "lanczos", "width": 2048,
             "height": 0, "crop": "disabled"}}  # fmt: skip
    assert _picture_pass(tmp_path, scale) == [
        f"it was upscaled after its pass (ImageScale to width 2048 keeping proportions), {BEFORE}"]  # fmt: skip
    graph = {**HIRES, "10": {"class_type": "LatentUpscale", "inputs": {"samples": ["3", 0], "width": 0,
             "height": 1024, "upscale_method": "nearest-exact", "crop": "disabled"}}}  # fmt: skip
    assert _png(tmp_path, "prompt", graph).problems == [
        "its hires fix (LatentUpscale to height 1024 keeping proportions, then KSampler node 11 at denoise 0.5: a "
        f"second pass at a larger size) is not restored: {FIRST}"]  # fmt: skip (was: "(LatentUpscale, then …")


def test_a_graph_that_also_saves_its_first_pass_may_be_that_picture(tmp_path):
    """A hires fix whose graph also previews (or saves) its first pass's picture: this file may be that picture,
    whose settings are complete. It was said "its hires fix (…) is not restored", as if the file surely had it."""
    graph = {**HIRES, "20": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["16", 2]}},
             "21": {"class_type": "PreviewImage", "inputs": {"images": ["20", 0]}}}
    assert _png(tmp_path, "prompt", graph).problems == [
        f"it may have had {HIRES_FIX}, which is not restored (the graph saves its first pass's picture too): "
        f"{FIRST}"]  # fmt: skip
    # with a detailer after it: the file may be the first pass's picture, or one with both
    graph["31"] = {"class_type": "FaceDetailer", "inputs": {**FACE["inputs"], "image": ["8", 0]}}
    graph["9"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["31", 0]}}
    assert _png(tmp_path, "prompt", graph).problems == [
        f"it may have had {HIRES_FIX} and its detailer pass (FaceDetailer node 31 at denoise 0.5), which are not "
        f"restored (the graph saves its first pass's picture too): {FIRST}"]  # fmt: skip
    # a save of the first pass and the hires pass together (one picture of both) is no save of the first alone
    graph = {**HIRES, "20": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["16", 2]}},
             "21": {"class_type": "ImageBatch", "inputs": {"image1": ["20", 0], "image2": ["8", 0]}},
             "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["21", 0]}}}
    assert _png(tmp_path, "prompt", graph).problems == [HIRES_SAID]


def _extras_png(tmp_path, graph: dict[str, Any], postprocessing: str, key: str = "prompt") -> list[str]:
    """What is said of a ComfyUI PNG (its ``graph`` as ``key``) upscaled in A1111/Forge's Extras tab, which keeps the
    picture's chunks and adds what it did in a ``postprocessing`` and an ``extras`` chunk."""
    info = PngInfo()
    for name, text in ((key, json.dumps(graph)), ("postprocessing", postprocessing), ("extras", postprocessing)):
        info.add_text(name, text)
    Image.new("RGB", (8, 8)).save(tmp_path / "extras.png", pnginfo=info)
    return inspect_image(tmp_path / "extras.png").problems


def test_an_extras_upscale_of_a_comfyui_image_is_said(tmp_path):
    """A ComfyUI image (a ``prompt`` chunk, no ``parameters``) upscaled in A1111/Forge's Extras tab: only the A1111
    reader was given the Extras chunk, and the upscale was restored without a word."""
    extras = "Extras: Postprocess upscale by 4, Postprocess upscaler R-ESRGAN 4x+"
    assert _extras_png(tmp_path, _one_pass(), EXTRAS_4X) == [
        f"it was upscaled after its pass ({extras}), {BEFORE}"]  # fmt: skip (was: [])
    assert _extras_png(tmp_path, HIRES, EXTRAS_4X) == [
        f"{HIRES_FIX} and its upscale after it ({extras}) are not restored: {FIRST}"]  # fmt: skip
    # after the graph's own upscale: said after it
    upscaled = _one_pass(**{"31": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["30", 0],
                            "image": ["8", 0]}}, "9": {"class_type": "SaveImage", "inputs": {"images": ["31", 0]}}})
    assert _extras_png(tmp_path, upscaled, EXTRAS_4X) == [
        f"it was upscaled after its pass (ImageUpscaleWithModel with 4x-UltraSharp.pth, then {extras}), {BEFORE}"]
    # "Scale to" the hires pass's own size (1152x1152): no change worth a word
    same = "Postprocess upscale to: 1152x1152, Postprocess upscaler: 4x-UltraSharp"
    assert _extras_png(tmp_path, HIRES, same) == [HIRES_SAID]
    # a file with only the editor's workflow: said there too
    workflow = {"nodes": [
        _node(5, "EmptyLatentImage", [768, 512, 1], []),
        _node(6, "CLIPTextEncode", ["a harbour at dawn"], []),
        _node(3, "KSampler", [7, "fixed", 20, 6.5, "euler", "normal", 1.0], [("positive", 1), ("latent_image", 2)]),
    ], "links": [[1, 6, 0, 3, 1, "CONDITIONING"], [2, 5, 0, 3, 3, "LATENT"]]}  # fmt: skip
    assert _extras_png(tmp_path, workflow, EXTRAS_4X, key="workflow") == [
        f"it was upscaled after its pass ({extras}), which is not restored: new images are its picture before that, "
        "768x512"]  # fmt: skip
