"""Shared helpers of the device tests: random layers, the exact reference, poisoning."""

from __future__ import annotations

import torch

from gpu.modules.layer_spec import LayerSpec
from gpu.modules.reference import grouped_dot, low_rank_branch
from gpu.modules.svdq_linear import SVDQLinear
from gpu.quant import QuantizedTensor, get_format
from gpu.quant.packing import pack_int4

INT4 = get_format("int4")
FLUX_KN = [(3072, 3072), (3072, 9216), (3072, 12288), (12288, 3072), (15360, 3072), (3072, 21504)]
SMALL_KN = [(64, 8), (192, 136), (320, 384), (576, 200), (448, 72)]
M_SWEEP = [1, 7, 256, 4096 + 512]
RANKS = [16, 32, 64, 128]


def sweep_cases(ranks: list[int]) -> list[tuple[int, int, int, int, torch.dtype]]:
    """(m, k, n, rank, dtype) over M_SWEEP x (FLUX_KN + SMALL_KN); ranks rotate, and so do bf16/fp16."""
    cases = []
    for i, (m, (k, n)) in enumerate((m, kn) for m in M_SWEEP for kn in FLUX_KN + SMALL_KN):
        cases.append((m, k, n, ranks[i % len(ranks)], torch.bfloat16 if i % 3 else torch.float16))
    return cases


def random_layer(k: int, n: int, rank: int, dtype: torch.dtype, gen: torch.Generator, bias: bool = True):
    """An SVDQLinear (INT4 W4A4) on the GPU with random codes, scales, smoothing, low-rank and bias."""
    spec = LayerSpec("svdquant", "int4", "int4", rank, True)
    layer = SVDQLinear(k, n, spec, bias=bias, dtype=dtype, device="cuda")
    codes = torch.randint(-7, 8, (n, k), generator=gen, dtype=torch.int8)
    with torch.no_grad():
        layer.qweight.copy_(pack_int4(codes))
        layer.wscales.copy_((torch.rand(n, k // 64, generator=gen) * 0.02 + 0.002).to(dtype))
        layer.smooth.copy_((torch.rand(k, generator=gen) * 1.5 + 0.5).to(dtype))
        if rank:
            layer.lora_down.copy_((torch.randn(k, rank, generator=gen) / k**0.5).to(dtype))
            layer.lora_up.copy_((torch.randn(n, rank, generator=gen) * 0.5).to(dtype))
        if bias:
            layer.bias.copy_((torch.randn(n, generator=gen) * 0.1).to(dtype))
    return layer


def random_x(m: int, k: int, dtype: torch.dtype, gen: torch.Generator) -> torch.Tensor:
    """T [m, k] on the GPU with a few outlier channels (what smoothing and the low-rank branch absorb)."""
    x = torch.randn(m, k, generator=gen)
    x[:, torch.randint(0, k, (max(1, k // 64),), generator=gen)] *= 20.0
    return x.to(dtype).cuda()


def exact_act_quant(x: torch.Tensor, smooth: torch.Tensor, dtype: torch.dtype, qmax: int = 7):
    """The contract, computed through float64 so every fp32 op is the correctly rounded one:
    x: T [M, K] -> (xs fp32 [M, K], codes int8 [M, K], scales T [M, K/64]), on the CPU.
    qmax 7: INT4 activations (W4A4); qmax 127: INT8 g64 activations (the Hopper W4A8 path)."""
    xf = x.cpu().float()
    inv = (1.0 / smooth.cpu().double()).float()  # IEEE fp32 reciprocal
    xs = (xf.double() * inv.double()).float()  # IEEE fp32 product
    m, k = xs.shape
    g = xs.view(m, k // 64, 64)
    absmax = g.abs().amax(-1)
    scales = (absmax.double() / float(qmax)).float().to(dtype)
    s = scales.float().unsqueeze(-1)
    safe = torch.where(s > 0, s, torch.ones_like(s))
    q = torch.round((g.double() / safe.double()).float()).clamp(-qmax, qmax)
    q = torch.where(s > 0, q, torch.zeros_like(q))
    return xs, q.to(torch.int8).view(m, k), scales


def reference_parts(layer: SVDQLinear, x: torch.Tensor, act_format=INT4):
    """-> (grouped fp32 [M, N] from exact codes, full fp32 [M, N], exact codes, exact scales), activations
    quantized to ``act_format`` (INT4 g64 for W4A4, INT8 g64 for the Hopper INT8 W4A8 path)."""
    qmax = 2 ** (act_format.bits - 1) - 1
    xs, codes, scales = exact_act_quant(x, layer.smooth, layer.compute_dtype, qmax=qmax)
    qx = QuantizedTensor(codes.cuda(), scales.cuda(), act_format)
    grouped = grouped_dot(qx, layer.quantized_weight())
    y = grouped
    if layer.spec.rank:
        y = y + low_rank_branch(xs.cuda(), layer.lora_down, layer.lora_up)
    if layer.bias is not None:
        y = y + layer.bias.float()
    return grouped, y, codes, scales


def capture_graph(fn) -> tuple[torch.cuda.CUDAGraph, object]:
    """Warm ``fn`` up on a side stream (module loads, repacks stay outside the capture), then capture one call
    -> (graph, the call's static output)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out


def poison_allocator(nbytes: int) -> None:
    """Fill free memory of torch's caching allocator with 0xFF bytes (NaN in fp32/bf16/fp16), so kernel
    outputs that are allocated next start out poisoned rather than zero or stale-correct."""
    blocks = [torch.full((nbytes,), 0xFF, dtype=torch.uint8, device="cuda") for _ in range(3)]
    torch.cuda.synchronize()
    del blocks


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))
