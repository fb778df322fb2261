"""PNG metadata: A1111 text format both ways, direct chunk reading, other tools' files."""

from __future__ import annotations

import json
import zlib

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from gpu.generation.png_metadata import format_parameters, parse_parameters, read_png_text, read_settings, write_png

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
        'Steps: 20, Sampler: Euler, CFG scale: 4.0, Seed: 123, Size: 128x96, Model hash: 0123456789, '
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
