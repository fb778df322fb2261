"""Hopper W4A8 FP8 path (kernels_cu/svdq_w4a8_wgmma.cu, sm_90a) against its reference numerics.

Every case draws fresh random inputs, poisons the memory the kernels write, and checks:
- the FP8 prologue: E4M3 codes and per-token scales bit-identical to ``quantize_fp8_row`` (same IEEE fp32
  ops), padded rows zero;
- the GEMM at rank 0 without bias (``sa * sum_g sw * dot_g``) within 1e-4 relative of the fp32 reference;
- the full output (low-rank on bf16/fp16 wgmma, bias) within 2e-3 relative of
  ``forward_reference(x, act_format="fp8_e4m3_row")`` (16-bit output rounding dominates), no NaN left;
- determinism, the GELU epilogue, CUDA-graph capture, and dispatch (FP8 W4A8 on sm_90).
Runs on sm_90 only (wgmma is an sm_90a instruction).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from kernel_cases import (
    RANKS,
    capture_graph,
    poison_allocator,
    random_layer,
    random_x,
    rel_err,
    sweep_cases,
)

from gpu.kernels.backend import W4A8_NAME
from gpu.modules.reference import FP8_ROW, fp8_row_grouped_dot, quantize_fp8_row, smoothed_lora_down

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available() or torch.cuda.get_device_capability() != (9, 0),
        reason="the FP8 wgmma kernels are sm_90a (Hopper) only",
    ),
]


@pytest.mark.parametrize("m,k,n,rank,dtype", sweep_cases([0, *RANKS]))
def test_w4a8f_matches_reference(m, k, n, rank, dtype, gen, report):
    from gpu.kernels.launch import act_fp8_to_values, quantize_act_fp8, svdq_linear_forward_w4a8f, w4a8f_gemm
    from gpu.kernels.repack import packed_w4a8f_for

    layer = random_layer(k, n, rank, dtype, gen)
    x = random_x(m, k, dtype, gen)
    packed = packed_w4a8f_for(layer)
    poison_allocator(max(m, 128) * k * 4)
    qa = quantize_act_fp8(x, packed.inv_smooth)
    out = torch.full((m, n), float("nan"), dtype=dtype, device="cuda")
    lact = x @ packed.lora_down if rank else None
    y = w4a8f_gemm(qa, lact, packed, dtype, out=out)
    int_only = dataclasses.replace(packed, rank=0, lora_up=None, bias=None, lora_down=None)
    y_int = w4a8f_gemm(qa, None, int_only, torch.float16 if dtype == torch.float16 else torch.bfloat16)
    y_fwd = svdq_linear_forward_w4a8f(x, packed)
    torch.cuda.synchronize()

    xs = x.float() * torch.reciprocal(layer.smooth.float())
    q_ref, sa_ref = quantize_fp8_row(xs)
    q = act_fp8_to_values(qa.act, qa.m_pad, k)
    assert torch.equal(q[:m], q_ref), f"{int((q[:m] != q_ref).sum())} FP8 codes differ"
    assert not q[m:].any(), "padded activation rows are not zero"
    assert torch.equal(qa.ascale[:m], sa_ref) and not qa.ascale[m:].any(), "per-token scales differ"
    int_ref = fp8_row_grouped_dot(q_ref, layer.quantized_weight()) * sa_ref[:, None]
    e_int = rel_err(y_int, int_ref)
    assert not torch.isnan(y).any(), "unwritten (poisoned) outputs"
    assert torch.equal(y, y_fwd), "svdq_linear_forward_w4a8f differs from the launch sequence"
    e = rel_err(y, layer.forward_reference(x, act_format=FP8_ROW))
    report(f"M={m} K={k} N={n} r={rank} {str(dtype)[6:]}: rel={e:.2e} int_part={e_int:.2e}")
    assert e_int <= 4e-3, e_int  # 16-bit output rounding of the integer part alone
    assert e <= 4e-3, e


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_w4a8f_rank_windows_of_a_merged_layer(dtype, gen):
    """A merged Q/K/V(+MLP) layer (block-diagonal lora_up): each channel tile multiplies only its member's
    rank columns, and that gives the bits of the full-depth up projection (the skipped terms are zeros)."""
    from gpu.kernels.launch import svdq_linear_forward_w4a8f
    from gpu.kernels.repack import packed_w4a8f_for
    from gpu.models.flux_fused import merge_svdq_linears

    members = [random_layer(320, n, r, dtype, gen) for n, r in ((128, 32), (256, 16), (200, 48), (136, 0))]
    for m in members[1:]:
        m.smooth.copy_(members[0].smooth)  # merging needs one smoothing vector
    merged = merge_svdq_linears(members)
    packed = packed_w4a8f_for(merged)
    windows = packed.lr_window.tolist()
    # tiles of 128 channels: member 0 is tile 0, member 1 tiles 1-2, member 2 starts in tile 3 and ends in
    # tile 4, which member 3 (rank 0) shares with it, tile 5 is member 3's and the padding
    assert windows == [[0, 32], [32, 16], [32, 16], [48, 48], [48, 48], [0, 0]], windows
    full = dataclasses.replace(
        packed, lr_window=torch.tensor([[0, packed.rank]] * len(windows), dtype=torch.int32, device="cuda")
    )
    x = random_x(300, 320, dtype, gen)
    y = svdq_linear_forward_w4a8f(x, packed)
    y_full = svdq_linear_forward_w4a8f(x, full)
    torch.cuda.synchronize()
    assert torch.equal(y, y_full)
    assert rel_err(y, merged.forward_reference(x, act_format=FP8_ROW)) <= 4e-3


def test_w4a8f_merged_rank_above_128_with_narrow_windows(gen, report):
    """LoRA-widened members (48 + 48 + 48 + 64 = 208 columns in all) merged: each tile stages only its member's
    window, so the kernels serve the layer (dispatch picks them) and match the reference."""
    from gpu.kernels.launch import svdq_linear_forward_w4a8f
    from gpu.kernels.repack import packed_w4a8f_for
    from gpu.models.flux_fused import merge_svdq_linears

    members = [random_layer(256, n, r, torch.bfloat16, gen) for n, r in ((256, 48), (128, 48), (256, 48), (384, 64))]
    for m in members[1:]:
        m.smooth.copy_(members[0].smooth)
    merged = merge_svdq_linears(members)
    packed = packed_w4a8f_for(merged)
    assert packed.rank == 208 and packed.max_window == 64
    x = random_x(333, 256, torch.bfloat16, gen)
    y = svdq_linear_forward_w4a8f(x, packed)
    with torch.inference_mode():
        y_dispatch = merged(x)
    torch.cuda.synchronize()
    assert "W4A8 FP8" in merged.last_path, merged.last_path
    assert torch.equal(y, y_dispatch)
    e = rel_err(y, merged.forward_reference(x, act_format=FP8_ROW))
    report(f"merged rank 208 (windows <= 64): rel={e:.2e}")
    assert e <= 4e-3, e


@pytest.mark.parametrize("rank", [144, 240])
def test_w4a8f_windows_wider_than_128(rank, gen, report):
    """A rank-32 layer with a rank-112 or rank-208 LoRA: the tile's window (> 128 columns) is staged whole and
    multiplied in two runs (the first 128 columns, then the rest, accumulating); dispatch picks the kernels."""
    from gpu.kernels.launch import svdq_linear_forward_w4a8f
    from gpu.kernels.repack import packed_w4a8f_for

    layer = random_layer(320, 384, rank, torch.bfloat16, gen)
    packed = packed_w4a8f_for(layer)
    assert packed.max_window == rank
    x = random_x(300, 320, torch.bfloat16, gen)
    poison_allocator(300 * 384 * 4)
    y = svdq_linear_forward_w4a8f(x, packed)
    with torch.inference_mode():
        y_dispatch = layer(x)
    torch.cuda.synchronize()
    assert "W4A8 FP8" in layer.last_path, layer.last_path
    assert torch.equal(y, y_dispatch) and not torch.isnan(y).any()
    ref = layer.forward_reference(x, act_format=FP8_ROW)
    e = rel_err(y, ref.to(torch.bfloat16))
    report(f"window {rank}: rel={e:.2e}")
    assert e <= 4e-3, e
    # the columns past the first 128 weigh far more than the tolerance: leaving them out would fail above
    tail = (x.float() @ smoothed_lora_down(layer.lora_down, layer.smooth).float())[:, 128:]
    assert float((tail @ layer.lora_up[:, 128:].float().T).norm() / ref.norm()) > 10 * 4e-3


@pytest.mark.parametrize("rank,dtype", [(256, torch.bfloat16), (400, torch.float16)])
def test_w4a8f_windows_wider_than_the_gemm_fuses(rank, dtype, gen, report):
    """Layers of rank 256 and 400 (windows 256 and 400 > 240; a rank-32 layer with a rank-224 or rank-368 LoRA is
    the same shape): dispatch keeps them on the FP8 GEMM with the up projection on cuBLAS beside it (they used to
    go to the emulated INT4 kernels), ``last_path`` says so, and the output matches the FP8 reference, with GELU
    columns too, also inside a CUDA graph."""
    from gpu.kernels.repack import packed_w4a8f_for
    from gpu.modules.reference import gelu_columns_
    from gpu.runtime.dispatch import path_notes, run_linear

    layer = random_layer(320, 384, rank, dtype, gen)
    assert packed_w4a8f_for(layer).max_window == rank
    x = random_x(300, 320, dtype, gen)
    poison_allocator(300 * 384 * 4)
    with torch.inference_mode():
        y = layer(x)
        path = layer.last_path
        y_gelu = run_linear(layer, x, gelu_from=100)
    torch.cuda.synchronize()
    assert path.startswith(W4A8_NAME), path
    note = f"low-rank up projection on cuBLAS beside the GEMM: {rank} rank columns in one 128-channel tile > 240"
    assert path.endswith(f"({note})"), path
    narrow = random_layer(320, 384, 32, dtype, gen)
    assert path_notes([layer, narrow, layer], x.device) == {note: 2}  # what the execution path counts
    assert not torch.isnan(y).any()
    ref = layer.forward_reference(x, act_format=FP8_ROW)
    e = rel_err(y, ref.to(dtype))
    report(f"window {rank} (up projection beside the GEMM): rel={e:.2e}")
    assert e <= 4e-3, e
    assert rel_err(y_gelu, gelu_columns_(ref.clone(), 100).to(dtype)) <= 4e-3
    assert torch.equal(y_gelu[:, :100], y[:, :100])
    with torch.inference_mode():
        graph, y_graph = capture_graph(lambda: layer(x))
        graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(y_graph, y)


def test_w4a8f_rank_not_a_multiple_of_16(gen):
    """A rank-24 checkpoint: packed as rank 32 with zero columns, served by the FP8 kernels (it used to be refused
    and go to the emulated INT4 kernels), matching the FP8 reference."""
    layer = random_layer(320, 384, 24, torch.bfloat16, gen)
    x = random_x(130, 320, torch.bfloat16, gen)
    with torch.inference_mode():
        y = layer(x)
    torch.cuda.synchronize()
    assert layer.last_path.startswith(W4A8_NAME), layer.last_path  # the kernels, not the W4A8 reference fallback
    assert rel_err(y, layer.forward_reference(x, act_format=FP8_ROW).to(torch.bfloat16)) <= 4e-3


def test_w4a8f_merged_windows_wider_than_128_keep_the_full_depth_bits(gen):
    """Merged members with 160- and 32-column windows (and a tile shared by both: 192): windowed bits equal the
    full-depth product's."""
    from gpu.kernels.launch import svdq_linear_forward_w4a8f
    from gpu.kernels.repack import packed_w4a8f_for
    from gpu.models.flux_fused import merge_svdq_linears

    members = [random_layer(256, n, r, torch.bfloat16, gen) for n, r in ((192, 160), (192, 32))]
    members[1].smooth.copy_(members[0].smooth)
    merged = merge_svdq_linears(members)
    packed = packed_w4a8f_for(merged)
    assert packed.lr_window.tolist() == [[0, 160], [0, 192], [160, 32]]
    full = dataclasses.replace(packed, lr_window=torch.tensor([[0, 192]] * 3, dtype=torch.int32, device="cuda"),
                               max_window=192)
    x = random_x(200, 256, torch.bfloat16, gen)
    y, y_full = svdq_linear_forward_w4a8f(x, packed), svdq_linear_forward_w4a8f(x, full)
    torch.cuda.synchronize()
    assert torch.equal(y, y_full)
    assert rel_err(y, merged.forward_reference(x, act_format=FP8_ROW).to(torch.bfloat16)) <= 4e-3


