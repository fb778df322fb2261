"""Fused FLUX execution (gpu.models.flux_fused) against the unfused SVDQ model on the CPU reference path."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from diffusers_rounding import DiffusersRoundingOps
from test_flux_random import flux_inputs

from gpu.bench.flux_random import FLUX_TINY_CONFIG, build_quantized_flux, random_lora_deltas
from gpu.kernels.rank_limits import RankLimits
from gpu.models import flux_fused
from gpu.models.flux_fused import (
    FusedFluxTransformer2DModel,
    fuse_flux_transformer,
    merge_refusal,
    merge_svdq_linears,
    unfuse_flux_transformer,
    unmerge_svdq_linear,
    use_ops,
)
from gpu.modules.layer_spec import LayerSpec
from gpu.modules.svdq_linear import SVDQLinear


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def _run(model, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs, return_dict=False)[0]


@pytest.fixture(scope="module")
def tiny_pair():
    """(unfused, fused) tiny quantized FLUX with the same weights (rank 32: every group merges)."""
    unfused = build_quantized_flux(FLUX_TINY_CONFIG, "cpu", rank=32, seed=5)
    fused = fuse_flux_transformer(copy.deepcopy(unfused))
    return unfused, fused


def test_fused_structure_and_report(tiny_pair):
    _, fused = tiny_pair
    assert isinstance(fused, FusedFluxTransformer2DModel)
    attn = fused.transformer_blocks[0].attn
    assert attn.to_qkv.out_features == 3 * 256 and attn.to_qkv.spec.rank == 96
    assert attn.to_added_qkv.spec.rank == 96 and not hasattr(attn, "to_q") and not hasattr(attn, "add_k_proj")
    single = fused.single_transformer_blocks[1]
    assert single.proj_qkv_mlp.out_features == 3 * 256 + 4 * 256 and single.proj_qkv_mlp.spec.rank == 128
    assert not hasattr(single, "proj_mlp") and not hasattr(single.attn, "to_v")
    report = flux_fused.fusion_report
    assert report is fused.fusion_report or report == fused.fusion_report
    assert report["merged"] == 2 * 2 + 2 and report["kept_separate"] == 0 and report["ops"] == "gpu.modules.fused_ops"


def test_all_modulations_are_computed_up_front(tiny_pair, monkeypatch):
    """forward_fused asks for every adaLN linear's output in one call (one grouped GEMV launch on the GPU),
    and the blocks use those outputs instead of computing their own."""
    _, fused = tiny_pair
    ops = flux_fused.ops_for(fused)
    calls, inside, outside = [], [], []
    real_many, real_one = ops.w4a16_gemv_many, ops.w4a16_gemv

    def many(x, layers, cache=None):
        calls.append(len(layers))
        inside.append(True)
        try:
            return real_many(x, layers, cache)
        finally:
            inside.pop()

    def one(x, layer):
        if not inside:
            outside.append(layer)
        return real_one(x, layer)

    monkeypatch.setattr(ops, "w4a16_gemv_many", many)
    monkeypatch.setattr(ops, "w4a16_gemv", one)  # the CPU fallback of many() goes through it too
    fused.cuda_graphs = False
    _run(fused, flux_inputs(FLUX_TINY_CONFIG, seed=2))
    n_double, n_single = len(fused.transformer_blocks), len(fused.single_transformer_blocks)
    norm_out = int(isinstance(fused.norm_out.linear, SVDQLinear))  # the random builder keeps it in 16 bits
    assert calls == [2 * n_double + n_single + norm_out] and not outside


def test_merging_is_exact_with_diffusers_rounding(tiny_pair):
    """With ops that round like diffusers' modules, fused == unfused bit for bit: merging changes nothing."""
    unfused, fused = tiny_pair
    inputs = flux_inputs(FLUX_TINY_CONFIG, seed=1)
    with use_ops(fused, DiffusersRoundingOps):
        assert torch.equal(_run(fused, inputs), _run(unfused, inputs))


