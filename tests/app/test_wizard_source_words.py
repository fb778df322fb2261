"""What the Quantize wizard's source page says of a source it cannot quantize, in the wizard's words (review R65):
a pipeline folder whose tensor has another shape, a FLUX.1 Fill file, a LoRA, an SDXL LoRA."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.header_files import edit_header

WEIGHTS = "transformer/diffusion_pytorch_model.safetensors"
WRONG = "transformer_blocks.1.attn.to_out.0.weight"


def _folder_with_a_wrong_shape(demo_model: Path, folder: Path) -> Path:
    """A copy of the demo pipeline whose transformer holds ``WRONG`` as [128, 512] (FLUX.1 of its sizes: [256, 256]),
    as a damaged or foreign download would: same bytes, another shape in the header."""
    shutil.copytree(demo_model, folder)

    def reshape(header: dict) -> None:
        rows, cols = header[WRONG]["shape"]
        header[WRONG]["shape"] = [rows // 2, cols * 2]

    edited = folder.parent / "edited.safetensors"
    edit_header(folder / WEIGHTS, edited, reshape)
    shutil.move(edited, folder / WEIGHTS)
    return folder


def test_a_pipeline_folder_whose_tensor_has_another_shape_is_named_on_the_source_page(qtbot, window, demo_model,
                                                                                       tmp_path):  # fmt: skip
    """The engine names it before any work (``_check_shapes``), as the wizard names a single file's as it is
    picked; a folder passed ("Diffusers FLUX.1 pipeline folder, 2 double and 4 single blocks", Next enabled)
    and the run failed once started."""
    folder = _folder_with_a_wrong_shape(demo_model, tmp_path / "odd")
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.source_page.use_path(str(folder))
    state = wizard.source_state
    qtbot.waitUntil(lambda: WRONG in state.problem, timeout=30000)  # the engine's look, Next not held meanwhile
    assert not state.ready and not wizard.source_page.isComplete()


def _problem_of(path: Path) -> str:
    """What the wizard's source page says of the single file ``path`` picked as the source."""
    from app.quantize_source import QuantizeSource

    state = QuantizeSource([])
    state.choose(str(path))
    assert not state.ready
    return state.problem


def test_a_fill_file_is_not_told_to_pick_an_svdq_file_which_the_wizard_refuses(tmp_path):
    from tests.header_files import bfl_tensors, header_only

    tensors = bfl_tensors() | {"img_in.weight": ("BF16", (64, 384)),  # Fill: latents + masked image + mask
                               "double_blocks.0.img_attn.norm.query_norm.scale": ("BF16", (16,))}  # fmt: skip
    fill = _problem_of(header_only(tmp_path / "flux1-fill-dev.safetensors", tensors))
    assert "384 input channels" in fill
    svdq = _problem_of(Path(__file__).resolve().parents[2] / "resources" / "models" / "demo-int4.safetensors")
    assert "only a 16-bit model can be quantized" in svdq  # what the same page says of an SVDQ file
    assert "SVDQ" not in fill, fill


def test_a_lora_picked_as_the_source_is_not_told_a_command_line_option(tmp_path):
    from tests.lora_files import flux_dev_lora

    problem = _problem_of(flux_dev_lora(tmp_path / "lora.safetensors", rank=4))
    assert problem.startswith("lora.safetensors: a LoRA, not a model")
    assert "--" not in problem, problem  # the wizard speaks of its own buttons (test_wizard_quantize_memory)


def test_an_sdxl_lora_is_not_told_to_go_on_a_flux_model(tmp_path):
    from tests.lora_files import sdxl_like

    problem = _problem_of(sdxl_like(tmp_path / "sdxl-lora.safetensors"))  # lora_unet_down_blocks_…: SD's UNet
    assert "LoRA" in problem
    assert "FLUX.1 model" not in problem, problem
