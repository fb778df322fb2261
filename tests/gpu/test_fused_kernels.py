"""Fused INT4 W4A4 kernels against the reference ``SVDQLinear`` numerics (run on a GPU with pycuda).

Every case draws fresh random inputs, poisons the memory the kernels write, and checks:
- Kernel A: activation codes and 16-bit scales bit-identical to the contract; x@L1 within fp32 rounding;
- Kernel B: the integer part (grouped INT4 GEMM with fp32 group dequantization) bit-identical to
  ``grouped_dot``; the full output within 1e-3 relative of the reference forward;
- determinism (two runs, same bits), CUDA-graph capture, and the dispatch report.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from kernel_cases import (
    RANKS,
    capture_graph,
    exact_act_quant,
    poison_allocator,
    random_layer,
    random_x,
    reference_parts,
    rel_err,
    sweep_cases,
)

pytestmark = pytest.mark.gpu



@pytest.mark.parametrize("m,k,n,rank,dtype", sweep_cases(RANKS))
def test_linear_matches_reference(m, k, n, rank, dtype, gen, report):
    from gpu.kernels.launch import quantize_act, w4a4_gemm
    from gpu.kernels.repack import act_fragments_to_codes, packed_for

    layer = random_layer(k, n, rank, dtype, gen)
    x = random_x(m, k, dtype, gen)
    packed = packed_for(layer)
    poison_allocator(max(m, 64) * k * 4)

    qa = quantize_act(x, packed.smooth, packed.lora_down)
    out = torch.full((m, n), float("nan"), dtype=dtype, device="cuda")
    y = w4a4_gemm(qa, packed, dtype, out=out)
    # integer part alone: same activation codes, no low-rank branch, no bias
    int_only = dataclasses.replace(packed, rank=0, lora_up=None, bias=None)
    qa0 = dataclasses.replace(qa, lact=qa.lact[:, :0])
    y_int = w4a4_gemm(qa0, int_only, dtype)
    torch.cuda.synchronize()

    grouped, y_ref32, codes, scales = reference_parts(layer, x)
    # Kernel A: bit-exact codes and scales (padded rows must be zero)
    got_codes = act_fragments_to_codes(qa.act, qa.m_pad, k).cpu()
    assert torch.equal(got_codes[:m], codes), f"{(got_codes[:m] != codes).sum()} activation codes differ"
    assert not got_codes[m:].any(), "padded activation rows are not zero"
    got_scales = qa.ascale.t().cpu()
    assert torch.equal(got_scales[:m].view(torch.int16), scales.view(torch.int16)), "activation scales differ"
    if rank:
        lact_ref = (exact_act_quant(x, layer.smooth, dtype)[0].double() @ layer.lora_down.double().cpu())
        e_lact = rel_err(qa.lact[:m].cpu(), lact_ref)
        assert e_lact < 1e-5, e_lact
        assert not qa.lact[m:].any()
    # Kernel B integer part: bit-identical to grouped_dot (then rounded to T like the reference)
    ref_int = grouped.to(dtype)
    n_diff = int((y_int.view(torch.int16) != ref_int.view(torch.int16)).sum())
    assert n_diff == 0, f"integer part: {n_diff} of {m * n} outputs differ"
    # End to end
    assert not torch.isnan(y).any(), "unwritten (poisoned) outputs"
    ref = y_ref32.to(dtype)
    e = rel_err(y, ref)
    e_fp32 = rel_err(y.float(), y_ref32)
    max_abs = float((y.float() - ref.float()).abs().max())
    report(f"M={m} K={k} N={n} r={rank} {str(dtype)[6:]}: rel={e:.2e} rel_vs_fp32={e_fp32:.2e} "
           f"maxabs={max_abs:.3e} (|ref|max={float(ref.float().abs().max()):.2f})")
    assert e <= 1e-3, e


# 150: a second prologue block of 22 columns, a rank not a multiple of 16
WIDE_CASES = [(300, 320, 384, 160, torch.bfloat16), (77, 3072, 3072, 256, torch.float16),
              (4608, 3072, 3072, 400, torch.bfloat16), (65, 192, 136, 150, torch.float16)]  # fmt: skip


@pytest.mark.parametrize("m,k,n,rank,dtype", WIDE_CASES)
def test_branches_wider_than_one_prologue_block(m, k, n, rank, dtype, gen, report):
    """Ranks past the 128 columns one prologue block holds (a rank-32 layer with a rank-128 LoRA: 160; 400 takes
    4 blocks per row): the extra blocks along grid.y write their lact columns and leave the codes and scales to
    block 0, and the GEMM walks the whole branch."""
    from gpu.kernels.launch import quantize_act, w4a4_gemm
    from gpu.kernels.repack import act_fragments_to_codes, packed_for

    layer = random_layer(k, n, rank, dtype, gen)
    x = random_x(m, k, dtype, gen)
    packed = packed_for(layer)
    poison_allocator(max(m, 64) * max(k, rank) * 4)
    qa = quantize_act(x, packed.smooth, packed.lora_down)
    y = w4a4_gemm(qa, packed, dtype)
    torch.cuda.synchronize()
    _, y_ref32, codes, scales = reference_parts(layer, x)
    assert torch.equal(act_fragments_to_codes(qa.act, qa.m_pad, k).cpu()[:m], codes)
    assert torch.equal(qa.ascale.t().cpu()[:m].view(torch.int16), scales.view(torch.int16))
    lact_ref = exact_act_quant(x, layer.smooth, dtype)[0].double() @ layer.lora_down.double().cpu()
    assert rel_err(qa.lact[:m].cpu(), lact_ref) < 1e-5 and not qa.lact[m:].any()
    assert not torch.isnan(y).any(), "unwritten (poisoned) outputs"
    e = rel_err(y, y_ref32.to(dtype))
    report(f"wide branch M={m} K={k} N={n} r={rank}: rel={e:.2e}")
    assert e <= 1e-3, e


def test_rank_windows_of_a_merged_layer(gen):
    """A merged Q/K/V-like layer of LoRA-widened members (48 + 64 + 48 + 0 = 160 rank columns): each 64-channel
    block walks only its member's columns, which gives the bits of the full-depth up projection."""
    from gpu.kernels.launch import svdq_linear_forward
    from gpu.kernels.repack import packed_for
    from gpu.models.flux_fused import merge_svdq_linears

    members = [random_layer(320, n, r, torch.bfloat16, gen) for n, r in ((128, 48), (192, 64), (100, 48), (92, 0))]
    for m in members[1:]:
        m.smooth.copy_(members[0].smooth)  # merging needs one smoothing vector
    merged = merge_svdq_linears(members)
    packed = packed_for(merged)
    # 64-channel blocks: member 0 has blocks 0-1, member 1 blocks 2-4, member 2 rows 320-419 (blocks 5-6, block 6
    # shared with member 3, rank 0), block 7 is member 3's and the padding
    windows = packed.lr_window.tolist()
    assert windows == [[0, 48], [0, 48], [48, 64], [48, 64], [48, 64], [112, 48], [112, 48], [0, 0]], windows
    full = dataclasses.replace(
        packed, lr_window=torch.tensor([[0, packed.rank]] * len(windows), dtype=torch.int32, device="cuda")
    )
    x = random_x(300, 320, torch.bfloat16, gen)
    y = svdq_linear_forward(x, packed)
    y_full = svdq_linear_forward(x, full)
    torch.cuda.synchronize()
    assert torch.equal(y, y_full)
    _, y_ref32, _, _ = reference_parts(merged, x)
    assert rel_err(y, y_ref32.to(torch.bfloat16)) <= 1e-3


