"""An SVDQ file's image records the base pipeline that gave it its text encoders, VAE and scheduler: another base
gives another image from the same settings (the images of ``--base`` and without were recorded alike)."""

from __future__ import annotations

import shutil

from gpu.generation.request import GenerationRequest
from gpu.generation.service import GenerationService
from gpu.paths import resources_dir


def test_the_base_pipeline_of_an_svdq_image_is_recorded_by_its_name(tmp_path):
    # where most FLUX.1 bases are: a Hugging Face cache snapshot, its folder named after a commit
    base = tmp_path / "models--someone--my-base" / "snapshots" / "0ef5fff789c832c5c7f4e127f94c8b54bbcced44"
    shutil.copytree(resources_dir() / "models" / "demo", base)
    service = GenerationService()
    small = {"steps": 1, "width": 64, "height": 64}
    own = service.generate(GenerationRequest("a red star", model="demo-int4", **small))[0].settings
    assert own["base"] == "demo"  # the base shipped beside it
    given = service.generate(GenerationRequest("a red star", model="demo-int4", base=str(base), **small))[0].settings
    assert given["base"] == "my-base" and str(tmp_path) not in str(given)  # the name only: a PNG is shared
    pipeline = service.generate(GenerationRequest("a red star", model="demo", **small))[0].settings
    assert "base" not in pipeline  # a whole pipeline is its own base