def test_w4a8f_persistent_blocks_walk_every_tile(gen):
    """The GEMM is persistent: each block walks tiles blockIdx.x, + gridDim.x, ..., its stage ring and
    barrier phases running on from tile to tile. Few blocks over many tiles (odd and even group counts, a
    partial last tile each way, rank windows of a merged layer, partial GELU) give the bits of one block per
    SM, and every output is written."""
    from gpu.kernels.launch import quantize_act_fp8, w4a8f_gemm
    from gpu.kernels.repack import packed_w4a8f_for
    from gpu.models.flux_fused import merge_svdq_linears
    from gpu.modules.reference import gelu_columns_

    members = [random_layer(320, n, r, torch.bfloat16, gen) for n, r in ((256, 32), (200, 48), (136, 0))]
    for m in members[1:]:
        m.smooth.copy_(members[0].smooth)
    cases = [(merge_svdq_linears(members), 700), (random_layer(256, 384, 16, torch.bfloat16, gen), 300),
             (random_layer(192, 136, 0, torch.bfloat16, gen), 1030)]
    for layer, m in cases:
        packed = packed_w4a8f_for(layer)
        x = random_x(m, layer.in_features, torch.bfloat16, gen)
        qa = quantize_act_fp8(x, packed.inv_smooth)
        lact = x @ packed.lora_down if packed.rank else None
        gelu_from = packed.n // 3
        full = w4a8f_gemm(qa, lact, packed, torch.bfloat16, gelu_from=gelu_from)
        ref = gelu_columns_(layer.forward_reference(x, act_format=FP8_ROW).float(), gelu_from)
        assert rel_err(full, ref.to(torch.bfloat16)) <= 4e-3
        for blocks in (1, 2, 5):
            poison_allocator(m * packed.n * 4)
            out = torch.full((m, packed.n), float("nan"), dtype=torch.bfloat16, device="cuda")
            y = w4a8f_gemm(qa, lact, packed, torch.bfloat16, gelu_from=gelu_from, out=out, blocks=blocks)
            torch.cuda.synchronize()
            assert torch.equal(y, full), (layer.in_features, packed.n, m, blocks)


