"""Whether a base pipeline fits a FLUX.1 transformer is told by what the base supplies to it, its text encoders'
widths and its VAE's latent channels, never by its own transformer, which neither generating nor calibrating runs;
and the quantize wizard, the quantizer and generation ask the same question of one function
(``gpu.pipeline_checks.pipeline_misfit``).

Generation checked the base's transformer config too, and refused FLUX.1-Fill's pipeline (a 384-channel transformer
beside FLUX.1's own encoders and VAE) as a base of a text-to-image SVDQ file, blaming its encoders and VAE; the
wizard and the quantizer checked only the base's transformer config, so a pipeline whose T5 was swapped for a wider
one passed them and failed mid-run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from app.quantize_source import QuantizeSource
from gpu.errors import ModelLoadError
from gpu.generation.pipeline_loader import resolve_base
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from gpu.quantizer import QuantizeConfig, quantize_model
from tests.bfl_files import save_bfl_transformer

DEMO = resources_dir() / "models" / "demo"


def _edited(folder: Path, component: str, **settings) -> Path:
    config = folder / component / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_bytes()), **settings}))
    return folder


def _copy(out: Path) -> Path:
    return shutil.copytree(DEMO, out)


def test_a_fill_pipeline_with_the_same_encoders_and_vae_is_a_base_of_a_text_to_image_file(tmp_path, capsys):
    from main import main

    fill = _edited(_copy(tmp_path / "FLUX.1-Fill-demo"), "transformer", in_channels=384)
    index = json.loads((fill / "model_index.json").read_bytes())
    (fill / "model_index.json").write_text(json.dumps({**index, "_class_name": "FluxFillPipeline"}))
    out = tmp_path / "x.png"
    code = main(["--data-dir", str(tmp_path / "data"), "generate", "a red star", "--model", "demo-int4", "--base",
                 str(fill), "--steps", "1", "--width", "64", "--height", "64", "--out", str(out)])  # fmt: skip
    assert code == 0 and out.is_file(), capsys.readouterr().err  # was: does not fit (in_channels 64 vs 384)


def test_a_misfit_names_the_part_that_gives_the_value(tmp_path):
    wide_latents = _edited(_copy(tmp_path / "wide-vae"), "vae", latent_channels=32)
    library = ModelLibrary(tmp_path / "data")
    facts = library.resolve("demo-int4").facts
    with pytest.raises(ModelLoadError) as raised:
        resolve_base(facts, library, str(wide_latents))
    assert f"the pipeline {wide_latents} does not fit demo-int4.safetensors (in_channels 64 vs 128 (vae's " \
           "latent_channels 32 x 4): the model's setting vs what the base gives)" in str(raised.value)  # fmt: skip


def test_the_wizard_the_quantizer_and_generation_refuse_a_wider_t5_alike(tmp_path):
    """The base's transformer config says 128 as the file does; its T5 gives 256."""
    wide = _edited(_copy(tmp_path / "wide-t5"), "text_encoder_2", d_model=256)
    says = "joint_attention_dim 128 vs 256 (text_encoder_2's d_model)"
    single = save_bfl_transformer(DEMO, tmp_path / "my-finetune.safetensors")

    state = QuantizeSource([])
    state.choose(str(single))
    state.add_base_folder(str(wide))
    assert f"my-finetune.safetensors does not fit wide-t5: {says}" in state.base_problem, state.base_problem

    with pytest.raises(ModelLoadError, match=rf"my-finetune.safetensors does not fit the base pipeline wide-t5: "
                                             rf"{says.replace('(', '[(]').replace(')', '[)]')}$"):  # fmt: skip
        quantize_model(single, tmp_path / "q.safetensors", QuantizeConfig(base=str(wide)),
                       library=ModelLibrary(tmp_path / "lib"), device=torch.device("cpu"))  # fmt: skip

    library = ModelLibrary(tmp_path / "data")
    with pytest.raises(ModelLoadError, match=r"does not fit demo-int4.safetensors \(joint_attention_dim 128 vs 256 "
                                             r"\(text_encoder_2's d_model\)"):  # fmt: skip
        resolve_base(library.resolve("demo-int4").facts, library, str(wide))
