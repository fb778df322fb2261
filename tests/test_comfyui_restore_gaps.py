"""ComfyUI images whose settings are read from one pass of several: a hires fix (a second sampler fed the first's
latent through an upscale), a pass after it at the same size, an img2img. Restored without a word, the settings
looked complete and made another picture (the first pass alone, at its smaller size); now what was not restored is
said, with the size new images will have, as for an A1111/Forge image (``test_a1111_restore_gaps``)."""

from __future__ import annotations

import json
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from gpu.generation.image_metadata import inspect_image
from gpu.generation.png_metadata import ImageSettings, read_parameters
from tests.test_a1111_restore_gaps import FORGE_HIRES

# ComfyUI's own hires-fix example ("2 pass txt2img"), as the prompt graph of its PNGs: the first pass at 768x768,
# the latent upscaled to 1152x1152, a second KSampler at denoise 0.5 over it.
HIRES: dict[str, Any] = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 89848141647836, "steps": 12, "cfg": 8,
          "sampler_name": "dpmpp_sde", "scheduler": "normal", "denoise": 1, "model": ["16", 0],
          "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 768, "height": 768, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a bottle with a galaxy inside", "clip": ["16", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "bad hands", "clip": ["16", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["16", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}},
    "10": {"class_type": "LatentUpscale", "inputs": {"upscale_method": "nearest-exact", "width": 1152,
           "height": 1152, "crop": "disabled", "samples": ["3", 0]}},
    "11": {"class_type": "KSampler", "inputs": {"seed": 469771404043268, "steps": 14, "cfg": 8,
           "sampler_name": "dpmpp_2m", "scheduler": "simple", "denoise": 0.5, "model": ["16", 0],
           "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["10", 0]}},
    "16": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v2-1_768-ema-pruned.safetensors"}},
}  # fmt: skip
# The decode of a third pass's picture (node 12) in place of the second's, for graphs that add one after ``HIRES``'s
DECODE_12 = {"class_type": "VAEDecode", "inputs": {"samples": ["12", 0], "vae": ["16", 2]}}
HIRES_SAID = ("its hires fix (LatentUpscale to 1152x1152, then KSampler node 11 at denoise 0.5: a second pass at a "
              "larger size) is not restored: new images are its first pass, 768x768")  # fmt: skip


def _png(tmp_path, key: str, value: Any) -> ImageSettings:
    info = PngInfo()
    info.add_text(key, json.dumps(value))
    Image.new("RGB", (8, 8)).save(tmp_path / "comfy.png", pnginfo=info)
    return inspect_image(tmp_path / "comfy.png")


def test_a_comfyui_hires_fix_is_said_as_an_a1111_one_is(tmp_path):
    found = _png(tmp_path, "prompt", HIRES)
    assert (found.settings["width"], found.settings["height"], found.settings["steps"]) == (768, 768, 12)
    assert found.problems == [HIRES_SAID]
    # said in the words of an A1111/Forge image's hires fix
    _settings, said = read_parameters(FORGE_HIRES)
    assert said[0].endswith("a second pass at a larger size) is not restored: new images are its first pass, "
                            "896x1152")  # fmt: skip


def test_an_image_upscale_between_the_passes_and_a_pass_at_the_same_size_are_said(tmp_path):
    """The upscale may be of the decoded picture (an upscale model, then a resize, encoded again), the second
    sampler a SamplerCustomAdvanced whose denoise is its scheduler's; and a graph may add a pass at the same size
    (a refiner's), which is no hires fix but is not restored either."""
    pixels = {
        **HIRES,
        "20": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["16", 2]}},
        "21": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
        "22": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["21", 0], "image": ["20", 0]}},
        "23": {"class_type": "ImageScaleBy", "inputs": {"upscale_method": "lanczos", "scale_by": 0.5,
               "image": ["22", 0]}},
        "24": {"class_type": "VAEEncode", "inputs": {"pixels": ["23", 0], "vae": ["16", 2]}},
        "11": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["25", 0], "guider": ["26", 0],
               "sampler": ["27", 0], "sigmas": ["28", 0], "latent_image": ["24", 0]}},
        "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 3}},
        "26": {"class_type": "CFGGuider", "inputs": {"cfg": 8, "model": ["16", 0], "positive": ["6", 0],
               "negative": ["7", 0]}},
        "27": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "28": {"class_type": "BasicScheduler", "inputs": {"scheduler": "simple", "steps": 10, "denoise": 0.35,
               "model": ["16", 0]}},
    }  # fmt: skip
    del pixels["10"]
    found = _png(tmp_path, "prompt", pixels)
    assert found.settings["steps"] == 12 and found.problems == [
        "its second pass (ImageUpscaleWithModel with 4x-UltraSharp.pth, ImageScaleBy by 0.5, then "
        "SamplerCustomAdvanced node 11 at denoise 0.35: its size beside the first pass's not known) is not restored: "
        "new images are its first pass, 768x768"]  # fmt: skip (the model's factor, and so the size, not said)
    refined = {**HIRES}
    del refined["10"]
    refined["11"] = {"class_type": "KSamplerAdvanced", "inputs": {**HIRES["11"]["inputs"], "latent_image": ["3", 0],
                     "start_at_step": 20, "steps": 25}}  # fmt: skip
    del refined["11"]["inputs"]["denoise"]
    assert _png(tmp_path, "prompt", refined).problems == [
        "its second pass (KSamplerAdvanced node 11 from step 20 of 25) is not restored: new images are its first "
        "pass, 768x768"]  # fmt: skip


