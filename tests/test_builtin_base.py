"""A built-in SVDQ model finds the base shipped beside it before the absolute path it records: the shipped
demo-int4 records the checkout it was made in (``/work/main/resources/models/demo``), and any other checkout, or a
bundle checked on that machine, ran with that checkout's demo pipeline instead of its own."""

from __future__ import annotations

import shutil

import gpu.library
import gpu.paths
from gpu.generation.pipeline_loader import resolve_base
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from tests.test_base_fit import with_recorded_base

MODELS = resources_dir() / "models"


def test_a_built_in_model_takes_the_base_beside_it_before_the_recorded_absolute_path(tmp_path, monkeypatch):
    elsewhere = shutil.copytree(MODELS / "demo", tmp_path / "build-machine" / "demo")  # the checkout it was made in
    checkout = tmp_path / "checkout" / "resources"
    shipped = shutil.copytree(MODELS / "demo", checkout / "models" / "demo")
    with_recorded_base(checkout / "models" / "demo-int4.safetensors", {"path": str(elsewhere), "relative_path": "demo"})
    for module in (gpu.paths, gpu.library):  # this checkout's resources are those of another
        monkeypatch.setattr(module, "resources_dir", lambda: checkout)
    library = ModelLibrary(tmp_path / "data")
    facts = library.resolve("demo-int4").facts
    assert facts.path == checkout / "models" / "demo-int4.safetensors"
    assert resolve_base(facts, library, None) == shipped  # was: the build machine's

    moved = with_recorded_base(tmp_path / "mine" / "demo-int4.safetensors", {"path": str(elsewhere),
                                                                             "relative_path": "demo"})  # fmt: skip
    shutil.copytree(MODELS / "demo", tmp_path / "mine" / "demo")
    assert resolve_base(library.resolve(str(moved)).facts, library, None) == elsewhere  # a user's file: as before
