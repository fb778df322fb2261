"""The restore notice of ComfyUI graphs as review f84 found them: a graph that saves the picture of a pass between
the first and the last said every pass as sure; an Efficiency Nodes KSampler's HighRes-Fix Script not said at all;
a picture resized then upscaled back to its size (in the graph, then in A1111/Forge's Extras tab) said as if saved
as it was made, or not at all."""

from __future__ import annotations

import json
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from gpu.generation.image_metadata import inspect_image
from tests.test_comfyui_restore_gaps import FACE, HIRES, USDU, _picture_graph, _png

FIRST = "new images are its first pass, 768x768"
DETAILED = "its detailer pass (FaceDetailer node 31 at denoise 0.5)"
UPSCALED = ("its hires fix (UltimateSDUpscale node 32 by 2 with 4x-UltraSharp.pth at denoise 0.2: a second pass at "
            "a larger size)")  # fmt: skip
EXTRAS_2X = "Postprocess upscale by: 2, Postprocess upscaler: R-ESRGAN 4x+"
EXTRAS_2X_SAID = "Extras: Postprocess upscale by 2, Postprocess upscaler R-ESRGAN 4x+"


def _saving(graph: dict[str, Any], node: str, saver: str = "50") -> dict[str, Any]:
    """``graph`` with a SaveImage (node ``saver``) of the picture of ``node`` too."""
    return {**graph, saver: {"class_type": "SaveImage", "inputs": {"filename_prefix": "step", "images": [node, 0]}}}


def _with_extras(tmp_path, graph: dict[str, Any], postprocessing: str) -> list[str]:
    """What is said of a PNG of ``graph`` upscaled in A1111/Forge's Extras tab (its ``postprocessing`` chunk)."""
    info = PngInfo()
    for name, text in (("prompt", json.dumps(graph)), ("postprocessing", postprocessing), ("extras", postprocessing)):
        info.add_text(name, text)
    Image.new("RGB", (8, 8)).save(tmp_path / "extras.png", pnginfo=info)
    return inspect_image(tmp_path / "extras.png").problems


def test_a_graph_that_saves_a_pass_between_the_first_and_the_last_says_what_came_after_it_as_may(tmp_path):
    """FaceDetailer then Ultimate SD Upscale, the detailed picture saved too: the file may be that picture, before
    the upscale. It was said "its detailer pass (…) and its hires fix (…) are not restored", as if surely both."""
    graph = _saving(_picture_graph(FACE, USDU), "31")
    assert _png(tmp_path, "prompt", graph).problems == [
        f"{DETAILED} is not restored; it may have had {UPSCALED} after that, which is not restored either (the graph "
        f"saves the picture before it too): {FIRST}"]  # fmt: skip (was: "… and its hires fix (…) are not restored")
    # the upscaled picture saved too, with a detailer after it: what ran up to the upscale is sure
    graph = _saving(_picture_graph(FACE, USDU, FACE), "32")
    assert _png(tmp_path, "prompt", graph).problems == [
        f"{DETAILED} and {UPSCALED} are not restored; it may have had another detailer pass (FaceDetailer node 33 at "
        f"denoise 0.5) after those, which is not restored either (the graph saves the picture before it too): "
        f"{FIRST}"]  # fmt: skip
    # the earliest picture saved decides: the first pass's own, all the passes "may"
    graph = _saving(_saving(_picture_graph(FACE, USDU), "31"), "8", "51")
    assert _png(tmp_path, "prompt", graph).problems == [
        f"it may have had {DETAILED} and {UPSCALED}, which are not restored (the graph saves its first pass's picture "
        f"too): {FIRST}"]  # fmt: skip
    # an Extras upscale, surely had whichever picture it was given, is said apart
    assert _with_extras(tmp_path, _saving(_picture_graph(FACE, USDU), "31"), EXTRAS_2X) == [
        f"{DETAILED} is not restored; it may have had {UPSCALED} after that, which is not restored either (the graph "
        f"saves the picture before it too): {FIRST}", f"it was upscaled after the graph saved it ({EXTRAS_2X_SAID}), "
        "which is not restored"]  # fmt: skip


