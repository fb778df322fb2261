"""What a file or folder given as a model is, when it is none the app can run: the library (Models panel), the CLI's
``--model`` (``ModelLibrary.resolve``) and the quantize wizard (``inspect_single_file``) name it, with what to do.

Each of these was misnamed: a Forge NF4 file as "a single-file FLUX.1 checkpoint (16-bit or FP8)", Nunchaku files
as a diffusers transformer or a LoRA, a T5 shard as a VAE, an SDXL folder as "not a diffusers pipeline folder";
FLUX.1 Fill and bitsandbytes-quantized pipeline folders were listed and failed only when generating."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from gpu.bfl_layout import inspect_single_file
from gpu.errors import ModelLoadError
from gpu.library import ModelLibrary
from gpu.model_files import inspect_model_path
from gpu.paths import resources_dir
from tests.header_files import bfl_tensors, forge_nf4_tensors, header_only, nunchaku_tensors, t5_shard_tensors

DEMO = resources_dir() / "models" / "demo"
DEMO_INT4 = resources_dir() / "models" / "demo-int4.safetensors"


def _refusals(tmp_path: Path, path: Path) -> list[str]:
    """The message and hint ("message (hint)") the library's add, the CLI's resolve and the wizard give."""
    library = ModelLibrary(tmp_path / "data")
    said = []
    for read in (library.add, library.resolve, inspect_single_file):
        with pytest.raises(ModelLoadError) as err:
            read(path)
        said.append(err.value.text)
    return said


def test_a_forge_bitsandbytes_nf4_file_is_named_with_what_to_quantize_instead(tmp_path):
    nf4 = header_only(tmp_path / "flux1-dev-bnb-nf4-v2.safetensors", forge_nf4_tensors())
    for said in _refusals(tmp_path, nf4):  # was: "a single-file FLUX.1 checkpoint (16-bit or FP8)", in the wizard
        # "0.0 M parameters in U8" and a search for a base that could never fit
        assert said.startswith("flux1-dev-bnb-nf4-v2.safetensors: a bitsandbytes NF4 FLUX.1 file (Forge); Nibble "
                               "Studio cannot read bitsandbytes 4-bit weights (quantize the 16-bit FLUX.1 model "
                               "(e.g. flux1-dev.safetensors"), said  # fmt: skip


def test_a_flux_file_of_other_packed_integer_weights_is_named(tmp_path):
    packed = {k: ("U8", (s[0] * s[-1] // 2,)) if len(s) == 2 else (d, s) for k, (d, s) in bfl_tensors().items()}
    path = header_only(tmp_path / "flux1-dev-packed.safetensors", packed)
    for said in _refusals(tmp_path, path):
        assert said.startswith("flux1-dev-packed.safetensors: a FLUX.1 file of packed quantized weights (U8 "
                               "tensors, made by another tool)"), said  # fmt: skip


@pytest.mark.parametrize("new_layout", [True, False], ids=["new layout", "old layout"])
def test_a_nunchaku_svdquant_file_is_named_not_a_lora_or_a_diffusers_transformer(tmp_path, new_layout):
    path = header_only(tmp_path / "svdq-int4-flux.1-dev.safetensors", nunchaku_tensors(new_layout))
    for said in _refusals(tmp_path, path):  # was: "a FLUX transformer in diffusers layout" / "a LoRA, not a model"
        assert said.startswith("svdq-int4-flux.1-dev.safetensors: a Nunchaku SVDQuant file; Nibble Studio reads its "
                               "own SVDQ format, not Nunchaku's (quantize the 16-bit FLUX.1 model"), said  # fmt: skip


# A LoRA's (down, up) factor names in each format the app reads (gpu/lora/formats.py), and Nunchaku's converted one
_LORA_KEYS = {
    "kohya": ("lora_unet_double_blocks_0_img_attn_proj.lora_down.weight",
              "lora_unet_double_blocks_0_img_attn_proj.lora_up.weight"),
    "diffusers": ("transformer.single_transformer_blocks.0.attn.to_k.lora_A.weight",
                  "transformer.single_transformer_blocks.0.attn.to_k.lora_B.weight"),
    "peft": ("base_model.model.transformer_blocks.0.attn.to_q.lora_A.weight",
             "base_model.model.transformer_blocks.0.attn.to_q.lora_B.weight"),
    "bfl": ("diffusion_model.double_blocks.0.img_attn.proj.lora_A.weight",
            "diffusion_model.double_blocks.0.img_attn.proj.lora_B.weight"),
    "xlabs": ("double_blocks.0.processor.qkv_lora1.down.weight", "double_blocks.0.processor.qkv_lora1.up.weight"),
    "nunchaku": ("transformer_blocks.0.qkv_proj.lora_down", "transformer_blocks.0.qkv_proj.lora_up"),
}  # fmt: skip


@pytest.mark.parametrize("fmt", list(_LORA_KEYS))
def test_loras_of_every_format_are_still_named_loras(tmp_path, fmt):
    """The Nunchaku test comes before the LoRA one and shares its .lora_down/.lora_up names: a LoRA has no
    packed .qweight. XLabs' names (no "lora_") were "not an SVDQ checkpoint"."""
    down, up = _LORA_KEYS[fmt]
    path = header_only(tmp_path / f"{fmt}.safetensors", {down: ("BF16", (4, 64)), up: ("BF16", (64, 4))})
    for said in _refusals(tmp_path, path):
        assert said.startswith(f"{fmt}.safetensors: a LoRA, not a model"), said


