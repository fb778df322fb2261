"""``python main.py bench kernels``: the fused SVDQuant linear against cuBLAS at every FLUX.1 shape.

Columns (all in one run, per (M, K, N)):
  a  cuBLAS BF16 ``F.linear``
  b  FP8 rowwise ``torch._scaled_mm`` incl. dynamic per-token activation quantization (weights pre-quantized)
  bc the same, under ``torch.compile`` (inductor fuses the quantization's passes): what a compiled FP8 model runs
  bG ``torch._scaled_mm`` alone on pre-quantized activations: the FP8 GEMM, to set beside our GEMM alone (G)
  c  our fused SVDQuant linear, everything included (prologue, GEMM, low-rank, bias); on sm_90 the W4A8
     FP8 wgmma path (what dispatch runs), elsewhere W4A4
  c8 (sm_90 only) the INT8-g64 ``mma.sync`` W4A8 kernels, everything included: the measured alternative
  d  the same kernels at rank 0 plus the low-rank branch as separate torch matmuls (bf16)
  e  our kernels at rank 0 (prologue + GEMM + bias)
  A  the prologue alone (on sm_90: FP8 quantization + the cuBLAS down projection), for insight
  G  our GEMM alone at rank 0, activations pre-quantized
Effective TOPS = 2*M*K*N / time; medians over ``iters`` timed runs (CUDA events per call) after warm-up, each
call a CUDA-graph replay (no host launch overhead in any column). Every timed call takes the next of several
input/weight sets, rotated so nothing is served from L2.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from gpu.bench.fp8_rowwise import fp8_rowwise_gemm, fp8_rowwise_linear, quantize_rows_fp8

if TYPE_CHECKING:
    from gpu.kernels.launch import Fp8Act, QuantizedAct
    from gpu.kernels.repack import PackedW4A8F

FLUX_KN = [(3072, 3072), (3072, 9216), (3072, 12288), (12288, 3072), (3072, 21504), (15360, 3072)]
M_LIST = [4608, 1536]
COLUMNS = {
    "a": "cuBLAS BF16",
    "b": "FP8 rowwise _scaled_mm (+act quant)",
    "bc": "FP8 rowwise _scaled_mm (+act quant), torch.compile (the quantization fused)",
    "bG": "FP8 rowwise _scaled_mm only (activations pre-quantized)",
    "c": "fused SVDQ (all)",
    "d": "fused r0 + torch low-rank",
    "e": "fused rank 0",
    "A": "prologue only (rank r)",
    "G": "GEMM only (rank 0, activations pre-quantized)",
    "c8": "INT8-g64 mma.sync W4A8 (all), sm_90 only",
}


def time_columns(fns: dict, n_sets: int, iters: int, warmup: int = 5) -> dict[str, float]:
    """Median seconds of each column's fn(i) over iters calls, i rotating over n_sets input sets. Each set's
    call is captured once into a CUDA graph and the timed calls are replays: every column is timed without host
    launch overhead (which made the small shapes measure Python, not kernels), as the app's FLUX step runs under
    CUDA graphs. The columns' replays are interleaved (one of each per round), so clock and temperature drift
    over the run reach every column alike: timed one column after the other, the same kernel measured up to 5%
    apart at the start and the end of a shape (H200, 2026-11-21)."""
    graphs = {}
    for col, fn in fns.items():
        for i in range(warmup):
            fn(i % n_sets)
        torch.cuda.synchronize()
        graphs[col] = []
        for i in range(n_sets):
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                fn(i)
            graphs[col].append(graph)
    for i in range(warmup):
        for col in fns:
            graphs[col][i % n_sets].replay()
    torch.cuda.synchronize()
    events = {col: [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                    for _ in range(iters)] for col in fns}  # fmt: skip
    q = 0  # every replay takes the next set, whichever column it is: no replay finds its inputs in L2
    for i in range(iters):
        for col in fns:
            start, end = events[col][i]
            start.record()
            graphs[col][q % n_sets].replay()
            end.record()
            q += 1
    torch.cuda.synchronize()
    times = {col: statistics.median(s.elapsed_time(e) * 1e-3 for s, e in evs) for col, evs in events.items()}
    del graphs
    return times


def gpu_meta(device: torch.device) -> dict[str, str]:
    """What a GPU benchmark's result says first: when (UTC), which GPU, its compute capability, torch's version."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "gpu": torch.cuda.get_device_name(device),
        "capability": "sm_{}{}".format(*torch.cuda.get_device_capability(device)),
        "torch": torch.__version__,
    }