def test_ops_given_to_one_model_stay_with_it(tiny_pair: tuple[torch.nn.Module, FusedFluxTransformer2DModel]) -> None:
    """``use_ops`` changes the ops of the model it is given while the with block runs, and of no other model: one
    running meanwhile in another thread keeps the fused ops (a process-wide override gave it diffusers' rounding)."""
    import threading

    unfused, fused = tiny_pair
    other = fuse_flux_transformer(copy.deepcopy(unfused))
    inputs = flux_inputs(FLUX_TINY_CONFIG, seed=1)
    want = _run(other, inputs)
    assert not torch.equal(want, _run(unfused, inputs))  # the two op sets give different bits: the check can tell
    got: dict[str, torch.Tensor] = {}
    with use_ops(fused, DiffusersRoundingOps):
        meanwhile = threading.Thread(target=lambda: got.setdefault("other", _run(other, inputs)))
        meanwhile.start()
        meanwhile.join()
        assert torch.equal(_run(fused, inputs), _run(unfused, inputs))
    assert torch.equal(got["other"], want)
    assert torch.equal(_run(fused, inputs), want)  # the fused ops again after the block


def test_a_second_use_ops_on_one_model_is_refused_and_none_stays(
    tiny_pair: tuple[torch.nn.Module, FusedFluxTransformer2DModel],
) -> None:
    """Two ``use_ops`` on one model (two threads) that ended out of order put the first one's ops back on the model
    and its blocks for good: the model then ran the tests' rounding ops after every block had ended."""
    from gpu.models.flux_fused import ops_for

    _, fused = tiny_pair
    first, second = use_ops(fused, DiffusersRoundingOps), use_ops(fused, object())
    first.__enter__()
    with pytest.raises(RuntimeError, match="one use_ops per model"):
        second.__enter__()
    first.__exit__(None, None, None)
    assert all(ops_for(m) is not DiffusersRoundingOps
               for m in (fused, *fused.transformer_blocks, *fused.single_transformer_blocks))  # fmt: skip


def test_fused_model_matches_unfused_with_fused_ops(tiny_pair):
    """The real fused ops keep fp32 between ops (diffusers rounds after each): within 1e-2 of the unfused model."""
    unfused, fused = tiny_pair
    for seed, (side, txt) in enumerate([(8, 16), (6, 24)]):  # two resolutions / text lengths
        inputs = flux_inputs(FLUX_TINY_CONFIG, img_side=side, txt=txt, seed=seed)
        y_fused, y_ref = _run(fused, inputs), _run(unfused, inputs)
        assert y_fused.shape == y_ref.shape == (1, side * side, 64) and y_fused.dtype == torch.bfloat16
        assert _rel(y_fused, y_ref) <= 1e-2


def test_fused_blocks_keep_diffusers_block_interface(tiny_pair):
    """The diffusers loop (used for ControlNet residuals) drives the fused blocks through their stock signature."""
    unfused, fused = tiny_pair
    inputs = flux_inputs(FLUX_TINY_CONFIG, seed=2)
    with torch.no_grad():
        ref = unfused(**inputs, return_dict=False)[0]
        zeros = [torch.zeros(1, 64, 256, dtype=torch.bfloat16)]
        via_loop = fused(**inputs, controlnet_block_samples=zeros, return_dict=True).sample
    assert _rel(via_loop, ref) <= 1e-2


def test_rank_limit_and_smoothing_keep_layers_separate():
    # rank 40 under a total limit of 128: 4 x 40 = 160 in single blocks -> Q/K/V merged there (120), proj_mlp separate
    limits = RankLimits(max_window=None, max_total=128)
    m = fuse_flux_transformer(build_quantized_flux(FLUX_TINY_CONFIG, "cpu", rank=40, seed=0), limits)
    single = m.single_transformer_blocks[0]
    assert single.attn.to_qkv.spec.rank == 120 and isinstance(single.proj_mlp, SVDQLinear)
    assert any("proj_mlp kept separate" in r and "160" in r for r in m.fusion_report["reasons"])
    # per-layer smoothing (a calibrated checkpoint): nothing merges, the model still runs
    unfused = build_quantized_flux(FLUX_TINY_CONFIG, "cpu", rank=32, seed=0, shared_smoothing=False)
    fused = fuse_flux_transformer(copy.deepcopy(unfused))
    assert fused.fusion_report["merged"] == 0
    assert fused.fusion_report["reasons"] == {"smoothing vectors differ (each layer was calibrated on its own)": 6}
    inputs = flux_inputs(FLUX_TINY_CONFIG, seed=3)
    assert _rel(_run(fused, inputs), _run(unfused, inputs)) <= 1e-2