def test_the_first_pass_is_the_one_no_other_pass_feeds(tmp_path):
    """With no empty latent linked straight to a sampler (a batch node between), the sampler numbered first was
    taken: a second pass numbered before the first gave the settings of the pass that only refines."""
    graph = {
        **HIRES,
        "1": HIRES["11"],  # the second pass, numbered first
        "12": {"class_type": "RepeatLatentBatch", "inputs": {"samples": ["5", 0], "amount": 1}},
        "3": {**HIRES["3"], "inputs": {**HIRES["3"]["inputs"], "latent_image": ["12", 0]}},
    }  # fmt: skip
    del graph["11"]
    found = _png(tmp_path, "prompt", graph)
    assert (found.settings["seed"], found.settings["steps"]) == (89848141647836, 12)
    assert found.problems == [HIRES_SAID.replace("node 11", "node 1")]


def test_a_comfyui_img2img_is_said(tmp_path):
    graph = {
        **HIRES,
        "30": {"class_type": "LoadImage", "inputs": {"image": "photo.png", "upload": "image"}},
        "31": {"class_type": "VAEEncode", "inputs": {"pixels": ["30", 0], "vae": ["16", 2]}},
        "3": {**HIRES["3"], "inputs": {**HIRES["3"]["inputs"], "latent_image": ["31", 0], "denoise": 0.6}},
    }  # fmt: skip
    for node in ("10", "11", "5"):
        del graph[node]
    graph["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["16", 2]}}
    assert _png(tmp_path, "prompt", graph).problems == [
        "it was made from another picture (img2img: LoadImage node 30, KSampler node 3 at denoise 0.6), which is "
        "not restored: new images start from noise"]  # fmt: skip
    graph["3"]["inputs"]["denoise"] = 1.0  # all noise: the loaded picture is not in the image
    assert _png(tmp_path, "prompt", graph).problems == []


def _node(node_id: int, kind: str, values: list[Any], inputs: list[tuple[str, int]]) -> dict[str, Any]:
    """A node of an editor's workflow: its widget values by position, its inputs by link id."""
    return {"id": node_id, "type": kind, "mode": 0, "widgets_values": values,
            "inputs": [{"name": name, "link": link} for name, link in inputs]}  # fmt: skip


def test_a_workflow_alone_says_its_hires_fix(tmp_path):
    """A file with only the editor's workflow (values by position): the upscale's size is read there too."""
    workflow = {"nodes": [
        _node(5, "EmptyLatentImage", [768, 512, 1], []),
        _node(6, "CLIPTextEncode", ["a harbour at dawn"], []),
        _node(3, "KSampler", [7, "fixed", 20, 6.5, "euler", "normal", 1.0], [("positive", 1), ("latent_image", 2)]),
        _node(10, "LatentUpscaleBy", ["nearest-exact", 1.5], [("samples", 3)]),
        _node(11, "KSampler", [8, "fixed", 12, 6.5, "euler", "normal", 0.45], [("positive", 4), ("latent_image", 5)]),
    ], "links": [[1, 6, 0, 3, 1, "CONDITIONING"], [2, 5, 0, 3, 3, "LATENT"], [3, 3, 0, 10, 0, "LATENT"],
                 [4, 6, 0, 11, 1, "CONDITIONING"], [5, 10, 0, 11, 3, "LATENT"]]}  # fmt: skip
    found = _png(tmp_path, "workflow", workflow)
    assert (found.settings["seed"], found.settings["width"], found.settings["height"]) == (7, 768, 512)
    assert found.problems == [
        "its hires fix (LatentUpscaleBy by 1.5, then KSampler node 11 at denoise 0.45: a second pass at a larger "
        "size) is not restored: new images are its first pass, 768x512"]  # fmt: skip


def test_passes_of_a_hostile_graph_never_raise(tmp_path):
    """Another program's data: links that loop between two samplers, numbers too large for a float."""
    graph = {
        "1": {"class_type": "KSampler", "inputs": {"positive": ["3", 0], "latent_image": ["2", 0], "steps": 4}},
        "2": {"class_type": "KSampler", "inputs": {"positive": ["3", 0], "latent_image": ["4", 0],
              "denoise": 10**400}},
        "4": {"class_type": "LatentUpscale", "inputs": {"samples": ["1", 0], "width": 10**400, "height": 2}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a loop"}},
    }  # fmt: skip
    found = _png(tmp_path, "prompt", graph)
    assert found.settings["prompt"] == "a loop"
    assert "LatentUpscale to 1" in found.problems[0]


def test_passes_after_the_second_are_said_in_the_order_they_ran(tmp_path):
    graph = {
        **HIRES,
        "13": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["11", 0], "scale_by": 1.5}},
        "12": {"class_type": "KSampler", "inputs": {**HIRES["11"]["inputs"], "latent_image": ["13", 0],
               "denoise": 0.3}},
        "8": DECODE_12,
    }  # fmt: skip
    assert _png(tmp_path, "prompt", graph).problems == [
        "its hires fix (LatentUpscale to 1152x1152, then KSampler node 11 at denoise 0.5; LatentUpscaleBy by 1.5, "
        "then KSampler node 12 at denoise 0.3: 2 more passes up to a larger size) is not restored: new images are "
        "its first pass, 768x768"]  # fmt: skip