def _efficient(script: dict[str, Any]) -> dict[str, Any]:
    """``HIRES``'s first pass made by Efficiency Nodes' KSampler (Efficient) (node 3) with ``script`` (node 40) on
    its ``script`` input, the picture it gives (output 5) saved."""
    graph = {k: v for k, v in HIRES.items() if k not in ("8", "10", "11")}
    graph["3"] = {"class_type": "KSampler (Efficient)", "inputs": {
        **HIRES["3"]["inputs"], "preview_method": "auto", "vae_decode": "true", "optional_vae": ["16", 2],
        "script": ["40", 0]}}  # fmt: skip
    graph["40"] = script
    graph["9"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["3", 5]}}
    return graph


def _hires_script(upscale_type: str, upscale_by: float, iterations: int = 1) -> dict[str, Any]:
    """Efficiency Nodes' HighRes-Fix Script node, with its inputs as ComfyUI's ``prompt`` graph holds them."""
    return {"class_type": "HighRes-Fix Script", "inputs": {
        "upscale_type": upscale_type, "hires_ckpt_name": "(use same)", "latent_upscaler": "nearest-exact",
        "pixel_upscaler": "4x-UltraSharp.pth", "upscale_by": upscale_by, "use_same_seed": True, "seed": -1,
        "hires_steps": 12, "denoise": 0.56, "iterations": iterations, "use_controlnet": False,
        "control_net_name": "control_v11p_sd15_canny.pth", "strength": 1, "preprocessor": "CannyEdgePreprocessor",
        "preprocessor_imgs": False}}  # fmt: skip


def test_an_efficiency_nodes_highres_fix_script_is_said_as_a_hires_fix(tmp_path):
    """KSampler (Efficient) samples again at a larger size where a HighRes-Fix Script is on its ``script`` input:
    restored without a word, the settings looked complete and made a smaller, other picture."""
    found = _png(tmp_path, "prompt", _efficient(_hires_script("latent", 1.5)))
    assert found.settings["steps"] == 12 and found.problems == [
        "its hires fix (HighRes-Fix Script node 40 by 1.5 with nearest-exact at denoise 0.56: a second pass at a "
        f"larger size) is not restored: {FIRST}"]  # fmt: skip (was: [])
    assert _png(tmp_path, "prompt", _efficient(_hires_script("latent", 1.5, 2))).problems == [
        "its hires fix (HighRes-Fix Script node 40 by 1.5 with nearest-exact at denoise 0.56: 2 more passes up to a "
        f"larger size) is not restored: {FIRST}"]  # fmt: skip
    # "both": an upscale model's picture scaled by upscale_by / 4: the size is the model's factor's, not said
    assert _png(tmp_path, "prompt", _efficient(_hires_script("both", 1.5))).problems == [
        "its second pass (HighRes-Fix Script node 40 by 1.5 with 4x-UltraSharp.pth at denoise 0.56: its size beside "
        f"the first pass's not known) is not restored: {FIRST}"]  # fmt: skip
    # its factor given by a node not read: no size claimed
    linked = _efficient(_hires_script("latent", 1.5))
    linked["40"]["inputs"]["upscale_by"] = ["99", 0]
    assert _png(tmp_path, "prompt", linked).problems == [
        "its second pass (HighRes-Fix Script node 40 with nearest-exact at denoise 0.56: its size beside the first "
        f"pass's not known) is not restored: {FIRST}"]  # fmt: skip
    # through another script node on the way (Noise Control Script's), and with a detailer of its picture after it
    graph = _efficient({"class_type": "Noise Control Script", "inputs": {"rng_source": "cpu", "cfg_denoiser": False,
                        "add_seed_noise": False, "seed": 0, "weight": 0.015, "script": ["41", 0]}})  # fmt: skip
    graph["41"] = _hires_script("latent", 1.5)
    graph["31"] = {"class_type": "FaceDetailer", "inputs": {**FACE["inputs"], "image": ["3", 5],
                   "bbox_detector": ["16", 0]}}  # fmt: skip
    graph["9"]["inputs"]["images"] = ["31", 0]
    assert _png(tmp_path, "prompt", graph).problems == [
        "its hires fix (HighRes-Fix Script node 41 by 1.5 with nearest-exact at denoise 0.56: a second pass at a "
        f"larger size) and its detailer pass (FaceDetailer node 31 at denoise 0.5) are not restored: {FIRST}"]
    # no iterations: no pass
    assert _png(tmp_path, "prompt", _efficient(_hires_script("latent", 1.5, 0))).problems == []
    # an untrusted file's numbers, too large for a float, and scripts whose links loop: said, never raised
    for kind in ("latent", "both"):
        huge = _png(tmp_path, "prompt", _efficient(_hires_script(kind, 10**400, 10**400))).problems
        assert huge[0].startswith(f"its hires fix (HighRes-Fix Script node 40 by {10**400} with") and huge[0].endswith(
            f"0.56: {10**400} more passes up to a larger size) is not restored: {FIRST}")  # fmt: skip
    looped = _efficient({"class_type": "Noise Control Script", "inputs": {"script": ["41", 0]}})
    looped["41"] = {"class_type": "Tiled Upscaler Script", "inputs": {"script": ["40", 0]}}
    assert _png(tmp_path, "prompt", looped).problems == []


