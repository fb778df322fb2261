"""Whether a LoRA fits a model is decided once (``gpu.lora.fit``), from shapes: the engine refuses a LoRA for another
model from its file's header, before any of its tensors is read (a LoRA for FLUX.1-dev, hundreds of MB, was read
whole and converted to float32 before the demo model refused it), and the table of a model's layers the app judges
LoRAs against, read from its files' headers, is the one the engine judges by on the loaded model."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from lora_files import flux_dev_lora
from safetensors.torch import save_file

from gpu.lora import LoraError, manager_for
from gpu.lora.apply import model_layers
from gpu.lora.fit import applied_parts, layout_targets, misfit
from gpu.lora.formats import check_lora_file
from gpu.lora.keys import has_text_part
from gpu.lora.layer_files import file_layers
from gpu.model_files import inspect_model_path
from gpu.paths import resources_dir

DEMO = resources_dir() / "models" / "demo"
SHIPPED = resources_dir() / "loras" / "monochrome-style.safetensors"
TO_Q = "transformer.transformer_blocks.0.attn.to_q"


@pytest.fixture(scope="module")
def demo():
    """The demo model's transformer, 16-bit (LoRAs merge into its weights)."""
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel.from_pretrained(DEMO, subfolder="transformer", torch_dtype=torch.float32).eval()


def _weights(model) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters()}


def test_a_lora_for_flux_dev_is_refused_from_its_header_without_reading_it(demo, tmp_path, tensor_reads):
    """A 3072-wide LoRA of FLUX.1-dev's 57 blocks on the 256-wide demo model (2 + 4 blocks): refused naming both
    widths and how much of it does not fit, its 200 MB never read; the LoRA on before stays on, the model as it was."""
    dev = flux_dev_lora(tmp_path / "dev style.safetensors", rank=32)
    assert dev.stat().st_size > 200e6
    manager = manager_for(demo)
    manager.set([(SHIPPED, 1.0)])
    before = _weights(demo)
    tensor_reads.clear()
    for ask in (manager.is_applied, manager.set):  # the engine asks is_applied before set, and either reads
        with pytest.raises(LoraError) as err:
            ask([(SHIPPED, 1.0), (dev, 0.8)])
        assert err.value.text == (
            "dev style.safetensors: made for a model with 3072-wide layers; this model's are 256 wide "
            "(lora_unet_double_blocks_0_img_attn_qkv expects 3072 inputs but transformer_blocks.0.attn.to_q has "
            "256); 227 more of its 228 layers do not fit either (use the LoRA with the model it was made for, or a "
            "LoRA made for this model)")  # fmt: skip
    assert tensor_reads == []  # the shipped LoRA was read before; the other, never
    assert [a.file.name for a in manager.active] == ["monochrome-style"]
    assert all(p is before[n] for n, p in demo.named_parameters())
    manager.set([])


def test_the_size_is_judged_before_the_values(demo, tmp_path, tensor_reads):
    """A wrong-size LoRA whose values are NaN is refused for its size (its data never read, so never found NaN);
    one of the right size with NaN values is still read, and refused for them."""
    nan = float("nan")
    wide = _to_q(tmp_path / "wide.safetensors", 3072, nan)
    with pytest.raises(LoraError, match=r"^wide.safetensors: made for a model with 3072-wide layers; this model's "
                                        r"are 256 wide \(transformer.transformer_blocks.0.attn.to_q expects 3072 "
                                        r"inputs but transformer_blocks.0.attn.to_q has 256\)$"):  # fmt: skip
        manager_for(demo).set([(wide, 1.0)])
    assert tensor_reads == []
    fits = _to_q(tmp_path / "fits.safetensors", 256, nan)
    with pytest.raises(LoraError, match="fits.safetensors: .* contains NaN or infinite values"):
        manager_for(demo).set([(fits, 1.0)])
    assert tensor_reads == ["fits.safetensors"]


