"""The fused FLUX block ops against the unfused PyTorch ops diffusers runs, at FLUX.1's shapes (B=1, 512 text + 4096
image tokens, C=3072, 24 heads of 128):

    python -m gpu.bench.fused_ops [--iters N] [--out DIR]      (on a CUDA GPU with pycuda)

Per op (``gpu.modules.fused_ops``; kernels_cu/svdq_fused_norm.cu, kernels_cu/svdq_w4a16_gemv.cu) the columns are
``fused`` (the dispatching function: the kernel), ``torch`` (diffusers' unfused ops: LayerNorm then the modulation,
the gated residual add, ``FluxAttnProcessor``'s split + RMSNorm + ``apply_rotary_emb``, a bf16 ``F.linear`` on the
dequantized weight for the GEMV) and, for the GEMV, ``reference`` (fused_ops' PyTorch reference: dequantize + fp32
matmul). Each call is a CUDA-graph replay timed with CUDA events, the columns interleaved, every call on the next of
several input sets so that none reads its inputs from L2 (``gpu.bench.kernels``' timer); medians over ``iters``.
GB/s: the bytes the fused op must move at the least, over its time. Writes ``bench_fused_ops.{json,md}`` to DIR.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gpu.bench.kernels import gpu_meta, sets_past_l2, time_columns

BF = torch.bfloat16
FLUX_C, FLUX_H, FLUX_D, FLUX_TXT, FLUX_IMG = 3072, 24, 128, 512, 4096
FLUX_S = FLUX_TXT + FLUX_IMG


def flux_block_inputs(gen: torch.Generator, dtype: torch.dtype = BF) -> dict[str, Any]:
    """Random inputs of every fused op at FLUX.1's shapes, drawn on ``gen``'s device, returned on the GPU: x, y T
    [1, S, C] (x offset like the residual stream); shift, scale, gate T [1, C] (strided chunks of one adaLN output,
    as the blocks pass them); qkv T [1, S, 7C] (a single block's QKV + MLP projection); qkv_txt T [1, 512, 3C] and
    qkv_img T [1, 4096, 3C] (a double block's); w: 4 RMSNorm weights T [128]; cos, sin float32 [S, 128]; temb T
    [1, C]; layer: a W4A16 INT4 g64 ``SVDQLinear`` C -> 6C (an adaLN modulation linear); heads. T: ``dtype``."""
    from gpu.bench.flux_random import _fill_svdq
    from gpu.modules.layer_spec import spec_for
    from gpu.modules.svdq_linear import SVDQLinear

    def randn(*shape: int, std: float = 1.0, mean: float = 0.0, dt: torch.dtype = dtype) -> torch.Tensor:
        return (torch.randn(shape, generator=gen, device=gen.device) * std + mean).to(dt).cuda()

    c = FLUX_C
    emb = randn(1, 6 * c, std=0.5)
    layer = SVDQLinear(c, 6 * c, spec_for("svdquant", "int4", 32, "w4a16"), bias=True, dtype=dtype, device=gen.device)
    _fill_svdq(layer, gen, None)
    return {
        "x": randn(1, FLUX_S, c, std=2.0, mean=0.5),
        "y": randn(1, FLUX_S, c),
        "shift": emb[:, :c],
        "scale": emb[:, c : 2 * c],
        "gate": emb[:, 2 * c : 3 * c],
        "qkv": randn(1, FLUX_S, 7 * c, std=3.0),
        "qkv_txt": randn(1, FLUX_TXT, 3 * c, std=3.0),
        "qkv_img": randn(1, FLUX_IMG, 3 * c, std=3.0),
        "w": [randn(FLUX_D, std=0.3, mean=1.0) for _ in range(4)],
        "cos": randn(FLUX_S, FLUX_D, dt=torch.float32),
        "sin": randn(FLUX_S, FLUX_D, dt=torch.float32),
        "temb": randn(1, c),
        "layer": layer.cuda(),
        "heads": FLUX_H,
    }


def diffusers_qk(
    qkv: torch.Tensor, wq: torch.Tensor, wk: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``FluxAttnProcessor``'s unfused steps on a fused QKV projection qkv T [B, S, >= 3*H*D]: split, RMSNorm, RoPE
    -> q, k, v T [B, H, S, D] views."""
    from diffusers.models.embeddings import apply_rotary_emb

    q, k, v = qkv[..., : 3 * heads * FLUX_D].chunk(3, dim=-1)
    q, k, v = (t.unflatten(-1, (heads, FLUX_D)) for t in (q, k, v))
    q = apply_rotary_emb(F.rms_norm(q, (FLUX_D,), wq, eps), (cos, sin), sequence_dim=1)
    k = apply_rotary_emb(F.rms_norm(k, (FLUX_D,), wk, eps), (cos, sin), sequence_dim=1)
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


def diffusers_qk_joint(
    qkv_txt: torch.Tensor, qkv_img: torch.Tensor, wqt: torch.Tensor, wkt: torch.Tensor, wqi: torch.Tensor,
    wki: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, heads: int, eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The double blocks' version: text T [B, St, 3*H*D] and image T [B, Si, 3*H*D] normalized with their own
    weights, concatenated (text first), rotated -> q, k, v T [B, H, St + Si, D]."""
    from diffusers.models.embeddings import apply_rotary_emb

    parts = []
    for qkv, wq, wk in ((qkv_txt, wqt, wkt), (qkv_img, wqi, wki)):
        q, k, v = (t.unflatten(-1, (heads, FLUX_D)) for t in qkv.chunk(3, dim=-1))
        parts.append((F.rms_norm(q, (FLUX_D,), wq, eps), F.rms_norm(k, (FLUX_D,), wk, eps), v))
    q, k, v = (torch.cat([parts[0][i], parts[1][i]], dim=1) for i in range(3))
    q = apply_rotary_emb(q, (cos, sin), sequence_dim=1)
    k = apply_rotary_emb(k, (cos, sin), sequence_dim=1)
    return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)


def _op_columns(sets: list[dict[str, Any]]) -> dict[str, tuple[dict[str, Callable[[int], object]], int]]:
    """op -> ({column: fn(set index)}, the bytes the fused op moves at the least)."""
    from gpu.modules import fused_ops

    act = FLUX_S * FLUX_C * 2  # one 16-bit activation [1, S, C]

    def ln(i: int) -> torch.Tensor:
        a = sets[i]
        return fused_ops.layernorm_modulate(a["x"], a["shift"], a["scale"])

    def ln_torch(i: int) -> torch.Tensor:
        a = sets[i]
        return F.layer_norm(a["x"], (FLUX_C,), eps=1e-6) * (1 + a["scale"][:, None]) + a["shift"][:, None]

    def gr(i: int) -> torch.Tensor:
        a = sets[i]
        return fused_ops.gate_residual(a["x"], a["gate"], a["y"])

    def gr_torch(i: int) -> torch.Tensor:
        a = sets[i]
        return a["x"] + a["gate"].unsqueeze(1) * a["y"]

    def qk(i: int) -> tuple[torch.Tensor, ...]:
        a = sets[i]
        return fused_ops.qk_norm_rope(a["qkv"], a["w"][2], a["w"][3], a["cos"], a["sin"], a["heads"])

    def qk_torch(i: int) -> tuple[torch.Tensor, ...]:
        a = sets[i]
        return diffusers_qk(a["qkv"], a["w"][2], a["w"][3], a["cos"], a["sin"], a["heads"])

    def joint(i: int) -> tuple[torch.Tensor, ...]:
        a = sets[i]
        return fused_ops.qk_norm_rope_joint(a["qkv_txt"], a["qkv_img"], *a["w"], a["cos"], a["sin"], a["heads"])

    def joint_torch(i: int) -> tuple[torch.Tensor, ...]:
        a = sets[i]
        return diffusers_qk_joint(a["qkv_txt"], a["qkv_img"], *a["w"], a["cos"], a["sin"], a["heads"])

    def gemv(i: int) -> torch.Tensor:
        return fused_ops.w4a16_gemv(sets[i]["temb_act"], sets[i]["layer"])

    def gemv_torch(i: int) -> torch.Tensor:
        a = sets[i]
        return F.linear(a["temb_act"], a["w16"], a["layer"].bias)

    def gemv_reference(i: int) -> torch.Tensor:
        return fused_ops.w4a16_gemv_reference(sets[i]["temb_act"], sets[i]["layer"])

    layer = sets[0]["layer"]
    return {
        "layernorm_modulate": ({"fused": ln, "torch": ln_torch}, 2 * act),
        "gate_residual": ({"fused": gr, "torch": gr_torch}, 3 * act),
        # q and k read and written; v is read in place by attention
        "qk_norm_rope (single, QKV+MLP rows)": ({"fused": qk, "torch": qk_torch}, 2 * 2 * act),
        "qk_norm_rope_joint (double)": ({"fused": joint, "torch": joint_torch}, 2 * 3 * act),
        f"w4a16_gemv {FLUX_C}->{6 * FLUX_C}": (
            {"fused": gemv, "torch": gemv_torch, "reference": gemv_reference},
            layer.qweight.nbytes + layer.wscales.nbytes,
        ),
    }


def run(out_dir: Path, iters: int = 50) -> dict[str, Any]:
    """Time every op's columns (see the module docstring); writes and returns {"meta", "rows"}."""
    from gpu.kernels.launch import launch_stream
    from gpu.modules import fused_ops
    from gpu.output_folders import make_output_folder
    from gpu.quant import dequantize

    make_output_folder(out_dir)  # a file in the way is said now, not after the run
    device = torch.device("cuda", torch.cuda.current_device())
    for family in ("norm", "gemv"):
        if (why := fused_ops.fused_refusal(device, family)) is not None:
            raise SystemExit(f"the fused {family} kernels cannot run here: {why}")
    gen = torch.Generator(device).manual_seed(0)
    first = flux_block_inputs(gen)
    # the fused GEMV's weights are the smallest working set of a fused call: it sets how many sets leave L2
    sets = [first] + [flux_block_inputs(gen) for _ in range(sets_past_l2(first["layer"].qweight.nbytes) - 1)]
    for a in sets:
        a["temb_act"] = F.silu(a["temb"])
        a["w16"] = dequantize(a["layer"].quantized_weight()).to(BF)  # the 16-bit layer the quantized one replaces
    rows = []
    with torch.no_grad(), launch_stream(device):  # torch on the kernels' stream: no fork/join per launch
        for op, (columns, nbytes) in _op_columns(sets).items():
            times = time_columns(columns, len(sets), iters)
            row = {"op": op, **{f"t_{col}_us": t * 1e6 for col, t in times.items()}}
            row["speedup_vs_torch"] = times["torch"] / times["fused"]
            row["fused_GBps"] = nbytes / times["fused"] / 1e9
            rows.append(row)
            print(f"{op:40s} fused {row['t_fused_us']:8.1f} us  torch {row['t_torch_us']:8.1f} us  "
                  f"x{row['speedup_vs_torch']:5.2f}  {row['fused_GBps']:6.0f} GB/s", flush=True)  # fmt: skip
    meta = {
        **gpu_meta(device),
        "iters": iters,
        "sets": len(sets),
        "timing": "CUDA-graph replay per call, CUDA events, inputs rotated past L2",
    }
    result = {"meta": meta, "rows": rows}
    (out_dir / "bench_fused_ops.json").write_text(json.dumps(result, indent=2))
    (out_dir / "bench_fused_ops.md").write_text(markdown(result))
    print(markdown(result))
    return result


def markdown(result: dict[str, Any]) -> str:
    meta = result["meta"]
    lines = [
        f"Fused FLUX block ops, {meta['date']}, {meta['gpu']} ({meta['capability']}), torch {meta['torch']}: median "
        f"of {meta['iters']} timed calls, each a CUDA-graph replay, inputs rotated over {meta['sets']} sets past L2.",
        "",
        "| op | fused µs | unfused torch µs | PyTorch reference µs | torch / fused | fused GB/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        ref = f"{r['t_reference_us']:.1f}" if "t_reference_us" in r else "–"
        lines.append(f"| {r['op']} | {r['t_fused_us']:.1f} | {r['t_torch_us']:.1f} | {ref} "
                     f"| {r['speedup_vs_torch']:.2f}× | {r['fused_GBps']:.0f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=50, help="timed calls per column (median)")
    parser.add_argument("--out", type=Path, default=Path("bench-out"), help="folder for JSON + markdown")
    args = parser.parse_args()
    run(args.out, args.iters)


if __name__ == "__main__":
    main()
