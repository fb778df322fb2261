"""PNG metadata: A1111 text format both ways, direct chunk reading, other tools' files."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from typing import Any

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from gpu.generation import png_metadata
from gpu.generation.image_metadata import inspect_image, read_settings
from gpu.generation.png_metadata import (
    PNG_SIGNATURE,
    ImageSettings,
    format_parameters,
    inspect_png_file,
    parse_parameters,
    read_png_text,
    write_png,
)

SETTINGS = {
    "prompt": "a red circle,\nsecond line",
    "negative_prompt": "blurry",
    "steps": 20,
    "sampler": "Euler",
    "guidance": 4.0,
    "seed": 123,
    "width": 128,
    "height": 96,
    "model_hash": "0123456789",
    "model": "demo: v1",
    "version": "NibbleStudio-0.1.0",
}


def test_a1111_format_puts_steps_first_and_quotes_special_values():
    text = format_parameters(SETTINGS)
    lines = text.split("\n")
    assert lines[:3] == ["a red circle,", "second line", "Negative prompt: blurry"]
    assert lines[3] == (
        "Steps: 20, Sampler: Euler, CFG scale: 4.0, Seed: 123, Size: 128x96, Model hash: 0123456789, "
        'Model: "demo: v1", Version: NibbleStudio-0.1.0'
    )
    assert "Negative prompt" not in format_parameters({**SETTINGS, "negative_prompt": ""})


def test_parse_round_trips_and_reads_a1111_files():
    parsed = parse_parameters(format_parameters(SETTINGS))
    for key in ("prompt", "negative_prompt", "steps", "guidance", "seed", "width", "height", "model", "model_hash"):
        assert parsed[key] == SETTINGS[key], key
    a1111 = (
        "masterpiece, a castle\nNegative prompt: lowres\n"
        "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 42, Size: 512x768, Model hash: abc, "
        'Model: sd15, Lora hashes: "style: 1a2b", Denoising strength: 0.5'
    )
    p = parse_parameters(a1111)
    assert p["prompt"] == "masterpiece, a castle" and p["negative_prompt"] == "lowres"
    assert (p["steps"], p["guidance"], p["seed"], p["width"], p["height"]) == (30, 7.0, 42, 512, 768)
    assert p["sampler"] == "DPM++ 2M Karras" and p["loras"] == "style: 1a2b"
    assert p["extra"] == {"Denoising strength": "0.5"}


def test_written_png_keeps_newlines_and_both_chunks(tmp_path):
    path = write_png(tmp_path / "a.png", Image.new("RGB", (16, 16), "red"), SETTINGS)
    chunks = read_png_text(path)
    assert chunks["parameters"].startswith("a red circle,\nsecond line\n")
    assert json.loads(chunks["nibble"]) == SETTINGS
    assert read_settings(path) == SETTINGS
    assert [p.name for p in tmp_path.iterdir()] == ["a.png"]


def test_reads_other_tools_files(tmp_path):
    comfy_graph = {
        "3": {"class_type": "KSampler", "inputs": {"seed": 9, "steps": 12, "cfg": 2.5, "sampler_name": "euler"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "ugly"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 768, "height": 512}},
    }
    info = PngInfo()
    info.add_text("prompt", json.dumps(comfy_graph), zip=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "comfy.png", pnginfo=info)
    s = read_settings(tmp_path / "comfy.png")
    assert s == {"seed": 9, "steps": 12, "guidance": 2.5, "sampler": "euler", "width": 768, "height": 512,
                 "prompt": "a lighthouse at dusk"}  # fmt: skip
    assert zlib  # zTXt path exercised above (zip=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    assert read_settings(tmp_path / "plain.png") is None
    (tmp_path / "not.png").write_bytes(b"nope")
    assert read_png_text(tmp_path / "not.png") == {}


def test_hostile_metadata_reads_as_none_or_partial_never_raises(tmp_path):
    """Another tool's PNG is user input: settings that cannot be read are absent, not an exception."""
    hostile = [
        ("prompt", json.dumps({"3": {"class_type": "KSampler", "inputs": [1, 2]}})),  # inputs not a dict
        ("prompt", json.dumps({"3": {"class_type": ["KSampler"], "inputs": None}})),
        ("prompt", "[" * 100_000 + "]" * 100_000),  # nesting past the JSON decoder's recursion limit
        ("prompt", "1" * 5000),  # an integer past Python's digit limit: ValueError, not JSONDecodeError
        ("nibble", "{" * 100_000),
        ("nibble", '{"seed": ' + "9" * 5000 + "}"),
        ("parameters", "\0\n" * 10 + "Steps: x, Size: 9999999999x0, Seed: -"),
    ]
    for i, (key, text) in enumerate(hostile):
        info = PngInfo()
        info.add_text(key, text, zip=bool(i % 2))
        path = tmp_path / f"h{i}.png"
        Image.new("RGB", (4, 4)).save(path, pnginfo=info)
        settings = read_settings(path)
        assert settings is None or isinstance(settings, dict), (key, text[:40])
    nested_ok = {"3": {"class_type": "KSampler", "inputs": [1]}, "6": {"class_type": "CLIPTextEncode",
                 "inputs": {"text": "kept"}}}  # fmt: skip
    info = PngInfo()
    info.add_text("prompt", json.dumps(nested_ok))
    Image.new("RGB", (4, 4)).save(tmp_path / "partial.png", pnginfo=info)
    assert read_settings(tmp_path / "partial.png") == {"prompt": "kept"}