@pytest.mark.parametrize("dtype,scale_dtype", [(torch.float16, torch.bfloat16), (torch.bfloat16, torch.float16)])
def test_w4a8f_scales_of_the_other_16bit_type(dtype, scale_dtype, gen, report):
    """A checkpoint's group scales kept in their own type while the layer runs in the other one: the
    ``svdq_w4a8f_gemm_xs_*`` entry points read them as they are."""
    from gpu.kernels.launch import svdq_linear_forward_w4a8f
    from gpu.kernels.repack import packed_w4a8f_for

    for m, k, n, rank in [(130, 320, 200, 32), (4608, 3072, 3072, 16)]:
        layer = random_layer(k, n, rank, dtype, gen)
        layer._buffers["wscales"] = layer.wscales.to(scale_dtype)
        packed = packed_w4a8f_for(layer)
        assert packed.wscale.dtype == scale_dtype
        x = random_x(m, k, dtype, gen)
        poison_allocator(max(m, 128) * k * 4)
        y = svdq_linear_forward_w4a8f(x, packed)
        torch.cuda.synchronize()
        assert not torch.isnan(y).any(), "unwritten (poisoned) outputs"
        e = rel_err(y, layer.forward_reference(x, act_format=FP8_ROW))
        report(f"M={m} K={k} N={n} r={rank} {str(dtype)[6:]} with {str(scale_dtype)[6:]} scales: rel={e:.2e}")
        assert e <= 4e-3, e