def test_a_pass_after_a_scale_that_does_not_enlarge_is_said_as_a_second_pass_not_a_larger_one(tmp_path):
    """Any node whose class names a scale between two passes made the later pass "a hires fix (…: a second pass at a
    larger size)": a scale of 1, a downscale, an upscale to the first pass's own size. Now "a larger size" is said
    only where the graph says the size grew (a factor above 1, a target size larger than the first pass, an upscale
    model); otherwise the pass is said as a second pass, its resize named."""

    def upscaled(kind: str, **inputs: Any) -> list[str]:
        graph = {**HIRES, "10": {"class_type": kind, "inputs": {"samples": ["3", 0], **inputs}}}
        return _png(tmp_path, "prompt", graph).problems

    same = "then KSampler node 11 at denoise 0.5) is not restored: new images are its first pass, 768x768"
    assert upscaled("LatentUpscaleBy", scale_by=1.0) == [f"its second pass (LatentUpscaleBy by 1, {same}"]
    assert upscaled("LatentUpscaleBy", scale_by=0.5) == [f"its second pass (LatentUpscaleBy by 0.5, {same}"]
    assert upscaled("LatentUpscale", width=768, height=768) == [
        f"its second pass (LatentUpscale to 768x768, {same}"]  # fmt: skip
    assert upscaled("LatentUpscale", width=512, height=512) == [
        f"its second pass (LatentUpscale to 512x512, {same}"]  # fmt: skip
    # larger: a factor above 1, a target size larger on one side, ComfyUI's 0 for "as the other side keeps it"
    assert upscaled("LatentUpscaleBy", scale_by=1.25)[0].startswith("its hires fix (LatentUpscaleBy by 1.25, then")
    assert upscaled("LatentUpscale", width=768, height=1024)[0].endswith(
        "a second pass at a larger size) is not restored: new images are its first pass, 768x768")  # fmt: skip
    assert upscaled("LatentUpscale", width=0, height=1024)[0].startswith("its hires fix")
    # a total of pixels (2**20 a megapixel): 768x768 is 0.5625 of one
    assert upscaled("ImageScaleToTotalPixels", megapixels=0.5) == [
        f"its second pass (ImageScaleToTotalPixels to 0.5 megapixels, {same}"]  # fmt: skip
    assert upscaled("ImageScaleToTotalPixels", megapixels=1.0)[0].startswith(
        "its hires fix (ImageScaleToTotalPixels to 1 megapixel, then")  # fmt: skip
    # numbers too large for a float (an untrusted file): larger, never raised
    assert upscaled("LatentUpscale", width=10**400, height=0)[0].startswith("its hires fix")
    assert upscaled("ImageScaleToTotalPixels", megapixels=-(10**400), scale_by=10**400)[0].startswith("its second")
    # an upscale model: larger by its factor, also where its file's name cannot be read
    assert upscaled("ImageUpscaleWithModel", upscale_model=["99", 0])[0].startswith(
        "its hires fix (ImageUpscaleWithModel, then KSampler node 11")  # fmt: skip
    # scaled twice, back to the first pass's size: the second pass is at that size
    twice = {**HIRES, "10": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["3", 0], "scale_by": 2}},
             "12": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["10", 0], "scale_by": 0.5}},
             "11": {**HIRES["11"], "inputs": {**HIRES["11"]["inputs"], "latent_image": ["12", 0]}}}  # fmt: skip
    assert _png(tmp_path, "prompt", twice).problems == [
        f"its second pass (LatentUpscaleBy by 2, LatentUpscaleBy by 0.5, {same}"]  # fmt: skip
    # a third pass at a larger size than the second, which was smaller than the first: not larger than the first
    third = {**HIRES, "10": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["3", 0], "scale_by": 0.5}},
             "13": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["11", 0], "scale_by": 1.5}},
             "12": {"class_type": "KSampler", "inputs": {**HIRES["11"]["inputs"], "latent_image": ["13", 0],
                    "denoise": 0.3}}, "8": DECODE_12}  # fmt: skip
    assert _png(tmp_path, "prompt", third).problems[0].startswith("its 2 later passes (LatentUpscaleBy by 0.5, then")


def _picture_pass(tmp_path, *nodes: dict[str, Any]) -> list[str]:
    """The problems said of ``_picture_graph(*nodes)``."""
    return _png(tmp_path, "prompt", _picture_graph(*nodes)).problems