def _random_layers(shapes: list[tuple[int, int, bool]], seed: int) -> list[SVDQLinear]:
    """fp32 SVDQ layers of 128 inputs, (out_features, rank, bias) each, random codes and tensors, one smoothing."""
    torch.manual_seed(seed)
    layers = []
    for n, r, bias in shapes:
        lay = SVDQLinear(128, n, LayerSpec("svdquant", "int4", "int4", r, True), bias=bias, dtype=torch.float32)
        for name, t in lay.named_buffers():
            if name == "qweight":
                t.copy_(torch.randint(0, 256, t.shape, dtype=torch.uint8))
            elif name != "smooth":
                t.normal_(0, 0.05)
        layers.append(lay)
    return layers


def test_merge_svdq_linears_block_diagonal_low_rank():
    layers = _random_layers([(128, 16, True), (64, 0, False), (192, 32, True)], seed=0)
    assert merge_refusal(layers) is None and merge_refusal(layers, RankLimits(None, max_total=47)) is not None
    merged = merge_svdq_linears(layers)
    assert merged.spec.rank == 48 and merged.out_features == 384 and merged.lora_up.shape == (384, 48)
    assert torch.count_nonzero(merged.lora_up[:128, 16:]) == 0 and torch.count_nonzero(merged.lora_up[128:192]) == 0
    assert torch.equal(merged.bias[128:192], torch.zeros(64))
    x = torch.randn(5, 128)
    torch.testing.assert_close(merged(x), torch.cat([m(x) for m in layers], -1), rtol=1e-5, atol=1e-5)
    layers[1].smooth.mul_(1.01)
    assert "smoothing" in merge_refusal(layers)


def test_merged_layer_keeps_the_canonical_offload_mark():
    """A loader-marked model's merged QKV(+MLP) layers must offload their canonical codes after packing too."""
    from gpu.kernels.repack import OFFLOAD_ATTR, enable_canonical_offload, offload_canonical

    spec = LayerSpec("svdquant", "int4", "int4", 16, True)
    layers = [SVDQLinear(64, n, spec, bias=False, dtype=torch.float32) for n in (64, 128)]
    assert not getattr(merge_svdq_linears(layers), OFFLOAD_ATTR, False)  # bare layers keep both copies
    holder = torch.nn.ModuleList(layers)
    enable_canonical_offload(holder)
    merged = merge_svdq_linears(layers)
    assert getattr(merged, OFFLOAD_ATTR) is True
    offload_canonical(merged)  # a no-op on the CPU, but must accept the merged layer
    assert merged.qweight.shape == (192, 32)


def test_stock_flux_pipeline_runs_with_fused_demo_int4():
    """The shipped demo-int4 (per-layer smoothing: nothing merges) through a stock FluxPipeline, fused vs not."""
    from gpu.generation.pipeline_loader import load_pipeline
    from gpu.library import ModelLibrary

    library = ModelLibrary()
    loaded = load_pipeline(library.resolve("demo-int4"), library, torch.device("cpu"))
    pipe = loaded.pipe
    kw = {"prompt": "a small red star in the top left on a blue background", "height": 128, "width": 128,
          "num_inference_steps": 4, "guidance_scale": 5.0, "max_sequence_length": 32, "output_type": "np"}  # fmt: skip
    ref = pipe(**kw, generator=torch.Generator().manual_seed(7)).images[0]
    fuse_flux_transformer(pipe.transformer)
    assert isinstance(pipe.transformer, FusedFluxTransformer2DModel)
    report = pipe.transformer.fusion_report
    assert report["merged"] == 0 and sum(report["reasons"].values()) == 2 * 2 + 4
    out = pipe(**kw, generator=torch.Generator().manual_seed(7)).images[0]
    assert out.shape == ref.shape == (128, 128, 3)
    mse = float(np.mean((out.astype(np.float64) - ref.astype(np.float64)) ** 2))
    psnr = 10 * np.log10(1.0 / max(mse, 1e-12))
    assert psnr > 60, psnr  # same model and seed, fp32 on CPU: only fp32 rounding order differs