def test_w4a8f_gelu_deterministic_graph(gen):
    from gpu.kernels.launch import quantize_act_fp8, svdq_linear_forward_w4a8f
    from gpu.kernels.repack import packed_w4a8f_for
    from gpu.modules.reference import gelu_columns_

    layer = random_layer(320, 384, 32, torch.bfloat16, gen)
    x = random_x(300, 320, torch.bfloat16, gen)
    packed = packed_w4a8f_for(layer)
    plain = layer.forward_reference(x, act_format=FP8_ROW).float()
    # 0: every column; 200: from the middle of the second channel tile (the single blocks' MLP part); 384: none
    for gelu_from in (0, 200, 384):
        y = svdq_linear_forward_w4a8f(x, packed, gelu_from=gelu_from)
        ref = gelu_columns_(plain.clone(), gelu_from)
        assert rel_err(y, ref.to(torch.bfloat16)) <= 4e-3, gelu_from
        assert rel_err(y[:, :gelu_from], plain[:, :gelu_from].to(torch.bfloat16)) <= 4e-3, gelu_from

    # rows spaced out (a column slice of a wider tensor, as FLUX's proj_out reads) need no copy, same codes
    wide = random_x(300, 320 + 192, torch.bfloat16, gen)
    xs = wide[:, 64 : 64 + 320]
    qs, qc = quantize_act_fp8(xs, packed.inv_smooth), quantize_act_fp8(xs.contiguous(), packed.inv_smooth)
    assert torch.equal(qs.act, qc.act) and torch.equal(qs.ascale, qc.ascale)
    assert torch.equal(svdq_linear_forward_w4a8f(xs, packed), svdq_linear_forward_w4a8f(xs.contiguous(), packed))

    # the widest FLUX layer, many reruns: a pipeline race (a stage refilled under a pending read) showed up
    # here once in six runs before every consumer thread released its stages itself
    big = random_layer(3072, 21504, 64, torch.bfloat16, gen)
    xb = random_x(4608, 3072, torch.bfloat16, gen)
    pb = packed_w4a8f_for(big)
    a = svdq_linear_forward_w4a8f(xb, pb)
    for _ in range(16):
        assert torch.equal(a.view(torch.int16), svdq_linear_forward_w4a8f(xb, pb).view(torch.int16))

    static_x = x.clone()
    graph, static_y = capture_graph(lambda: svdq_linear_forward_w4a8f(static_x, packed))
    static_x.copy_(random_x(300, 320, torch.bfloat16, gen))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(static_y, svdq_linear_forward_w4a8f(static_x, packed))


