"""Device tests of the Turing (sm_75) forms of the INT4 GEMM and the W4A16 GEMV, run on the GPU at hand.

No Turing GPU can be reached from here, so these run the ``_k32`` / ``_k8`` entry points (the same kernels on
m8n8k32 s4 and fp16 m16n8k8 MMAs, which every GPU from sm_75 has) on the device that is here, by making
``gpu.kernels.mma_forms.uses_turing_mma`` answer yes, and compare them with the native forms on the same inputs:

- the INT4 GEMM's Turing form is bit-identical to the native one (integer sums are exact, the fp32 epilogue is
  the same code), over the kernel sweep's FLUX and small odd shapes, both dtypes, every rank, outputs poisoned;
- the W4A16 GEMV's Turing form is the float64 product rounded once (the native form's criterion), and the
  grouped launch gives each layer the bits of its own launch;
- dispatch: the INT4 backend runs the Turing form end to end; bf16 GEMV layers stay on the reference there.

This proves the fragment mapping and the entry points, not Turing's speed (sm_90 emulates s4 MMA).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
import torch
from kernel_cases import FLUX_KN, RANKS, SMALL_KN, poison_allocator, random_layer, random_x

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the GEMV layer and rounding helpers
from test_fused_ops import assert_rounded_once, random_w4a16_layer  # noqa: E402

from gpu.kernels import mma_forms  # noqa: E402

pytestmark = pytest.mark.gpu
FP = torch.float16


@pytest.fixture
def turing(monkeypatch):
    """Call ``turing(True)`` to run the Turing forms on this GPU, ``turing(False)`` for the native ones. Each test
    starts with launch code's function cache empty, so ``launch_functions`` shows what that test launched."""
    from gpu.kernels import launch

    monkeypatch.setattr(launch, "_fns", {})

    def use(on: bool) -> None:
        monkeypatch.setattr(mma_forms, "uses_turing_mma", lambda device: on)

    return use


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int16)


def launch_functions() -> dict:
    """The kernels launch code has prepared in this test (the ``turing`` fixture empties the cache): (name in
    launch._KERNELS, device index, dtype) -> function."""
    from gpu.kernels import launch

    return launch._fns


# M 4608 at the FLUX shapes, then M 1/7/256 at small odd shapes: every rank and both dtypes rotate through.
GEMM_CASES = [(4608, k, n, RANKS[i % 4], FP if i % 2 else torch.bfloat16) for i, (k, n) in enumerate(FLUX_KN)] + [
    (m, k, n, RANKS[(i + j) % 4], FP if (i + j) % 2 else torch.bfloat16)
    for i, m in enumerate((1, 7, 256))
    for j, (k, n) in enumerate(SMALL_KN)
]