def test_outputs_missing_blocks_and_parts_at_strength_zero(demo, tmp_path):
    """The rule's other cases, as the app's LoRA panel and the engine both say them: outputs that do not add up,
    blocks the model has not (when all else fits), and a part at strength 0, which is not judged (nor applied)."""
    layers = model_layers({"transformer": demo})
    narrow = tmp_path / "narrow.safetensors"
    save_file({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": torch.zeros(4, 256),
               "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight": torch.zeros(512, 4),
               "lora_unet_double_blocks_5_img_attn_proj.lora_down.weight": torch.zeros(4, 256),
               "lora_unet_double_blocks_5_img_attn_proj.lora_up.weight": torch.zeros(256, 4)}, narrow)  # fmt: skip
    targets = layout_targets(check_lora_file(narrow)[1])
    wrong = misfit("narrow.safetensors", targets, layers, applied_parts(1.0, None))
    assert wrong is not None and wrong.text == (
        "made for a model with 512-wide layers; this model's are 768 wide (lora_unet_double_blocks_0_img_attn_qkv "
        "has 512 outputs but transformer_blocks.0.attn.to_q + transformer_blocks.0.attn.to_k + "
        "transformer_blocks.0.attn.to_v have 256 + 256 + 256); 1 more of its 2 layers do not fit either")  # fmt: skip
    deep = misfit("deep.safetensors", targets[1:], layers, applied_parts(1.0, None))
    assert deep is not None and deep.message == (
        "deep.safetensors: lora_unet_double_blocks_5_img_attn_proj targets transformer_blocks.5.attn.to_out.0, "
        "which this model does not have")  # fmt: skip
    assert deep.text.startswith("made for a FLUX model with more blocks (") and "more blocks" in deep.hint
    assert misfit("narrow.safetensors", targets, layers, applied_parts(0.0, 1.0)) is None
    manager_for(demo).set([(narrow, 0.0)])  # at strength 0: read, left out, nothing refused
    assert manager_for(demo).active == []


def test_the_app_judges_by_the_layers_the_engine_judges_by(tmp_path, tiny_flux, tiny_flux_int4):
    """``file_layers`` (a model's files' headers: what ``ModelInfo.lora_layers`` gives the app) has every linear the
    loaded model has, by the same names and shapes (``model_layers``): a 16-bit pipeline folder with its text
    encoders, and an SVDQ file, whose quantized layers' codes are packed (their sizes come from its metadata)."""
    from diffusers import FluxPipeline

    from gpu.checkpoint.skeleton import load_quantized_transformer

    pipe = FluxPipeline.from_pretrained(DEMO, torch_dtype=torch.float32)
    loaded = model_layers({n: getattr(pipe, n) for n in ("transformer", "text_encoder", "text_encoder_2")})
    from_files = file_layers(inspect_model_path(DEMO), DEMO)
    assert set(from_files) == set(loaded) == {"transformer", "text_encoder", "text_encoder_2"}
    for component, layers in loaded.items():
        assert len(layers) > 10 and layers.items() <= from_files[component].items(), component

    quantized, _ = load_quantized_transformer(tiny_flux_int4, runtime_dtype=torch.float32)
    from_svdq = file_layers(inspect_model_path(tiny_flux_int4), tiny_flux)
    assert from_svdq["transformer"] == model_layers({"transformer": quantized})["transformer"]
    assert set(from_svdq) == {"transformer", "text_encoder", "text_encoder_2"}
    assert set(file_layers(inspect_model_path(tiny_flux_int4), None)) == {"transformer"}  # its base not found


def test_a_fused_model_is_judged_by_its_members(tmp_path):
    """The engine reads a LoRA's header while the model still runs fused (``service.apply_loras`` asks
    ``is_applied`` before it splits the merged layers): a merged layer stands for the layers LoRAs name."""
    from gpu.bench.flux_random import FLUX_TINY_CONFIG, build_quantized_flux
    from gpu.models.flux_fused import fuse_flux_transformer

    unfused = build_quantized_flux(FLUX_TINY_CONFIG, "cpu", rank=32, seed=5)
    fused = fuse_flux_transformer(copy.deepcopy(unfused))
    assert not hasattr(fused.transformer_blocks[0].attn, "to_q")
    assert model_layers({"transformer": fused}) == model_layers({"transformer": unfused})
    fits, wide = _to_q(tmp_path / "fits.safetensors", 256), _to_q(tmp_path / "wide.safetensors", 3072)
    assert not manager_for(fused).is_applied([(fits, 1.0)])  # read: to_q, inside to_qkv now, takes 256 inputs
    with pytest.raises(LoraError, match="wide.safetensors: made for a model with 3072-wide layers; this model's are "
                                        "256 wide"):  # fmt: skip
        manager_for(fused).is_applied([(wide, 1.0)])


def _to_q(path: Path, width: int, value: float = 0.0) -> Path:
    """A one-layer diffusers LoRA on the first block's ``to_q`` of a ``width``-wide FLUX, its factors ``value``."""
    save_file({f"{TO_Q}.lora_A.weight": torch.full((4, width), value),
               f"{TO_Q}.lora_B.weight": torch.full((width, 4), value)}, path)  # fmt: skip
    return path


