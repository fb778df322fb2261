"""``gpu.bfl_layout.inspect_single_file``: what a picked .safetensors file is, from its header alone (the
quantize wizard calls it on the GUI thread, so it must not import torch)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from gpu.bfl_layout import inspect_single_file
from gpu.errors import ModelLoadError
from gpu.paths import resources_dir
from gpu.pipeline_checks import pipeline_misfit
from gpu.safetensors_header import PICKLE_PROBLEM
from tests.bfl_files import pipeline_copy, save_bfl_transformer

DEMO = resources_dir() / "models" / "demo"


def test_flux_single_files_are_described_in_both_layouts(tmp_path):
    bfl = inspect_single_file(save_bfl_transformer(DEMO, tmp_path / "a.safetensors"))
    vae = {"first_stage_model.decoder.conv_in.weight": torch.ones(4, 4)}  # ComfyUI's VAE beside it: not counted
    comfy = inspect_single_file(save_bfl_transformer(DEMO, tmp_path / "b.safetensors", "model.diffusion_model.", vae))
    assert (bfl.layout, comfy.layout) == ("bfl", "comfyui")
    assert bfl.config == comfy.config == {"in_channels": 64, "joint_attention_dim": 128, "pooled_projection_dim": 128,
                                          "guidance_embeds": False, "num_layers": 2, "num_single_layers": 4,
                                          "attention_head_dim": 128, "num_attention_heads": 2}
    assert bfl.params == comfy.params and bfl.dtype == "BF16"
    assert "ComfyUI" in comfy.summary and "2 double and 4 single blocks" in bfl.summary
    assert pipeline_misfit(bfl.config, DEMO) == []
    wide = pipeline_copy(DEMO, tmp_path / "wide", joint_attention_dim=4096)
    assert pipeline_misfit(bfl.config, wide) == ["joint_attention_dim 128 vs 4096 (text_encoder_2's d_model)"]


@pytest.mark.parametrize(("name", "tensors", "says"), [
    ("lora.safetensors", {"transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": 1}, "a LoRA"),
    ("sdxl.safetensors", {"model.diffusion_model.input_blocks.0.0.weight": 1}, "SDXL checkpoint"),
    ("sd3.safetensors", {"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight": 1}, "Stable Diffusion 3"),
    ("vae.safetensors", {"decoder.conv_in.weight": 1, "encoder.conv_in.weight": 1}, "a VAE"),
    ("t.safetensors", {"transformer_blocks.0.attn.to_q.weight": 1}, "diffusers layout"),
    ("x.safetensors", {"foo.weight": 1}, r"not a FLUX.1 checkpoint: no img_in / double_blocks tensors \(foo.weight\)"),
    ("x.SAFETENSORS", {"foo.weight": 1}, "x.SAFETENSORS: not a FLUX.1 checkpoint"),  # read, in any case
])  # fmt: skip
def test_other_files_are_named(tmp_path, name, tensors, says):
    path = tmp_path / name
    save_file({k: torch.ones(v) for k, v in tensors.items()}, str(path))
    with pytest.raises(ModelLoadError, match=says):
        inspect_single_file(path)


def test_quantized_pickled_truncated_and_incomplete_files_are_named(tmp_path):
    with pytest.raises(ModelLoadError, match="already a quantized .SVDQ. model"):
        inspect_single_file(resources_dir() / "models" / "demo-int4.safetensors")
    (tmp_path / "m.ckpt").write_bytes(b"pickle")
    with pytest.raises(ModelLoadError, match=re.escape(f"m.ckpt: {PICKLE_PROBLEM}")):  # as every reader says it
        inspect_single_file(tmp_path / "m.ckpt")
    single = save_bfl_transformer(DEMO, tmp_path / "f.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(single.read_bytes()[:-100])  # an interrupted download
    with pytest.raises(ModelLoadError, match="truncated"):
        inspect_single_file(cut)
    save_file({"img_in.weight": torch.ones(4, 64), "double_blocks.0.img_mod.lin.weight": torch.ones(4, 4)},
              str(single))  # fmt: skip
    with pytest.raises(ModelLoadError, match="not a complete FLUX.1 transformer .'txt_in.weight' is missing"):
        inspect_single_file(single)


def test_inspecting_imports_no_torch(tmp_path):
    single = save_bfl_transformer(DEMO, tmp_path / "f.safetensors")
    code = (f"import sys; from gpu.bfl_layout import inspect_single_file; inspect_single_file({str(single)!r}); "
            "assert 'torch' not in sys.modules, 'torch imported'")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_a_single_file_missing_a_norm_scale_is_named_incomplete_before_any_read(tmp_path):
    """A block's QK norm scales were mapped without checking the file had them: a file lacking one passed both
    completeness checks, and the run stopped when it read that block, saying the file "can no longer be read
    (File does not contain tensor …): it changed since the run started, or its disk fails"."""

    from gpu.streaming.source import bfl_file_source

    single = save_bfl_transformer(DEMO, tmp_path / "f.safetensors")
    tensors = load_file(single)
    del tensors["single_blocks.1.norm.key_norm.scale"]
    save_file(tensors, str(single))
    with pytest.raises(ModelLoadError, match="f.safetensors: the transformer lacks 1 tensors "
                                             r"\(single_transformer_blocks.1.attn.norm_k.weight\)") as err:  # fmt: skip
        bfl_file_source(single)
    assert err.value.hint == "the file is incomplete or another model"


