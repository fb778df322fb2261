"""The memory plan never fails over a weight file it cannot read: it reads headers only to estimate, and a damaged
one is left out (an SVDQ file counts as its size on disk). Loading then names the damage in its own words.

The plan read the text encoders' and VAE's headers with a bare JSON parse: a T5 file damaged after the model was
listed (a copy still being written, a failing disk) made ``generate`` print a JSONDecodeError traceback through the
plan line, and the app's model panel got the same from its describe, instead of the load's "the header is not
valid JSON: the file is corrupt"."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

import gpu.runtime.memory_policy as memory_policy
from gpu.generation.memory import predicted_sizes
from gpu.generation.service import predicted_policy
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from gpu.runtime.memory_policy import GiB

MODELS = resources_dir() / "models"


def _damage_header(weights: Path) -> None:
    """The first bytes of the file's JSON header overwritten (its length kept): no JSON any more."""
    with open(weights, "r+b") as f:
        f.seek(8)
        f.write(b"XXXX")


def test_a_text_encoder_damaged_after_the_model_was_listed_is_left_out_of_the_plan(tmp_path, monkeypatch):
    folder = shutil.copytree(MODELS / "demo", tmp_path / "dmgdemo")
    library = ModelLibrary(tmp_path / "data")
    facts = library.resolve(str(folder)).facts
    whole = predicted_sizes(facts, folder, 4)
    _damage_header(folder / "text_encoder_2" / "model.safetensors")
    cpu = torch.device("cpu")
    assert predicted_policy(facts, library, cpu).name == "cpu"  # planned, not raised
    monkeypatch.setattr(memory_policy, "detect_total_vram", lambda device=None: 16 * GiB)  # a GPU's plan too
    assert predicted_policy(facts, library, cpu).device == "cuda"
    damaged = predicted_sizes(facts, folder, 4)
    clip, t5 = damaged.text_encoders
    assert clip == whole.text_encoders[0] and t5.total == 0  # T5 left out, the rest counted as before
    assert (damaged.transformer, damaged.vae) == (whole.transformer, whole.vae)


def test_an_svdq_file_damaged_after_it_was_listed_counts_as_its_size(tmp_path):
    model = tmp_path / "mine.safetensors"
    shutil.copy(MODELS / "demo-int4.safetensors", model)
    facts = ModelLibrary(tmp_path / "data").resolve(str(model)).facts
    _damage_header(model)
    sizes = predicted_sizes(facts, MODELS / "demo", 2)
    assert sizes.transformer == facts.size_bytes and sizes.weight_bits == 4