@pytest.mark.parametrize("m,k,n,rank,dtype", GEMM_CASES)
def test_int4_gemm_turing_form_is_bit_identical(m, k, n, rank, dtype, gen, turing):
    from gpu.kernels.launch import quantize_act, w4a4_gemm
    from gpu.kernels.repack import packed_for

    layer = random_layer(k, n, rank, dtype, gen)
    x = random_x(m, k, dtype, gen)
    packed = packed_for(layer)
    qa = quantize_act(x, packed.smooth, packed.lora_down)
    turing(False)
    native = w4a4_gemm(qa, packed, dtype, gelu_from=n // 2)
    turing(True)
    poison_allocator(max(m, 64) * n * 4)
    outs = [w4a4_gemm(qa, packed, dtype, gelu_from=n // 2, out=torch.full_like(native, float("nan")))
            for _ in range(2)]  # fmt: skip
    int_only = dataclasses.replace(packed, rank=0, lora_up=None, bias=None)
    qa0 = dataclasses.replace(qa, lact=qa.lact[:, :0])
    torch.cuda.synchronize()
    for out in outs:
        assert not torch.isnan(out).any(), "unwritten (poisoned) outputs"
        diff = int((_bits(out) != _bits(native)).sum())
        assert diff == 0, f"{diff} of {m * n} outputs differ from the m16n8k64 form"
    turing(False)
    native_int = w4a4_gemm(qa0, int_only, dtype)
    turing(True)
    assert torch.equal(_bits(w4a4_gemm(qa0, int_only, dtype)), _bits(native_int))  # the integer part alone
    assert ("gemm_w4a4_k32", torch.cuda.current_device(), dtype) in launch_functions()  # the Turing form ran


GEMV_CASES = [(1, 3072, 6 * 3072), (2, 3072, 3 * 3072), (8, 3072, 6 * 3072), (3, 128, 33), (5, 576, 200),
              (2, 16384, 40), (8, 64, 31)]  # fmt: skip


@pytest.mark.parametrize("m,k,n", GEMV_CASES)
def test_w4a16_gemv_turing_form_is_rounded_once(m, k, n, gen, turing):
    from gpu.kernels import launch
    from gpu.quant import dequantize

    turing(True)
    layer = random_w4a16_layer(k, n, FP, gen, device="cuda")
    x = (torch.randn(m, k, generator=gen)).to(FP).cuda()
    x[:, torch.randint(0, k, (max(1, k // 256),), generator=gen)] *= 20  # outlier channels
    out = launch.w4a16_gemv(x, layer.qweight, layer.wscales, layer.bias, out=torch.full((m, n), float("nan"),
                            dtype=FP, device="cuda"))  # fmt: skip
    again = launch.w4a16_gemv(x, layer.qweight, layer.wscales, layer.bias)
    torch.cuda.synchronize()
    assert not torch.isnan(out).any(), "unwritten (poisoned) outputs"
    assert torch.equal(_bits(out), _bits(again)), "not deterministic"
    assert ("w4a16_gemv_k8", torch.cuda.current_device(), FP) in launch_functions()  # the Turing form ran
    w = dequantize(layer.quantized_weight()).double()
    exact = x.double() @ w.T + layer.bias.double()
    assert_rounded_once(out, exact, fp32_rel=1e-5, magnitude=x.double().abs() @ w.abs().T + layer.bias.double().abs())
    with pytest.raises(ValueError, match="no bf16 MMA"):  # Turing has no bf16 MMA: the launch refuses it
        launch.w4a16_gemv(x.to(torch.bfloat16), layer.qweight, layer.wscales.to(torch.bfloat16), None)


def test_w4a16_gemv_grouped_turing_form_equals_per_layer(gen, turing):
    from gpu.kernels import launch

    turing(True)
    k = 320
    layers = [random_w4a16_layer(k, n, FP, gen, device="cuda") for n in (6 * 64, 33, 200, 31, 1)]
    x = torch.randn(4, k, generator=gen).to(FP).cuda()
    group = launch.gemv_group([(m.qweight, m.wscales, m.bias) for m in layers])
    grouped = launch.w4a16_gemv_grouped(x, group)
    for g, layer in zip(grouped, layers, strict=True):
        assert torch.equal(_bits(g), _bits(launch.w4a16_gemv(x, layer.qweight, layer.wscales, layer.bias)))


def test_dispatch_runs_the_turing_forms(gen, turing):
    """The INT4 backend runs the whole layer (prologue, Turing GEMM) with the native form's bits; a bf16 GEMV
    layer stays on the reference and says why, an fp16 one runs the Turing GEMV."""
    from gpu.kernels import backend
    from gpu.modules import fused_ops

    layer = random_layer(576, 200, 32, FP, gen)
    x = random_x(70, 576, FP, gen)
    turing(False)
    native = backend.INT4.run(layer, x)
    turing(True)
    assert torch.equal(_bits(backend.INT4.run(layer, x)), _bits(native))
    assert backend.INT4.refuses(layer, x.device) is None
    fp16_gemv = random_w4a16_layer(192, 72, FP, gen, device="cuda")
    fused_ops.w4a16_gemv(torch.randn(2, 192, generator=gen).to(FP).cuda(), fp16_gemv)
    assert fp16_gemv.last_path == "fused W4A16 GEMV (pycuda)", fp16_gemv.last_path
    bf16_gemv = random_w4a16_layer(192, 72, torch.bfloat16, gen, device="cuda")
    fused_ops.w4a16_gemv(torch.randn(2, 192, generator=gen).to(torch.bfloat16).cuda(), bf16_gemv)
    assert "no bf16 MMA" in bf16_gemv.last_path, bf16_gemv.last_path