def _picture_graph(*nodes: dict[str, Any]) -> dict[str, Any]:
    """``HIRES``'s first pass decoded and handed, as a picture, to ``nodes`` (node id 31 on, each fed the picture of
    the one before; ``"image": None`` where it takes one), the last one's picture saved (node 9). Beside them, an
    upscale model's loader (30), a face detector (40), Impact Pack's detection of its faces in the first pass's
    picture (41) and its pipe of the model and prompts (42), which take no picture to sample."""
    graph = {k: v for k, v in HIRES.items() if k not in ("10", "11")}
    graph["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["16", 2]}}
    graph["30"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}}
    graph["40"] = {"class_type": "UltralyticsDetectorProvider", "inputs": {"model_name": "bbox/face_yolov8m.pt"}}
    graph["41"] = {"class_type": "ImpactSimpleDetectorSEGS", "inputs": {"bbox_detector": ["40", 0],
                   "image": ["8", 0], "bbox_threshold": 0.5}}  # fmt: skip
    graph["42"] = {"class_type": "ToBasicPipe", "inputs": {"model": ["16", 0], "clip": ["16", 1], "vae": ["16", 2],
                   "positive": ["6", 0], "negative": ["7", 0]}}  # fmt: skip
    picture = ["8", 0]
    for number, node in enumerate(nodes, 31):
        graph[str(number)] = {"class_type": node["class_type"], "inputs": {
            **{k: (picture if v is None else v) for k, v in node["inputs"].items()}}}  # fmt: skip
        picture = [str(number), 0]
    graph["9"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": picture}}
    return graph


_SAMPLING = {"seed": 5, "steps": 20, "cfg": 8, "sampler_name": "euler", "scheduler": "normal"}
USDU = {"class_type": "UltimateSDUpscale", "inputs": {
    "image": None, "model": ["16", 0], "positive": ["6", 0], "negative": ["7", 0], "vae": ["16", 2],
    "upscale_by": 2, **_SAMPLING, "denoise": 0.2, "upscale_model": ["30", 0], "mode_type": "Linear",
    "tile_width": 512, "tile_height": 512, "mask_blur": 8, "tile_padding": 32, "seam_fix_mode": "None"}}  # fmt: skip
FACE = {"class_type": "FaceDetailer", "inputs": {
    "image": None, "model": ["16", 0], "clip": ["16", 1], "vae": ["16", 2], "guide_size": 384, **_SAMPLING,
    "denoise": 0.5, "positive": ["6", 0], "negative": ["7", 0], "bbox_detector": ["40", 0], "feather": 5}}  # fmt: skip


def test_a_single_node_upscaler_or_detailer_after_the_first_pass_is_said(tmp_path):
    """A custom node that samples the first pass's picture again in one node, UltimateSDUpscale (a tiled img2img at
    twice the size) or a detailer (FaceDetailer, Impact Pack's Detailer (SEGS) nodes: faces or parts found, sampled
    again), took no latent from a sampler: no later pass was found, and the settings were restored without a word,
    as if the image were the first pass's. It is said as the other passes not restored are."""
    first = "is not restored: new images are its first pass, 768x768"
    assert _picture_pass(tmp_path, USDU) == [
        "its hires fix (UltimateSDUpscale node 31 by 2 with 4x-UltraSharp.pth at denoise 0.2: a second pass at a "
        f"larger size) {first}"]  # fmt: skip (was: nothing said)
    assert _picture_pass(tmp_path, FACE) == [f"its detailer pass (FaceDetailer node 31 at denoise 0.5) {first}"]
    # Impact Pack's Detailer (SEGS/pipe): the faces found (node 41) sampled again with its pipe's model (node 42)
    detailer = {"class_type": "DetailerForEachPipe", "inputs": {"image": None, "segs": ["41", 0], "guide_size": 384,
                **_SAMPLING, "denoise": 0.4, "basic_pipe": ["42", 0]}}  # fmt: skip
    assert _picture_pass(tmp_path, detailer) == [
        f"its detailer pass (DetailerForEachPipe node 31 at denoise 0.4) {first}"]  # fmt: skip


def test_a_detailer_of_a_workflow_alone_is_said_by_its_class(tmp_path):
    """A file with only the editor's workflow: a custom node's values by position are not read (its layout is not
    known here), only its links. A detailer or an Ultimate SD Upscale is known by its class, and said."""
    workflow = {"nodes": [
        _node(5, "EmptyLatentImage", [768, 512, 1], []),
        _node(6, "CLIPTextEncode", ["a harbour at dawn"], []),
        _node(3, "KSampler", [7, "fixed", 20, 6.5, "euler", "normal", 1.0], [("positive", 1), ("latent_image", 2)]),
        _node(8, "VAEDecode", [], [("samples", 3)]),
        _node(20, "FaceDetailer", [384, True, 1024, 7, "fixed", 20, 8, "euler", "normal", 0.5],
             [("image", 4), ("positive", 5)]),
    ], "links": [[1, 6, 0, 3, 1, "CONDITIONING"], [2, 5, 0, 3, 3, "LATENT"], [3, 3, 0, 8, 0, "LATENT"],
                 [4, 8, 0, 20, 0, "IMAGE"], [5, 6, 0, 20, 1, "CONDITIONING"]]}  # fmt: skip
    assert _png(tmp_path, "workflow", workflow).problems == [
        "its detailer pass (FaceDetailer node 20) is not restored: new images are its first pass, 768x512"]


def test_an_upscale_model_then_a_downscale_is_not_said_larger(tmp_path):
    """An upscale model's picture scaled down after it (ImageScaleBy 0.5: a 4x model's picture at twice the first
    pass's size, a 2x model's at its size) was said "a second pass at a larger size": the graph does not say the
    model's factor, so neither is the size said. A target size after the model says it (smaller here)."""

    def after_model(node: dict[str, Any], first: dict[str, Any] | None = None) -> list[str]:
        graph = {**HIRES,
                 "20": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["16", 2]}},
                 "21": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
                 "22": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["21", 0],
                        "image": ["20", 0]}},
                 "23": {"class_type": node["class_type"], "inputs": {"image": ["22", 0], **node["inputs"]}},
                 "24": {"class_type": "VAEEncode", "inputs": {"pixels": ["23", 0], "vae": ["16", 2]}},
                 "11": {**HIRES["11"], "inputs": {**HIRES["11"]["inputs"], "latent_image": ["24", 0]}}}  # fmt: skip
        del graph["10"]
        if first is not None:
            graph["5"] = first
        return _png(tmp_path, "prompt", graph).problems

    model = "ImageUpscaleWithModel with 4x-UltraSharp.pth"
    then = "then KSampler node 11 at denoise 0.5"
    assert after_model({"class_type": "ImageScaleBy", "inputs": {"scale_by": 0.5}}) == [
        f"its second pass ({model}, ImageScaleBy by 0.5, {then}: its size beside the first pass's not known) is not "
        "restored: new images are its first pass, 768x768"]  # fmt: skip (was: "a second pass at a larger size")
    assert after_model({"class_type": "ImageScale", "inputs": {"width": 512, "height": 512}}) == [
        f"its second pass ({model}, ImageScale to 512x512, {then}) is not restored: new images are its first pass, "
        "768x768"]  # fmt: skip
    assert after_model({"class_type": "ImageScaleBy", "inputs": {"scale_by": 2}})[0].startswith("its hires fix")
    # the first pass's size not known (its width from a node this app does not read): a target size tells nothing
    unknown = {"class_type": "EmptyLatentImage", "inputs": {"width": ["99", 0], "height": 768, "batch_size": 1}}
    assert after_model({"class_type": "ImageScale", "inputs": {"width": 512, "height": 512}}, unknown) == [
        f"its second pass ({model}, ImageScale to 512x512, {then}: its size beside the first pass's not known) is "
        "not restored: new images are its first pass, at the size the prompt panel has"]  # fmt: skip (was: larger)