def test_gelu_epilogue(gen):
    from gpu.kernels.launch import svdq_linear_forward
    from gpu.kernels.repack import packed_for
    from gpu.modules.reference import gelu_columns_

    for m, k, n, rank, gelu_from in [(7, 3072, 12288, 32, 0), (300, 320, 384, 16, 0), (300, 320, 384, 16, 200)]:
        layer = random_layer(k, n, rank, torch.bfloat16, gen)
        x = random_x(m, k, torch.bfloat16, gen)
        y = svdq_linear_forward(x, packed_for(layer), gelu_from=gelu_from)
        _, y_ref32, _, _ = reference_parts(layer, x)
        ref = gelu_columns_(y_ref32.clone(), gelu_from).to(torch.bfloat16)
        assert rel_err(y, ref) <= 1e-3
        assert rel_err(y[:, :gelu_from], y_ref32[:, :gelu_from].to(torch.bfloat16)) <= 1e-3


def test_deterministic(gen):
    from gpu.kernels.launch import svdq_linear_forward
    from gpu.kernels.repack import packed_for

    layer = random_layer(3072, 3072, 128, torch.bfloat16, gen)
    x = random_x(4608, 3072, torch.bfloat16, gen)
    packed = packed_for(layer)
    a = svdq_linear_forward(x, packed)
    for _ in range(3):
        b = svdq_linear_forward(x, packed)
        assert torch.equal(a.view(torch.int16), b.view(torch.int16))