@pytest.mark.parametrize("rows", [3, 5, 8])  # in hidden sizes (D = 256): FLUX.1 has 3 (q, k, v) + 4 (MLP input)
def test_a_single_blocks_linear1_of_other_rows_is_refused_naming_it(tmp_path, rows):
    """A single block's linear1 is split into q, k, v of D rows each and the MLP input of the rest: one of 3·D rows
    passed, its MLP input an empty slice, and the block failed to load hours into a run (one longer, its MLP
    input too wide)."""

    from gpu.streaming.source import bfl_file_source

    single = save_bfl_transformer(DEMO, tmp_path / "f.safetensors")
    tensors = load_file(single)
    for p in ("weight", "bias"):
        t = tensors[f"single_blocks.2.linear1.{p}"]
        tensors[f"single_blocks.2.linear1.{p}"] = torch.cat([t, t])[:rows * 256].contiguous()
    save_file(tensors, str(single))
    with pytest.raises(ModelLoadError, match=re.escape(
            f"f.safetensors: not a complete FLUX.1 transformer (single_blocks.2.linear1.weight has {rows * 256} rows "
            "where FLUX.1 has 1792 (attn.to_q + attn.to_k + attn.to_v + proj_mlp at hidden size 256))")):
        bfl_file_source(single)


def test_a_tensor_of_another_shape_is_refused_before_any_block_is_read(tmp_path):
    """Only missing tensors and the fused layers' rows were checked: a linear of other columns (or a non-fused one
    of other rows) passed, and its block failed to load hours into a run with PyTorch's size-mismatch error."""

    from gpu.streaming.source import bfl_file_source

    single = save_bfl_transformer(DEMO, tmp_path / "f.safetensors")
    tensors = load_file(single)
    tensors["double_blocks.1.img_attn.proj.weight"] = tensors["double_blocks.1.img_attn.proj.weight"][:, :200].clone()
    save_file(tensors, str(single))
    with pytest.raises(ModelLoadError, match=re.escape(
            "f.safetensors: double_blocks.1.img_attn.proj.weight is [256, 200] where a FLUX.1 transformer of these "
            "sizes has [256, 256]")) as err:  # fmt: skip
        bfl_file_source(single)
    assert err.value.hint == "the file is incomplete or another model"
    # a fused layer's columns too, said of the file's tensor (not of each module's rows of it); each tensor counted
    linear1 = tensors["single_blocks.0.linear1.weight"]
    tensors["single_blocks.0.linear1.weight"] = torch.cat([linear1, linear1], dim=1)
    save_file(tensors, str(single))
    with pytest.raises(ModelLoadError, match=re.escape(
            "f.safetensors: 2 tensors have other shapes than a FLUX.1 transformer of these sizes: "
            "double_blocks.1.img_attn.proj.weight is [256, 200] (not [256, 256]), single_blocks.0.linear1.weight is "
            "[1792, 512] (not [1792, 256])")):  # fmt: skip
        bfl_file_source(single)


def test_a_pipeline_whose_weights_are_not_its_configs_shapes_is_refused(tmp_path):
    """The same check on a diffusers folder: a transformer/config.json of other sizes than its weights (an edited
    or mixed-up folder) failed at the first block's load."""
    from gpu.streaming.source import diffusers_folder_source

    folder = pipeline_copy(DEMO, tmp_path / "mixed", pooled_projection_dim=64)
    with pytest.raises(ModelLoadError, match=re.escape(
            "time_text_embed.text_embedder.linear_1.weight is [256, 128] where a FLUX.1 transformer of these sizes "
            "has [256, 64]")):  # fmt: skip
        diffusers_folder_source(folder)
    diffusers_folder_source(DEMO)  # as it is, it fits


def test_a_single_file_fill_checkpoint_is_said_as_one_that_needs_an_input_image(tmp_path):
    """flux1-fill-dev.safetensors (384 input channels: the latents, the image and its mask; 64 out) picked as a
    quantize source was refused by the check of every tensor's shape as "incomplete or another model" (its final
    layer [64] where a config without out_channels has 384): the user downloaded 23 GB again. It is said as a Fill
    pipeline folder is (R61)."""
    from gpu.streaming.source import bfl_file_source

    single = save_bfl_transformer(DEMO, tmp_path / "flux1-fill-dev.safetensors")
    tensors = load_file(single)
    tensors["img_in.weight"] = torch.cat([tensors["img_in.weight"]] * 6, dim=1)  # 384 channels in, 64 out, as Fill
    save_file(tensors, str(single))
    for read in (inspect_single_file, bfl_file_source):  # the wizard's look at a picked file, and the run's
        with pytest.raises(ModelLoadError, match=re.escape(
                "flux1-fill-dev.safetensors: its transformer takes 384 input channels, not the 64 of text-to-image "
                "FLUX.1; it needs an input image (FLUX.1 Fill, Canny, Depth, Kontext, Redux)")) as err:  # fmt: skip
            read(single)
        # what the quantizer takes: the library's hint named SVDQ files, which the wizard's source page refuses (R65)
        assert err.value.hint.startswith("pick a text-to-image FLUX.1 transformer")