def test_graph_cache_logic_with_a_stand_in_graph(tiny_pair, monkeypatch):
    """The capture/replay bookkeeping (static inputs, one graph per signature, re-capture after a weight swap,
    outputs copied) with a stand-in for torch.cuda.CUDAGraph that re-runs the eager forward on replay."""
    from types import SimpleNamespace

    _, fused = tiny_pair
    captures = []

    def fake_capture(self, inputs, device):
        static = {n: None if t is None else t.clone() for n, t in inputs.items()}
        out = self.forward_fused(**static)
        if not captures:  # like a first use's repack moving a canonical buffer to host memory
            assert "_cuda_graph_weights" not in self.__dict__  # no weight list may pin it on the GPU meanwhile
            layer = self.transformer_blocks[0].attn.to_qkv
            layer._buffers["wscales"] = layer.wscales.clone()
        graph = SimpleNamespace(replay=lambda: out.copy_(self.forward_fused(**static)))
        captures.append(static["hidden_states"].shape)
        return SimpleNamespace(graph=graph, static=static, out=out)

    monkeypatch.setattr(FusedFluxTransformer2DModel, "_capture", fake_capture)
    fused.reset_cuda_graphs()
    a, b = flux_inputs(FLUX_TINY_CONFIG, seed=1), flux_inputs(FLUX_TINY_CONFIG, seed=2)
    c = flux_inputs(FLUX_TINY_CONFIG, img_side=6, txt=24, seed=3)
    with torch.no_grad():
        eager = {k: fused.forward_fused(**v) for k, v in {"a": a, "b": b, "c": c}.items()}
        ya = fused._graph_forward(a)
        yb = fused._graph_forward(b)  # same signature: replay with b copied into the static buffers
        # the buffer moved during the first capture must not count as a weight swap (no second capture)
        assert len(captures) == 1 and torch.equal(ya, eager["a"]) and torch.equal(yb, eager["b"])
        assert not torch.equal(ya, yb)  # the first output was a copy, not the static buffer
        assert torch.equal(fused._graph_forward(c), eager["c"]) and len(captures) == 2
        assert len(fused._cuda_graph_cache) == 1  # max_cuda_graphs = 1: the 8x8 graph was dropped
        old = fused.proj_out.bias
        fused.proj_out.bias = torch.nn.Parameter(old.detach() + 1, requires_grad=False)
        try:
            y_swapped = fused._graph_forward(c)  # weight swapped: captured again
            assert len(captures) == 3 and torch.equal(y_swapped, fused.forward_fused(**c))
        finally:
            fused.proj_out.bias = old
    fused.reset_cuda_graphs()


def test_unfuse_restores_the_original_model_exactly():
    """fuse -> unfuse gives back diffusers' classes, the original layer names and bit-identical buffers and
    outputs (what the app relies on before applying a LoRA that targets Q, K and V separately)."""
    original = build_quantized_flux(FLUX_TINY_CONFIG, "cpu", rank=32, seed=7)
    model = unfuse_flux_transformer(fuse_flux_transformer(copy.deepcopy(original)))
    assert type(model) is type(original) and not hasattr(model, "fusion_report")
    for a, b in zip(model.transformer_blocks + model.single_transformer_blocks,
                    original.transformer_blocks + original.single_transformer_blocks, strict=True):  # fmt: skip
        assert type(a) is type(b)
    got, want = dict(model.named_buffers()), dict(original.named_buffers())
    assert got.keys() == want.keys()
    for name, t in want.items():
        assert torch.equal(got[name], t), name
    assert dict(model.named_parameters()).keys() == dict(original.named_parameters()).keys()
    inputs = flux_inputs(FLUX_TINY_CONFIG, seed=4)
    assert torch.equal(_run(model, inputs), _run(original, inputs))
    assert unfuse_flux_transformer(original) is original  # unfused already: untouched