def _halved(*savers: str) -> dict[str, Any]:
    """``HIRES``'s first pass alone, decoded (node 8) and scaled by 0.5 (node 33); ``savers``: which pictures are
    saved, "8" (the decoded one) or "33" (the halved one)."""
    graph = {k: v for k, v in HIRES.items() if k not in ("9", "10", "11")}
    graph["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["16", 2]}}
    graph["33"] = {"class_type": "ImageScaleBy", "inputs": {"upscale_method": "lanczos", "scale_by": 0.5,
                   "image": ["8", 0]}}  # fmt: skip
    for number, node in enumerate(savers, 50):
        graph = _saving(graph, node, str(number))
    return graph


def test_a_picture_resized_then_upscaled_back_to_its_size_is_said(tmp_path):
    """ImageScaleBy 0.5, then Extras by 2: the file is the size the first pass made, but not the picture its
    settings make. Alone it was said nothing; beside a save of the picture as made, only that way was said."""
    back = f"ImageScaleBy by 0.5, then {EXTRAS_2X_SAID}: back to the size it was made at"
    before = "which is not restored: new images are its picture before that, 768x768"
    assert _with_extras(tmp_path, _halved("33"), EXTRAS_2X) == [
        f"it was resized after its pass ({back}), {before}"]  # fmt: skip (was: [])
    assert _with_extras(tmp_path, _halved("8", "33"), EXTRAS_2X) == [
        f"it may have been resized after its pass ({EXTRAS_2X_SAID}; or {back}; the graph saves both), {before}"]
    # (was: "it may have been upscaled after its pass (Extras: …; the graph saves the picture before that too)")
    # and in the graph alone: ImageScaleBy 0.5, then ImageScaleBy 2
    graph = _halved()
    graph["34"] = {"class_type": "ImageScaleBy", "inputs": {"upscale_method": "lanczos", "scale_by": 2,
                   "image": ["33", 0]}}  # fmt: skip
    assert _png(tmp_path, "prompt", _saving(graph, "34")).problems == [
        "it was resized after its pass (ImageScaleBy by 0.5, ImageScaleBy by 2: back to the size it was made at), "
        f"{before}"]  # fmt: skip
