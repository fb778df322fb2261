"""Device tests of the fused FLUX model's CUDA-graph path (tiny config; skipped without CUDA + pycuda)."""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch

from gpu.bench.flux import kernel_numerics, make_inputs, reference_linears, rel_error
from gpu.bench.flux_random import FLUX_TINY_CONFIG, build_quantized_flux
from gpu.kernels.launch import launch_stream
from gpu.models.flux_fused import FusedFluxTransformer2DModel, fuse_flux_transformer

pytestmark = pytest.mark.gpu


def _run(model, inputs) -> torch.Tensor:
    with torch.inference_mode():
        return model(**inputs, return_dict=False)[0]


@pytest.fixture(scope="module")
def models():
    dev = torch.device("cuda")
    unfused = build_quantized_flux(FLUX_TINY_CONFIG, dev, rank=32, seed=0)
    fused = fuse_flux_transformer(copy.deepcopy(unfused))
    assert isinstance(fused, FusedFluxTransformer2DModel) and fused.fusion_report["merged"] == 6
    return unfused, fused


def test_graph_replay_equals_eager_and_follows_new_inputs(models):
    _, fused = models
    dev = torch.device("cuda")
    a = make_inputs(FLUX_TINY_CONFIG, 8, 16, dev, seed=1)
    b = make_inputs(FLUX_TINY_CONFIG, 8, 16, dev, seed=2)
    fused.cuda_graphs = False
    eager_a, eager_b = _run(fused, a), _run(fused, b)
    fused.cuda_graphs = True
    fused.reset_cuda_graphs()
    graph_a = _run(fused, a)  # captures
    graph_b = _run(fused, b)  # replays with b copied into the static buffers
    assert len(fused._cuda_graph_cache) == 1
    assert torch.equal(graph_a, eager_a) and torch.equal(graph_b, eager_b)
    assert not torch.equal(graph_a, graph_b)  # outputs are copies, not the static buffer
    # a new resolution re-captures (one graph kept), and the old one still gives the right answer after
    c = make_inputs(FLUX_TINY_CONFIG, 6, 24, dev, seed=3)
    fused.cuda_graphs = False
    eager_c = _run(fused, c)
    fused.cuda_graphs = True
    assert torch.equal(_run(fused, c), eager_c) and len(fused._cuda_graph_cache) == 1
    assert torch.equal(_run(fused, a), eager_a)


def test_fused_graph_matches_unfused_reference(models):
    unfused, fused = models
    dev = torch.device("cuda")
    inputs = make_inputs(FLUX_TINY_CONFIG, 8, 16, dev, seed=4)
    act_format, _ = kernel_numerics(unfused, dev)
    with reference_linears(unfused, act_format):
        ref = _run(unfused, inputs)
    y = _run(fused, inputs)
    assert torch.isfinite(y).all()
    assert rel_error(y, ref) <= 2e-2, rel_error(y, ref)


def test_swapped_weights_are_recaptured(models):
    _, fused = models
    dev = torch.device("cuda")
    inputs = make_inputs(FLUX_TINY_CONFIG, 8, 16, dev, seed=5)
    fused.cuda_graphs = True
    before = _run(fused, inputs)
    old = fused.proj_out.weight
    fused.proj_out.weight = torch.nn.Parameter(old.detach() * 2, requires_grad=False)  # what a LoRA merge does
    try:
        after = _run(fused, inputs)
        fused.cuda_graphs = False
        assert torch.equal(after, _run(fused, inputs)) and not torch.equal(after, before)
    finally:
        fused.proj_out.weight = old
        fused.cuda_graphs = True


@pytest.mark.parametrize("on_kernel_stream", [False, True], ids=["torch-stream", "launch_stream"])
def test_text_lane_changes_no_bit(models, monkeypatch, on_kernel_stream):
    """The double blocks' text stream on the side stream gives the same bits as everything on one stream,
    eagerly and replayed from a graph, whether torch runs on its own stream or on the kernels' (the app)."""
    _, fused = models
    dev = torch.device("cuda")
    inputs = make_inputs(FLUX_TINY_CONFIG, 8, 16, dev, seed=6)
    with launch_stream(dev) if on_kernel_stream else contextlib.nullcontext():
        fused.cuda_graphs = False
        monkeypatch.setenv("NIBBLE_TEXT_LANE", "0")
        serial = _run(fused, inputs)
        monkeypatch.setenv("NIBBLE_TEXT_LANE", "1")
        lanes = [_run(fused, inputs) for _ in range(3)]
        fused.cuda_graphs = True
        fused.reset_cuda_graphs()
        graph = [_run(fused, inputs) for _ in range(3)]  # capture, then replays
    assert torch.isfinite(serial).all()
    for y in lanes + graph:
        assert torch.equal(y, serial)


def test_a_lora_on_the_fused_model_runs_on_the_kernels_and_comes_off_exactly():
    """A LoRA applied the app's way (split, apply to the named layers, fuse again) rides in the merged layers on
    the kernels and the graph: the fused model with the LoRA agrees with the unfused one with the LoRA, every
    W4A4 layer ran on a kernel, and removing the LoRA after a split gives the model's own output back bit for bit."""
    from gpu.bench.flux_random import random_lora_deltas
    from gpu.lora.apply import apply_deltas, restore
    from gpu.models.flux_fused import unfuse_flux_transformer

    dev = torch.device("cuda")
    model = build_quantized_flux(FLUX_TINY_CONFIG, dev, rank=16, seed=3)
    inputs = make_inputs(FLUX_TINY_CONFIG, 8, 16, dev, seed=7)
    fuse_flux_transformer(model)
    base = _run(model, inputs)  # fused + graph, no LoRA

    unfuse_flux_transformer(model)
    apply_deltas(random_lora_deltas(model, rank=16, seed=1))
    unfused_lora = _run(model, inputs)
    fuse_flux_transformer(model)
    assert model.fusion_report["merged"] == 6  # 16 + 16 per member: every group merges
    fused_lora = _run(model, inputs)
    paths = {m.last_path for m in model.modules() if getattr(m, "spec", None) is not None
             and m.spec.act_format is not None}  # fmt: skip
    assert paths and not any("reference" in p for p in paths), paths
    assert rel_error(fused_lora, unfused_lora) <= 2e-2, rel_error(fused_lora, unfused_lora)
    assert rel_error(fused_lora, base) > 5e-2  # the LoRA is on

    unfuse_flux_transformer(model)
    assert restore(model) > 0
    fuse_flux_transformer(model)
    assert torch.equal(_run(model, inputs), base)