def test_unmerge_is_the_inverse_of_merge():
    layers = _random_layers([(64, 16, True), (128, 0, False), (64, 32, True)], seed=1)
    back = unmerge_svdq_linear(merge_svdq_linears(layers))
    for a, b in zip(back, layers, strict=True):
        assert a.spec == b.spec and (a.bias is None) == (b.bias is None)
        assert dict(a.named_buffers()).keys() == dict(b.named_buffers()).keys()
        for name, t in b.named_buffers():
            assert torch.equal(getattr(a, name), t), name


def test_a_lora_rides_into_the_merged_layers_and_comes_off_after_a_split():
    """LoRA on the named layers, then fusion: the merged layers carry it (fused == unfused with the LoRA, bit for
    bit with diffusers' rounding); unfusing hands the originals back, so removing it restores the model exactly,
    and changing LoRAs on the fused model is refused instead of half-done."""
    from gpu.lora.apply import apply_deltas, restore

    original = build_quantized_flux(FLUX_TINY_CONFIG, "cpu", rank=16, seed=9)
    with_lora = copy.deepcopy(original)
    apply_deltas(random_lora_deltas(with_lora, rank=16, seed=3))
    inputs = flux_inputs(FLUX_TINY_CONFIG, seed=6)
    y_lora, y_base = _run(with_lora, inputs), _run(original, inputs)
    assert _rel(y_lora, y_base) > 0.05  # the LoRA does something

    fused = fuse_flux_transformer(copy.deepcopy(with_lora))
    # rank 16 + LoRA 16 per member: Q/K/V 96 and single blocks' Q/K/V + MLP 128 still fit the kernels' limit
    assert fused.fusion_report["merged"] == 6 and fused.fusion_report["kept_separate"] == 0
    assert fused.single_transformer_blocks[0].proj_qkv_mlp.spec.rank == 128
    with use_ops(fused, DiffusersRoundingOps):
        assert torch.equal(_run(fused, inputs), y_lora)
    with pytest.raises(RuntimeError, match="unfuse"):
        restore(fused)

    back = unfuse_flux_transformer(fused)
    assert restore(back) == len(random_lora_deltas(original, rank=16, seed=3))
    got, want = dict(back.named_buffers()), dict(original.named_buffers())
    assert got.keys() == want.keys()
    for name, t in want.items():
        assert torch.equal(got[name], t), name
    assert torch.equal(_run(back, inputs), y_base)


def test_lora_ranks_above_the_limit_keep_members_separate_but_fused():
    """Rank 32 + LoRA 16 = 48 per member. The kernels' own limits merge every group (each tile's window is one
    member's 48 columns); under a limit of 128 in all (Q/K/V: 144) every group stays separate, and the blocks
    still run fused (fused ops, the model's classes) and agree with the unfused model with the LoRA."""
    from gpu.lora.apply import apply_deltas

    model = build_quantized_flux(FLUX_TINY_CONFIG, "cpu", rank=32, seed=2)
    apply_deltas(random_lora_deltas(model, rank=16, seed=4))
    assert fuse_flux_transformer(copy.deepcopy(model)).fusion_report["merged"] == 6
    fused = fuse_flux_transformer(copy.deepcopy(model), RankLimits(max_window=None, max_total=128))
    report = fused.fusion_report
    assert report["merged"] == 0 and report["kept_separate"] == 6
    assert any("rank 144 > 128" in reason for reason in report["reasons"])
    assert report["rank_limit"] == "128 in all"
    assert isinstance(fused, FusedFluxTransformer2DModel) and hasattr(fused.transformer_blocks[0].attn, "to_q")
    inputs = flux_inputs(FLUX_TINY_CONFIG, seed=8)
    with use_ops(fused, DiffusersRoundingOps):
        assert torch.equal(_run(fused, inputs), _run(model, inputs))