def test_cuda_graph_and_streams(gen):
    from gpu.kernels.launch import launch_stream, svdq_linear_forward
    from gpu.kernels.repack import packed_for

    layer = random_layer(320, 384, 32, torch.bfloat16, gen)
    packed = packed_for(layer)
    static_x = random_x(256, 320, torch.bfloat16, gen)
    graph, static_y = capture_graph(lambda: svdq_linear_forward(static_x, packed))
    for _ in range(2):
        static_x.copy_(random_x(256, 320, torch.bfloat16, gen))
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(static_y, svdq_linear_forward(static_x, packed))
    # torch running on the package's own stream: direct launches, same result
    with launch_stream(static_x.device):
        y2 = svdq_linear_forward(static_x, packed)
    torch.cuda.synchronize()
    assert torch.equal(static_y, y2)


def test_dispatch_reports_fused_path(gen, report):
    layer = random_layer(192, 136, 16, torch.bfloat16, gen)
    x = random_x(7, 192, torch.bfloat16, gen)
    if torch.cuda.get_device_capability() >= (9, 0):  # Hopper: W4A8 serves INT4 layers (test_w4a8_kernels)
        pytest.skip("sm_90+ dispatches INT4 W4A4 layers to the W4A8 backend")
    y = layer(x)
    assert "fused INT4 W4A4" in layer.last_path, layer.last_path
    report(f"dispatch: {layer.last_path}")
    ref = layer.forward_reference(x)
    assert rel_err(y, ref) <= 1e-3
    layer(x.float())
    assert "PyTorch reference" in layer.last_path
    report(f"dispatch (fp32 input): {layer.last_path}")


@pytest.mark.parametrize("fmt,qmax", [("int4", 7), ("int8_g64", 127)])
def test_reference_quantizer_on_cuda_is_within_one_scale_step_of_its_contract(
    fmt: str, qmax: int, gen: torch.Generator, report: Callable[[str], None]
) -> None:
    """gpu.quant.integer run on CUDA (the reference path of a layer the kernels refuse) against its contract, on
    smoothed fp32 activations as that path quantizes them. On CUDA torch divides by a Python scalar as a multiply
    by its reciprocal, so a group's absmax / qmax can land an fp32 ulp off the IEEE quotient and, rarely, round to
    the neighbouring 16-bit scale. That is all it may do: each scale the contract's or its neighbour (positive
    16-bit floats: neighbouring bit patterns), codes equal in every group whose scale is, elsewhere at most one
    step off (x / s moves by < 1 when s moves by one 16-bit step and |x / s| is clamped to qmax <= 127). The
    kernels themselves are held to the contract bit for bit (above)."""
    from gpu.quant import quantize

    x = random_x(4608, 3072, torch.bfloat16, gen)
    smooth = (torch.rand(3072, generator=gen) * 1.5 + 0.5).to(torch.bfloat16)
    xs, codes, scales = exact_act_quant(x, smooth, torch.bfloat16, qmax=qmax)
    q = quantize(xs.cuda(), fmt, torch.bfloat16)
    scale_steps = (q.scales.cpu().view(torch.int16).int() - scales.view(torch.int16).int()).abs()
    code_steps = (q.codes.cpu().int() - codes.int()).abs().view(*scales.shape, -1)  # [M, groups, 64]
    report(f"gpu.quant {fmt} on CUDA vs contract: {int((scale_steps > 0).sum())} of {scales.numel()} scales and "
           f"{int((code_steps > 0).sum())} codes differ")  # fmt: skip
    assert int(scale_steps.max()) <= 1, "a scale more than one 16-bit step from the contract's"
    assert int(code_steps.max()) <= 1, "a code more than one step from the contract's"
    assert not code_steps[scale_steps == 0].any(), "codes differ in a group whose scale is the contract's"


