"""Device tests of the fused FLUX block kernels (kernels_cu/svdq_fused_norm.cu, kernels_cu/svdq_w4a16_gemv.cu)
against the references of gpu/modules/fused_ops.py (run on a GPU with pycuda; skipped elsewhere).

Every case draws fresh random inputs (the seed is in the report printed at the end), writes into outputs
poisoned with NaN, and checks each output element against a float64 evaluation of the reference formula: within
half a 16-bit ulp plus the fp32 rounding noise of the reduction (``assert_rounded_once``), which any wrong index,
stride or operand (an O(1) error) violates. gate_residual and v (a copy) must be bit-identical to the reference. Then
determinism (two runs, same bits) at the FLUX shapes, CUDA-graph capture and compute-sanitizer on small shapes
(slow). Their speed against the unfused PyTorch ops is the benchmark's: ``python -m gpu.bench.fused_ops``.

    python -m pytest -q tests/gpu/test_fused_ops_device.py

Run as a script (``python tests/gpu/test_fused_ops_device.py --small``) it only runs every kernel on small
shapes, for compute-sanitizer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # script mode: the repository and tests/
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from kernel_cases import capture_graph, poison_allocator, rel_err  # noqa: E402
from test_fused_ops import assert_rounded_once, random_w4a16_layer  # noqa: E402

from gpu.bench.fused_ops import BF, FLUX_C, FLUX_D, FLUX_H, FLUX_IMG, FLUX_S, FLUX_TXT, flux_block_inputs  # noqa: E402
from gpu.modules import fused_ops  # noqa: E402

pytestmark = pytest.mark.gpu

FP = torch.float16


def _nan(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    return torch.full(shape, float("nan"), dtype=dtype, device="cuda")


def _randn(shape: tuple[int, ...], gen: torch.Generator, dtype: torch.dtype, std: float = 1.0, mean: float = 0.0):
    return (torch.randn(shape, generator=gen) * std + mean).to(dtype).cuda()


def _activations(b: int, s: int, c: int, gen: torch.Generator, dtype: torch.dtype) -> torch.Tensor:
    """Residual-stream-like T [B, S, C]: offset, and a few channels 30x larger (FLUX's outliers)."""
    x = torch.randn(b, s, c, generator=gen) * 2 + 0.5
    x[..., torch.randint(0, c, (max(1, c // 256),), generator=gen)] *= 30
    return x.to(dtype).cuda()


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int16)


def _require_fused(family: str = "norm") -> None:
    why = fused_ops.fused_refusal(torch.device("cuda"), family)
    assert why is None, f"fused {family} kernels unavailable here: {why}"


# -- layernorm_modulate ----------------------------------------------------------------------------------

LN_CASES = [(1, FLUX_S, FLUX_C, BF), (1, FLUX_S, FLUX_C, FP), (2, FLUX_TXT, FLUX_C, BF), (2, 5, 8, BF),
            (3, 7, 200, FP), (2, 33, 1000, BF), (1, 3, 16384, BF), (1, 1, 24, FP), (4, 17, 3072, FP)]  # fmt: skip


def layernorm_exact(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6):
    """-> (float64 result, magnitude of its terms: what fp32 rounding noise is relative to)."""
    xd = x.double()
    mean = xd.mean(-1, keepdim=True)
    rstd = 1 / torch.sqrt(((xd - mean) ** 2).mean(-1, keepdim=True) + eps)
    n = (xd - mean) * rstd
    s1, sh = 1 + scale.double()[:, None], shift.double()[:, None]
    return n * s1 + sh, (xd.abs() * rstd + n.abs()) * s1.abs() + sh.abs()


@pytest.mark.parametrize("b,s,c,dtype", LN_CASES)
def test_layernorm_modulate(b, s, c, dtype, gen, report):
    from gpu.kernels import launch

    _require_fused()
    x = _activations(b, s, c, gen, dtype)
    emb = _randn((b, 6 * c), gen, dtype, 0.5)
    shift, scale = emb[:, :c], emb[:, c : 2 * c]  # strided chunks, as the FLUX blocks pass them
    out = launch.layernorm_modulate(x, shift, scale, 1e-6, out=_nan((b, s, c), dtype))
    poison_allocator(x.numel() * 2)
    via_dispatch = fused_ops.layernorm_modulate(x, shift, scale)
    torch.cuda.synchronize()
    assert not torch.isnan(out).any(), "unwritten (poisoned) outputs"
    assert torch.equal(_bits(out), _bits(via_dispatch))
    exact, magnitude = layernorm_exact(x, shift, scale)
    assert_rounded_once(out, exact, fp32_rel=2e-5, magnitude=magnitude)
    ref = fused_ops.layernorm_modulate_reference(x, shift, scale)
    n_diff = int((_bits(out) != _bits(ref)).sum())
    report(f"layernorm_modulate B={b} S={s} C={c} {str(dtype)[6:]}: rel={rel_err(out, ref):.2e}, "
           f"{n_diff} of {out.numel()} differ from the reference by an ulp")  # fmt: skip


# -- gate_residual ----------------------------------------------------------------------------------------

GR_CASES = [(1, FLUX_S, FLUX_C, BF), (1, FLUX_S, FLUX_C, FP), (2, 3, 8, BF), (3, 5, 136, FP), (2, 1, 16, BF)]


@pytest.mark.parametrize("b,s,c,dtype", GR_CASES)
def test_gate_residual_bit_exact(b, s, c, dtype, gen, report):
    from gpu.kernels import launch

    _require_fused()
    residual = _activations(b, s, c, gen, dtype)
    y = _randn((b, s, c), gen, dtype)
    gate = _randn((b, 6 * c), gen, dtype, 0.5)[:, 2 * c : 3 * c]
    ref = fused_ops.gate_residual_reference(residual, gate, y)
    out = launch.gate_residual(residual, gate, y, out=_nan((b, s, c), dtype))
    torch.cuda.synchronize()
    assert not torch.isnan(out).any(), "unwritten (poisoned) outputs"
    assert torch.equal(_bits(out), _bits(ref)), f"{int((_bits(out) != _bits(ref)).sum())} outputs differ"
    inplace = residual.clone()
    assert fused_ops.gate_residual(inplace, gate, y, out=inplace) is inplace
    assert torch.equal(_bits(inplace), _bits(ref))
    report(f"gate_residual B={b} S={s} C={c} {str(dtype)[6:]}: bit-identical (also in place)")


def test_gate_residual_fp16_saturation():
    _require_fused()
    residual = torch.tensor([[[60000.0, -60000.0, float("nan"), 1.0] * 4]], dtype=FP, device="cuda")
    y = torch.tensor([[[30000.0, 30000.0, 1.0, 1.0] * 4]], dtype=FP, device="cuda")
    gate = torch.tensor([[1.0, -1.0, 1.0, 0.5] * 4], dtype=FP, device="cuda")
    got = fused_ops.gate_residual(residual, gate, y)
    ref = fused_ops.gate_residual_reference(residual, gate, y)
    torch.testing.assert_close(got, ref, rtol=0, atol=0, equal_nan=True)  # NaN payload bits may differ
    assert got[0, 0, 0] == 65504 and got[0, 0, 1] == -65504 and torch.isnan(got[0, 0, 2])


# -- qk_norm_rope -----------------------------------------------------------------------------------------

# (B, S_txt, S_img, H, extra features per row (a wider projection, e.g. QKV + MLP), joint?)
QK_CASES = [(1, 0, FLUX_S, FLUX_H, 4 * FLUX_C, False), (1, FLUX_TXT, FLUX_IMG, FLUX_H, 0, True),
            (2, 0, 3, 1, 0, False), (3, 0, 1, 2, 8, False), (2, 1, 5, 3, 0, True), (2, 0, 4, 1, 4, True),
            (1, 7, 9, 2, 12, True)]  # fmt: skip


def _qk_exact(qkv: torch.Tensor, w: torch.Tensor, which: int, heads: int, eps: float = 1e-6) -> torch.Tensor:
    """float64 RMSNorm of head vectors `which` (0 q, 1 k) of qkv [B, S, F]: [B, S, H, D]."""
    t = qkv.double()[..., which * heads * FLUX_D : (which + 1) * heads * FLUX_D].unflatten(-1, (heads, FLUX_D))
    return t / torch.sqrt((t**2).mean(-1, keepdim=True) + eps) * w.double()


def _rope_exact(n: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (float64 rotation of n [B, S, H, D], magnitude of its terms) as [B, H, S, D]."""
    rot = torch.stack([-n[..., 1::2], n[..., 0::2]], dim=-1).flatten(-2)
    c, s = cos.double()[None, :, None], sin.double()[None, :, None]
    return (n * c + rot * s).transpose(1, 2), (n.abs() * c.abs() + rot.abs() * s.abs()).transpose(1, 2)


@pytest.mark.parametrize("b,s_txt,s_img,heads,extra,joint", QK_CASES)
@pytest.mark.parametrize("dtype", [BF, FP])
def test_qk_norm_rope(b, s_txt, s_img, heads, extra, joint, dtype, gen, report):
    _require_fused()
    width = 3 * heads * FLUX_D + extra
    s = s_txt + s_img
    # independent random cos/sin (not FLUX's paired table), so a mixed-up rotation index shows
    cos, sin = _randn((s, FLUX_D), gen, torch.float32), _randn((s, FLUX_D), gen, torch.float32)
    w = [(1 + 0.3 * torch.randn(FLUX_D, generator=gen)).to(dtype).cuda() for _ in range(4)]
    streams = [_randn((b, s_txt, width), gen, dtype, 3.0), _randn((b, s_img, width), gen, dtype, 3.0)]
    poison_allocator(3 * b * heads * s * FLUX_D * 2)
    if joint:
        q, k, v = fused_ops.qk_norm_rope_joint(streams[0], streams[1], *w, cos, sin, heads)
        parts = [(streams[0], w[0], w[1]), (streams[1], w[2], w[3])]
    else:
        qkv = streams[1]
        q, k, v = fused_ops.qk_norm_rope(qkv, w[2], w[3], cos, sin, heads)
        parts = [(qkv, w[2], w[3])]
    torch.cuda.synchronize()
    for t in (q, k, v):
        assert t.shape == (b, heads, s, FLUX_D) and t.dtype == dtype
        assert not torch.isnan(t).any(), "unwritten (poisoned) outputs"
    for t in (q, k, v) if joint else (q, k):
        assert t.transpose(1, 2).is_contiguous()  # token-major, so attention's output is token-major too
    if not joint:  # the single-stream op reads v in place
        assert v.untyped_storage().data_ptr() == qkv.untyped_storage().data_ptr()
    q_exact = _rope_exact(torch.cat([_qk_exact(p[0], p[1], 0, heads) for p in parts], 1), cos, sin)
    k_exact = _rope_exact(torch.cat([_qk_exact(p[0], p[2], 1, heads) for p in parts], 1), cos, sin)
    assert_rounded_once(q, q_exact[0], fp32_rel=2e-5, magnitude=q_exact[1])
    assert_rounded_once(k, k_exact[0], fp32_rel=2e-5, magnitude=k_exact[1])
    v_ref = torch.cat([p[0][..., 2 * heads * FLUX_D : 3 * heads * FLUX_D] for p in parts], 1)
    assert torch.equal(_bits(v), _bits(v_ref.unflatten(-1, (heads, FLUX_D)).transpose(1, 2)))
    if joint:
        ref = fused_ops.qk_norm_rope_joint_reference(streams[0], streams[1], *w, cos, sin, heads)
    else:
        ref = fused_ops.qk_norm_rope_reference(streams[1], w[2], w[3], cos, sin, heads)
    report(f"qk_norm_rope{'_joint' if joint else ''} B={b} S={s_txt}+{s_img} H={heads} F={width} "
           f"{str(dtype)[6:]}: rel q={rel_err(q, ref[0]):.2e} k={rel_err(k, ref[1]):.2e}")  # fmt: skip


# -- w4a16_gemv -------------------------------------------------------------------------------------------

GEMV_CASES = [(1, FLUX_C, 6 * FLUX_C, BF), (1, FLUX_C, 3 * FLUX_C, BF), (2, FLUX_C, 6 * FLUX_C, FP),
              (4, FLUX_C, 3 * FLUX_C, BF), (8, FLUX_C, 6 * FLUX_C, BF), (1, 64, 1, BF), (3, 128, 33, BF),
              (5, 576, 200, FP), (2, 16384, 40, BF), (7, 192, 72, BF), (8, 64, 31, FP)]  # fmt: skip


@pytest.mark.parametrize("m,k,n,dtype", GEMV_CASES)
def test_w4a16_gemv(m, k, n, dtype, gen, report):
    from gpu.kernels import launch
    from gpu.quant import dequantize

    _require_fused("gemv")
    layer = random_w4a16_layer(k, n, dtype, gen, device="cuda")
    x = _randn((m, k), gen, dtype)
    x[:, torch.randint(0, k, (max(1, k // 256),), generator=gen)] *= 20  # outlier channels
    out = launch.w4a16_gemv(x, layer.qweight, layer.wscales, layer.bias, out=_nan((m, n), dtype))
    via_dispatch = fused_ops.w4a16_gemv(x, layer)
    torch.cuda.synchronize()
    assert layer.last_path == "fused W4A16 GEMV (pycuda)", layer.last_path
    assert not torch.isnan(out).any(), "unwritten (poisoned) outputs"
    assert torch.equal(_bits(out), _bits(via_dispatch))
    w = dequantize(layer.quantized_weight()).double()
    exact = x.double() @ w.T + layer.bias.double()
    # fp32 accumulation noise is relative to the sum of |terms|, not to the (possibly cancelled) result
    assert_rounded_once(out, exact, fp32_rel=1e-5, magnitude=x.double().abs() @ w.abs().T + layer.bias.double().abs())
    ref = fused_ops.w4a16_gemv_reference(x, layer)
    report(f"w4a16_gemv M={m} K={k} N={n} {str(dtype)[6:]}: rel={rel_err(out, ref):.2e}, "
           f"{int((_bits(out) != _bits(ref)).sum())} of {out.numel()} differ from the reference")  # fmt: skip


@pytest.mark.parametrize("m,dtype", [(1, BF), (2, FP), (8, BF)])
def test_w4a16_gemv_grouped_equals_per_layer(m, dtype, gen):
    """One grouped launch over layers of different N (odd ones, one without bias) gives each layer the bits of
    its own launch; the table is cached on the caller's dict and rebuilt when a weight tensor is swapped."""
    _require_fused("gemv")
    k = 320
    layers = [random_w4a16_layer(k, n, dtype, gen, device="cuda") for n in (6 * 64, 33, 200, 31, 1)]
    layers[2].bias = None
    x = _randn((m, k), gen, dtype)
    cache: dict = {}
    poison_allocator(m * 649 * 2)
    grouped = fused_ops.w4a16_gemv_many(x, layers, cache)
    single = [fused_ops.w4a16_gemv(x, layer) for layer in layers]
    torch.cuda.synchronize()
    assert layers[0].last_path == "fused W4A16 GEMV (pycuda)"  # the per-layer calls ran last
    for g, one in zip(grouped, single, strict=True):
        assert not torch.isnan(g).any() and torch.equal(_bits(g), _bits(one))
    assert len(cache) == 1
    layers[3].wscales = layers[3].wscales * 2  # a swapped weight tensor: new table
    again = fused_ops.w4a16_gemv_many(x, layers, cache)
    assert len(cache) == 1 and torch.equal(_bits(again[3]), _bits(fused_ops.w4a16_gemv(x, layers[3])))
    assert not torch.equal(again[3], grouped[3]) and torch.equal(again[0], grouped[0])


# -- determinism, graphs ----------------------------------------------------------------------------------


def _all_ops(a: dict) -> list[torch.Tensor]:
    """Every fused op once at the FLUX shapes (through the dispatching functions)."""
    ln = fused_ops.layernorm_modulate(a["x"], a["shift"], a["scale"])
    gr = fused_ops.gate_residual(a["x"], a["gate"], a["y"])
    single = fused_ops.qk_norm_rope(a["qkv"], a["w"][2], a["w"][3], a["cos"], a["sin"], a["heads"])
    joint = fused_ops.qk_norm_rope_joint(a["qkv_txt"], a["qkv_img"], *a["w"], a["cos"], a["sin"], a["heads"])
    mod = fused_ops.w4a16_gemv(F.silu(a["temb"]), a["layer"])
    return [ln, gr, *single, *joint, mod]


def test_deterministic(gen):
    _require_fused()
    _require_fused("gemv")
    a = flux_block_inputs(gen)
    first = _all_ops(a)
    for _ in range(2):
        again = _all_ops(a)
        for i, (t0, t1) in enumerate(zip(first, again, strict=True)):
            assert torch.equal(_bits(t0), _bits(t1)), f"output {i} differs between runs"


def test_cuda_graph_capture_and_replay(gen):
    """The fused ops inside torch.cuda.graph (the fused FLUX model captures its whole forward)."""
    _require_fused()
    _require_fused("gemv")
    a = flux_block_inputs(gen)
    graph, static = capture_graph(lambda: _all_ops(a))
    for _ in range(2):
        fresh = flux_block_inputs(gen)
        for key in ("x", "y", "qkv", "qkv_txt", "qkv_img", "cos", "sin", "temb"):
            a[key].copy_(fresh[key])
        graph.replay()
        torch.cuda.synchronize()
        for i, (got, want) in enumerate(zip(static, _all_ops(a), strict=True)):
            assert torch.equal(_bits(got), _bits(want)), f"graph output {i} differs from eager"


# -- compute-sanitizer ------------------------------------------------------------------------------------


def run_small() -> None:
    """Every kernel once on small odd shapes (script mode, under compute-sanitizer)."""
    from gpu.kernels import launch

    g = torch.Generator().manual_seed(1)
    for dtype in (BF, FP):
        x = _activations(2, 3, 200, g, dtype)
        emb = _randn((2, 600), g, dtype)
        launch.layernorm_modulate(x, emb[:, :200], emb[:, 200:400])
        launch.gate_residual(x, emb[:, 400:], _randn((2, 3, 200), g, dtype), out=x)
        w = [_randn((FLUX_D,), g, dtype) for _ in range(4)]
        cos, sin = _randn((7, FLUX_D), g, torch.float32), _randn((7, FLUX_D), g, torch.float32)
        wide = _randn((2, 4, 3 * 2 * FLUX_D + 8), g, dtype)
        launch.qk_norm_rope(wide[:, :, 4:], _randn((2, 3, 3 * 2 * FLUX_D), g, dtype), *w, cos, sin, 2)
        for copy_v in (True, False):
            launch.qk_norm_rope(wide[:, :3, 4:], None, w[0], w[1], None, None, cos[:3].contiguous(),
                                sin[:3].contiguous(), 2, copy_v=copy_v)  # fmt: skip
        layer = random_w4a16_layer(192, 40, dtype, g, device="cuda")
        launch.w4a16_gemv(_randn((3, 192), g, dtype), layer.qweight, layer.wscales, layer.bias)
    torch.cuda.synchronize()
    print("fused ops small: ok")


@pytest.mark.slow
def test_compute_sanitizer(report):
    tool = os.environ.get("COMPUTE_SANITIZER", "compute-sanitizer")
    from shutil import which

    if which(tool) is None and not Path(tool).exists():
        pytest.skip("compute-sanitizer not found")
    root = Path(__file__).resolve().parents[2]
    for check in ("memcheck", "racecheck", "initcheck"):
        proc = subprocess.run(
            [tool, "--tool", check, "--error-exitcode", "9", sys.executable, str(Path(__file__)), "--small"],
            cwd=root, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        tail = (proc.stdout + proc.stderr)[-3000:]
        report(f"compute-sanitizer {check} (fused ops): rc={proc.returncode} " + tail.strip().splitlines()[-1])
        assert proc.returncode == 0, tail



if __name__ == "__main__" and "--small" in sys.argv:
    run_small()


def test_w4a16_layer_dispatches_to_the_gemv(gen):
    """A plain SVDQLinear W4A16 forward (the unfused model's adaLN linears) runs the GEMV through dispatch."""
    from gpu.modules.layer_spec import LayerSpec
    from gpu.modules.svdq_linear import SVDQLinear
    from gpu.quant.packing import pack_int4

    layer = SVDQLinear(3072, 18432, LayerSpec("rtn", "int4", None, 0, False), dtype=torch.bfloat16, device="cuda")
    with torch.no_grad():
        layer.qweight.copy_(pack_int4(torch.randint(-7, 8, (18432, 3072), generator=gen, dtype=torch.int8)))
        layer.wscales.copy_((torch.rand(18432, 48, generator=gen) * 0.01 + 0.001).bfloat16())
        layer.bias.copy_((torch.randn(18432, generator=gen) * 0.1).bfloat16())
    x = torch.randn(1, 3072, generator=gen).bfloat16().cuda()
    y = layer(x)
    assert layer.last_path == "fused W4A16 GEMV (pycuda)", layer.last_path
    ref = layer.forward_reference(x)
    assert float((y.float() - ref.float()).norm() / ref.float().norm()) < 1e-2
    big = layer(torch.randn(64, 3072, generator=gen).bfloat16().cuda())  # > 8 rows: the reference, said so
    assert big.shape == (64, 18432) and "rows" in layer.last_path
