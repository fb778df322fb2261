"""The restore notice of a ComfyUI image, as a review found it: passes said grouped by kind, not in the order they
ran; a file that may be one of two upscales said as only the first; a resize keeping proportions said without its
size; a graph that also saves its first pass's picture said as if the file had its hires fix for sure; and an
upscale in A1111/Forge's Extras tab of a ComfyUI image not said at all."""

from __future__ import annotations

from typing import Any

from tests.test_comfyui_restore_gaps import HIRES, HIRES_SAID, _picture_pass, _png

FIRST = "new images are its first pass, 768x768"
BEFORE = "which is not restored: new images are its picture before that, 768x768"
HIRES_FIX = HIRES_SAID.partition(" is not restored")[0]


def _one_pass(**nodes: dict[str, Any]) -> dict[str, Any]:
    """``HIRES``'s first pass alone, decoded (node 8) and saved (node 9), with ``nodes`` added by their ids."""
    graph = {k: v for k, v in HIRES.items() if k not in ("10", "11")}
    graph["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["16", 2]}}
    graph["30"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}}
    return {**graph, **nodes}


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