@pytest.mark.slow
def test_compute_sanitizer(report):
    tool = os.environ.get("COMPUTE_SANITIZER", "compute-sanitizer")
    from shutil import which

    if which(tool) is None and not Path(tool).exists():
        pytest.skip("compute-sanitizer not found")
    script = Path(__file__).with_name("sanitize_small.py")
    root = Path(__file__).resolve().parents[2]
    for check in ("memcheck", "racecheck", "initcheck", "synccheck"):
        proc = subprocess.run(
            [tool, "--tool", check, "--error-exitcode", "9", sys.executable, str(script)],
            cwd=root, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        text = proc.stdout + proc.stderr
        tail = text[-3000:]
        report(f"compute-sanitizer {check}: rc={proc.returncode} " + tail.strip().splitlines()[-1])
        assert "sanitize_small: ok" in text, tail
        if check in ("racecheck", "initcheck"):
            # Both flag cuBLAS's own kernels (the low-rank down projection x @ L1): racecheck a hazard in the nvjet
            # split-K kernel, initcheck reads of its workspace in cublasLt::splitKreduce_kernel (all 12384 of
            # them; H200, 2026-11-21). Not ours to fix, and the tool's kernel-name filters crash under pycuda, so
            # the check is that no reported location is one of our kernels.
            where = [ln for ln in text.splitlines() if ln.startswith("=========     at ") or "access at" in ln]
            assert not [ln for ln in where if "svdq" in ln], "\n".join(where[:20])
        else:
            assert proc.returncode == 0, tail


def test_prebuilt_fatbin_and_cache(gen, tmp_path, monkeypatch, report):
    """A shipped fatbin is preferred; without it the user-cache cubin is used (no rebuild)."""
    from gpu.kernels import launch, loader
    from gpu.kernels.launch import device_arch, svdq_linear_forward
    from gpu.kernels.repack import packed_for

    layer = random_layer(192, 136, 16, torch.bfloat16, gen)
    x = random_x(7, 192, torch.bfloat16, gen)
    expected = svdq_linear_forward(x, packed_for(layer))
    arch = device_arch(torch.device("cuda"))
    for stem in loader.KERNEL_FAMILIES:
        loader.build_fatbin(stem, tmp_path, (arch,))
    monkeypatch.setattr(loader, "prebuilt_dir", lambda: tmp_path)
    monkeypatch.setattr(loader, "_modules", {})
    monkeypatch.setattr(launch, "_fns", {})
    assert torch.equal(svdq_linear_forward(x, packed_for(layer)), expected)
    origins = [m.origin for m in loader._modules.values()]
    assert all(o.startswith("prebuilt") for o in origins), origins
    report(f"loader: {origins}")
    for stem in loader.KERNEL_FAMILIES:
        (tmp_path / f"{stem}.fatbin").unlink()
    monkeypatch.setattr(loader, "_modules", {})
    monkeypatch.setattr(launch, "_fns", {})
    svdq_linear_forward(x, packed_for(layer))  # loading a prebuilt fatbin writes no cache: build once
    monkeypatch.setattr(loader, "_modules", {})
    monkeypatch.setattr(launch, "_fns", {})
    assert torch.equal(svdq_linear_forward(x, packed_for(layer)), expected)
    origins = [m.origin for m in loader._modules.values()]
    assert all(o.startswith("cache") for o in origins), origins
