"""What an image records of its LoRAs, and what the engine keeps of a LoRA file it read.

The A1111 ``parameters`` text had ``Lora hashes`` but no ``<lora:…>`` tag: A1111/Forge ran "send to txt2img"
without the LoRA, and our own reader, given only that text, read the strength as 1. Its hash was of the whole
file, where A1111/Forge and Civitai (AutoV3) hash the tensor data after the header. The ``nibble`` chunk named
the file's absolute path (the user's name, their folders) in every shared PNG. The manager kept every file it had
read for the session (ten 600 MB LoRAs tried: gigabytes held)."""

from __future__ import annotations

import gc
import hashlib
import struct
import weakref
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from gpu.generation.png_metadata import inspect_png_file, read_parameters, read_png_text, write_png
from gpu.lora import lora_hashes, read_lora
from gpu.lora.manager import ActiveLora, LoraManager
from gpu.version import APP_NAME

PROJ = "lora_unet_double_blocks_0_img_attn_proj"
CLIP = "lora_te1_text_model_encoder_layers_0_self_attn_q_proj"


def _lora(path: Path, seed: int, text: bool = False, dtype: torch.dtype = torch.float32) -> Path:
    """A one-layer kohya FLUX.1 LoRA (with a CLIP-L layer when ``text``), with metadata before its data."""
    g = torch.Generator().manual_seed(seed)
    sd = {f"{PROJ}.lora_down.weight": torch.randn(4, 256, generator=g), f"{PROJ}.lora_up.weight": torch.randn(256, 4,
          generator=g), f"{PROJ}.alpha": torch.tensor(4.0)}  # fmt: skip
    if text:
        sd |= {f"{CLIP}.lora_down.weight": torch.randn(4, 768, generator=g),
               f"{CLIP}.lora_up.weight": torch.randn(768, 4, generator=g)}  # fmt: skip
    sd = {k: v.to(dtype) if v.dim() else v for k, v in sd.items()}
    save_file(sd, path, metadata={"ss_output_name": "a test lora"})
    return path


def _proj_only() -> nn.Module:
    """A transformer of only the layer ``PROJ`` names (the demo model's ``transformer_blocks.0.attn.to_out.0``)."""
    model = nn.Module()
    model.transformer_blocks = nn.ModuleList([nn.Module()])
    model.transformer_blocks[0].attn = nn.Module()
    model.transformer_blocks[0].attn.to_out = nn.ModuleList([nn.Linear(256, 256)])
    return model


def _autov3(path: Path) -> str:
    """A1111/Forge's and Civitai's short hash: the SHA-256 of the file after its header, 12 hex digits."""
    data = path.read_bytes()
    return hashlib.sha256(data[8 + struct.unpack("<Q", data[:8])[0] :]).hexdigest()[:12]


def test_the_a1111_text_gives_each_lora_its_tag_and_autov3_hash_and_the_png_no_folder(tmp_path):
    style = read_lora(_lora(tmp_path / "ink style.safetensors", 0, text=True))
    detail = read_lora(_lora(tmp_path / "detail.safetensors", 1))
    active = [ActiveLora(style, 0.8, 0.5), ActiveLora(detail, 1.25, 1.25)]
    prompt = "a cat, snow"
    settings = {"prompt": prompt, "steps": 4, "seed": 7, "width": 64, "height": 64, "version": f"{APP_NAME}-1",
                "loras": lora_hashes(active), "lora_list": [a.describe() for a in active]}  # fmt: skip
    png = write_png(tmp_path / "out.png", Image.new("RGB", (8, 8)), settings)

    text = read_png_text(png)["parameters"]
    assert text.startswith("a cat, snow, <lora:ink style:0.5:0.8>, <lora:detail:1.25>\n")
    read, problems = read_parameters(text)  # what A1111/Forge, or we, read from that text alone
    assert problems == [] and read["prompt"] == prompt
    assert read["lora_refs"] == [
        {"name": "ink style", "strength": 0.8, "text_strength": 0.5, "hash": _autov3(style.path)},
        {"name": "detail", "strength": 1.25, "text_strength": None, "hash": _autov3(detail.path)},
    ]
    # The whole PNG is read from our chunk: the LoRAs once (no lora_refs beside it), the prompt without tags,
    # each file by its name only.
    ours = inspect_png_file(open(png, "rb")).settings
    assert ours["prompt"] == prompt and "lora_refs" not in ours
    assert [(e["file"], e["strength"], e.get("text_strength")) for e in ours["lora_list"]] == [
        ("ink style.safetensors", 0.8, 0.5), ("detail.safetensors", 1.25, None)]  # fmt: skip


def test_a_lora_is_read_once_into_float32_with_both_hashes(tmp_path):
    path = _lora(tmp_path / "bf16.safetensors", 2, text=True, dtype=torch.bfloat16)
    lora = read_lora(path)
    assert lora.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert lora.autov3 == _autov3(path)
    stored = load_file(path)
    for t in lora.targets:
        assert t.down.dtype == t.up.dtype == torch.float32
        assert torch.equal(t.down, stored[f"{t.key}.lora_down.weight"].float())
        assert torch.equal(t.up, stored[f"{t.key}.lora_up.weight"].float())


def test_the_manager_forgets_the_files_of_a_set_no_longer_asked_for(tmp_path):
    """The files of the set asked for (at strength 0 too: the engine asks before every image) stay read; the
    others are let go, and read again when asked for again."""
    a, b = _lora(tmp_path / "a.safetensors", 3), _lora(tmp_path / "b.safetensors", 4)
    manager = LoraManager(_proj_only())  # a model they fit: one for another is refused from its header, not read
    first = weakref.ref(manager.read(a))
    assert not manager.is_applied([(a, 1.0)])
    assert not manager.is_applied([(b, 1.0)])  # a is no longer asked for
    gc.collect()
    assert first() is None
    kept = manager.read(b)
    assert manager.is_applied([(b, 0.0)]) and manager.read(b) is kept  # at strength 0 too: not read again


def test_lora_hashes_never_name_a_lora_that_was_not_used():
    """A LoRA named "a,b" or "x:y" split the ``Lora hashes`` value: read back, it named LoRAs "b" and "y" (applied
    at strength 1 where the panel had rows of those names). The names lose ':' and ',' as in A1111."""
    from types import SimpleNamespace

    from gpu.generation.png_metadata import _lora_hashes
    from gpu.lora.manager import lora_hashes

    used = [SimpleNamespace(file=SimpleNamespace(name=n, autov3=h))
            for n, h in (("a,b", "0123456789ab"), ("x:y", "ba9876543210"))]  # fmt: skip
    found, problems = _lora_hashes(lora_hashes(used))
    assert sorted(found) == ["ab", "xy"] and problems == []