def test_w4a8f_dispatch(gen, report):
    from gpu.kernels.repack import enable_canonical_offload

    layer = random_layer(192, 136, 16, torch.bfloat16, gen)
    enable_canonical_offload(layer)  # as the pipeline loader marks a loaded transformer
    x = random_x(7, 192, torch.bfloat16, gen)
    with torch.inference_mode():  # what generation runs under
        y = layer(x)
    report(f"dispatch: {layer.last_path}")
    assert "W4A8 FP8" in layer.last_path, layer.last_path
    assert rel_err(y, layer.forward_reference(x, act_format=FP8_ROW)) <= 4e-3
    # the GPU keeps only the packed copy: the canonical codes and scales moved to host memory
    assert layer.qweight.device.type == "cpu" and layer.wscales.device.type == "cpu"
    assert torch.equal(layer(x), y)  # no repack, same result
    y32 = layer(x.float())  # dtype mismatch: the reference runs, reading the host copies
    assert "PyTorch reference" in layer.last_path and y32.device == x.device
    assert rel_err(y32.to(y.dtype), y) <= 4e-2
    from gpu.kernels.backend import W4A8

    odd = random_layer(192, 132, 16, torch.bfloat16, gen)  # N % 8 != 0: refused with a reason
    assert "multiple of 8" in W4A8.refuses(odd, x.device)
    odd(x)
    assert "INT4 W4A4" in odd.last_path, odd.last_path  # served by the (emulated) W4A4 kernels instead
    report(f"dispatch (N=132): {odd.last_path}")