def test_our_own_svdq_file_is_still_a_model():
    assert inspect_model_path(DEMO_INT4).kind == "svdq"  # its .qweight/.smooth/.lora_down names are Nunchaku-like


def test_a_t5_shard_is_named_a_t5_text_encoder_not_a_vae(tmp_path):
    shard = header_only(tmp_path / "text_encoder_2" / "model-00002-of-00002.safetensors", t5_shard_tensors())
    for said in _refusals(tmp_path, shard):  # was: "a VAE, not a FLUX.1 transformer"
        assert said.startswith("model-00002-of-00002.safetensors: a T5 text-encoder file"), said


def test_a_vae_is_still_a_vae(tmp_path):
    vae = header_only(tmp_path / "ae.safetensors", {"encoder.conv_in.weight": ("F32", (4,)),
                                                    "decoder.conv_out.weight": ("F32", (4,))})  # fmt: skip
    for said in _refusals(tmp_path, vae):
        assert said.startswith("ae.safetensors: a VAE"), said


@pytest.mark.parametrize(("name", "content", "says"), [
    ("flux1-dev-Q4_K_S.gguf", b"GGUF\x03\x00\x00\x00" + bytes(100), "a GGUF file"),
    ("model.ckpt", b"PK\x03\x04" + bytes(100), "a PyTorch pickle file"),
    ("model.pt", b"\x80\x02" + bytes(100), "a PyTorch pickle file"),
], ids=["gguf", "ckpt", "pt"])  # fmt: skip
def test_gguf_and_pickle_files_are_named_in_the_library_as_the_wizard_names_them(tmp_path, name, content, says):
    path = tmp_path / name
    path.write_bytes(content)
    library = ModelLibrary(tmp_path / "data")
    with pytest.raises(ModelLoadError) as wizard:
        inspect_single_file(path)
    for read in (library.add, library.resolve):
        with pytest.raises(ModelLoadError) as err:  # was: "not a model (expected a diffusers folder or …)"
            read(path)
        assert str(err.value) == str(wizard.value) and str(err.value).startswith(f"{name}: {says}")


def test_an_svdq_file_named_in_upper_case_is_added(tmp_path):
    upper = tmp_path / "MINE.SAFETENSORS"
    shutil.copyfile(DEMO_INT4, upper)
    entry = ModelLibrary(tmp_path / "data").add(upper)  # was: "not a model (expected … .safetensors file)"
    assert (entry.name, entry.kind) == ("MINE", "svdq")


