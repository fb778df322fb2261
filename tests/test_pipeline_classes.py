"""Which diffusers FLUX.1 pipeline folders the library takes, by the class their model_index.json names: a folder
saved by FluxImg2ImgPipeline or FluxInpaintPipeline holds the text-to-image model (the same components, a
transformer of 64 input channels), and FluxPipeline generates from it, but it was refused as needing an input
image. FLUX.1 Fill/Control/Kontext/Redux are still refused."""

from __future__ import annotations

import inspect
import json
import shutil
from pathlib import Path

import pytest

from gpu.errors import ModelLoadError
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from gpu.pipeline_checks import FLUX_COMPONENTS, FLUX_OPTIONAL

DEMO = resources_dir() / "models" / "demo"


def _saved_as(tmp_path: Path, cls: str, **index_changes) -> Path:
    folder = shutil.copytree(DEMO, tmp_path / "FLUX.1-model")
    index = json.loads((folder / "model_index.json").read_bytes())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": cls, **index_changes}))
    return folder


@pytest.mark.parametrize("cls", ["FluxImg2ImgPipeline", "FluxInpaintPipeline"])
def test_a_folder_saved_by_another_text_conditioned_flux_pipeline_is_a_model(tmp_path, cls):
    folder = _saved_as(tmp_path, cls)
    library = ModelLibrary(tmp_path / "data")
    assert library.add(folder).kind == "diffusers"  # was: "a FluxImg2ImgPipeline folder; it needs an input image"
    assert library.resolve(str(folder)).facts.kind == "diffusers"


@pytest.mark.parametrize("cls", ["FluxKontextPipeline", "FluxFillPipeline", "FluxControlPipeline",
                                 "FluxPriorReduxPipeline", "FluxControlNetPipeline"])  # fmt: skip
def test_flux_pipelines_that_need_an_input_image_are_still_refused_by_name(tmp_path, cls):
    folder = _saved_as(tmp_path, cls)  # the demo's transformer: 64 input channels, as Kontext's
    with pytest.raises(ModelLoadError, match=f"^FLUX.1-model: a {cls} folder; it needs an input image"):
        ModelLibrary(tmp_path / "data").add(folder)


def test_a_flux_pipeline_of_other_components_is_refused(tmp_path):
    folder = _saved_as(tmp_path, "FluxSomethingPipeline", image_embedder=["diffusers", "ReduxImageEncoder"])
    (folder / "image_embedder").mkdir()
    (folder / "image_embedder" / "config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=r"^FLUX.1-model: a FluxSomethingPipeline folder, whose components are "
                                             r"not a text-to-image FLUX.1 pipeline's \(image_embedder\)"):  # fmt: skip
        ModelLibrary(tmp_path / "data").add(folder)


def test_the_components_are_flux_pipelines_own():
    import diffusers

    for cls in (diffusers.FluxPipeline, diffusers.FluxImg2ImgPipeline, diffusers.FluxInpaintPipeline):
        assert tuple(inspect.signature(cls.__init__).parameters)[1:] == FLUX_COMPONENTS
        assert set(cls._optional_components) == set(FLUX_OPTIONAL)


def test_a_model_index_nested_past_the_parser_is_named(tmp_path):
    folder = shutil.copytree(DEMO, tmp_path / "FLUX.1-model")
    (folder / "model_index.json").write_text("[" * 100_000)
    with pytest.raises(ModelLoadError, match=r"^model FLUX.1-model: model_index.json is unreadable"):
        ModelLibrary(tmp_path / "data").add(folder)  # was: a RecursionError traceback