def _chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    """A PNG chunk of ``body`` (with a wrong ``crc`` when given)."""
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) if crc is None else crc)
    )


def _with_chunk(path, kind: bytes, body: bytes, crc: int | None = None, cut: int = 0, after_idat: bool = False):
    """A real PNG with one hand-made text chunk (a wrong ``crc``, or ``cut`` bytes short: the file ends in it)."""
    Image.new("RGB", (8, 8), "blue").save(path)
    data = path.read_bytes()
    at = data.index(b"IEND") - 4 if after_idat else data.index(b"IDAT") - 4
    chunk = _chunk(kind, body, crc)
    path.write_bytes(data[:at] + chunk[: len(chunk) - cut] if cut else data[:at] + chunk + data[at:])
    return path


def test_a1111_settings_line_without_steps_or_with_odd_values(tmp_path):
    """Without Steps the settings line was read as part of the (negative) prompt; numbers that are no numbers
    were dropped without a word; UTF-8 in a tEXt chunk (some tools write it) came back as mojibake."""
    p = parse_parameters("a dog\nNegative prompt: bad\nSampler: Euler, CFG scale: 7, Seed: 3, Size: 512 x 768")
    assert (p["prompt"], p["negative_prompt"], p["seed"], p["width"], p["height"]) == ("a dog", "bad", 3, 512, 768)
    p = parse_parameters("style: ink, mood: calm, light: soft\nSteps: 4")  # three fields, none known: prompt
    assert p["prompt"] == "style: ink, mood: calm, light: soft" and p["steps"] == 4
    forge = "a\r\nb\r\nNegative prompt: Steps: 9, ugly\r\nSteps: 20.0, CFG scale: 1, Distilled CFG Scale: 3.5"
    p = parse_parameters(forge)
    assert (p["prompt"], p["negative_prompt"], p["steps"], p["guidance"]) == ("a\nb", "Steps: 9, ugly", 20, 3.5)
    info = PngInfo()
    info.add_text("parameters", "x\nSteps: 2.5, CFG scale: high, Seed: 1e400, Size: 512")
    Image.new("RGB", (8, 8)).save(tmp_path / "odd.png", pnginfo=info)
    found = inspect_image(tmp_path / "odd.png")
    assert found.settings == {"prompt": "x", "negative_prompt": "", "lora_refs": []}
    assert found.problems == ["its Steps '2.5' is not a whole number", "its Seed '1e400' is not a whole number",
                              "its CFG scale 'high' is not a number", "its Size '512' is not WIDTHxHEIGHT"]  # fmt: skip
    utf8 = _with_chunk(tmp_path / "utf8.png", b"tEXt", "parameters\0Café 🐱\nSteps: 3".encode())
    assert read_settings(utf8)["prompt"] == "Café 🐱"
    latin1 = _with_chunk(tmp_path / "latin1.png", b"tEXt", "parameters\0Café\nSteps: 3".encode("latin-1"))
    assert read_settings(latin1)["prompt"] == "Café"
    odd_model = {**SETTINGS, "model": '"quoted', "sampler": " spaced "}  # came back as 'quoted' and 'spaced'
    assert parse_parameters(format_parameters(odd_model))["model"] == '"quoted'
    assert parse_parameters(format_parameters(odd_model))["sampler"] == " spaced "