def test_one_fused_model_in_two_threads_at_once(tiny_pair, monkeypatch):
    """The adaLN outputs computed up front belong to the forward that computed them: two threads inside the
    same model at the same time (held together at the first block) each get their own timestep's result."""
    import threading

    _, fused = tiny_pair
    a = flux_inputs(FLUX_TINY_CONFIG, seed=11)
    b = {**flux_inputs(FLUX_TINY_CONFIG, seed=11), "timestep": a["timestep"] * 0.25}
    want_a, want_b = _run(fused, a), _run(fused, b)
    assert not torch.equal(want_a, want_b)
    both_inside = threading.Barrier(2, timeout=60)
    block = fused.transformer_blocks[0]
    forward = block.forward

    def held(*args, **kwargs):
        both_inside.wait()  # each thread has pushed its modulations before either block runs
        return forward(*args, **kwargs)

    monkeypatch.setattr(block, "forward", held)
    got = {}
    pairs = (("a", a), ("b", b))
    threads = [threading.Thread(target=lambda k=k, x=x: got.__setitem__(k, _run(fused, x))) for k, x in pairs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.equal(got["a"], want_a) and torch.equal(got["b"], want_b)


def test_execution_path_names_why_groups_stayed_unmerged():
    """Under a total limit of 128 at rank 40: a rank-16 LoRA on block 0's to_q alone keeps that Q/K/V group apart
    (40 + 16, padded to 64, + 40 + 40 = 144); the single blocks merge Q/K/V with a note (proj_mlp kept separate).
    The execution path names the unmerged group's reason, even though the merged groups' notes are more frequent."""
    from types import SimpleNamespace

    from gpu.generation.pipeline_loader import execution_path
    from gpu.lora.apply import apply_deltas

    model = build_quantized_flux(FLUX_TINY_CONFIG, "cpu", rank=40, seed=0)
    deltas = random_lora_deltas(model, rank=16, seed=1)
    apply_deltas({"transformer_blocks.0.attn.to_q": deltas["transformer_blocks.0.attn.to_q"]})
    fused = fuse_flux_transformer(model, RankLimits(max_window=None, max_total=128))
    report = fused.fusion_report
    assert report["kept_separate"] == 1
    unmerged = "merged branch: ranks 64+40+40: rank 144 > 128"
    assert report["reasons"][unmerged] == 1 and max(report["reasons"].values()) == 2  # the notes on single blocks
    path = execution_path(
        SimpleNamespace(pipe=SimpleNamespace(transformer=fused), device=torch.device("cpu"), dtype=torch.bfloat16)
    )
    note = f"fused FLUX blocks (1 of {report['merged'] + 1} Q/K/V groups unmerged: {unmerged})"
    assert str(path).endswith(f"; {note}"), path  # the whole text, as the PNG metadata has it
    assert path.summary == "PyTorch reference on CPU" and path.notes == (note,)  # the note kept out of the summary


def test_two_threads_entering_use_ops_together_let_one_in(
    tiny_pair: tuple[torch.nn.Module, FusedFluxTransformer2DModel], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The one-per-model check and the setting of the ops were apart (the model's CUDA graphs were dropped between
    them): two threads both got in, and the first to leave took the second one's ops away while it ran."""
    import threading
    import time

    _, fused = tiny_pair
    real = fused.reset_cuda_graphs
    monkeypatch.setattr(fused, "reset_cuda_graphs", lambda: (time.sleep(0.2), real()))  # a thread switch in there
    entered: list[str] = []
    refused: list[str] = []

    def run(name: str, ops: object) -> None:
        try:
            with use_ops(fused, ops):
                entered.append(name)
                time.sleep(0.3)
        except RuntimeError:
            refused.append(name)

    threads = [threading.Thread(target=run, args=("A", DiffusersRoundingOps)),
               threading.Thread(target=run, args=("B", object()))]
    threads[0].start()
    time.sleep(0.05)  # A is between its check and its with block
    threads[1].start()
    for t in threads:
        t.join()
    assert entered == ["A"] and refused == ["B"]
