"""Which files of a folder the app lists as LoRAs (``gpu.lora.folder``), as users keep them: in subfolders
(ComfyUI's and Forge's ``loras/flux/style/…``), named ``.SafeTensors`` by a Windows download, beside hidden
folders and links; and what a LoRA's info line says of its format."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gpu.lora.folder import MAX_DEPTH, is_lora_name, list_lora_files


def refuse_to_list(monkeypatch, folder: Path) -> None:
    """Listing ``folder`` is refused from now on (EACCES), as for another user's folder: tests run as root, whom
    chmod does not stop."""
    scandir = os.scandir

    def refused(path):
        if path == folder:  # a Path, as the app lists; never a descriptor (shutil.rmtree lists folders by one)
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refused)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")  # names only: the listing reads no header
    return path


def test_subfolders_any_case_no_hidden_files_and_each_folder_once(tmp_path):
    """A folder's own LoRAs only, named ``.safetensors`` exactly, were listed: a ComfyUI tree of subfolders gave
    nothing, and ``Style.SafeTensors`` was left out on Linux."""
    root = tmp_path / "loras"
    wanted = [
        _touch(root / "a top.safetensors"),
        _touch(root / "B upper.SAFETENSORS"),
        _touch(root / "flux" / "Mixed.SafeTensors"),
        _touch(root / "flux" / "style" / "deep.safetensors"),
        _touch(root / "Zed" / "last.safetensors"),
    ]
    _touch(root / "notes.txt")
    _touch(root / "style.safetensors.part")  # a download under way
    _touch(root / "._a top.safetensors")  # macOS' resource fork on a USB drive: no LoRA
    _touch(root / ".cache" / "hidden.safetensors")
    pickle = _touch(root / "flux" / "old.ckpt")
    (root / "flux" / "loop").symlink_to(root, target_is_directory=True)  # a link to a folder above: a loop
    (root / "dangling").symlink_to(tmp_path / "gone", target_is_directory=True)

    listing = list_lora_files(root)
    assert listing.files == wanted  # each folder's files, then its subfolders', in name order whatever the case
    assert listing.pickles == [pickle]
    assert listing.unreadable == [] and listing.too_deep == []


def test_a_linked_folder_elsewhere_is_listed_once(tmp_path):
    """A link to LoRAs kept elsewhere (another drive) is followed; two links to it list them once."""
    elsewhere = tmp_path / "nas"
    lora = _touch(elsewhere / "far.safetensors")
    root = tmp_path / "loras"
    root.mkdir()
    for name in ("first link", "second link"):
        (root / name).symlink_to(elsewhere, target_is_directory=True)
    listing = list_lora_files(root)
    assert [p.resolve() for p in listing.files] == [lora.resolve()]


def test_depth_is_capped_and_an_unreadable_subfolder_is_noted(tmp_path, monkeypatch):
    root = tmp_path / "loras"
    deep = root.joinpath(*[f"level {i}" for i in range(1, MAX_DEPTH + 2)])
    at_cap = _touch(deep.parent / "at the cap.safetensors")
    _touch(deep / "too deep.safetensors")
    locked = root / "locked"
    locked.mkdir()
    refuse_to_list(monkeypatch, locked)
    listing = list_lora_files(root)
    assert listing.files == [at_cap]
    assert listing.too_deep == [deep] and listing.unreadable == [locked]
    refuse_to_list(monkeypatch, root)
    with pytest.raises(PermissionError):  # the folder itself: the caller says it
        list_lora_files(root)


def test_stop_ends_the_listing_between_two_folders(tmp_path):
    root = tmp_path / "loras"
    first = _touch(root / "first.safetensors")
    _touch(root / "sub" / "later.safetensors")
    asked = []

    def stop() -> bool:
        asked.append(None)
        return len(asked) > 1  # after the first folder

    assert list_lora_files(root, stop).files == [first]


def test_lora_names_match_the_suffix_in_any_case():
    assert all(map(is_lora_name, ["a.safetensors", "A.SAFETENSORS", "b.SafeTensors", Path("c.Safetensors")]))
    assert not any(map(is_lora_name, ["a.safetensors.part", "a.ckpt", "safetensors", "a.safetensors.json"]))


def _one_layer(path: Path, keys: tuple[str, str], metadata: dict | None = None, rank: int = 4) -> Path:
    """A one-layer LoRA file of the demo model's sizes (256 wide) under the factor names ``keys`` (down, up)."""
    g = torch.Generator().manual_seed(0)
    save_file({keys[0]: torch.randn(rank, 256, generator=g), keys[1]: torch.randn(256, rank, generator=g)}, path,
              metadata=metadata)  # fmt: skip
    return path


def test_an_xlabs_lora_is_labelled_xlabs(tmp_path):
    """XLabs-AI's files were labelled "BFL/ComfyUI" in the LoRA panel's info line and "bfl" in an image's
    ``lora_list``: the user could not tell which file is which."""
    from gpu.lora import read_lora
    from gpu.lora.metadata import header_summary

    base = "double_blocks.0.processor.proj_lora1"
    xlabs = _one_layer(tmp_path / "xlabs.safetensors", (f"{base}.down.weight", f"{base}.up.weight"))
    info = header_summary(xlabs).info
    assert info.startswith("XLabs, rank 4, 2 tensors")
    assert read_lora(xlabs).format == "xlabs"
    bfl = "diffusion_model.double_blocks.0.img_attn.proj"
    plain = _one_layer(tmp_path / "bfl.safetensors", (f"{bfl}.lora_A.weight", f"{bfl}.lora_B.weight"))
    assert header_summary(plain)[1].startswith("BFL/ComfyUI, rank 4")


def _peft_scaling(config: dict, rank: int) -> float:
    """The scale PEFT itself gives a LoRA layer of rank ``rank`` under the LoraConfig ``config``."""
    from peft import LoraConfig, get_peft_model

    model = torch.nn.Sequential()
    model.add_module("to_out", torch.nn.Linear(256, 256))
    wrapped = get_peft_model(model, LoraConfig(**{**config, "target_modules": ["to_out"]}))
    return next(m.scaling["default"] for m in wrapped.modules() if hasattr(m, "scaling"))


@pytest.mark.parametrize("rslora", [True, False])
def test_a_peft_lora_trained_with_rslora_is_scaled_alpha_over_sqrt_rank(tmp_path, rslora):
    """A diffusers/PEFT file whose adapter metadata says ``use_rslora`` was scaled alpha / r, as PEFT trained it
    alpha / sqrt(r) (and diffusers' loader applies it so): a rank-16 rsLoRA came out at a quarter of its
    strength. The scale is PEFT's own for the same config."""
    import json

    from gpu.lora import read_lora

    rank, config = 16, {"r": 16, "lora_alpha": 8, "use_rslora": rslora}
    base = "transformer.transformer_blocks.0.attn.to_out.0"
    path = _one_layer(tmp_path / "rslora.safetensors", (f"{base}.lora_A.weight", f"{base}.lora_B.weight"),
                      {"transformer_lora_adapter_metadata": json.dumps(config)}, rank=rank)  # fmt: skip
    scale = read_lora(path).targets[0].scale
    assert math.isclose(scale, _peft_scaling(config, rank), rel_tol=1e-6)
    assert math.isclose(scale, 8 / (math.sqrt(rank) if rslora else rank), rel_tol=1e-6)