def test_files_without_settings_say_why(tmp_path):
    """A JPEG named .png, an empty file, a damaged chunk: each its own reason, not "no settings" (or, for a
    damaged chunk, its partly wrong text taken as settings)."""
    Image.new("RGB", (8, 8)).save(tmp_path / "photo.png", format="JPEG")
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "folder.png").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    text = b"parameters\0a cat\nSteps: 20, Seed: 5"
    bad_crc = _with_chunk(tmp_path / "crc.png", b"tEXt", text.replace(b"cat", b"cut"), crc=zlib.crc32(b"tEXt" + text),
                          after_idat=True)  # fmt: skip
    with Image.open(bad_crc) as image:  # a file that image viewers open
        assert image.size == (8, 8)
    ztxt = b"parameters\0\0" + zlib.compress(b"a cat\nSteps: 20")
    _with_chunk(tmp_path / "short.png", b"zTXt", ztxt, cut=10)
    workflow = PngInfo()
    workflow.add_text("workflow", json.dumps({"nodes": []}))
    Image.new("RGB", (8, 8)).save(tmp_path / "workflow.png", pnginfo=workflow)
    damaged = "its A1111 parameters chunk ('parameters') cannot be read: "
    expected = {
        "photo.png": "it is a JPEG image, not a PNG",
        "empty.png": "the file is empty (0 bytes)",
        "folder.png": "it is a folder, not an image",
        "missing.png": "it cannot be read (No such file or directory)",
        "plain.png": "it carries no generation settings (no A1111, ComfyUI or Nibble Studio text chunk)",
        "crc.png": f"{damaged}its checksum does not match (the file was changed or damaged)",
        "short.png": f"{damaged}the file ends inside it (cut short)",
        "workflow.png": "it holds a ComfyUI workflow but not the 'prompt' graph ComfyUI ran, and no settings could "
        "be read from the workflow's nodes (only ComfyUI's own sampler, prompt and latent nodes are read there)",
    }
    for name, why in expected.items():
        assert inspect_image(tmp_path / name) == ImageSettings(None, [why]), name
        assert read_settings(tmp_path / name) is None
    # ours damaged, the A1111 text beside it intact: that is used, and the damage said
    ours = write_png(tmp_path / "ours.png", Image.new("RGB", (8, 8)), SETTINGS)
    data = bytearray(ours.read_bytes())
    data[data.index(b'"prompt"') + 2] ^= 1
    ours.write_bytes(bytes(data))
    found = inspect_image(ours)
    assert found.settings == parse_parameters(format_parameters(SETTINGS))
    assert found.problems == ["its Nibble Studio settings chunk ('nibble') cannot be read: its checksum does not "
                              "match (the file was changed or damaged)"]  # fmt: skip


def _comfy(tmp_path, graph: dict) -> ImageSettings:
    info = PngInfo()
    info.add_text("prompt", json.dumps(graph))
    Image.new("RGB", (8, 8)).save(tmp_path / "comfy.png", pnginfo=info)
    return inspect_image(tmp_path / "comfy.png")


