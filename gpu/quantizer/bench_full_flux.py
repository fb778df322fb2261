"""Device benchmark of the streaming quantizer at FLUX.1-dev's full block size (random weights).

    python -m gpu.quantizer.bench_full_flux all --dir /tmp/fb --double 4 --single 8 --samples 32

``all``: writes a BFL-layout single-file checkpoint (FLUX.1-dev dims: D 3072, 24 heads, T5 4096, CLIP 768,
guidance embedder; ``--double``/``--single`` blocks), quantizes it in a child process under
``torch.cuda.set_per_process_memory_fraction`` = 16 GiB (peak GPU, peak RSS, seconds per double/single
block), then kill -9's a second run after ``--kill-after`` blocks, resumes it, and checks the output equals
the uninterrupted one. Samples are random conditioning at 1024x1024 (4096 image + 512 text tokens): the
text encoders are not part of the measurement. Prints one JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from gpu.quantizer.config import QuantizeConfig, QuantizeEvent
    from gpu.quantizer.shared import CalibSample
    from gpu.streaming.source import WeightSource

DIM, HEADS, HEAD_DIM, MLP, T5, CLIP, IN_CH = 3072, 24, 128, 12288, 4096, 768, 64


def write_bfl(path: Path, n_double: int, n_single: int, seed: int = 0) -> None:
    """Random bf16 weights (std 0.02, norm scales 1) in BFL key names, made on the GPU."""
    from safetensors.torch import save_file

    g = torch.Generator("cuda").manual_seed(seed)
    t: dict[str, torch.Tensor] = {}

    def lin(name: str, n: int, k: int) -> None:
        t[f"{name}.weight"] = (torch.randn(n, k, generator=g, device="cuda") * 0.02).bfloat16().cpu()
        t[f"{name}.bias"] = (torch.randn(n, generator=g, device="cuda") * 0.01).bfloat16().cpu()

    lin("img_in", DIM, IN_CH)
    lin("txt_in", DIM, T5)
    for s, k in (("time_in", 256), ("vector_in", CLIP), ("guidance_in", 256)):
        lin(f"{s}.in_layer", DIM, k)
        lin(f"{s}.out_layer", DIM, DIM)
    lin("final_layer.linear", IN_CH, DIM)
    lin("final_layer.adaLN_modulation.1", 2 * DIM, DIM)
    ones = torch.ones(HEAD_DIM, dtype=torch.bfloat16)
    for i in range(n_double):
        b = f"double_blocks.{i}"
        for s in ("img", "txt"):
            lin(f"{b}.{s}_mod.lin", 6 * DIM, DIM)
            lin(f"{b}.{s}_attn.qkv", 3 * DIM, DIM)
            lin(f"{b}.{s}_attn.proj", DIM, DIM)
            lin(f"{b}.{s}_mlp.0", MLP, DIM)
            lin(f"{b}.{s}_mlp.2", DIM, MLP)
            t[f"{b}.{s}_attn.norm.query_norm.scale"] = ones.clone()
            t[f"{b}.{s}_attn.norm.key_norm.scale"] = ones.clone()
    for i in range(n_single):
        b = f"single_blocks.{i}"
        lin(f"{b}.modulation.lin", 3 * DIM, DIM)
        lin(f"{b}.linear1", 3 * DIM + MLP, DIM)
        lin(f"{b}.linear2", DIM, DIM + MLP)
        t[f"{b}.norm.query_norm.scale"] = ones.clone()
        t[f"{b}.norm.key_norm.scale"] = ones.clone()
    save_file(t, str(path))


def random_samples(n: int, seed: int = 0) -> Callable[[WeightSource, QuantizeConfig], list[CalibSample]]:
    """n conditioning samples at 1024x1024: latents [1, 4096, 64], T5 [1, 512, 4096], CLIP [1, 768]."""
    from diffusers import FluxPipeline

    def make(_src: WeightSource, _cfg: QuantizeConfig) -> list[CalibSample]:
        g = torch.Generator().manual_seed(seed)
        img_ids = FluxPipeline._prepare_latent_image_ids(1, 64, 64, "cpu", torch.bfloat16)
        out = []
        for _ in range(n):
            out.append({
                "hidden_states": torch.randn(1, 4096, IN_CH, generator=g).bfloat16(),
                "encoder_hidden_states": (torch.randn(1, 512, T5, generator=g) * 0.3).bfloat16(),
                "pooled_projections": torch.randn(1, CLIP, generator=g).bfloat16(),
                "timestep": torch.rand(1, generator=g).bfloat16(),
                "guidance": torch.full([1], 3.5),
                "img_ids": img_ids,
                "txt_ids": torch.zeros(512, 3, dtype=torch.bfloat16),
            })  # fmt: skip
        return out

    return make


def child(args: argparse.Namespace) -> None:
    """One quantization run; prints a JSON line per block and a summary with peaks."""
    from gpu.library import ModelLibrary
    from gpu.quantizer import QuantizeConfig, quantize_model

    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, 16 * 2**30 / total))
    blocks: list[dict] = []
    state = {"block": None, "t": time.perf_counter()}

    def on_event(ev: QuantizeEvent) -> None:
        if ev.kind != "layer":
            print(json.dumps({"stage": ev.message, "t": round(ev.elapsed_s, 2)}), flush=True)
            return
        block = ev.layer.split(".")[0] + "." + ev.layer.split(".")[1]
        if block != state["block"]:
            now = time.perf_counter()
            if state["block"] is not None:
                blocks.append({"block": state["block"], "s": now - state["t"]})
                print(json.dumps({"block_done": state["block"], "s": round(now - state["t"], 2)}), flush=True)
            state.update(block=block, t=now)

    cfg = QuantizeConfig(calib_prompts=args.samples, max_tokens_per_layer=args.tokens, seed=0)
    t0 = time.perf_counter()
    quantize_model(args.src, args.out, cfg, on_event=on_event, library=ModelLibrary(Path(args.out).parent / "lib"),
                   device=torch.device("cuda"), samples_override=random_samples(args.samples))  # fmt: skip
    print(json.dumps({
        "summary": True, "wall_s": time.perf_counter() - t0, "blocks": blocks,
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30,
        "peak_gpu_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }), flush=True)  # fmt: skip


def _run_child(src: Path, out: Path, args: argparse.Namespace, kill_after: int | None = None) -> dict | None:
    cmd = [sys.executable, "-m", "gpu.quantizer.bench_full_flux", "child", "--src", str(src), "--out", str(out),
           "--samples", str(args.samples), "--tokens", str(args.tokens)]  # fmt: skip
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=False)
    done = 0
    summary = None
    assert p.stdout is not None
    for line in p.stdout:
        print(line, end="", flush=True)
        if '"block_done"' in line:
            done += 1
            if kill_after is not None and done >= kill_after:
                os.kill(p.pid, signal.SIGKILL)  # a hard kill at a random point of the next block
                break
        if '"summary"' in line:
            summary = json.loads(line)
    p.wait()
    return summary


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("all", "child"))
    ap.add_argument("--dir", default="/tmp/fullflux")
    ap.add_argument("--src")
    ap.add_argument("--out")
    ap.add_argument("--double", type=int, default=4)
    ap.add_argument("--single", type=int, default=8)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--kill-after", type=int, default=3)
    ap.add_argument("--skip-resume", action="store_true")
    args = ap.parse_args()
    if args.mode == "child":
        child(args)
        return
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    src = d / "flux1-dev-random.safetensors"
    t0 = time.perf_counter()
    write_bfl(src, args.double, args.single)
    gen_s = time.perf_counter() - t0
    print(json.dumps({"wrote": str(src), "gib": src.stat().st_size / 2**30, "s": gen_s}), flush=True)
    summary = _run_child(src, d / "a.safetensors", args)
    assert summary is not None
    doubles = [b["s"] for b in summary["blocks"] if b["block"].startswith("transformer_blocks")]
    singles = [b["s"] for b in summary["blocks"] if b["block"].startswith("single")]
    result = {"gpu": torch.cuda.get_device_name(0), "double_s": doubles, "single_s": singles, **summary}
    # The last block's time is inside wall_s, not in "blocks"; per-block means use finished blocks only.
    md = sum(doubles) / max(1, len(doubles))
    ms = sum(singles) / max(1, len(singles))
    result["extrapolated_total_min"] = (19 * md + 38 * ms) / 60
    if not args.skip_resume:
        out = d / "b.safetensors"
        _run_child(src, out, args, kill_after=args.kill_after)
        parts = out.with_name(out.name + ".parts")
        done_before = len(json.loads((parts / "manifest.json").read_text())["done"])
        _run_child(src, out, args)
        from safetensors import safe_open

        with safe_open(str(d / "a.safetensors"), "pt") as fa, safe_open(str(out), "pt") as fb:
            same = set(fa.keys()) == set(fb.keys()) and all(
                torch.equal(fa.get_tensor(k), fb.get_tensor(k)) for k in fa.keys())
        result["resume"] = {"blocks_done_at_kill": done_before, "identical": same}
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
