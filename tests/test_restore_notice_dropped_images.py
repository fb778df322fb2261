"""The restore notice of images as people share them (review r77): what it says is what the file went through, no
more: a resize whose other side a node not read gives claims no size; an inpainting at denoise 1 is said as made
from another picture; an A1111/Forge image's ADetailer passes are said as a ComfyUI FaceDetailer's are; an
img2img is said before what was done to its picture after; an Extras upscale is no "may have had"."""

from __future__ import annotations

import json
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from gpu.generation.image_metadata import inspect_image
from gpu.generation.png_metadata import read_parameters
from tests.test_a1111_restore_gaps import EXTRAS_4X
from tests.test_comfyui_restore_gaps import HIRES, HIRES_SAID, _picture_pass, _png

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


def _loaded(latent: dict[str, Any], denoise: float, **nodes: dict[str, Any]) -> dict[str, Any]:
    """``HIRES``'s first pass alone at ``denoise``, its latent made by ``latent`` (node 32) of a picture loaded (node
    30, its mask its output 1), decoded (8) and saved (9), with ``nodes`` added by their ids."""
    graph = {k: v for k, v in HIRES.items() if k not in ("5", "10", "11")}
    graph["30"] = {"class_type": "LoadImage", "inputs": {"image": "photo.png", "upload": "image"}}
    graph["32"] = latent
    graph["3"] = {**HIRES["3"], "inputs": {**HIRES["3"]["inputs"], "latent_image": ["32", 0], "denoise": denoise}}
    graph["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["16", 2]}}
    return {**graph, **nodes}


def test_an_inpainting_is_said_as_made_from_another_picture_whatever_its_denoise(tmp_path):
    """A picture loaded and inpainted (VAEEncodeForInpaint, InpaintModelConditioning: mostly at denoise 1) keeps all
    of that picture but the part its mask gives: it was restored without a word, as a picture made from noise, only
    a denoise below 1 being taken for a start from another picture."""
    end = "which is not restored: new images start from noise"
    encode = {"class_type": "VAEEncodeForInpaint", "inputs": {"pixels": ["30", 0], "vae": ["16", 2],
              "mask": ["30", 1], "grow_mask_by": 6}}  # fmt: skip
    assert _png(tmp_path, "prompt", _loaded(encode, 1.0)).problems == [
        "it was made from another picture (inpainting: LoadImage node 30, VAEEncodeForInpaint node 32, KSampler node "
        f"3 at denoise 1), {end}"]  # fmt: skip (was: [])
    conditioning = {"class_type": "InpaintModelConditioning", "inputs": {"positive": ["6", 0], "negative": ["7", 0],
                    "vae": ["16", 2], "pixels": ["30", 0], "mask": ["30", 1], "noise_mask": True}}  # fmt: skip
    graph = _loaded(conditioning, 1.0)
    graph["3"]["inputs"].update(positive=["32", 0], negative=["32", 1], latent_image=["32", 2])
    found = _png(tmp_path, "prompt", graph)
    assert found.settings["prompt"] == "a bottle with a galaxy inside" and found.problems == [
        "it was made from another picture (inpainting: LoadImage node 30, InpaintModelConditioning node 32, KSampler "
        f"node 3 at denoise 1), {end}"]  # fmt: skip (was: [])
    # a noise mask on the encoded picture, below denoise 1: an inpainting too, not a whole img2img
    masked = _loaded({"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["31", 0], "mask": ["30", 1]}}, 0.8,
                     **{"31": {"class_type": "VAEEncode", "inputs": {"pixels": ["30", 0], "vae": ["16", 2]}}})
    assert _png(tmp_path, "prompt", masked).problems == [
        "it was made from another picture (inpainting: LoadImage node 30, SetLatentNoiseMask node 32, KSampler node 3 "
        f"at denoise 0.8), {end}"]  # fmt: skip (was: "(img2img: LoadImage node 30, KSampler node 3 at …")
    # a whole img2img at denoise 1 made all of it again: nothing to say
    whole = _loaded({"class_type": "VAEEncode", "inputs": {"pixels": ["30", 0], "vae": ["16", 2]}}, 1.0)
    assert _png(tmp_path, "prompt", whole).problems == []


def test_an_img2img_is_said_before_the_upscale_of_its_picture(tmp_path):
    """An img2img whose picture was then upscaled before it was saved: the upscale was said first, then the
    img2img that ran before it."""
    graph = _loaded({"class_type": "VAEEncode", "inputs": {"pixels": ["30", 0], "vae": ["16", 2]}}, 0.6, **{
        "33": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
        "34": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["33", 0], "image": ["8", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["34", 0]}}})  # fmt: skip
    graph["5"] = HIRES["5"]  # the size read from the empty latent left in the graph
    assert _png(tmp_path, "prompt", graph).problems == [
        "it was made from another picture (img2img: LoadImage node 30, KSampler node 3 at denoise 0.6), which is not "
        "restored: new images start from noise",
        f"it was upscaled after its pass (ImageUpscaleWithModel with 4x-UltraSharp.pth), {BEFORE}"]  # fmt: skip


# An A1111 txt2img with ADetailer's face pass, as ADetailer writes its fields in the settings line
ADETAILER = (
    "a woman, portrait\nNegative prompt: ugly\nSteps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7, "
    "Seed: 123, Size: 512x768, Model hash: 15012c538f, Model: realisticVisionV60B1, ADetailer model: "
    "face_yolov8n.pt, ADetailer confidence: 0.3, ADetailer dilate erode: 4, ADetailer mask blur: 4, ADetailer "
    "denoising strength: 0.4, ADetailer inpaint only masked: True, ADetailer inpaint padding: 32, ADetailer version: "
    "24.1.2, Version: v1.9.4"
)


def test_adetailer_passes_of_an_a1111_image_are_said_as_a_comfyui_detailer_is():
    """ADetailer (the faces or hands it finds sampled again, after the hires fix, before Extras) was restored without
    a word, though a ComfyUI FaceDetailer is said: "its detailer pass (FaceDetailer node 31 at denoise 0.5)"."""
    face = "ADetailer model face_yolov8n.pt, ADetailer denoising strength 0.4"
    assert read_parameters(ADETAILER)[1] == [
        f"its detailer pass ({face}) is not restored: new images are its first pass, 512x768"]  # (was: [])
    hands = ADETAILER.replace("ADetailer version", "ADetailer model 2nd: hand_yolov8n.pt, ADetailer confidence 2nd: "
                              "0.3, ADetailer denoising strength 2nd: 0.35, ADetailer version")  # fmt: skip
    hires = hands.replace("Version:", "Denoising strength: 0.5, Hires upscale: 2, Hires steps: 15, Hires upscaler: "
                          "R-ESRGAN 4x+, Version:")  # fmt: skip
    assert read_parameters(hires, EXTRAS_4X)[1] == [
        f"its hires fix (Hires upscale 2: a second pass at a larger size), its 2 detailer passes ({face}; ADetailer "
        "model 2nd hand_yolov8n.pt, ADetailer denoising strength 2nd 0.35) and its upscale after them (Extras: "
        "Postprocess upscale by 4, Postprocess upscaler R-ESRGAN 4x+) are not restored: new images are its first "
        "pass, 512x768"]  # fmt: skip (was: the hires fix and the upscale "after it")
    # an img2img detailed: said after its start from another picture
    img2img = ADETAILER.replace("Version:", "Denoising strength: 0.55, Version:")
    assert read_parameters(img2img, EXTRAS_4X)[1] == [
        "it was made from another picture (img2img, Denoising strength 0.55), which is not restored: new images start "
        "from noise", f"its detailer pass ({face}) and its upscale after it (Extras: Postprocess upscale by 4, "
        "Postprocess upscaler R-ESRGAN 4x+) are not restored: new images are its first pass, 512x768"]  # fmt: skip


def test_an_extras_upscale_of_a_graph_that_also_saves_its_first_pass_is_no_may_have_had(tmp_path):
    """A hires fix whose graph previews its first pass's picture too, upscaled in A1111/Forge's Extras tab: the file
    may be either picture, but the Extras upscale, which its own chunk says, it surely had. It was said inside the
    "may have had", "it may have had its hires fix (…) and its upscale after it (Extras: …)", as if it might not."""
    graph = {**HIRES, "20": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["16", 2]}},
             "21": {"class_type": "PreviewImage", "inputs": {"images": ["20", 0]}}}
    info = PngInfo()
    for name, text in (("prompt", json.dumps(graph)), ("postprocessing", EXTRAS_4X), ("extras", EXTRAS_4X)):
        info.add_text(name, text)
    Image.new("RGB", (8, 8)).save(tmp_path / "extras.png", pnginfo=info)
    assert inspect_image(tmp_path / "extras.png").problems == [
        f"it may have had {HIRES_SAID.partition(' is not restored')[0]}, which is not restored (the graph saves its "
        "first pass's picture too): new images are its first pass, 768x768",
        "it was upscaled after the graph saved it (Extras: Postprocess upscale by 4, Postprocess upscaler R-ESRGAN "
        "4x+), which is not restored"]  # fmt: skip