def _pipeline(tmp_path: Path, name: str = "FLUX.1-model") -> Path:
    folder = tmp_path / name
    shutil.copytree(DEMO, folder)
    return folder


def _edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_bytes()), **changes}))


def test_a_diffusers_folder_of_another_pipeline_is_named(tmp_path):
    sdxl = tmp_path / "sdxl-base"
    (sdxl / "unet").mkdir(parents=True)
    (sdxl / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline",
                                                      "unet": ["diffusers", "UNet2DConditionModel"]}))  # fmt: skip
    (sdxl / "unet" / "config.json").write_text("{}")
    library = ModelLibrary(tmp_path / "data")
    for read in (library.add, library.resolve):
        with pytest.raises(
            ModelLoadError, match="^sdxl-base: a StableDiffusionXLPipeline folder; Nibble Studio runs FLUX.1 pipelines$"
        ):  # was: "not a diffusers pipeline folder"
            read(sdxl)


@pytest.mark.parametrize(("pipeline", "in_channels"), [("FluxFillPipeline", 384), ("FluxControlPipeline", 128),
                                                       ("FluxPipeline", 384)])  # fmt: skip
def test_a_flux_pipeline_that_needs_an_input_image_is_refused(tmp_path, pipeline, in_channels):
    folder = _pipeline(tmp_path, "FLUX.1-Fill-dev")
    _edit_json(folder / "model_index.json", _class_name=pipeline)
    _edit_json(folder / "transformer" / "config.json", in_channels=in_channels)
    library = ModelLibrary(tmp_path / "data")
    for read in (library.add, library.resolve):
        with pytest.raises(ModelLoadError) as err:  # was: listed, and generating died at step 1 on a tensor size
            read(folder)
        assert "it needs an input image" in str(err.value) and "Nibble Studio does not offer" in str(err.value)
        assert str(err.value).startswith(f"FLUX.1-Fill-dev: a {pipeline} folder" if pipeline != "FluxPipeline" else
                                         "FLUX.1-Fill-dev: its transformer takes 384 input channels")  # fmt: skip


def test_a_pipeline_saved_quantized_by_bitsandbytes_is_refused(tmp_path):
    folder = _pipeline(tmp_path, "FLUX.1-dev-bnb-4bit")
    quant = {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}
    _edit_json(folder / "transformer" / "config.json", quantization_config=quant)
    with pytest.raises(ModelLoadError) as err:  # was: listed as bf16; generating: PackageNotFoundError
        ModelLibrary(tmp_path / "data").add(folder)
    assert re.match(r"FLUX.1-dev-bnb-4bit: its transformer is saved quantized \(bitsandbytes 4-bit\); Nibble Studio "
                    r"reads 16-bit weights only", str(err.value))  # fmt: skip
    assert "16-bit FLUX.1 pipeline" in err.value.hint


def test_the_demo_pipeline_is_still_a_model(tmp_path):
    entry = ModelLibrary(tmp_path / "data").add(_pipeline(tmp_path))
    assert (entry.name, entry.kind) == ("FLUX.1-model", "diffusers")


@pytest.mark.parametrize("command", ["generate", "quantize"])
def test_the_command_line_names_a_forge_nf4_and_a_nunchaku_file(tmp_path, capsys, command):
    from main import main

    nf4 = header_only(tmp_path / "flux1-dev-bnb-nf4.safetensors", forge_nf4_tensors())
    nunchaku = header_only(tmp_path / "svdq-int4-flux.1-dev.safetensors", nunchaku_tensors(new_layout=True))
    for path, what in ((nf4, "a bitsandbytes NF4 FLUX.1 file (Forge)"), (nunchaku, "a Nunchaku SVDQuant file")):
        args = ["generate", "x", "--model", str(path)] if command == "generate" else \
            ["quantize", str(path), "--out", str(tmp_path / "out.safetensors")]  # fmt: skip
        assert main(["--data-dir", str(tmp_path / "data"), *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {path.name}: {what}; Nibble Studio ") and "16-bit FLUX.1 model" in err, err