def test_a_later_pass_after_a_first_pass_of_unknown_size_claims_no_size(tmp_path):
    """The first pass's size not read (its width given by a node this app does not read): a later pass to a target
    size (LatentUpscale to 1152x1152, ImageScaleToTotalPixels) was said "its second pass (…)", as a pass at the
    first pass's size or a smaller one is; nothing says which. It is said without a size; a scale factor still says
    it (larger above 1, not larger below)."""

    def unknown_first(kind: str, **inputs: Any) -> list[str]:
        graph = {**HIRES, "5": {"class_type": "EmptyLatentImage", "inputs": {"width": ["99", 0], "height": 768,
                 "batch_size": 1}}, "10": {"class_type": kind, "inputs": {"samples": ["3", 0], **inputs}}}  # fmt: skip
        return _png(tmp_path, "prompt", graph).problems

    end = "is not restored: new images are its first pass, at the size the prompt panel has"
    assert unknown_first("LatentUpscale", width=1152, height=1152) == [
        "its second pass (LatentUpscale to 1152x1152, then KSampler node 11 at denoise 0.5: its size beside the first "
        f"pass's not known) {end}"]  # fmt: skip (was: "its second pass (…, then KSampler node 11 at denoise 0.5)")
    assert unknown_first("ImageScaleToTotalPixels", megapixels=1.0)[0].endswith(
        f"at denoise 0.5: its size beside the first pass's not known) {end}")  # fmt: skip
    assert unknown_first("LatentUpscaleBy", scale_by=1.5)[0].startswith("its hires fix (LatentUpscaleBy by 1.5")
    assert unknown_first("LatentUpscaleBy", scale_by=0.5) == [
        f"its second pass (LatentUpscaleBy by 0.5, then KSampler node 11 at denoise 0.5) {end}"]  # fmt: skip
    three = {**HIRES, "5": {"class_type": "EmptyLatentImage", "inputs": {"width": ["99", 0], "height": 768}},
             "13": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["11", 0], "scale_by": 0.5}},
             "12": {"class_type": "KSampler", "inputs": {**HIRES["11"]["inputs"], "latent_image": ["13", 0],
                    "denoise": 0.3}}, "8": DECODE_12}  # fmt: skip
    assert _png(tmp_path, "prompt", three).problems == [
        "its 2 later passes (LatentUpscale to 1152x1152, then KSampler node 11 at denoise 0.5; LatentUpscaleBy by "
        "0.5, then KSampler node 12 at denoise 0.3: their sizes beside the first pass's not known) are not restored: "
        "new images are its first pass, at the size the prompt panel has"]  # fmt: skip