def test_comfyui_graphs_followed_through_their_links(tmp_path):
    """ComfyUI's FLUX graph: seed, steps and sampler on nodes of their own, the prompt from a string node, the
    guidance on FluxGuidance, the size on EmptySD3LatentImage. Only the prompt's text came out before, and that
    was the (longer) negative prompt, as the longest text."""
    flux = {
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": ["30", 0], "clip": ["11", 0]}},
        "30": {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "a fox in snow"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "an unused and much longer text", "clip": ["11", 0]}},
        "13": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["25", 0], "guider": ["22", 0],
               "sampler": ["16", 0], "sigmas": ["17", 0], "latent_image": ["27", 0]}},
        "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "17": {"class_type": "BasicScheduler", "inputs": {"scheduler": "simple", "steps": 20, "model": ["12", 0]}},
        "22": {"class_type": "BasicGuider", "inputs": {"model": ["12", 0], "conditioning": ["26", 0]}},
        "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": ["40", 0]}},
        "40": {"class_type": "Seed (rgthree)", "inputs": {"seed": 2**64 - 1}},  # ComfyUI's range: the app says no
        "26": {"class_type": "FluxGuidance", "inputs": {"guidance": 3.5, "conditioning": ["6", 0]}},
        "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 768, "batch_size": 1}},
    }  # fmt: skip
    expected = {"seed": 2**64 - 1, "steps": 20, "guidance": 3.5, "width": 1024, "height": 768,
                "prompt": "a fox in snow", "sampler": "euler"}  # fmt: skip
    assert _comfy(tmp_path, flux) == ImageSettings(expected)
    hires = {  # two passes: the first (from the empty latent) made the image's composition
        "10": {"class_type": "KSampler", "inputs": {"seed": 99, "steps": 30, "cfg": 6.0, "positive": ["6", 0],
               "negative": ["7", 0], "latent_image": ["11", 0]}},
        "11": {"class_type": "LatentUpscale", "inputs": {"samples": ["3", 0], "width": 2048, "height": 2048}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 8, "cfg": 6.0, "sampler_name": "dpmpp_2m",
              "positive": ["8", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0], "conditioning_2": ["7", 0]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "short"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "a much longer negative prompt"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": ["9", 0], "height": 512}},
        "9": {"class_type": "PrimitiveInt", "inputs": {"value": 768}},
    }  # fmt: skip
    expected = {"seed": 5, "steps": 8, "guidance": 6.0, "prompt": "short", "sampler": "dpmpp_2m", "width": 768,
                "height": 512, "negative_prompt": "a much longer negative prompt"}  # fmt: skip
    assert _comfy(tmp_path, hires).settings == expected
    unknown = {"1": {"class_type": "FooSampler", "inputs": {"magic": 3}}, "2": {"class_type": "Bar", "inputs": {}}}
    nothing = "its ComfyUI prompt graph chunk ('prompt') holds no settings that can be read"
    assert _comfy(tmp_path, unknown) == ImageSettings(None, [nothing])
    loops = {"1": {"class_type": "KSampler", "inputs": {"seed": ["2", 0], "positive": ["3", 0], "steps": 4}},
             "2": {"class_type": "X", "inputs": {"seed": ["2", 0]}},
             "3": {"class_type": "Y", "inputs": {"conditioning": ["3", 0]}}}  # fmt: skip
    assert _comfy(tmp_path, loops).settings == {"steps": 4}


def test_comfyui_graph_names_the_model_its_loader_loaded(tmp_path):
    """The model's loader at the start of the sampler's model path names the model (its file's stem, as the A1111
    reader's "Model" and the library name it): read as "model", so that the app says when the image was made with
    one not in the library. An image of SDXL restored its settings onto the demo model without a word."""
    sdxl = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "SDXL\\sd_xl_base_1.0.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 99, "steps": 25, "cfg": 7.0, "model": ["4", 0],
              "positive": ["6", 0], "latent_image": ["5", 0]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
    }  # fmt: skip
    assert _comfy(tmp_path, sdxl).settings["model"] == "sd_xl_base_1.0"
    # FLUX: the unet loader behind a LoRA, its name given by a primitive; an SVDQuant folder keeps its dots
    flux = {**sdxl, "4": {"class_type": "UNETLoader", "inputs": {"unet_name": ["8", 0], "weight_dtype": "default"}},
            "8": {"class_type": "PrimitiveString", "inputs": {"value": "flux/flux1-dev.sft"}},
            "3": {**sdxl["3"], "inputs": {**sdxl["3"]["inputs"], "model": ["7", 0]}},
            "7": {"class_type": "LoraLoaderModelOnly", "inputs": {"lora_name": "ink.safetensors", "model": ["4", 0]}}}
    assert _comfy(tmp_path, flux).settings["model"] == "flux1-dev"
    flux["4"] = {"class_type": "NunchakuFluxDiTLoader", "inputs": {"model_path": "svdq-int4-flux.1-dev"}}
    assert _comfy(tmp_path, flux).settings["model"] == "svdq-int4-flux.1-dev"
    # A folder in a Hugging Face cache: named by its repository, as the library names it, not by the snapshot's
    # commit ("The image was made with the model '0ef5ff…', which is not in your library" while it holds FLUX.1-dev)
    from gpu.library import model_name

    snapshot = tmp_path / "models--black-forest-labs--FLUX.1-dev" / "snapshots" / "0ef5fff789c832c5c7f4e127f94c8b54"
    snapshot.mkdir(parents=True)
    for loader in ({"class_type": "DiffusersLoader", "inputs": {"model_path": str(snapshot)}},
                   {"class_type": "UNETLoader", "inputs": {"unet_name": "models--x--FLUX.1-dev\\snapshots\\abc\\"}}):
        flux["4"] = loader
        assert _comfy(tmp_path, flux).settings["model"] == model_name(snapshot) == "FLUX.1-dev"
    in_snapshot = "models--x--y/snapshots/abc/flux1-dev.safetensors"
    flux["4"] = {"class_type": "UNETLoader", "inputs": {"unet_name": in_snapshot}}
    assert _comfy(tmp_path, flux).settings["model"] == "flux1-dev"  # a file in a snapshot: its stem, as the library's
    for loader in ({"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ""}},  # names no file
                   {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": 5}}):  # fmt: skip
        assert "model" not in _comfy(tmp_path, {**sdxl, "4": loader}).settings
    broken = {**sdxl, "3": {**sdxl["3"], "inputs": {**sdxl["3"]["inputs"], "model": ["99", 0]}}}  # a link to no node
    assert "model" not in _comfy(tmp_path, broken).settings


def test_comfyui_negative_prompt_stops_at_nodes_that_change_the_conditioning(tmp_path):
    """FLUX's KSampler graph zeroes its negative out of the positive text: that text came back as the negative
    prompt. A ControlNetApplyAdvanced hands on both conditionings: its negative output gave the positive text."""
    flux = {
        "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 4, "cfg": 1.0, "positive": ["35", 0],
              "negative": ["33", 0], "latent_image": ["27", 0]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox in snow"}},
        "33": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["6", 0]}},
        "35": {"class_type": "FluxGuidance", "inputs": {"guidance": 3.5, "conditioning": ["6", 0]}},
        "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 512, "height": 512}},
    }  # fmt: skip
    found = _comfy(tmp_path, flux).settings
    assert (found["prompt"], found["negative_prompt"], found["guidance"]) == ("a fox in snow", "", 3.5)
    controlnet = {
        "3": {"class_type": "KSampler", "inputs": {"positive": ["9", 0], "negative": ["9", 1]}},
        "9": {"class_type": "ControlNetApplyAdvanced", "inputs": {"positive": ["6", 0], "negative": ["7", 0]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "fog"}},
    }  # fmt: skip
    assert _comfy(tmp_path, controlnet).settings == {"prompt": "a castle", "negative_prompt": "fog"}


def test_comfyui_prompt_is_the_text_input_that_holds_one(tmp_path):
    """CLIPTextEncodeFlux takes clip_l and t5xxl; one may be left empty: its first text input, an empty one, was the
    prompt (and a restore cleared the form's). Empty only where every text input of the node is."""
    for inputs, prompt in (({"clip_l": "a red fox in snow", "t5xxl": ""}, "a red fox in snow"),
                           ({"clip_l": "", "t5xxl": ""}, ""), ({"clip_l": "a fox", "t5xxl": "a red fox"}, "a red fox")):
        graph = {
            "3": {"class_type": "KSampler", "inputs": {"seed": 1, "positive": ["6", 0]}},
            "6": {"class_type": "CLIPTextEncodeFlux", "inputs": {**inputs, "guidance": 3.5}},
        }  # fmt: skip
        assert _comfy(tmp_path, graph).settings["prompt"] == prompt, inputs


def test_comfyui_sampler_is_not_a_conditioning_node_and_size_is_an_empty_latents(tmp_path):
    """An img2img graph: the ControlNet node (numbered first) takes a "positive" too and was taken for the
    sampler, losing seed, steps and cfg; the size came from the LatentUpscale of a second pass."""
    img2img = {
        "2": {"class_type": "ControlNetApplyAdvanced", "inputs": {"positive": ["6", 0], "negative": ["7", 0]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 7, "steps": 12, "cfg": 5.0, "positive": ["2", 0],
              "negative": ["2", 1], "latent_image": ["4", 0]}},
        "4": {"class_type": "VAEEncode", "inputs": {"pixels": ["1", 0], "vae": ["8", 0]}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a castle"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "fog"}},
        "10": {"class_type": "LatentUpscale", "inputs": {"samples": ["3", 0], "width": 2048, "height": 2048}},
        "11": {"class_type": "KSampler", "inputs": {"seed": 8, "positive": ["6", 0], "latent_image": ["10", 0]}},
    }  # fmt: skip
    expected = {"seed": 7, "steps": 12, "guidance": 5.0, "prompt": "a castle", "negative_prompt": "fog"}
    assert _comfy(tmp_path, img2img).settings == expected


def test_comfyui_node_ids_of_any_digits_never_raise(tmp_path):
    """A node id "²": isdigit() said yes, int() raised, and the file broke inspect_image."""
    graph = {"²": {"class_type": "KSampler", "inputs": {"steps": 3, "positive": ["1", 0]}},
             "1": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat"}}}  # fmt: skip
    assert _comfy(tmp_path, graph) == ImageSettings({"steps": 3, "prompt": "a cat"})


def test_bad_distilled_cfg_scale_is_named_as_such(tmp_path):
    """Forge's bad "Distilled CFG Scale" was reported as the CFG scale (which was 1 and fine)."""
    info = PngInfo()
    info.add_text("parameters", "a\nSteps: 20, CFG scale: 1, Distilled CFG Scale: strong")
    Image.new("RGB", (8, 8)).save(tmp_path / "forge.png", pnginfo=info)
    assert inspect_image(tmp_path / "forge.png").problems == ["its Distilled CFG Scale 'strong' is not a number"]


def _workflow(tmp_path, nodes: list, links: Any, version: float = 0.4) -> ImageSettings:
    """A PNG with only ComfyUI's UI ``workflow`` chunk (no ``prompt`` graph: some savers and editors keep only it);
    ``links``: [id, from node, from slot, to node, to slot, type] as the editor writes them (schema 0.4), or
    objects with those fields by name (schema 1)."""
    info = PngInfo()
    info.add_text("workflow", json.dumps({"nodes": nodes, "links": links, "version": version}))
    Image.new("RGB", (8, 8)).save(tmp_path / "workflow.png", pnginfo=info)
    return inspect_image(tmp_path / "workflow.png")


def _in(name: str, link: int | None, widget: bool = False) -> dict:
    return {"name": name, "type": "*", "link": link, **({"widget": {"name": name}} if widget else {})}


def test_a_comfyui_workflow_alone_is_read_for_its_stock_nodes(tmp_path):
    """A PNG with only the editor's workflow said "no 'prompt' graph": the widget values of ComfyUI's own sampler,
    prompt and latent nodes are read by position, links (through reroutes and primitive nodes) followed; values
    that do not fit a node's known layout, and nodes that did not run (muted), are not read."""
    text = [{"id": 6, "type": "CLIPTextEncode", "inputs": [_in("clip", 3)], "widgets_values": ["a glass bottle"]},
            {"id": 7, "type": "CLIPTextEncode", "inputs": [_in("clip", 5)], "widgets_values": ["watermark"]},
            {"id": 5, "type": "EmptyLatentImage", "widgets_values": [512, 768, 1]},
            {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["v1-5.safetensors"]}]  # fmt: skip
    sampler = {"id": 3, "type": "KSampler",
               "inputs": [_in("model", 1), _in("positive", 4), _in("negative", 6), _in("latent_image", 2)],
               "widgets_values": [156680208700286, "randomize", 20, 8, "euler", "normal", 1]}  # fmt: skip
    links = [[1, 4, 0, 3, 0, "MODEL"], [2, 5, 0, 3, 3, "LATENT"], [3, 4, 1, 6, 0, "CLIP"], [4, 6, 0, 3, 1, "COND"],
             [5, 4, 1, 7, 0, "CLIP"], [6, 7, 0, 3, 2, "COND"]]  # fmt: skip
    read = {"prompt": "a glass bottle", "negative_prompt": "watermark", "width": 512, "height": 768}
    found = _workflow(tmp_path, [sampler, *text], links)
    assert found == ImageSettings(  # the model straight from its loader: no LoRAs
        {**read, "seed": 156680208700286, "steps": 20, "guidance": 8, "sampler": "euler", "lora_refs": [],
         "model": "v1-5"}  # fmt: skip
    )
    # another layout (a value more or less than ComfyUI's KSampler has): its values are no guess; the texts are read
    odd = {**sampler, "widgets_values": [156680208700286, 20, 8, "euler", "normal", 1]}
    assert _workflow(tmp_path, [odd, *text], links) == ImageSettings({**read, "lora_refs": [], "model": "v1-5"})
    # muted, with a lower id: samplers are taken in id order, so read it would win with its 99 steps
    muted = {**sampler, "id": 2, "mode": 2, "widgets_values": [1, "fixed", 99, 1, "ddim", "normal", 1]}
    assert _workflow(tmp_path, [muted, sampler, *text], links).settings["steps"] == 20

    # FLUX: SamplerCustomAdvanced fed by noise, guider, sampler and sigmas nodes; the seed from a primitive node
    # (its RandomNoise widget value is stale), the prompt through a reroute and FluxGuidance
    flux = [
        {"id": 13, "type": "SamplerCustomAdvanced", "inputs": [_in("noise", 37), _in("guider", 30),
         _in("sampler", 19), _in("sigmas", 20), _in("latent_image", 40)], "widgets_values": []},
        {"id": 25, "type": "RandomNoise", "inputs": [_in("noise_seed", 50, widget=True)],
         "widgets_values": [42, "fixed"]},
        {"id": 60, "type": "PrimitiveNode", "widgets_values": [777, "fixed"]},
        {"id": 22, "type": "BasicGuider", "inputs": [_in("model", 1), _in("conditioning", 42)]},
        {"id": 26, "type": "FluxGuidance", "inputs": [_in("conditioning", 41)], "widgets_values": [3.5]},
        {"id": 70, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 9}]},
        {"id": 6, "type": "CLIPTextEncode", "inputs": [_in("clip", 3)], "widgets_values": ["a red fox"]},
        {"id": 16, "type": "KSamplerSelect", "widgets_values": ["euler"]},
        {"id": 17, "type": "BasicScheduler", "inputs": [_in("model", 1)], "widgets_values": ["simple", 4, 1]},
        {"id": 27, "type": "EmptySD3LatentImage", "widgets_values": [1024, 768, 1]},
    ]  # fmt: skip
    links = [[37, 25, 0, 13, 0, "NOISE"], [30, 22, 0, 13, 1, "GUIDER"], [19, 16, 0, 13, 2, "SAMPLER"],
             [20, 17, 0, 13, 3, "SIGMAS"], [40, 27, 0, 13, 4, "LATENT"], [50, 60, 0, 25, 0, "INT"],
             [42, 26, 0, 22, 1, "COND"], [41, 70, 0, 26, 0, "COND"], [9, 6, 0, 70, 0, "COND"]]  # fmt: skip
    assert _workflow(tmp_path, flux, links) == ImageSettings(
        {"seed": 777, "steps": 4, "guidance": 3.5, "prompt": "a red fox", "sampler": "euler", "width": 1024,
         "height": 768})  # fmt: skip


# A KSampler whose values are read without links (it takes no "positive", so the values go by their names).
_LONE_SAMPLER = {"id": 3, "type": "KSampler", "widgets_values": [1, "fixed", 20, 8, "euler", "normal", 1]}
_LONE_READ = {"seed": 1, "steps": 20, "guidance": 8, "sampler": "euler"}


def test_a_workflow_link_whose_id_is_no_number_is_named_as_damage(tmp_path):
    """A link id that is a list raised "unhashable type" out of a reader that promises never to raise: the app
    said only "its settings could not be read". The link is left out and named; the rest is read."""
    found = _workflow(tmp_path, [_LONE_SAMPLER], [[[1], 4, 0, 3, 0, "MODEL"]])
    assert found == ImageSettings(_LONE_READ, [
        "its ComfyUI workflow chunk ('workflow') is damaged (a link without a whole-number id)"])  # fmt: skip


def test_a_workflow_node_whose_inputs_are_no_list_is_named_as_damage(tmp_path):
    """A node's "inputs" that is a number raised "'int' object is not iterable"; named now, beside why nothing
    else could be read."""
    found = _workflow(tmp_path, [{"id": 7, "type": "KSampler", "inputs": 5}], [])
    assert found.settings is None and found.problems[0] == (
        "its ComfyUI workflow chunk ('workflow') is damaged (the inputs of node 7 are not a list)")  # fmt: skip
    assert "no settings could be read from the workflow's nodes" in found.problems[1]


def _link_object(link: list) -> dict:
    """A schema-0.4 link list as the object newer ComfyUI front ends write instead."""
    return dict(zip(("id", "origin_id", "origin_slot", "target_id", "target_slot", "type"), link, strict=True))


def test_a_workflow_with_links_as_objects_is_read(tmp_path):
    """Newer ComfyUI front ends save links as objects ({"id", "origin_id", "origin_slot", ...}; schema version 1,
    and some 0.4 files): such a workflow read as having no links, and its prompts were lost."""
    nodes = [
        {"id": 3, "type": "KSampler", "inputs": [_in("positive", 4), _in("negative", 6), _in("latent_image", 2)],
         "widgets_values": [5, "fixed", 12, 4.5, "euler", "normal", 1]},
        {"id": 6, "type": "CLIPTextEncode", "inputs": [_in("text", 8, widget=True)], "widgets_values": ["stale"]},
        {"id": 9, "type": "PrimitiveNode", "widgets_values": ["a glass bottle"]},
        {"id": 7, "type": "CLIPTextEncode", "widgets_values": ["watermark"]},
        {"id": 5, "type": "EmptyLatentImage", "widgets_values": [512, 768, 1]},
    ]  # fmt: skip
    links = [[2, 5, 0, 3, 3, "LATENT"], [4, 6, 0, 3, 1, "COND"], [6, 7, 0, 3, 2, "COND"], [8, 9, 0, 6, 0, "STRING"]]
    expected = ImageSettings({"seed": 5, "steps": 12, "guidance": 4.5, "sampler": "euler", "prompt": "a glass bottle",
                              "negative_prompt": "watermark", "width": 512, "height": 768})  # fmt: skip
    for version in (1, 0.4):
        assert _workflow(tmp_path, nodes, [_link_object(link) for link in links], version) == expected, version
    hostile = [
        {"id": 8, "origin_id": [9], "origin_slot": 0},  # the prompt's text: not followed, left out
        {"id": "9", "origin_id": 6, "origin_slot": 0},  # an id that is no number
        {"id": 10, "origin_slot": 0}, {"id": 11, "origin_id": 5, "origin_slot": "0"},
        {"id": 7.5, "origin_id": {}, "origin_slot": None}, {}, 17, "link",
        None,  # an empty entry: nothing to read, and nothing lost
    ]  # fmt: skip
    found = _workflow(tmp_path, nodes, [_link_object(link) for link in links[:3]] + hostile, 1)
    assert found == ImageSettings({"seed": 5, "steps": 12, "guidance": 4.5, "sampler": "euler", "width": 512,
                                   "height": 768, "negative_prompt": "watermark"}, [
        "its ComfyUI workflow chunk ('workflow') is damaged (a link without a whole-number id; 7 links whose "
        "source node and slot cannot be read)"])  # fmt: skip
    found = _workflow(tmp_path, nodes, 3, 1)  # no list: read as no links, and named
    assert found.problems == ["its ComfyUI workflow chunk ('workflow') is damaged (its links are not a list)"]


class CountingFile(io.FileIO):
    """A file that counts the bytes read from it (unbuffered: each read is the reader's own)."""

    read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


def sparse_chunk(f, head: bytes, size: int) -> None:
    """Writes ``head`` and leaves a hole up to ``size`` bytes after it: a big chunk at no cost in time or disk."""
    f.write(head)
    f.seek(size - len(head), os.SEEK_CUR)


def test_a_big_png_is_read_only_where_its_settings_can_be(tmp_path):
    """A PNG was read whole at drop time, on the window's thread: a 200 MB render held the window up. Its chunks
    are walked with seeks now, reading only text chunks, even past a big IDAT; lengths that run past the file's
    end, or text chunks too big to read, are named."""
    Image.new("RGB", (8, 8)).save(tmp_path / "small.png")
    data = (tmp_path / "small.png").read_bytes()
    start, end = data[: data.index(b"IDAT") - 4], data[data.index(b"IEND") - 4 :]
    text = _chunk(b"tEXt", b"parameters\0a fox\nSteps: 7")
    big = 200 << 20
    with open(tmp_path / "big.png", "wb") as f:  # the settings after the image data, where some tools put them
        f.write(start)
        sparse_chunk(f, struct.pack(">I", big) + b"IDAT", 8 + big)
        f.write(b"\0" * 4 + text + end)
    with CountingFile(tmp_path / "big.png") as f:
        assert inspect_png_file(f) == ImageSettings(
            {"prompt": "a fox", "negative_prompt": "", "steps": 7, "lora_refs": []}
        )
        assert f.read_bytes < 1000
    assert read_settings(tmp_path / "big.png")["steps"] == 7
    with open(tmp_path / "cut.png", "wb") as f:  # a download that stopped in the image data
        f.write(start + struct.pack(">I", big) + b"IDAT" + b"\0" * 100)
    assert inspect_image(tmp_path / "cut.png") == ImageSettings(None, [
        "it is cut short (the file ends inside its IDAT chunk), and no generation settings were found before that "
        "point"])  # fmt: skip
    with open(tmp_path / "long.png", "wb") as f:  # a text chunk too long to be read into memory
        f.write(start)
        sparse_chunk(f, struct.pack(">I", 17 << 20) + b"tEXtparameters\0", 12 + (17 << 20))
        f.write(end)
    assert inspect_image(tmp_path / "long.png") == ImageSettings(None, [
        "its A1111 parameters chunk ('parameters') cannot be read: it is over 16 MB long: not read"])  # fmt: skip
    bomb = _with_chunk(tmp_path / "bomb.png", b"zTXt", b"parameters\0\0" + zlib.compress(b"\0" * (17 << 20), 9))
    assert inspect_image(bomb) == ImageSettings(
        None, ["its A1111 parameters chunk ('parameters') cannot be read: its text is over 16 MB unpacked: not read"]
    )


def _read_syscall_bytes() -> int:
    """Bytes this process has read through system calls (Linux): what a buffered file object really reads."""
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar:")).split()[1])


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux's per-process read counter")
def test_a_png_in_8_kb_image_chunks_is_not_read_whole(tmp_path):
    """libpng (GIMP, Krita, OpenCV) writes the image data in 8 KB IDAT chunks. Walked through a buffered file, each
    8-byte chunk header read after a seek refilled the 8 KB buffer: the walk read the whole image data."""
    Image.new("RGB", (8, 8)).save(tmp_path / "small.png")
    data = (tmp_path / "small.png").read_bytes()
    start, end = data[: data.index(b"IDAT") - 4], data[data.index(b"IEND") - 4 :]
    with open(tmp_path / "gimp.png", "wb") as f:
        f.write(start)
        for _ in range(2560):  # 20 MB of image data
            sparse_chunk(f, struct.pack(">I", 8192) + b"IDAT", 12 + 8192)
        f.write(_chunk(b"tEXt", b"parameters\0a fox\nSteps: 7") + end)
    before = _read_syscall_bytes()
    assert read_settings(tmp_path / "gimp.png")["steps"] == 7
    assert read_png_text(tmp_path / "gimp.png")["parameters"].startswith("a fox")
    assert _read_syscall_bytes() - before < 1 << 20  # ~60 KB; ~40 MB through 8 KB buffers


def test_a_png_that_shrinks_while_read_is_cut_short_not_an_exception(tmp_path):
    """Another program rewriting the file in place (``open("wb")`` empties it first) while the gallery reads it:
    the chunk walk took the file's size once, and a short read then raised struct.error out of read_png_text."""
    path = write_png(tmp_path / "a.png", Image.new("RGB", (8, 8)), {"prompt": "a fox"})

    class Shrinking(io.FileIO):
        def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
            at = super().seek(offset, whence)
            if whence == os.SEEK_END:  # the size is taken: now the other program truncates the file
                os.truncate(self.name, len(PNG_SIGNATURE) + 10)
            return at

    with Shrinking(path) as f:
        f.read(len(PNG_SIGNATURE))
        assert png_metadata._text_chunks(f).texts == {}
