"""The memory policy: which plan each GPU size gets, and that the plans' mechanics (encoders visiting the
device whole or block by block, detaching, VAE tiling) give exactly the embeddings and images of the plain
pipeline."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from gpu.runtime.memory_policy import (
    CPU_POLICY,
    DECODE_BYTES_PER_PIXEL,
    DENOISE_BYTES_PER_PIXEL,
    FLUX_DEV_INT4,
    RESERVE_BYTES,
    EncoderSize,
    GiB,
    ModelSizes,
    choose_policy,
    decode_bytes,
    detect_total_vram,
    work_bytes_per_pixel,
)


@pytest.mark.parametrize(
    ("gb", "name", "text_encoders", "by_block", "tile"),
    [
        (10, "encode-by-block", "gpu-while-encoding", True, 768),
        (12, "encode-by-block", "gpu-while-encoding", True, 1024),
        (16, "encode-by-block", "gpu-while-encoding", True, 1024),
        (24, "gpu-resident", "gpu", False, 1536),
        (80, "gpu-resident", "gpu", False, None),
    ],
)
def test_flux_int4_policy_per_gpu_size(gb, name, text_encoders, by_block, tile):
    policy = choose_policy(gb * GiB)
    assert (policy.name, policy.text_encoders, policy.stream_encoder_blocks, policy.vae_tile_size) == (
        name, text_encoders, by_block, tile,
    )  # fmt: skip
    assert policy.device == "cuda" and policy.fits
    assert policy.budget_bytes == gb * GiB - RESERVE_BYTES
    assert policy.peak_estimate_bytes <= policy.budget_bytes
    assert f"{gb}.0 GiB" in policy.description


def test_decode_is_planned_next_to_the_graph_held_denoising_memory():
    """The CUDA graph's pool keeps the denoising memory through the VAE decode: an 8 GB card holds the 4-bit
    FLUX.1 weights and a tiled decode, but not both next to that memory, and the plan says so."""
    sizes = FLUX_DEV_INT4
    denoise = DENOISE_BYTES_PER_PIXEL * 1024 * 1024
    policy = choose_policy(8 * GiB)
    assert sizes.core + decode_bytes(512) <= policy.budget_bytes < sizes.core + denoise + decode_bytes(512)
    assert policy.name == "over-budget" and not policy.fits
    assert "run out of memory" in policy.description
    ten = choose_policy(10 * GiB)
    assert ten.peak_estimate_bytes == sizes.core + denoise + decode_bytes(768) <= ten.budget_bytes


def test_16gb_laptop_policy_keeps_transformer_and_tiles_above_1024():
    policy = choose_policy(16 * GiB)
    assert policy.text_encoders == "gpu-while-encoding"  # T5-XXL + CLIP visit the GPU only to encode
    assert not policy.tiles_vae(1024, 1024)
    assert policy.tiles_vae(1024, 1088) and policy.tiles_vae(2048, 2048)
    assert "Transformer" in policy.description and "one block at a time" in policy.description
    # a whole T5-XXL next to the transformer would not fit the plan: 6.2 + 8.9 GiB + workspace > 15.25 GiB
    whole = FLUX_DEV_INT4.core + FLUX_DEV_INT4.text_encoders[1].total
    assert whole > policy.budget_bytes - GiB // 8


def test_no_gpu_is_the_cpu_policy():
    assert choose_policy(None) is CPU_POLICY
    assert choose_policy(None, FLUX_DEV_INT4).text_encoders == "cpu"
    assert CPU_POLICY.device == "cpu" and CPU_POLICY.vae_tile_size is None
    assert not CPU_POLICY.tiles_vae(2048, 2048)
    assert CPU_POLICY.label.startswith("Memory plan: No CUDA GPU")
    if not torch.cuda.is_available():
        assert detect_total_vram() is None
    assert detect_total_vram("cpu") is None


def test_detected_vram_honours_the_per_process_fraction(monkeypatch):
    """What the 16 GB simulation relies on: an 80 GiB card capped at 0.2 plans as 16 GiB."""

    class Props:
        total_memory = 80 * GiB

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Props())
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda index: 0.2, raising=False)
    assert detect_total_vram() == detect_total_vram("cuda:0") == int(80 * GiB * 0.2)
    assert detect_total_vram("cpu") is None
    assert choose_policy(detect_total_vram()).name == choose_policy(16 * GiB).name
    monkeypatch.setattr(torch.cuda, "get_per_process_memory_fraction", lambda index: 1.0, raising=False)
    assert detect_total_vram() == 80 * GiB


def test_encoders_move_closer_to_the_gpu_as_vram_grows():
    order = {"cpu": 0, "gpu-while-encoding": 1, "gpu": 2}
    for sizes in (FLUX_DEV_INT4,):
        places = [order[choose_policy(gb * GiB // 2, sizes).text_encoders] for gb in range(8, 200)]
        assert places == sorted(places)
        # where the plan fits from 14 GB up, native 1024x1024 images are never tiled, whatever stays resident
        policies = [choose_policy(gb * GiB // 2, sizes) for gb in range(28, 200)]
        assert not any(p.tiles_vae(1024, 1024) for p in policies if p.fits)


def test_whole_encoder_visit_when_it_fits_but_residency_does_not():
    """A mid-size model: the biggest encoder fits next to the transformer, all of them at once do not."""
    sizes = ModelSizes(transformer=4 * GiB, text_encoders=(EncoderSize(3 * GiB, GiB // 2),) * 2, vae=GiB // 4)
    policy = choose_policy(10 * GiB, sizes)
    assert (policy.name, policy.text_encoders, policy.stream_encoder_blocks) == (
        "encode-then-offload", "gpu-while-encoding", False,
    )  # fmt: skip
    assert choose_policy(16 * GiB, sizes).name == "gpu-resident"


@pytest.mark.parametrize("gb", [8, 16])
def test_a_gpu_plan_scales_the_working_memory_to_the_models_widths(tmp_path, monkeypatch, gb):
    """The GPU plan took FLUX.1's working memory a pixel for every model (only the CPU plan was scaled): the demo
    model, a transformer 256 wide (FLUX.1's 3,072) and a decoder of 32 channels (FLUX.1's 128), was planned FLUX.1's
    denoising and decode memory. Its plan on an 8 or 16 GB card counts its own, as its configs say."""
    import gpu.runtime.memory_policy as memory_policy
    from gpu.generation.service import GenerationService
    from gpu.library import ModelLibrary
    from gpu.pipeline_config import config_json

    monkeypatch.setattr(memory_policy, "detect_total_vram", lambda device=None: gb * GiB)
    library = ModelLibrary(tmp_path)
    base = library.resolve("demo").path
    transformer, vae = config_json(base / "transformer"), config_json(base / "vae")
    width = transformer["num_attention_heads"] * transformer["attention_head_dim"]
    denoise = DENOISE_BYTES_PER_PIXEL * width // (24 * 128)
    decode = DECODE_BYTES_PER_PIXEL * max(vae["block_out_channels"][:2]) // 256
    assert (width, denoise, decode) == (256, 77, 608)
    for name in ("demo", "demo-int4"):  # a folder's configs, and the config an SVDQ file records
        policy = GenerationService(library, device=torch.device("cpu")).describe(name).memory_policy
        d = policy.details
        weights = (d["transformer_gib"] + d["vae_gib"] + d["text_encoders_gib"]) * GiB
        assert policy.name == "gpu-resident" and d["denoise_gib"] * GiB == denoise * 128 * 128, name
        assert policy.peak_estimate_bytes == pytest.approx(weights + (denoise + decode) * 128 * 128, abs=64), name
    # the tiles follow the decoder: FLUX.1-dev's tiles above 1536 on a 24 GB card, one 4 times narrower none
    assert choose_policy(24 * GiB).vae_tile_size == 1536
    assert choose_policy(24 * GiB, replace(FLUX_DEV_INT4, decoder_width=64)).vae_tile_size is None


@pytest.mark.parametrize("channels", [[128, 256, 512, 512], [64, 256, 512, 512], [32, 256, 512, 512]])
def test_the_decode_is_planned_by_the_widest_full_resolution_channels(channels):
    """The decode memory was scaled by ``block_out_channels[0]`` alone, but the decoder's last block works on maps
    the block before it upsampled to full resolution in ``[1]`` channels: a decode's peak is the same for each of
    these (1,536 bytes a pixel measured, random weights at 128x128), and [64, 256, ...] was planned half FLUX.1's
    figure (1,216 of 2,432), [32, 256, ...] a quarter. Each is planned FLUX.1's own; FLUX.1's stays exactly it."""
    from gpu.generation.memory import widths

    sizes = replace(FLUX_DEV_INT4, **widths({}, {"block_out_channels": channels}))
    assert work_bytes_per_pixel(sizes)[1] == DECODE_BYTES_PER_PIXEL == work_bytes_per_pixel(FLUX_DEV_INT4)[1]


def test_flux_constants_match_meta_builds():
    """FLUX_DEV_INT4 is what the real configs weigh (meta device: no memory)."""
    from gpu.bench import random_text_encoders as rte
    from gpu.bench.flux_random import FLUX_DEV_CONFIG, build_quantized_flux
    from gpu.generation.memory import encoder_size, module_bytes

    transformer = build_quantized_flux(FLUX_DEV_CONFIG, "meta", rank=32)
    assert module_bytes(transformer) == FLUX_DEV_INT4.transformer
    assert encoder_size(rte.build_clip_text(rte.CLIP_L_CONFIG, "meta")) == FLUX_DEV_INT4.text_encoders[0]
    assert encoder_size(rte.build_t5_encoder(rte.T5_XXL_CONFIG, "meta")) == FLUX_DEV_INT4.text_encoders[1]
    assert module_bytes(rte.build_flux_vae(rte.FLUX_VAE_CONFIG, "meta")) == FLUX_DEV_INT4.vae


# -- the mechanics, on the shipped demo pipeline (CPU) ----------------------------------------------------------


@pytest.fixture(scope="module")
def demo_pipe():
    from diffusers import FluxPipeline

    from gpu.generation.pipeline_loader import quiet_libraries
    from gpu.paths import resources_dir

    quiet_libraries()
    pipe = FluxPipeline.from_pretrained(resources_dir() / "models" / "demo", dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _visiting_policy(by_block: bool):
    return replace(choose_policy(16 * GiB), text_encoders="gpu-while-encoding", stream_encoder_blocks=by_block)


@pytest.mark.parametrize("by_block", [False, True])
def test_visiting_encoders_give_the_pipeline_embeddings_and_leave_originals(demo_pipe, by_block):
    from gpu.generation.memory import block_list, encode_prompt

    pipe = demo_pipe
    prompt = "a small red star in the top left on a blue background"
    with torch.inference_mode():
        ref_embeds, ref_pooled, _ = pipe.encode_prompt(prompt, prompt, device=torch.device("cpu"),
                                                       max_sequence_length=32)  # fmt: skip
    originals = {n: dict(getattr(pipe, n).named_parameters()) for n in ("text_encoder", "text_encoder_2")}
    t5_blocks = block_list(pipe.text_encoder_2)
    seen = []  # per T5 block forward: (its weights are copies, the embedding is a copy)

    def spy(module, args):
        # on the block's first layer: runs after the block's own pre-hook has swapped the copies in
        original = originals["text_encoder_2"].values()
        seen.append((all(all(w is not p for p in original) for w in module.parameters()),
                     all(w is not p for p in original for w in pipe.text_encoder_2.shared.parameters())))  # fmt: skip

    hooks = [b.layer[0].register_forward_pre_hook(spy) for b in t5_blocks]
    try:
        with torch.inference_mode():
            embeds, pooled = encode_prompt(pipe, _visiting_policy(by_block), torch.device("cpu"), prompt, 32)
    finally:
        for h in hooks:
            h.remove()
    assert torch.equal(embeds, ref_embeds) and torch.equal(pooled, ref_pooled)
    assert seen == [(True, True)] * len(t5_blocks)
    for name, params in originals.items():  # the original tensors are back, unchanged objects
        assert dict(getattr(pipe, name).named_parameters()) == params
    for block in t5_blocks:  # no hook of ours is left behind
        assert not block._forward_pre_hooks and not block._forward_hooks


def test_out_of_memory_while_visiting_falls_back_to_the_originals(demo_pipe):
    from gpu.generation.memory import block_list, encode_prompt

    pipe = demo_pipe
    prompt = "a blue ring"
    originals = dict(pipe.text_encoder_2.named_parameters())
    with torch.inference_mode():
        ref, _, _ = pipe.encode_prompt(prompt, prompt, device=torch.device("cpu"), max_sequence_length=32)
    second = block_list(pipe.text_encoder_2)[1]

    def oom_on_copies(module, args):  # on the second block's first layer, while the block visits
        if all(p is not originals[f"encoder.block.1.layer.0.{n}"] for n, p in module.named_parameters()):
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    hook = second.layer[0].register_forward_pre_hook(oom_on_copies)
    try:
        with torch.inference_mode():
            embeds, _ = encode_prompt(pipe, _visiting_policy(True), torch.device("cpu"), prompt, 32)
    finally:
        hook.remove()
    assert torch.equal(embeds, ref)  # encoded again with the originals
    assert dict(pipe.text_encoder_2.named_parameters()) == originals
    assert not second._forward_pre_hooks and not second._forward_hooks


def test_encoders_detached_restores_without_touching_the_config(demo_pipe):
    from gpu.generation.memory import encoders_detached

    pipe = demo_pipe
    clip, t5, config = pipe.text_encoder, pipe.text_encoder_2, dict(pipe.config)
    with encoders_detached(pipe):
        assert pipe.text_encoder is None and pipe.text_encoder_2 is None
        assert pipe._execution_device == torch.device("cpu")
    assert pipe.text_encoder is clip and pipe.text_encoder_2 is t5 and dict(pipe.config) == config
    with pytest.raises(RuntimeError), encoders_detached(pipe):
        raise RuntimeError("boom")
    assert pipe.text_encoder is clip


def test_configure_vae_tiles_per_policy(demo_pipe):
    from gpu.generation.memory import configure_vae

    vae = demo_pipe.vae
    configure_vae(demo_pipe, choose_policy(16 * GiB))
    assert vae.use_tiling and vae.tile_sample_min_size == 1024
    assert vae.tile_latent_min_size == 1024 // demo_pipe.vae_scale_factor
    configure_vae(demo_pipe, choose_policy(80 * GiB))
    assert not vae.use_tiling
    configure_vae(demo_pipe, CPU_POLICY)
    assert not vae.use_tiling


def test_tiled_decode_is_close_to_untiled(demo_pipe):
    """64-pixel tiles on the demo VAE (128x128 images, 16x16 latents): the decode really tiles and blends into an
    image that still follows the plain one (tiles this small relative to the VAE's receptive field differ a lot;
    FLUX's 1024-pixel tiles far less)."""
    from gpu.generation.memory import configure_vae

    pipe = demo_pipe
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(1, pipe.vae.config.latent_channels, 16, 16, generator=g)
    with torch.inference_mode():
        configure_vae(pipe, CPU_POLICY)
        plain = pipe.vae.decode(latents).sample
        configure_vae(pipe, replace(choose_policy(16 * GiB), vae_tile_size=64))
        tiled = pipe.vae.decode(latents).sample
        configure_vae(pipe, CPU_POLICY)
    assert tiled.shape == plain.shape == (1, 3, 128, 128)
    assert not torch.equal(tiled, plain)  # it really tiled
    assert torch.isfinite(tiled).all()
    assert float(torch.corrcoef(torch.stack([tiled.flatten(), plain.flatten()]))[0, 1]) > 0.6  # measured 0.75


def test_service_under_a_visiting_policy_makes_the_same_image(tmp_path):
    """The whole service path: a forced by-block visiting plan gives the identical image to the CPU plan, and
    the PNG settings name the plan."""
    from gpu.generation.request import GenerationRequest
    from gpu.generation.service import GenerationService
    from gpu.library import ModelLibrary

    service = GenerationService(ModelLibrary(tmp_path))
    request = GenerationRequest("a large green ring in the center", seed=5, steps=3)
    first = service.generate(request)[0]
    assert first.settings["memory_policy"] == service.loaded.policy.name
    if not torch.cuda.is_available():  # on the GPU machine the demo gets a GPU plan
        assert first.settings["memory_policy"] == "cpu"
        assert service.describe("demo").memory_policy.name == "cpu" and service.loaded.policy.fits
    service.loaded.policy = _visiting_policy(True)
    service.loaded.prompt_cache.clear()
    second = service.generate(request)[0]
    assert second.settings["memory_policy"] == "encode-by-block"
    assert np.array_equal(np.asarray(first.image), np.asarray(second.image))
    assert len(service.loaded.prompt_cache) == 2  # prompt and the (empty) negative prompt of true CFG


def test_predicted_sizes_from_headers_match_the_loaded_pipeline():
    from diffusers import FluxPipeline

    from gpu.generation.memory import pipeline_sizes, predicted_sizes
    from gpu.model_files import inspect_model_path
    from gpu.paths import resources_dir

    folder = resources_dir() / "models" / "demo"
    predicted = predicted_sizes(inspect_model_path(folder), folder)
    loaded = pipeline_sizes(FluxPipeline.from_pretrained(folder, dtype=torch.bfloat16), torch.device("cpu"))
    # headers hold the weights; loaded modules also carry non-persistent buffers (CLIP's position ids, 256 B)
    assert (predicted.transformer, predicted.vae) == (loaded.transformer, loaded.vae)
    for p_enc, l_enc in zip(predicted.text_encoders, loaded.text_encoders, strict=True):
        assert 0 <= l_enc.total - p_enc.total <= 1024 and 0 <= l_enc.streamed - p_enc.streamed <= 1024
        assert p_enc.streamed < p_enc.total


def test_transformer_bytes_count_lora_branches_and_the_originals_kept():
    """A rank-16 LoRA on every W4A4 layer of a rank-32 model: each layer's branch grows to 48 columns and keeps
    its 32-column original for removal, so the transformer holds (K + N) x 48 more 16-bit values per layer."""
    from gpu.bench.flux_random import FLUX_TINY_CONFIG, build_quantized_flux, random_lora_deltas
    from gpu.generation.memory import module_bytes, transformer_bytes
    from gpu.lora.apply import apply_deltas, restore

    model = build_quantized_flux(FLUX_TINY_CONFIG, "cpu", rank=32, seed=0)
    before = transformer_bytes(model)
    assert before == module_bytes(model)
    deltas = random_lora_deltas(model, rank=16, seed=1)
    apply_deltas(deltas)
    grown = sum((d.module.in_features + d.module.out_features) * 48 * 2 for d in deltas.values())
    assert transformer_bytes(model) - before == grown
    assert module_bytes(model) - before < grown  # parameters and buffers alone miss the originals
    restore(model)
    assert transformer_bytes(model) == before


def test_the_memory_plan_is_chosen_again_when_loras_change(monkeypatch, tmp_path):
    """On a GPU plan, applying a LoRA re-plans with the transformer's new size (removing it gives the first plan
    back)."""
    from gpu.demo.train_lora import OUT as SHIPPED_LORA
    from gpu.generation import memory
    from gpu.generation.service import GenerationService
    from gpu.library import ModelLibrary

    monkeypatch.setattr(memory, "detect_total_vram", lambda device=None: 12 * GiB)  # plan as for a 12 GB card
    service = GenerationService(ModelLibrary(tmp_path))
    service.load("demo-int4")
    loaded = service.loaded
    lora = [(str(SHIPPED_LORA), 1.0)]
    first = loaded.policy
    assert first.name == "gpu-resident" and first.total_vram_bytes == 12 * GiB
    base_bytes = memory.transformer_bytes(loaded.pipe.transformer)
    service.apply_loras(loaded, lora)
    with_lora = loaded.policy
    assert with_lora != first and with_lora.name == first.name  # new estimates, the same placement
    assert with_lora.details["transformer_gib"] * GiB > base_bytes and not memory.replan(loaded)
    service.apply_loras(loaded, [])
    assert loaded.policy == first

    # a set that fails half-way (out of memory after some layers) leaves no LoRA on, and the plan says so
    import gpu.lora.manager as manager_module

    apply_all = manager_module.apply_deltas

    def out_of_memory_half_way(deltas: dict) -> None:
        apply_all(dict(list(deltas.items())[: len(deltas) // 2]))
        raise torch.OutOfMemoryError("out of memory half-way (test)")

    service.apply_loras(loaded, lora)
    monkeypatch.setattr(manager_module, "apply_deltas", out_of_memory_half_way)
    with pytest.raises(torch.OutOfMemoryError):
        service.apply_loras(loaded, [(lora[0][0], 0.5)])
    assert memory.transformer_bytes(loaded.pipe.transformer) == base_bytes
    assert loaded.policy == first