def test_a_target_size_larger_on_one_side_and_smaller_on_the_other_is_said_a_different_size(tmp_path):
    """LatentUpscale to 1152x512 after a 768x768 first pass was said "at a larger size"; it is another size."""
    graph = {**HIRES, "10": {"class_type": "LatentUpscale", "inputs": {"samples": ["3", 0], "width": 1152,
             "height": 512}}}  # fmt: skip
    assert _png(tmp_path, "prompt", graph).problems == [
        "its hires fix (LatentUpscale to 1152x512, then KSampler node 11 at denoise 0.5: a second pass at a different "
        "size) is not restored: new images are its first pass, 768x768"]  # fmt: skip


def test_an_img2img_of_a_detailed_picture_is_still_said(tmp_path):
    """A loaded picture detailed (FaceDetailer) before the first pass samples it at denoise 0.6: the walk up from the
    first pass stops at a pass, but the picture it was made from is found through the detailer, as before it was
    one, and the detailer is no later pass."""
    graph = {k: v for k, v in HIRES.items() if k not in ("5", "10", "11")}
    graph["30"] = {"class_type": "LoadImage", "inputs": {"image": "photo.png", "upload": "image"}}
    graph["31"] = {"class_type": "FaceDetailer", "inputs": {**FACE["inputs"], "image": ["30", 0]}}
    graph["32"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["31", 0], "vae": ["16", 2]}}
    graph["3"] = {**HIRES["3"], "inputs": {**HIRES["3"]["inputs"], "latent_image": ["32", 0], "denoise": 0.6}}
    graph["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["16", 2]}}
    assert _png(tmp_path, "prompt", graph).problems == [
        "it was made from another picture (img2img: LoadImage node 30, KSampler node 3 at denoise 0.6), which is "
        "not restored: new images start from noise"]  # fmt: skip


def test_a_node_with_a_seed_and_steps_that_samples_no_model_is_no_pass(tmp_path):
    """A custom node given the first pass's picture with a seed and steps, by which a one-node pass of a class not
    known here is found, but no model to sample with: a noise or grain generator (its seed the noise's, its steps
    its octaves). It was said "its second pass (ImageNoiseGenerator node 31) is not restored", a pass it never
    was; like any other change to the picture that samples nothing (a blur, a colour fix), it is no pass. One that
    takes a model (or Impact Pack's pipe of one) beside them is still said."""
    noise = {"class_type": "ImageNoiseGenerator", "inputs": {"image": None, "seed": 3, "steps": 4, "strength": 0.1}}
    assert _picture_pass(tmp_path, noise) == []  # was: "its second pass (ImageNoiseGenerator node 31) …"
    grain = {"class_type": "FilmGrain", "inputs": {"image": None, "noise_seed": 3, "steps": 2, "vae": ["16", 2]}}
    assert _picture_pass(tmp_path, grain) == []
    first = "is not restored: new images are its first pass, 768x768"
    tiled = {"class_type": "TiledResample", "inputs": {"image": None, "model": ["16", 0], **_SAMPLING,
             "denoise": 0.3}}  # fmt: skip
    assert _picture_pass(tmp_path, tiled) == [f"its second pass (TiledResample node 31 at denoise 0.3) {first}"]
    piped = {"class_type": "RegionResample", "inputs": {"image": None, "basic_pipe": ["42", 0], **_SAMPLING,
             "denoise": 0.4}}  # fmt: skip
    assert _picture_pass(tmp_path, piped) == [f"its second pass (RegionResample node 31 at denoise 0.4) {first}"]


def test_a_detailer_after_a_hires_pass_is_said_as_a_detailer_not_as_part_of_the_hires_fix(tmp_path):
    """A FaceDetailer of the hires pass's picture was said inside the hires fix, "its hires fix (…; FaceDetailer node
    32 at denoise 0.5: 2 more passes up to a larger size)", as if it had enlarged the image too. Each is said for
    what it is, in the order they ran: the hires fix with its size, the detailer as a detailer pass."""
    end = "are not restored: new images are its first pass, 768x768"
    assert _picture_pass(tmp_path, USDU, FACE) == [
        "its hires fix (UltimateSDUpscale node 31 by 2 with 4x-UltraSharp.pth at denoise 0.2: a second pass at a "
        f"larger size) and its detailer pass (FaceDetailer node 32 at denoise 0.5) {end}"]  # fmt: skip
    assert _picture_pass(tmp_path, FACE, USDU) == [
        "its detailer pass (FaceDetailer node 31 at denoise 0.5) and its hires fix (UltimateSDUpscale node 32 by 2 "
        f"with 4x-UltraSharp.pth at denoise 0.2: a second pass at a larger size) {end}"]  # fmt: skip
    # a sampler's hires pass (a latent upscale, a second KSampler), then a detailer of its decoded picture
    graph = {**HIRES, "31": {"class_type": "FaceDetailer", "inputs": {**FACE["inputs"], "image": ["8", 0]}},
             "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["31", 0]}}}
    assert _png(tmp_path, "prompt", graph).problems == [
        f"{HIRES_SAID.partition(' is not restored')[0]} and its detailer pass (FaceDetailer node 31 at denoise 0.5) "
        f"{end}"]  # fmt: skip (was: "its hires fix (…; FaceDetailer node 31 at denoise 0.5: 2 more passes up to …")
    # two detailers, and a refiner's pass at the same size before them
    refined = {**graph, "12": {"class_type": "KSampler", "inputs": {**HIRES["11"]["inputs"], "latent_image": ["11", 0],
               "denoise": 0.2}}, "8": {"class_type": "VAEDecode", "inputs": {"samples": ["12", 0], "vae": ["16", 2]}},
               "32": {"class_type": "FaceDetailer", "inputs": {**FACE["inputs"], "image": ["31", 0]}},
               "9": {"class_type": "SaveImage", "inputs": {"images": ["32", 0]}}}  # fmt: skip
    del refined["10"]
    refined["11"] = {**HIRES["11"], "inputs": {**HIRES["11"]["inputs"], "latent_image": ["3", 0]}}
    assert _png(tmp_path, "prompt", refined).problems == [
        "its 2 later passes (KSampler node 11 at denoise 0.5; KSampler node 12 at denoise 0.2) and its 2 detailer "
        f"passes (FaceDetailer node 31 at denoise 0.5; FaceDetailer node 32 at denoise 0.5) {end}"]  # fmt: skip


MODEL_UPSCALE = {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["30", 0], "image": None}}


def test_a_picture_only_upscaled_after_its_single_pass_is_said(tmp_path):
    """A graph of one pass whose picture an upscale model (or an image scale node) enlarged before it was saved: no
    later pass was found, and the settings were restored without a word, as if they made that image; they make the
    picture before the upscale, at the pass's size. Said, as the other passes not restored are."""
    before = "which is not restored: new images are its picture before that, 768x768"
    assert _picture_pass(tmp_path, MODEL_UPSCALE) == [
        f"it was upscaled after its pass (ImageUpscaleWithModel with 4x-UltraSharp.pth), {before}"]  # was: []
    scale = {"class_type": "ImageScale", "inputs": {"image": None, "width": 1536, "height": 1536}}
    assert _picture_pass(tmp_path, scale) == [f"it was upscaled after its pass (ImageScale to 1536x1536), {before}"]
    assert _picture_pass(tmp_path, MODEL_UPSCALE, {"class_type": "ImageScaleBy", "inputs": {
        "image": None, "scale_by": 0.5}}) == [  # fmt: skip (the model's factor not known: no "upscaled" claimed)
        "it was resized after its pass (ImageUpscaleWithModel with 4x-UltraSharp.pth, ImageScaleBy by 0.5), "
        f"{before}"]  # fmt: skip
    assert _picture_pass(tmp_path, {"class_type": "ImageScaleBy", "inputs": {"image": None, "scale_by": 0.5}}) == [
        f"it was resized after its pass (ImageScaleBy by 0.5), {before}"]  # fmt: skip
    # a scale to the pass's own size changes nothing worth a word
    assert _picture_pass(tmp_path, {"class_type": "ImageScale", "inputs": {"image": None, "width": 768,
                                                                          "height": 768}}) == []  # fmt: skip


def test_a_picture_saved_both_before_and_after_its_upscale_may_be_either(tmp_path):
    """The graph saves the pass's picture as it is and upscaled (a PNG each, the same graph in both): this file
    may be either, which is said."""
    graph = {k: v for k, v in HIRES.items() if k not in ("10", "11")}
    graph["8"] = {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["16", 2]}}
    graph["30"] = {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}}
    graph["31"] = {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["30", 0], "image": ["8", 0]}}
    graph["32"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "upscaled", "images": ["31", 0]}}
    assert _png(tmp_path, "prompt", graph).problems == [  # node 9 saves the picture before the upscale
        "it may have been upscaled after its pass (ImageUpscaleWithModel with 4x-UltraSharp.pth; the graph saves the "
        "picture before that too), which is not restored: new images are its picture before that, 768x768"]
    del graph["9"]
    assert _png(tmp_path, "prompt", graph).problems[0].startswith("it was upscaled after its pass")