def test_a_job_refuses_a_lora_for_another_size_before_it_loads_the_model(demo, tmp_path, tensor_reads):
    """A job with a LoRA the model cannot take loaded the model first (a minute for FLUX.1, and the command line's
    whole wait) and only then read the LoRA's header. It is refused from the headers before the load now, with
    the loaded model's words; the same LoRA at strength 0 is not looked at, and the job runs."""
    from gpu.generation.request import GenerationRequest
    from gpu.generation.service import GenerationService

    dev = flux_dev_lora(tmp_path / "dev style.safetensors", rank=4)
    service = GenerationService(device=torch.device("cpu"))
    with pytest.raises(LoraError, match="dev style.safetensors: made for a model with 3072-wide layers; this "
                                        "model's are 256 wide") as refused:  # fmt: skip
        service.generate(GenerationRequest("a red circle", model="demo", steps=1, loras=[(str(dev), 0.8)]))
    assert service.loaded is None and tensor_reads == []
    manager = manager_for(copy.deepcopy(demo))
    with pytest.raises(LoraError) as loaded_says:
        manager.set([(str(dev), 0.8)])
    assert (str(refused.value), refused.value.hint) == (str(loaded_says.value), loaded_says.value.hint)
    images = service.generate(GenerationRequest("a red circle", model="demo", steps=1, loras=[(str(dev), 0.0)]))
    assert len(images) == 1 and tensor_reads == []


def test_a_gone_lora_at_strength_zero_is_refused_before_the_model_loads(tmp_path):
    """(R58) The check before the load skipped a LoRA at strength 0 entirely, while applying it still refused a gone
    file: ``generate --lora "gone style.safetensors:0"`` was refused after the model loaded (a minute for FLUX.1)."""
    from gpu.generation.request import GenerationRequest
    from gpu.generation.service import GenerationService

    gone = tmp_path / "gone style.safetensors"
    service = GenerationService(device=torch.device("cpu"))
    with pytest.raises(LoraError, match="gone style"):  # at strength 1: before the load
        service.generate(GenerationRequest("a red circle", model="demo", steps=1, loras=[(str(gone), 1.0)]))
    assert service.loaded is None
    with pytest.raises(LoraError, match="gone style"):
        service.generate(GenerationRequest("a red circle", model="demo", steps=1, loras=[(str(gone), 0.0)]))
    assert service.loaded is None


def test_a_transformer_only_lora_at_strength_zero_is_not_read_whatever_its_text_strength(demo, tensor_reads):
    """(R58) A LoRA without a CLIP/T5 part asked at strength 0 with a text strength of its own (``--lora
    style.safetensors:0:1``, or a row restored with one) changes nothing, yet it was read whole at every job, only to
    be skipped: its text strength counted its text parts, which it has not, as applied."""
    assert not has_text_part(check_lora_file(SHIPPED)[1].components)  # the transformer only
    manager = manager_for(copy.deepcopy(demo))
    assert manager.set([(SHIPPED, 0.0)]) == [] and tensor_reads == []
    assert manager.set([(SHIPPED, 0.0, 1.0)]) == [] and tensor_reads == []
    assert manager.set([(SHIPPED, 1.0, 0.0)]) != [] and tensor_reads == ["monochrome-style.safetensors"]


def test_a_lora_that_does_not_fit_is_put_in_words_once_not_for_each_of_its_layers(tmp_path, monkeypatch):
    """The LoRA panel judges every listed file at each model picked, on the GUI thread: the words of a misfit were
    made for each of a FLUX.1-dev LoRA's 228 layers (0.5 ms a file, a second for 2,000 rows), to name one."""
    import gpu.lora.fit

    dev = flux_dev_lora(tmp_path / "dev.safetensors", rank=4)
    layers = file_layers(inspect_model_path(DEMO), DEMO)
    worded, real = [], gpu.lora.fit._target_misfit
    monkeypatch.setattr(gpu.lora.fit, "_target_misfit", lambda *args: worded.append(args[1]) or real(*args))
    wrong = misfit(dev.name, layout_targets(check_lora_file(dev)[1]), layers, applied_parts(1.0, None))
    assert wrong is not None and "227 more of its 228 layers do not fit either" in wrong.message
    assert len(worded) == 1 and worded[0].key == "lora_unet_double_blocks_0_img_attn_qkv"
