"""The restore notice of images as people share them (review r77): what it says is what the file went through, no
more: a resize whose other side a node not read gives claims no size; an inpainting at denoise 1 is said as made
from another picture; an A1111/Forge image's ADetailer passes are said as a ComfyUI FaceDetailer's are; an
img2img is said before what was done to its picture after; an Extras upscale is no "may have had"."""

from __future__ import annotations

from typing import Any

from tests.test_comfyui_restore_gaps import HIRES, _picture_pass, _png

BEFORE = "which is not restored: new images are its picture before that, 768x768"


def test_a_resize_whose_other_side_is_not_read_claims_no_size(tmp_path):
    """ImageScale to width 2048 whose height a node not read gives (a math node's): the height may be anything, so
    the picture may be larger, or wider and less tall. It was said "upscaled" (and a hires fix "at a larger size"),
    as if the height kept the proportions, which only a side of 0 does."""
    scale = {"class_type": "ImageScale", "inputs": {"image": None, "upscale_method": "lanczos", "width": 2048,
             "height": ["50", 0], "crop": "disabled"}}  # fmt: skip
    assert _picture_pass(tmp_path, scale) == [
        f"it was resized after its pass (ImageScale to width 2048), {BEFORE}"]  # fmt: skip (was: "upscaled")
    graph: dict[str, Any] = {**HIRES, "10": {"class_type": "LatentUpscale", "inputs": {"samples": ["3", 0],
                             "width": 1536, "height": ["50", 0], "upscale_method": "nearest-exact"}}}  # fmt: skip
    assert _png(tmp_path, "prompt", graph).problems == [
        "its second pass (LatentUpscale to width 1536, then KSampler node 11 at denoise 0.5: its size beside the "
        "first pass's not known) is not restored: new images are its first pass, 768x768"]  # fmt: skip