def sets_past_l2(bytes_per_call: int) -> int:
    """How many input sets ``time_columns`` rotates over so that a call's inputs have left L2 before they are read
    again: more than twice the 50-60 MB L2 (H100, H200) is read between two reuses; 2 to 8 sets."""
    return max(2, min(8, math.ceil(2 * 60e6 / bytes_per_call) + 1))


def _layer_set(k: int, n: int, rank: int, gen: torch.Generator, device: torch.device) -> dict[str, Any]:
    """One random layer's operands on ``device``: bf16 weight "w" [n, k] and "bias" [n], its FP8 rowwise form
    ("w8" e4m3 [n, k], "w_scale_t" fp32 [1, n]) and "layers" (rank -> ``SVDQLinear``, at ``rank`` and 0)."""
    from gpu.modules.layer_spec import LayerSpec
    from gpu.modules.svdq_linear import SVDQLinear
    from gpu.quant.packing import pack_int4

    dt = torch.bfloat16
    w = (torch.randn(n, k, generator=gen) / k**0.5).to(dt).to(device)
    bias = (torch.randn(n, generator=gen) * 0.1).to(dt).to(device)
    w8, w_scale = quantize_rows_fp8(w)
    layers = {}
    for r in sorted({rank, 0}):
        spec = LayerSpec("svdquant", "int4", "int4", r, True)
        layer = SVDQLinear(k, n, spec, bias=True, dtype=dt, device=device)
        with torch.no_grad():
            layer.qweight.copy_(pack_int4(torch.randint(-7, 8, (n, k), generator=gen, dtype=torch.int8)).to(device))
            layer.wscales.copy_((torch.rand(n, k // 64, generator=gen) * 0.02 + 0.002).to(dt).to(device))
            layer.smooth.copy_((torch.rand(k, generator=gen) + 0.5).to(dt).to(device))
            layer.bias.copy_(bias)
            if r:
                layer.lora_down.copy_((torch.randn(k, r, generator=gen) / k**0.5).to(dt).to(device))
                layer.lora_up.copy_((torch.randn(n, r, generator=gen) * 0.5).to(dt).to(device))
        layers[r] = layer
    return {"w": w, "bias": bias, "w8": w8, "w_scale_t": w_scale.t().contiguous(), "layers": layers}


def _kernel_path(device: torch.device) -> dict:
    """The fused path this GPU runs, as functions of (x, packed): the FP8 wgmma W4A8 kernels on Hopper (with
    the INT8-g64 ``mma.sync`` W4A8 kernels as the alternative column c8), else INT4 W4A4."""
    from gpu.kernels import launch, repack

    if torch.cuda.get_device_capability(device) >= (9, 0):

        def prologue(x: torch.Tensor, p: PackedW4A8F) -> tuple[Fp8Act, torch.Tensor | None]:
            qa = launch.quantize_act_fp8(x, p.inv_smooth)
            return qa, (x @ p.lora_down if p.rank else None)

        return {
            "name": "W4A8 FP8 (wgmma)",
            "pack": repack.packed_w4a8f_for,
            "fused": launch.svdq_linear_forward_w4a8f,
            "prologue": prologue,
            "gemm": lambda qa, p: launch.w4a8f_gemm(qa, None, p, torch.bfloat16),
            "alt": ("c8", repack.packed_for, launch.svdq_linear_forward_w4a8),
        }
    return {
        "name": "W4A4",
        "pack": repack.packed_for,
        "fused": launch.svdq_linear_forward,
        "prologue": lambda x, p: launch.quantize_act(x, p.smooth, p.lora_down),
        "gemm": lambda qa, p: launch.w4a4_gemm(qa, p, torch.bfloat16),
        "alt": None,
    }


def bench_shape(m: int, k: int, n: int, rank: int, iters: int, device: torch.device, gen: torch.Generator) -> dict:
    """One table row: every column's median time (``t_<col>_us``) and TOPS (``tops_<col>``) for bf16 x [m, k] through
    a random layer of weight [n, k] at ``rank`` on ``device``, with the speedups the summary averages."""
    path = _kernel_path(device)
    fused, pack = path["fused"], path["pack"]
    dt = torch.bfloat16
    per_set = m * k * 2 + n * k * 2 + m * n * 2  # bf16 x, w, out: the largest working set (column a)
    n_sets = sets_past_l2(per_set)
    sets = []
    for _ in range(n_sets):
        s = _layer_set(k, n, rank, gen, device)
        s["x"] = torch.randn(m, k, generator=gen).to(dt).to(device)
        s["packed"] = {r: pack(layer) for r, layer in s["layers"].items()}
        s["qa0"] = path["prologue"](s["x"], s["packed"][0])[0]
        s["xq8"], s["x_scale"] = quantize_rows_fp8(s["x"])
        if path["alt"]:
            s["alt"] = path["alt"][1](s["layers"][rank])
        sets.append(s)

    def col_a(i: int) -> torch.Tensor:
        s = sets[i]
        return F.linear(s["x"], s["w"], s["bias"])

    def col_b(i: int) -> torch.Tensor:
        s = sets[i]
        return fp8_rowwise_linear(s["x"], s["w8"], s["w_scale_t"], s["bias"], dt)

    # One compile per shape (static shapes, as a compiled model at one resolution runs); the reset keeps the
    # twelve shapes from reaching dynamo's recompile limit, past which it would silently run eager.
    torch._dynamo.reset()
    fp8_compiled = torch.compile(fp8_rowwise_linear, dynamic=False)

    def col_bc(i: int) -> torch.Tensor:
        s = sets[i]
        return fp8_compiled(s["x"], s["w8"], s["w_scale_t"], s["bias"], dt)

    def col_bG(i: int) -> torch.Tensor:  # noqa: N802
        s = sets[i]
        return fp8_rowwise_gemm(s["xq8"], s["x_scale"], s["w8"], s["w_scale_t"], s["bias"], dt)

    def col_c(i: int) -> torch.Tensor:
        return fused(sets[i]["x"], sets[i]["packed"][rank])

    def col_d(i: int) -> torch.Tensor:
        s = sets[i]
        lay = s["layers"][rank]
        y = fused(s["x"], s["packed"][0])
        if rank:
            xs = s["x"] * torch.reciprocal(lay.smooth)
            y = torch.addmm(y, xs @ lay.lora_down, lay.lora_up.t())
        return y

    def col_e(i: int) -> torch.Tensor:
        return fused(sets[i]["x"], sets[i]["packed"][0])

    def col_A(i: int) -> QuantizedAct | tuple[Fp8Act, torch.Tensor | None]:  # noqa: N802
        return path["prologue"](sets[i]["x"], sets[i]["packed"][rank])

    def col_G(i: int) -> torch.Tensor:  # noqa: N802
        return path["gemm"](sets[i]["qa0"], sets[i]["packed"][0])

    fns = {"a": col_a, "b": col_b, "bc": col_bc, "bG": col_bG, "c": col_c, "d": col_d, "e": col_e, "A": col_A,
           "G": col_G}
    if path["alt"]:
        alt_name, _, alt_fused = path["alt"]
        fns[alt_name] = lambda i: alt_fused(sets[i]["x"], sets[i]["alt"])
    times = time_columns(fns, n_sets, iters)
    flop = 2.0 * m * k * n
    row = {"M": m, "K": k, "N": n, "rank": rank, "path": path["name"], "sets": n_sets}
    for c, t in times.items():
        row[f"t_{c}_us"] = t * 1e6
        row[f"tops_{c}"] = flop / t / 1e12
    row["speedup_c_vs_a"] = times["a"] / times["c"]
    row["speedup_b_vs_a"] = times["a"] / times["b"]
    row["speedup_bc_vs_a"] = times["a"] / times["bc"]
    row["speedup_c_vs_bc"] = times["bc"] / times["c"]
    row["speedup_G_vs_bG"] = times["bG"] / times["G"]
    row["lowrank_overhead_c_vs_e"] = times["c"] / times["e"] - 1.0
    row["lowrank_overhead_d_vs_e"] = times["d"] / times["e"] - 1.0
    sets.clear()
    torch.cuda.empty_cache()
    return row


def _geomean(vals: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def run(out_dir: Path, rank: int = 32, iters: int = 30, m_list: list[int] | None = None) -> dict:
    """Benchmark every M of ``m_list`` (default ``M_LIST``) at each FLUX (K, N) on the current CUDA device; writes
    bench_kernels.json and bench_kernels.md into ``out_dir`` and returns the JSON's dict (meta, rows, summary)."""
    from gpu.kernels.launch import launch_stream
    from gpu.output_folders import make_output_folder

    make_output_folder(out_dir)  # a file in the way is said now, not after the whole run
    device = torch.device("cuda", torch.cuda.current_device())
    gen = torch.Generator().manual_seed(0)
    rows = []
    with torch.no_grad(), launch_stream(device):  # torch on the kernels' stream: no fork/join per launch
        for m in m_list or M_LIST:
            for k, n in FLUX_KN:
                row = bench_shape(m, k, n, rank, iters, device, gen)
                rows.append(row)
                print(
                    f"M={m:5d} K={k:5d} N={n:5d}: "
                    + " ".join(f"{c}={row[f'tops_{c}']:7.1f}" for c in "abcde")
                    + f" TOPS  c/a={row['speedup_c_vs_a']:.2f}x  c/e-1={100 * row['lowrank_overhead_c_vs_e']:+.1f}%"
                    + f"  prologue={row['t_A_us']:.1f}us GEMM-only={row['tops_G']:.0f} TOPS",
                    flush=True,
                )
    summary = {}
    for m in sorted({r["M"] for r in rows}, reverse=True):
        rs = [r for r in rows if r["M"] == m]
        summary[str(m)] = {
            "geomean_speedup_c_vs_a": _geomean([r["speedup_c_vs_a"] for r in rs]),
            "geomean_speedup_b_vs_a": _geomean([r["speedup_b_vs_a"] for r in rs]),
            "geomean_speedup_bc_vs_a": _geomean([r["speedup_bc_vs_a"] for r in rs]),
            "geomean_speedup_c_vs_bc": _geomean([r["speedup_c_vs_bc"] for r in rs]),
            "geomean_speedup_G_vs_bG": _geomean([r["speedup_G_vs_bG"] for r in rs]),
            "geomean_lowrank_overhead_c_vs_e": _geomean([1 + r["lowrank_overhead_c_vs_e"] for r in rs]) - 1,
            "geomean_lowrank_overhead_d_vs_e": _geomean([1 + r["lowrank_overhead_d_vs_e"] for r in rs]) - 1,
        }
    meta = {
        **gpu_meta(device),
        "rank": rank,
        "iters": iters,
        "timing": "CUDA-graph replay per call, CUDA events",
        "columns": COLUMNS,
    }
    result = {"meta": meta, "rows": rows, "summary": summary}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_kernels.json").write_text(json.dumps(result, indent=2))
    (out_dir / "bench_kernels.md").write_text(markdown(result))
    print(markdown(result))
    return result


def markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [
        f"Kernel benchmark, {meta['date']}, {meta['gpu']} ({meta['capability']}), torch {meta['torch']}, "
        f"rank {meta['rank']}, median of {meta['iters']} timed runs, each a CUDA-graph replay, inputs rotated past L2. "
        "TOPS = 2·M·K·N / time.",
        "",
        "| M | K→N | (a) BF16 | (b) FP8 rowwise | (b′) FP8, compiled | (c) fused SVDQ | (d) r0 + torch LR "
        "| (e) rank 0 | GEMM only | FP8 GEMM only | INT8 W4A8 (all) | prologue µs | c/a | b/a | b′/a | c/b′ "
        "| GEMM / FP8 GEMM | c vs e | d vs e |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['M']} | {r['K']}→{r['N']} | "
            + " | ".join(f"{r[f'tops_{c}']:.0f}" for c in ("a", "b", "bc", "c", "d", "e", "G", "bG"))
            + (f" | {r['tops_c8']:.0f}" if "tops_c8" in r else " | –")
            + f" | {r['t_A_us']:.1f} | {r['speedup_c_vs_a']:.2f}× | {r['speedup_b_vs_a']:.2f}× "
            f"| {r['speedup_bc_vs_a']:.2f}× | {r['speedup_c_vs_bc']:.2f}× | {r['speedup_G_vs_bG']:.2f}× "
            f"| {100 * r['lowrank_overhead_c_vs_e']:+.1f}% | {100 * r['lowrank_overhead_d_vs_e']:+.1f}% |"
        )
    lines.append("")
    for m, s in result["summary"].items():
        lines.append(
            f"- M = {m}: geomean c/a = {s['geomean_speedup_c_vs_a']:.2f}×, b/a = {s['geomean_speedup_b_vs_a']:.2f}×, "
            f"b′/a = {s['geomean_speedup_bc_vs_a']:.2f}×, c/b′ = {s['geomean_speedup_c_vs_bc']:.2f}×, "
            f"GEMM only / FP8 GEMM only = {s['geomean_speedup_G_vs_bG']:.2f}×, "
            f"low-rank overhead c vs e = {100 * s['geomean_lowrank_overhead_c_vs_e']:+.1f}%, "
            f"d vs e = {100 * s['geomean_lowrank_overhead_d_vs_e']:+.1f}%"
        )
    return "\n".join(lines) + "\n"
