"""The fused backend's import and refusal reasons, on any machine (no GPU, pycuda or nvcc needed)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from gpu.kernels import availability, backend
from gpu.kernels.repack import (
    act_fragments_to_codes,
    enable_canonical_offload,
    held_bytes_w4a4,
    held_bytes_w4a8f,
    repack_layer,
    repack_layer_w4a8f,
    repack_qweight,
)
from gpu.modules.layer_spec import LayerSpec
from gpu.modules.svdq_linear import SVDQLinear
from gpu.quant.packing import pack_int4


def _layer(spec: LayerSpec, k: int = 128, n: int = 64) -> SVDQLinear:
    return SVDQLinear(k, n, spec, dtype=torch.bfloat16)


def test_refusals_are_human_readable():
    w4a4 = LayerSpec("svdquant", "int4", "int4", 32, True)
    assert backend.refuses(_layer(w4a4), torch.device("cpu")) == "device is CPU, not a CUDA GPU"
    w4a16 = LayerSpec("rtn", "int4", None, 0, False)
    assert "INT4 W4A4 only" in backend.refuses(_layer(w4a16), torch.device("cpu"))
    assert "rank 1040 > 1024" in backend.refuses(_layer(LayerSpec("svdquant", "int4", "int4", 1040, True)),
                                                 torch.device("cpu"))
    layer = _layer(w4a4)
    y = layer(torch.randn(3, 128, dtype=torch.bfloat16))
    assert y.shape == (3, 64) and "PyTorch reference on CPU" in layer.last_path


def test_w4a16_layers_are_offered_to_the_gemv():
    """Dispatch asks the GEMV backend for W4A16 layers and reports why it cannot run here."""
    from gpu.runtime.dispatch import choose_path

    w4a16 = _layer(LayerSpec("rtn", "int4", None, 0, False))
    chosen, why = choose_path(w4a16, torch.device("cpu"))
    assert chosen is None and f"{backend.GEMV_NAME}: device is CPU, not a CUDA GPU" in why
    with_lora = _layer(LayerSpec("rtn", "int4", None, 16, False))  # a LoRA appended to a W4A16 layer
    assert "low-rank" in backend._gemv_refuses(with_lora, torch.device("cuda"))
    y = w4a16(torch.randn(2, 128, dtype=torch.bfloat16))
    assert y.shape == (2, 64) and w4a16.last_path.startswith("PyTorch reference on CPU")


def test_weight_fragment_layout_matches_mma_b_operand():
    """Each int32 of the repacked weight holds the 8 codes the m16n8k64 B fragment wants."""
    n, k = 136, 192
    codes = torch.randint(-7, 8, (n, k), dtype=torch.int8)
    frag = repack_qweight(pack_int4(codes), 192)
    nib = (frag.unsqueeze(-1) >> torch.arange(0, 32, 4, dtype=torch.int32)) & 0xF
    vals = torch.where(nib >= 8, nib - 16, nib)  # [N_pad/8, K/64, 32, 2, 8]
    for lane in (0, 5, 31):
        gid, tig = lane >> 2, lane & 3
        for reg in range(2):
            got = vals[:, :, lane, reg]  # [N_pad/8, K/64, 8]
            want = codes.view(n // 8, 8, k // 64, 64)[:, gid, :, 32 * reg + 8 * tig : 32 * reg + 8 * tig + 8]
            assert torch.equal(got[: n // 8].to(torch.int8), want)


def test_activation_fragment_inverse_roundtrip():
    m, k = 32, 128
    codes = torch.randint(-7, 8, (m, k), dtype=torch.int8)
    # forward layout, written independently of the inverse: word w of lane (gid, tig) in tile t, group g
    nibbles = (codes.to(torch.int32) & 0xF).view(m // 16, 2, 8, k // 64, 2, 4, 8)  # t, rh, gid, g, kh, tig, j
    words = (nibbles << (4 * torch.arange(8, dtype=torch.int32))).sum(-1, dtype=torch.int64)
    words = torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)
    act = words.permute(0, 3, 2, 5, 4, 1).reshape(m // 16, k // 64, 32, 4)  # t, g, gid, tig, kh, rh
    assert torch.equal(act_fragments_to_codes(act, m, k), codes)


def test_repack_cache_key_handles_inference_tensors():
    """Layers built under inference_mode (e.g. merged there by fuse_flux_transformer) have buffers without a
    version counter: the repack cache key must still be computable and must change when a buffer is swapped."""
    from gpu.kernels.repack import source_key

    with torch.inference_mode():
        layer = SVDQLinear(128, 64, LayerSpec("svdquant", "int4", "int4", 16, True), dtype=torch.bfloat16)
        layer.wscales = torch.ones_like(layer.wscales)
    key = source_key(layer)
    assert key == source_key(layer)
    with torch.inference_mode():
        layer.wscales = torch.ones_like(layer.wscales)
    assert source_key(layer) != key
    plain = _layer(LayerSpec("svdquant", "int4", "int4", 16, True))
    before = source_key(plain)
    plain.lora_up.add_(1)  # an in-place edit of an ordinary tensor is seen through its version counter
    assert source_key(plain) != before


def test_rank_windows_bound_the_nonzero_columns_of_each_tile():
    from gpu.kernels.repack import rank_windows

    up = torch.zeros(4 * 8, 64, dtype=torch.bfloat16)
    up[0:8, 0:16] = 1  # tile 0: columns 0-15
    up[8:16, 5:41] = 1  # tile 1: columns 5-40 -> the 16-aligned window 0-47
    up[20, 63] = -2  # tile 2: only the last column
    windows = rank_windows(up, tile=8)  # tile 3 stays zero
    assert windows.dtype == torch.int32
    assert windows.tolist() == [[0, 16], [0, 48], [48, 16], [0, 0]]


def test_largest_rank_window_of_merged_members_bounds_rank_windows():
    """From the members' sizes alone, the widest window ``rank_windows`` finds in the merged up projection
    (the FP8 path's refusal and the fusion decision rely on it: it must never be narrower)."""
    from gpu.kernels.repack import largest_rank_window, rank_windows

    gen = torch.Generator().manual_seed(0)
    cases = [[(128, 32), (256, 16), (200, 48), (136, 0)], [(3072, 48)] * 3, [(64, 16), (64, 32), (256, 0)],
             [(100, 16), (60, 16), (100, 32)], [(256, 0), (128, 0)]]  # fmt: skip
    for members in cases:
        n, r = sum(m[0] for m in members), sum(m[1] for m in members)
        up = torch.zeros((n + 127) // 128 * 128, max(r, 16))
        row = col = 0
        for mn, mr in members:
            up[row : row + mn, col : col + mr] = torch.randn(mn, mr, generator=gen)
            row, col = row + mn, col + mr
        want = int(rank_windows(up, tile=128)[:, 1].max())
        assert largest_rank_window(members, 128) == want, members


def test_rank_limits_of_each_path():
    """Both GEMMs walk only each tile's rank window; INT4 W4A4 bounds just the total (its prologue takes 128 rank
    columns per block, more blocks for more), the Hopper FP8 GEMM also a tile's window (staged whole in shared
    memory, <= 240). So a rank-32 layer with a rank-128 LoRA (160) runs fused on both, and a merged layer of
    LoRA-widened members (3 x 48 = 144) too; a merge that puts 256 columns in one 128-channel tile only on INT4.
    A wider window on one layer is still the FP8 path's, with its up projection beside the GEMM (and says so)."""
    from gpu.kernels.backend import INT4, W4A8, _w4a8f_path_note
    from gpu.kernels.rank_limits import INT4_LIMITS, W4A8F_LIMITS
    from gpu.kernels.repack import repack_layer_w4a8f
    from gpu.models.flux_fused import merge_refusal, merge_svdq_linears

    def layers(n: int, rank: int, count: int) -> list[SVDQLinear]:
        out = [SVDQLinear(128, n, LayerSpec("svdquant", "int4", "int4", rank, True), dtype=torch.bfloat16)
               for _ in range(count)]  # fmt: skip
        for m in out:
            m.smooth.fill_(1.0)
        return out

    members = layers(256, 48, 3)
    assert merge_refusal(members, INT4_LIMITS) is None and merge_refusal(members, W4A8F_LIMITS) is None
    merged = merge_svdq_linears(members)
    assert merged.spec.rank == 144 and backend.low_rank_members(merged) == [(256, 48)] * 3
    assert INT4.shape_refusal(merged) is None and W4A8.shape_refusal(merged) is None
    (lora_128,) = layers(256, 160, 1)  # rank 32 + a rank-128 LoRA
    assert INT4.shape_refusal(lora_128) is None and W4A8.shape_refusal(lora_128) is None
    (too_wide,) = layers(256, 256, 1)
    assert INT4.shape_refusal(too_wide) is None
    assert W4A8.shape_refusal(too_wide) is None
    for m in (too_wide, lora_128):
        m.lora_up.fill_(1.0)  # the packed windows come from the up projection's nonzero columns
    assert _w4a8f_path_note(repack_layer_w4a8f(too_wide, torch.device("cpu"))) == (
        "low-rank up projection on cuBLAS beside the GEMM: 256 rank columns in one 128-channel tile > 240")
    assert _w4a8f_path_note(repack_layer_w4a8f(lora_128, torch.device("cpu"))) is None
    # predicted from the sizes alone, for the execution path shown before a layer has run
    assert W4A8.layer_note(too_wide) == (
        "low-rank up projection on cuBLAS beside the GEMM: 256 rank columns in one 128-channel tile > 240")
    assert W4A8.layer_note(lora_128) is None
    assert "rank 1040 > 1024" in W4A8.shape_refusal(layers(256, 1040, 1)[0])
    shared_tile = layers(64, 128, 2)  # both members in one 128-channel tile: a 256-wide window
    assert merge_refusal(shared_tile, INT4_LIMITS) is None
    assert merge_refusal(shared_tile, W4A8F_LIMITS) == (
        "merged branch: ranks 128+128: 256 rank columns in one 128-channel tile > 240")
    assert "rank 1152 > 1024" in merge_refusal(layers(64, 384, 3), INT4_LIMITS)
    assert INT4.shape_refusal(merge_svdq_linears(shared_tile)) is None
    assert W4A8.shape_refusal(merge_svdq_linears(shared_tile)) is None  # runs, but fusion does not merge it


def test_fp8_repack_pads_a_rank_that_is_not_a_multiple_of_16():
    """The FP8 GEMM's low-rank wgmma takes 16 rank columns a step: a rank-24 checkpoint is packed as rank 32 with
    zero columns (so the Hopper path serves it instead of refusing), and the packed branch equals the layer's."""
    from gpu.kernels.backend import W4A8
    from gpu.kernels.repack import repack_layer_w4a8f
    from gpu.modules.reference import smoothed_lora_down

    layer = SVDQLinear(128, 200, LayerSpec("svdquant", "int4", "int4", 24, True), dtype=torch.bfloat16)
    gen = torch.Generator().manual_seed(0)
    for t in (layer.lora_down, layer.lora_up):
        t.copy_(torch.randn(t.shape, generator=gen))
    layer.smooth.copy_(torch.rand(128, generator=gen) + 0.5)
    assert W4A8.shape_refusal(layer) is None
    packed = repack_layer_w4a8f(layer, torch.device("cpu"))
    assert packed.rank == 32 and packed.lora_down.shape == (128, 32) and packed.lora_up.shape == (256, 32)
    assert not packed.lora_down[:, 24:].any() and not packed.lora_up[:, 24:].any()
    assert torch.equal(packed.lora_down[:, :24], smoothed_lora_down(layer.lora_down, layer.smooth))
    assert torch.equal(packed.lora_up[:200, :24], layer.lora_up) and not packed.lora_up[200:].any()
    assert packed.lr_window.tolist() == [[0, 32], [0, 32]] and packed.max_window == 32


def _random_cpu_layer(k: int, n: int, rank: int, bias: bool) -> SVDQLinear:
    gen = torch.Generator().manual_seed(k + n + rank)
    layer = SVDQLinear(k, n, LayerSpec("svdquant", "int4", "int4", rank, True), bias=bias, dtype=torch.bfloat16)
    with torch.no_grad():
        layer.qweight.copy_(pack_int4(torch.randint(-7, 8, (n, k), generator=gen, dtype=torch.int8)))
        layer.wscales.copy_(torch.rand(n, k // 64, generator=gen).to(torch.bfloat16) * 0.01 + 0.001)
        layer.smooth.copy_(torch.rand(k, generator=gen).to(torch.bfloat16) + 0.5)
        if rank:
            layer.lora_down.copy_(torch.randn(k, rank, generator=gen).to(torch.bfloat16))
            layer.lora_up.copy_(torch.randn(n, rank, generator=gen).to(torch.bfloat16))
    return layer


def _bytes_beside(packed, layer: SVDQLinear, offloaded: bool) -> int:
    """Bytes of the packed tensors that are not the layer's own (codes and scales replace the canonical ones
    when the layer is marked for offload); the small rank-window tables are not counted."""
    own = {t.untyped_storage().data_ptr() for t in layer.buffers()}
    total = 0
    for f in dataclasses.fields(packed):
        t = getattr(packed, f.name)
        if not isinstance(t, torch.Tensor) or f.name == "lr_window" or t.untyped_storage().data_ptr() in own:
            continue
        if not (offloaded and f.name in ("wgt", "wscale")):
            total += t.numel() * t.element_size()
    return total


@pytest.mark.parametrize(("k", "n", "rank", "bias"), [(192, 200, 24, True), (128, 256, 32, False), (128, 128, 0, True)])
@pytest.mark.parametrize("offloaded", [False, True])
def test_memory_plan_counts_what_the_packings_keep_beside_the_layer(k, n, rank, bias, offloaded):
    """``held_bytes_*`` (what the memory plan adds per layer) equals what the repacks really allocate."""
    layer = _random_cpu_layer(k, n, rank, bias)
    if offloaded:
        enable_canonical_offload(layer)
    cpu = torch.device("cpu")
    assert held_bytes_w4a8f(layer) == _bytes_beside(repack_layer_w4a8f(layer, cpu), layer, offloaded)
    assert held_bytes_w4a4(layer) == _bytes_beside(repack_layer(layer, cpu), layer, offloaded)
    if rank:  # the FP8 path keeps L1 / lambda beside L1: the plan must not see only the layer's buffers
        assert held_bytes_w4a8f(layer) >= k * rank * 2


def test_turing_gets_the_int4_kernels_in_their_m8n8k32_form(monkeypatch):
    """sm_75 (Turing) has 4-bit tensor cores as m8n8k32 only: the INT4 path serves it through the ``_k32`` GEMM and
    the fp16-only ``_k8`` GEMV; older GPUs are refused, newer ones keep the native entry points."""
    from gpu.kernels import launch, mma_forms

    assert backend._int4_arch_refusal(7, 5) is None and backend._int4_arch_refusal(8, 6) is None
    assert backend._int4_arch_refusal(7, 0) == "GPU sm_70 lacks 4-bit tensor-core MMA (needs sm_75 or newer)"
    capability = [(7, 5)]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability[0])
    gpu = torch.device("cuda", 0)
    assert mma_forms.uses_turing_mma(gpu)
    assert launch._gemv_kernel("w4a16_gemv_grouped", gpu, torch.float16) == "w4a16_gemv_grouped_k8"
    why = mma_forms.gemv_dtype_refusal(gpu, torch.bfloat16)
    assert why == "GPU sm_75 has no bf16 MMA (the W4A16 GEMV takes fp16 there; layer is torch.bfloat16)"
    with pytest.raises(ValueError, match="no bf16 MMA"):
        launch._gemv_kernel("w4a16_gemv", gpu, torch.bfloat16)
    assert mma_forms.gemv_dtype_refusal(gpu, torch.float16) is None
    capability[0] = (8, 6)
    assert not mma_forms.uses_turing_mma(gpu) and mma_forms.gemv_dtype_refusal(gpu, torch.bfloat16) is None
    assert launch._gemv_kernel("w4a16_gemv", gpu, torch.bfloat16) == "w4a16_gemv"


def test_the_fused_paths_and_the_block_ops_refuse_a_gpu_in_one_order(monkeypatch):
    """The backends' layers (``FusedPath``) and the block ops' families (``fused_ops.fused_refusal``) ask one check
    of the device (``availability.gpu_refusal``): no CUDA GPU, then pycuda, then the architecture each is built for."""
    from gpu.modules import fused_ops

    layer = _layer(LayerSpec("svdquant", "int4", "int4", 32, True))
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    not_cuda = "device is CPU, not a CUDA GPU"
    assert backend.INT4.refuses(layer, cpu) == fused_ops.fused_refusal(cpu, "gemv") == not_cuda
    assert fused_ops.fused_refusal(cpu, "norm") == not_cuda
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    monkeypatch.setattr(availability, "pycuda_refusal", lambda: "pycuda is not installed")
    assert backend.INT4.refuses(layer, gpu) == fused_ops._probe(0, "gemv") == "pycuda is not installed"
    monkeypatch.setattr(availability, "pycuda_refusal", lambda: None)
    assert backend.INT4.refuses(layer, gpu) == "GPU sm_70 lacks 4-bit tensor-core MMA (needs sm_75 or newer)"
    assert fused_ops._probe(0, "gemv") == "GPU sm_70 lacks fp16 mma.sync m16n8k8 (the W4A16 GEMV needs sm_75 or newer)"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 6))
    backend.INT4.load_errors[(0, torch.bfloat16)] = availability.load_failure(RuntimeError("no kernel image\nmore"))
    try:
        assert backend.INT4.refuses(layer, gpu) == "kernel load failed: no kernel image"  # remembered, one line
    finally:
        del backend.INT4.load_errors[(0, torch.bfloat16)]