def test_an_upscale_after_the_last_of_several_passes_is_said_with_them(tmp_path):
    """A hires fix, or an Ultimate SD Upscale, whose picture was upscaled again (or scaled down) before it was saved:
    the notice named the passes, not the resize after them."""
    graph = {**HIRES, "30": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "4x-UltraSharp.pth"}},
             "31": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["30", 0], "image": ["8", 0]}},
             "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["31", 0]}}}
    assert _png(tmp_path, "prompt", graph).problems == [
        f"{HIRES_SAID.partition(' is not restored')[0]} and its upscale after it (ImageUpscaleWithModel with "
        "4x-UltraSharp.pth) are not restored: new images are its first pass, 768x768"]  # fmt: skip
    assert _picture_pass(tmp_path, USDU, {"class_type": "ImageScaleBy", "inputs": {"image": None,
                                                                                  "scale_by": 0.5}}) == [
        "its hires fix (UltimateSDUpscale node 31 by 2 with 4x-UltraSharp.pth at denoise 0.2: a second pass at a "
        "larger size) and its resize after it (ImageScaleBy by 0.5) are not restored: new images are its first "
        "pass, 768x768"]  # fmt: skip


def test_a_detailer_of_an_upscaled_picture_still_says_the_larger_size(tmp_path):
    """An upscale model (or an image scale above 1) then a FaceDetailer, the most common ComfyUI upscale-and-detail
    graph, was said "its hires fix (…, then FaceDetailer node 32 …: a second pass at a larger size)"; once detailers
    were said as detailer passes, the larger size was lost: "its detailer pass (…)", as if new images were the size
    of that image. The size its resize gave it is said again; a detailer that no resize fed says none."""
    first = "is not restored: new images are its first pass, 768x768"
    assert _picture_pass(tmp_path, MODEL_UPSCALE, FACE) == [
        "its detailer pass (ImageUpscaleWithModel with 4x-UltraSharp.pth, then FaceDetailer node 32 at denoise 0.5: "
        f"at a larger size) {first}"]  # fmt: skip (was: "… at denoise 0.5) is not restored …")
    by = {"class_type": "ImageScaleBy", "inputs": {"image": None, "scale_by": 1.5}}
    assert _picture_pass(tmp_path, by, FACE, FACE) == [
        "its 2 detailer passes (ImageScaleBy by 1.5, then FaceDetailer node 32 at denoise 0.5; FaceDetailer node 33 "
        f"at denoise 0.5: at a larger size) {first.replace('is', 'are', 1)}"]  # fmt: skip
    smaller = {"class_type": "ImageScaleBy", "inputs": {"image": None, "scale_by": 0.5}}
    assert _picture_pass(tmp_path, smaller, FACE) == [
        f"its detailer pass (ImageScaleBy by 0.5, then FaceDetailer node 32 at denoise 0.5) {first}"]  # fmt: skip
    assert _picture_pass(tmp_path, MODEL_UPSCALE, smaller, FACE) == [
        "its detailer pass (ImageUpscaleWithModel with 4x-UltraSharp.pth, ImageScaleBy by 0.5, then FaceDetailer "
        f"node 33 at denoise 0.5: its size beside the first pass's not known) {first}"]  # fmt: skip
    # after a hires fix, at the hires fix's size: the detailer enlarged nothing, and says no size
    assert _picture_pass(tmp_path, USDU, FACE)[0].endswith(
        "and its detailer pass (FaceDetailer node 32 at denoise 0.5) are not restored: new images are its first pass, "
        "768x768")  # fmt: skip


