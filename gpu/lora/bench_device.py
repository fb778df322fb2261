"""On a CUDA GPU: LoRAs appended to SVDQuant's low-rank branch through the fused kernels vs the reference,
and the time they add, at FLUX.1 layer shapes.

    python -m gpu.lora.bench_device --out DIR      (writes lora_bench.json and prints a table)

For each FLUX.1 W4A4 shape a random rank-32 INT4 layer gets a rank-16 LoRA, a rank-64 LoRA and both,
appended through ``gpu.lora.apply`` exactly as the app does. Checks: the fused W4A4 kernels
(``svdq_linear_forward``) against ``forward_reference`` and, on Hopper, the dispatched W4A8 path against the
W4A8 reference. Timing: median of CUDA-event-timed runs; whole-model overhead weights each shape by how often
FLUX.1 runs it per transformer step at 1024² (4096 image + 512 text tokens)."""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable
from pathlib import Path

import torch

from gpu.kernels.backend import W4A8
from gpu.lora.apply import ModuleDelta, apply_deltas, restore
from gpu.modules.layer_spec import LayerSpec
from gpu.modules.svdq_linear import SVDQLinear
from gpu.quant.packing import pack_int4

# (K, N, M tokens, times per FLUX.1 transformer step): double blocks (image, text streams), single blocks
FLUX_SHAPES = [
    (3072, 3072, 4096, 19 * 4), (3072, 12288, 4096, 19), (12288, 3072, 4096, 19),
    (3072, 3072, 512, 19 * 4), (3072, 12288, 512, 19), (12288, 3072, 512, 19),
    (3072, 3072, 4608, 38 * 3), (3072, 12288, 4608, 38), (15360, 3072, 4608, 38),
]  # fmt: skip
LORA_SETS = {"base": [], "r16": [16], "r64": [64], "r16+r64": [16, 64]}


def random_layer(k: int, n: int, gen: torch.Generator, dtype: torch.dtype = torch.bfloat16) -> SVDQLinear:
    """A random W4A4 INT4 ``SVDQLinear`` K -> N on CUDA: rank-32 branch, smoothing and bias in 16-bit ``dtype``."""
    layer = SVDQLinear(k, n, LayerSpec("svdquant", "int4", "int4", 32, True), True, dtype, "cuda")
    with torch.no_grad():
        layer.qweight.copy_(pack_int4(torch.randint(-7, 8, (n, k), generator=gen, dtype=torch.int8)))
        layer.wscales.copy_((torch.rand(n, k // 64, generator=gen) * 0.02 + 0.002).to(dtype))
        layer.smooth.copy_((torch.rand(k, generator=gen) * 1.5 + 0.5).to(dtype))
        layer.lora_down.copy_((torch.randn(k, 32, generator=gen) / k**0.5).to(dtype))
        layer.lora_up.copy_((torch.randn(n, 32, generator=gen) * 0.5).to(dtype))
        layer.bias.copy_((torch.randn(n, generator=gen) * 0.1).to(dtype))
    return layer


def lora_parts(k: int, n: int, ranks: list[int], gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(A [r, K], s·B [N, r]) float32, scaled so the LoRA moves the output by ~10-30%."""
    return [(torch.randn(r, k, generator=gen) / k**0.5, torch.randn(n, r, generator=gen) * 0.3 / r**0.5)
            for r in ranks]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b|| over all elements, in fp32 (a, b: same shape, any float dtype)."""
    return float((a.float() - b.float()).norm() / b.float().norm())


def timed(fn: Callable[[], object], iters: int) -> float:
    """Median milliseconds of ``fn()`` over ``iters`` CUDA-event-timed calls, after 3 warm-up calls."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=Path("lora-bench"))
    p.add_argument("--iters", type=int, default=20)
    args = p.parse_args()
    from gpu.kernels.launch import svdq_linear_forward
    from gpu.kernels.repack import packed_for
    from gpu.runtime.dispatch import describe_device

    gen = torch.Generator().manual_seed(0)
    device = torch.device("cuda")
    report = {"device": describe_device(device), "torch": torch.__version__, "checks": [], "timing": []}
    for k, n, m, count in FLUX_SHAPES:
        layer = random_layer(k, n, gen)
        x = torch.randn(m, k, generator=gen)
        x[:, torch.randint(0, k, (k // 64,), generator=gen)] *= 20.0
        x = x.to(torch.bfloat16).cuda()
        row = {"k": k, "n": n, "m": m, "count": count}
        for label, ranks in LORA_SETS.items():
            parts = lora_parts(k, n, ranks, gen)
            if parts:
                apply_deltas({"layer": ModuleDelta(layer, parts)})
            with torch.no_grad():
                fused = svdq_linear_forward(x, packed_for(layer))
                ref = layer.forward_reference(x)
                dispatched = layer(x)
                path = layer.last_path
                # the W4A8 path dispatch takes on Hopper runs the FP8 numerics, not the older INT8-g64 kernels'
                ref_path = layer.forward_reference(x, act_format=W4A8.act_format) if "W4A8" in path else ref
                row[f"ms_w4a4_{label}"] = timed(lambda x=x, layer=layer: svdq_linear_forward(x, packed_for(layer)),
                                                args.iters)
                row[f"ms_dispatch_{label}"] = timed(lambda x=x, layer=layer: layer(x), args.iters)
            if label != "base":
                restore(torch.nn.Sequential(layer))
                with torch.no_grad():
                    base_ref = layer.forward_reference(x)
                report["checks"].append({
                    "k": k, "n": n, "m": m, "lora": label, "rank_total": 32 + sum(ranks),
                    "w4a4_fused_vs_reference": rel(fused, ref),
                    "dispatch_vs_its_reference": rel(dispatched, ref_path), "dispatch_path": path,
                    "lora_effect": rel(ref, base_ref),
                })  # fmt: skip
        report["timing"].append(row)
        print(json.dumps(row), flush=True)
    total = {}
    for label in LORA_SETS:
        for kind in ("w4a4", "dispatch"):
            total[f"{kind}_{label}"] = sum(r[f"ms_{kind}_{label}"] * r["count"] for r in report["timing"])
    report["flux_step_linear_ms"] = total
    worst = max(c["w4a4_fused_vs_reference"] for c in report["checks"])
    worst_d = max(c["dispatch_vs_its_reference"] for c in report["checks"])
    report["worst_w4a4_rel_err"], report["worst_dispatch_rel_err"] = worst, worst_d
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lora_bench.json").write_text(json.dumps(report, indent=1))
    print(report["device"])
    print(f"worst rel err fused W4A4 vs reference: {worst:.2e}; dispatched path vs its reference: {worst_d:.2e}")
    for kind in ("w4a4", "dispatch"):
        base = total[f"{kind}_base"]
        cells = ", ".join(f"{lb} {total[f'{kind}_{lb}']:.2f} ms (+{100 * (total[f'{kind}_{lb}'] / base - 1):.1f}%)"
                          for lb in LORA_SETS if lb != "base")
        print(f"FLUX.1 W4A4 linears per step, {kind}: base {base:.2f} ms; {cells}")
    assert worst < 1e-3 and worst_d < 1e-3, "fused path disagrees with the reference"


if __name__ == "__main__":
    main()
