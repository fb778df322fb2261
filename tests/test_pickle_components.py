"""Pipeline folders whose text encoder (or VAE) holds only a PyTorch pickle (``pytorch_model.bin``): the library
checked the transformer's files only, listed the folder, and ``FluxPipeline.from_pretrained`` then unpickled the
encoder, which can run code. The app loads no pickle from a model or user file: such a folder is named at add (in
the library, ``generate --model``, ``quantize`` and the wizard's source page), a base pipeline of that kind is
named, and every load asks for safetensors (a file swapped for a pickle after it was listed is refused too)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_base_fit import with_recorded_base

from gpu.errors import ModelLoadError
from gpu.paths import resources_dir

DEMO = resources_dir() / "models" / "demo"
SAYS = "text_encoder/ holds only pytorch_model.bin, a PyTorch pickle, which Nibble Studio never loads"


def _with_pickled_encoder(folder: Path) -> Path:
    """The demo pipeline at ``folder``, its CLIP text encoder saved as pytorch_model.bin only."""
    shutil.copytree(DEMO, folder)
    weights = folder / "text_encoder" / "model.safetensors"
    torch.save(load_file(weights), folder / "text_encoder" / "pytorch_model.bin")
    weights.unlink()
    return folder


@pytest.fixture
def no_unpickling(monkeypatch) -> list[str]:
    """torch.load refused: what a load tried to unpickle is listed, and the load fails there."""
    tried: list[str] = []

    def refuse(f, *args, **kwargs):
        tried.append(str(f))
        raise AssertionError(f"unpickled {f}")

    monkeypatch.setattr(torch, "load", refuse)
    return tried


def test_a_pipeline_whose_text_encoder_is_a_pickle_is_refused_at_add(tmp_path):
    from gpu.library import ModelLibrary

    folder = _with_pickled_encoder(tmp_path / "FLUX.1-model")
    library = ModelLibrary(tmp_path / "data")
    for read in (library.add, library.resolve):
        with pytest.raises(ModelLoadError) as err:  # was: listed, and loading it unpickled the encoder
            read(folder)
        assert str(err.value) == f"FLUX.1-model: {SAYS}"
        assert err.value.hint == "get the .safetensors version of this model"


def test_the_wizard_refuses_such_a_source(tmp_path):
    pytest.importorskip("PySide6", reason="the wizard's state is Qt's (the GPU machine has no PySide6)")
    from app.quantize_source import QuantizeSource

    state = QuantizeSource([])
    state.choose(str(_with_pickled_encoder(tmp_path / "FLUX.1-model")))
    assert not state.ready and state.problem.startswith(f"FLUX.1-model: {SAYS}"), state.problem  # was: ready


def test_quantize_refuses_such_a_source(tmp_path, capsys, no_unpickling):
    from main import main

    folder = _with_pickled_encoder(tmp_path / "FLUX.1-model")
    out = tmp_path / "out.safetensors"
    assert main(["--data-dir", str(tmp_path / "data"), "quantize", str(folder), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith(f"error: FLUX.1-model: {SAYS}")
    assert no_unpickling == [] and not out.exists()


def test_an_svdq_file_whose_base_has_a_pickled_encoder_names_it(tmp_path):
    from gpu.generation.pipeline_loader import resolve_base
    from gpu.library import ModelLibrary

    base = _with_pickled_encoder(tmp_path / "mybase")
    model = with_recorded_base(tmp_path / "q.safetensors", {"path": str(base), "name": "", "relative_path": ""})
    library = ModelLibrary(tmp_path / "data")
    with pytest.raises(ModelLoadError) as err:  # was: this base, whose encoder loading then unpickled
        resolve_base(library.resolve(str(model)).facts, library, None)
    assert str(err.value) == f"q.safetensors: its base pipeline {base}: {SAYS}"


def test_a_listed_pipeline_whose_encoder_became_a_pickle_is_not_unpickled(tmp_path, no_unpickling):
    from gpu.generation.pipeline_loader import load_pipeline
    from gpu.library import ModelLibrary

    folder = shutil.copytree(DEMO, tmp_path / "FLUX.1-model")
    library = ModelLibrary(tmp_path / "data")
    entry = library.add(folder)  # listed while its encoder was safetensors
    shutil.rmtree(folder)
    _with_pickled_encoder(folder)
    with pytest.raises(ModelLoadError, match=r"^FLUX.1-model: cannot load the pipeline \(.*model.safetensors"):
        load_pipeline(entry, library, torch.device("cpu"))  # was: unpickled pytorch_model.bin
    assert no_unpickling == []


def test_the_quantizer_never_unpickles_a_text_encoder_swapped_for_a_pickle(tmp_path, no_unpickling):
    """The streaming quantizer loads the calibrating text encoders with ``use_safetensors=True``: without it,
    ``from_pretrained`` takes a component's pytorch_model.bin when no safetensors file is there. A pipeline checked
    when the run began, whose encoder is then a pickle only (swapped as the encoders load), is refused by name."""
    from gpu.library import ModelLibrary
    from gpu.quantizer import QuantizeConfig, quantize_model

    folder = shutil.copytree(DEMO, tmp_path / "FLUX.1-model")

    def swap(event) -> None:
        if event.message == "loading text encoders":
            shutil.rmtree(folder)
            _with_pickled_encoder(folder)

    out = tmp_path / "out.safetensors"
    config = QuantizeConfig(calib_prompts=1, calib_steps=1, timesteps_per_prompt=1)
    with pytest.raises(ModelLoadError, match=r"^FLUX.1-model: cannot load the pipeline \(.*model.safetensors"):
        quantize_model(folder, out, config, swap, library=ModelLibrary(tmp_path / "data"), device=torch.device("cpu"))
    assert no_unpickling == [] and not out.exists()