def test_a_target_size_after_several_passes_is_said_beside_the_last_pass(tmp_path):
    """An ImageScale to a target size after a hires fix was said "its resize after it (ImageScale to 2304x2304)",
    beside a size it could not tell, though the hires fix's picture was 1152x1152 (the graph says so): it is an
    upscale. One to the hires fix's own size changed nothing, and is not said, as after a single pass."""

    def scaled_to(width: int, height: int, first: int = 768) -> list[str]:
        graph = {**HIRES, "31": {"class_type": "ImageScale", "inputs": {"image": ["8", 0], "upscale_method": "lanczos",
                 "width": width, "height": height, "crop": "disabled"}},
                 "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["31", 0]}},
                 "5": {"class_type": "EmptyLatentImage", "inputs": {"width": first, "height": 768}},
                 "10": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["3", 0], "scale_by": 1.5}}}
        return _png(tmp_path, "prompt", graph).problems

    hires = HIRES_SAID.partition(" is not restored")[0].replace("LatentUpscale to 1152x1152", "LatentUpscaleBy by 1.5")
    assert scaled_to(2304, 2304) == [
        f"{hires} and its upscale after it (ImageScale to 2304x2304) are not restored: new images are its first pass, "
        "768x768"]  # fmt: skip (was: "its resize after it (…)")
    assert scaled_to(1152, 1152) == [  # was: "… and its resize after it (ImageScale to 1152x1152) are …"
        f"{hires} is not restored: new images are its first pass, 768x768"]
    assert scaled_to(1024, 1024)[0].startswith(f"{hires} and its resize after it (ImageScale to 1024x1024) are")
    assert scaled_to(2304, 2304, 10**400)[0].startswith(hires)  # a first pass too large for a float: never raised
