"""The INT8-g64 W4A8 kernels (``mma.sync``; the measured alternative to the FP8 wgmma path that dispatch
runs on Hopper, see tests/gpu/test_w4a8_fp8_kernels.py) against their reference numerics.

Every case draws fresh random inputs, poisons the memory the kernels write, and checks:
- Kernel A (QMAX 127): INT8 codes and 16-bit scales bit-identical to the contract; x@L1 within fp32
  rounding; padded rows zero;
- W4A8 GEMM: the integer part (grouped INT8 x INT4 GEMM, fp32 group dequantization) bit-identical to
  ``grouped_dot``; the full output within 1e-3 relative of ``forward_reference(x, "int8_g64")``;
- determinism, the GELU epilogue and CUDA-graph capture.
Runs on any sm_80+ GPU (the kernels compile and run there; dispatch never picks them).
"""

from __future__ import annotations

import dataclasses

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

from gpu.quant import get_format

pytestmark = pytest.mark.gpu
INT8_G64 = get_format("int8_g64")


@pytest.mark.parametrize("m,k,n,rank,dtype", sweep_cases([0, *RANKS]))
def test_w4a8_matches_reference(m, k, n, rank, dtype, gen, report):
    from gpu.kernels.launch import act8_fragments_to_codes, quantize_act_int8, w4a8_gemm
    from gpu.kernels.repack import packed_for

    layer = random_layer(k, n, rank, dtype, gen)
    x = random_x(m, k, dtype, gen)
    packed = packed_for(layer)
    poison_allocator(max(m, 64) * k * 4)
    qa = quantize_act_int8(x, packed.smooth, packed.lora_down)
    qa_a = quantize_act_int8(x, packed.smooth, packed.lora_down, kernel="kernel_a")  # Kernel A, QMAX 127
    out = torch.full((m, n), float("nan"), dtype=dtype, device="cuda")
    y = w4a8_gemm(qa, packed, dtype, out=out)
    int_only = dataclasses.replace(packed, rank=0, lora_up=None, bias=None)
    y_int = w4a8_gemm(dataclasses.replace(qa, lact=qa.lact[..., :0]), int_only, dtype)
    y_a = w4a8_gemm(qa_a, packed, dtype)
    torch.cuda.synchronize()

    grouped, y_ref32, codes, scales = reference_parts(layer, x, INT8_G64)
    got = act8_fragments_to_codes(qa.act, qa.m_pad, k).cpu()
    assert torch.equal(got[:m], codes), f"{(got[:m] != codes).sum()} activation codes differ"
    assert not got[m:].any(), "padded activation rows are not zero"
    assert torch.equal(qa.ascale.t().cpu()[:m].view(torch.int16), scales.view(torch.int16)), "scales differ"
    assert torch.equal(qa.act, qa_a.act) and torch.equal(qa.ascale, qa_a.ascale), "Kernel A (QMAX 127) differs"
    if rank:
        xs = exact_act_quant(x, layer.smooth, dtype, qmax=127)[0]
        lact_ref = xs.double() @ layer.lora_down.double().cpu()
        assert rel_err(qa.lact.sum(0)[:m].cpu(), lact_ref) < 1e-5
        assert rel_err(qa_a.lact[0, :m].cpu(), lact_ref) < 1e-5
        assert not qa.lact[:, m:].any()
    assert rel_err(y_a, y) <= 1e-3
    n_diff = int((y_int.view(torch.int16) != grouped.to(dtype).view(torch.int16)).sum())
    assert n_diff == 0, f"integer part: {n_diff} of {m * n} outputs differ"
    assert not torch.isnan(y).any(), "unwritten (poisoned) outputs"
    e = rel_err(y, y_ref32.to(dtype))
    # the module-level reference (gpu.quant on the device) as the app would run it
    e_mod = rel_err(y, layer.forward_reference(x, act_format="int8_g64"))
    report(f"M={m} K={k} N={n} r={rank} {str(dtype)[6:]}: rel={e:.2e} vs_forward_reference={e_mod:.2e}")
    assert e <= 1e-3, e
    assert e_mod <= 5e-3, e_mod


def test_w4a8_gelu_deterministic_graph(gen):
    from gpu.kernels.launch import svdq_linear_forward_w4a8
    from gpu.kernels.repack import packed_for

    layer = random_layer(320, 384, 32, torch.bfloat16, gen)
    x = random_x(300, 320, torch.bfloat16, gen)
    y = svdq_linear_forward_w4a8(x, packed_for(layer), gelu_from=0)
    ref = torch.nn.functional.gelu(reference_parts(layer, x, INT8_G64)[1], approximate="tanh").to(torch.bfloat16)
    assert rel_err(y, ref) <= 1e-3

    big = random_layer(3072, 3072, 32, torch.bfloat16, gen)
    xb = random_x(4608, 3072, torch.bfloat16, gen)
    pb = packed_for(big)
    a = svdq_linear_forward_w4a8(xb, pb)
    for _ in range(3):
        assert torch.equal(a.view(torch.int16), svdq_linear_forward_w4a8(xb, pb).view(torch.int16))

    packed = packed_for(layer)
    static_x = x.clone()
    graph, static_y = capture_graph(lambda: svdq_linear_forward_w4a8(static_x, packed))
    static_x.copy_(random_x(300, 320, torch.bfloat16, gen))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(static_y, svdq_linear_forward_w4a8(static_x, packed))
