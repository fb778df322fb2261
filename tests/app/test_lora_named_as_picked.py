"""A LoRA picked from a Hugging Face cache: ``snapshots/<rev>/style.safetensors`` is a link to ``blobs/<sha256>``.
The panel and the engine resolved the path before naming the file, so the row was named by the blob's hash and
the PNG's ``lora_list`` recorded that hash as the file (what reusing an image then looks the LoRA up by). The
name is the picked path's; a file is still listed once, by the file it is (as the model library does)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from torch import nn

from app.lora_state import LoraState
from gpu.lora.formats import read_lora
from gpu.lora.manager import ActiveLora, LoraManager
from gpu.paths import resources_dir


@pytest.fixture
def cache(tmp_path) -> tuple[Path, Path]:
    """(the snapshot's style.safetensors, the blob it links to) in a Hugging Face cache's layout, and a second
    revision's link to the same blob (``snapshots/def456``)."""
    source = resources_dir() / "loras" / "monochrome-style.safetensors"
    repo = tmp_path / "hub" / "models--someone--styles"
    blob = repo / "blobs" / hashlib.sha256(source.read_bytes()).hexdigest()
    blob.parent.mkdir(parents=True)
    shutil.copyfile(source, blob)
    for rev in ("abc123", "def456"):
        (repo / "snapshots" / rev).mkdir(parents=True)
        (repo / "snapshots" / rev / "style.safetensors").symlink_to(Path("../..") / "blobs" / blob.name)
    return repo / "snapshots" / "abc123" / "style.safetensors", blob


def test_the_panel_names_the_lora_as_picked_and_lists_its_file_once(qapp, cache):
    link, blob = cache
    state = LoraState()
    entry = state.add_file(link)
    assert entry.name == "style" and entry.path == link  # was: named by the blob's hash, its path the blob
    assert entry.request()[0] == str(link)  # the engine reads it under that name
    assert state.add_file(blob) is entry  # the same file by another path: the row it has
    added, refused, listed = state.add_files([link.parent.parent / "def456" / "style.safetensors"])
    assert added == listed == [entry] and refused == [] and len(state.entries) == 1

    again = LoraState()  # the next start, from the settings saved
    assert again.restore(state.to_settings()) == []
    assert [(e.name, e.path) for e in again.entries] == [("style", link)]
    scanned = LoraState()  # "Add folder…" on the snapshot
    scanned.add_folder(link.parent)
    assert [(e.name, e.path) for e in scanned.entries] == [("style", link)]


def test_the_engine_records_the_picked_file_name_and_still_keeps_it_read(cache):
    link, blob = cache
    lora = read_lora(link)
    assert lora.name == "style" and lora.path == link
    recorded = ActiveLora(lora, 1.0, 1.0).describe()
    assert (recorded["name"], recorded["file"]) == ("style", "style.safetensors")  # was: the blob's hash
    manager = LoraManager(nn.Linear(1, 1))
    kept = manager.read(link)
    assert manager.is_applied([(link, 0.0)])  # asked for at strength 0: nothing to apply, the file kept read
    assert manager.read(link) is kept  # not read again
