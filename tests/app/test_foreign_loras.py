"""Dropping an image made by A1111/Forge or ComfyUI brings its LoRAs back in the LoRA panel: only our own images
did, so the user had to find and switch on each LoRA by hand (and the A1111 tags stayed in the prompt)."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.app.gui import drop_file
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


def test_a1111_and_comfyui_images_switch_on_their_loras_and_name_the_missing_ones(qtbot, window, tmp_path):
    controller, loras = window.controller, window.controller.loras
    ink = _tiny_lora(tmp_path / "Ink_Style.safetensors")
    detail = _tiny_lora(tmp_path / "renamed-detail.safetensors", rank=2)  # A1111 named it "detail": by hash only
    controller.add_loras([ink, detail])
    rows = {e.path.name: e for e in loras.entries}
    shipped = next(e for e in loras.entries if e.name == "monochrome-style")
    loras.set_enabled(shipped, True)
    shown: list = []
    controller.error.connect(shown.append)

    a1111 = _png(tmp_path / "forge.png", "parameters",
                 "a cat, <lora:ink_style:0.8>, <lora:detail:0.5:3>, <lora:gone:1>\n"
                 f'Steps: 2, Seed: 7, Size: 128x128, Lora hashes: "detail: {_a1111_hash(detail)}"')  # fmt: skip
    drop_file(window.prompt_panel, a1111)
    assert controller.prompt.prompt == "a cat" and controller.prompt.seed == 7  # the tags are no prompt words
    on = {e.path.name: (e.strength, e.text_strength) for e in loras.entries if e.enabled}
    assert on == {"Ink_Style.safetensors": (0.8, None), "renamed-detail.safetensors": (2.0, 0.5)}
    assert not shipped.enabled  # not in the image: off, as for our own images
    missing = [e for e in shown if "not in the LoRA panel" in e.message]
    assert [e.message for e in missing] == ["The image used 1 LoRA not in the LoRA panel ('gone'); new images are "
                                            "made without it."]  # fmt: skip
    assert "Add the LoRA file in the LoRA panel" in missing[0].hint
    assert any("strength 3 for the LoRA 'renamed-detail' is beyond the -2 to 2" in e.message for e in shown)

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
    assert controller.prompt.prompt == "a fox" and controller.prompt.seed == 11
    on = {e.path.name: (e.strength, e.text_strength) for e in loras.entries if e.enabled}
    assert on == {"Ink_Style.safetensors": (0.6, 0.3)} and not rows["renamed-detail.safetensors"].enabled
    assert [e.message for e in shown] == ["The image used 2 LoRAs not in the LoRA panel ('missing_one', "
                                          "'not_here_either'); new images are made without them."]  # fmt: skip
