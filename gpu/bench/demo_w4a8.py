"""Demo model: W4A8 execution (the Hopper path) vs W4A4 execution of the same INT4 checkpoint, both
against the BF16 pipeline (mean PSNR over held-out images, judge attribute accuracy).

    python -m gpu.bench.demo_w4a8 [--n 128] [--out DIR]      (on a CUDA GPU)

W4A4: every SVDQLinear runs ``forward_reference(x)`` (INT4 activations, the W4A4 kernels' numerics).
W4A8: the normal dispatch (the FP8 W4A8 kernels on sm_90; the path of every W4A4 layer is recorded).
W4A8 fused: the same after ``gpu.models.flux_fused.fuse_flux_transformer`` (fused block ops, CUDA graphs).
Both W4A8 executions are also compared with W4A4 attribute by attribute (``gpu.demo.paired``): which attributes
only one of them gets right, and how often each agrees with the BF16 model's verdicts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]


def demo_arguments(n: int, out: str) -> argparse.ArgumentParser:
    """The options the demo-model benches share: the 16-bit pipeline, its SVDQ file, the held-out prompts, the
    results folder (``n``, ``out``: their defaults)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(REPO / "resources" / "models" / "demo"))
    ap.add_argument("--svdq", default=str(REPO / "resources" / "models" / "demo-int4.safetensors"))
    ap.add_argument("--n", type=int, default=n)
    ap.add_argument("--out", type=Path, default=Path(out))
    return ap


def mean_psnr(images: list, reference: list) -> float:
    """Mean PSNR (dB) of ``images`` against ``reference``, image by image (PIL images of one size)."""
    from gpu.metrics import psnr

    return float(np.mean([psnr(a, b) for a, b in zip(images, reference, strict=True)]))


def main() -> None:
    ap = demo_arguments(128, "demo-w4a8")
    ap.add_argument("--device", default="cuda")
    args = ap.parse_args()
    from gpu.output_folders import make_output_folder

    make_output_folder(args.out)  # a file in the way is said now, not after the whole run
    from diffusers import FluxPipeline

    from gpu.checkpoint.skeleton import load_quantized_transformer
    from gpu.demo.evaluate import DEFAULT_JUDGE, heldout_set, pipeline_generate_fn
    from gpu.demo.judge import accuracy, judge_images, load_judge
    from gpu.demo.paired import attribute_flags, paired_comparison
    from gpu.generation.pipeline_loader import quiet_libraries
    from gpu.modules.svdq_linear import SVDQLinear

    quiet_libraries()
    dev, dt = torch.device(args.device), torch.bfloat16
    prompts, seeds = heldout_set(args.n)
    judge = load_judge(DEFAULT_JUDGE, dev)
    base = FluxPipeline.from_pretrained(args.model, dtype=dt, use_safetensors=True).to(dev)
    base.set_progress_bar_config(disable=True)
    with torch.no_grad():
        ref_images = pipeline_generate_fn(base, model_dir=args.model)(prompts, seeds)
    transformer, _ = load_quantized_transformer(args.svdq, runtime_dtype=dt)
    pipe = FluxPipeline.from_pretrained(args.model, transformer=transformer, dtype=dt, use_safetensors=True).to(dev)
    pipe.set_progress_bar_config(disable=True)
    layers = [m for m in pipe.transformer.modules() if isinstance(m, SVDQLinear)]
    ref_scores = judge_images(judge, ref_images, prompts)
    results = {"bf16": accuracy(ref_scores)}
    flags = {"bf16": attribute_flags(ref_scores)}
    results["gpu"] = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    for mode in ("w4a4", "w4a8", "w4a8_fused"):
        if mode == "w4a8_fused":  # issue 7's fused blocks (merged Q/K/V where smoothing is shared, fused ops) + graphs
            from gpu.models.flux_fused import fuse_flux_transformer

            fuse_flux_transformer(pipe.transformer)
        for layer in layers:
            if mode == "w4a4":
                layer.forward = layer.forward_reference  # instance attribute shadows SVDQLinear.forward
            elif "forward" in layer.__dict__:
                del layer.forward
        with torch.no_grad():
            images = pipeline_generate_fn(pipe, model_dir=args.model)(prompts, seeds)
        scores = judge_images(judge, images, prompts)
        res, flags[mode] = accuracy(scores), attribute_flags(scores)
        res["psnr_vs_bf16_mean"] = mean_psnr(images, ref_images)
        running = [m for m in pipe.transformer.modules() if isinstance(m, SVDQLinear)]  # merged ones after fusing
        w4a4_layers = [m for m in running if m.spec.act_format == "int4"]
        if mode != "w4a4":  # what served the W4A4 layers (W4A16 layers always run the reference)
            paths: dict[str, int] = {}
            for m in w4a4_layers:
                paths[m.last_path] = paths.get(m.last_path, 0) + 1
            res["path"] = paths
        else:
            res["path"] = "PyTorch reference, W4A4 numerics"
        if mode == "w4a8_fused":
            res["fusion"] = {k: v for k, v in pipe.transformer.fusion_report.items() if k != "groups"}
        results[mode] = res
    # The same prompts and seeds under each execution: attribute by attribute against W4A4 (McNemar) and BF16.
    results["paired_vs_w4a4"] = {
        mode: paired_comparison(flags[mode], flags["w4a4"], flags["bf16"]) for mode in ("w4a8", "w4a8_fused")
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "demo_w4a8.json").write_text(json.dumps(results, indent=1, default=str))
    for k in ("bf16", "w4a4", "w4a8", "w4a8_fused"):
        r = results[k]
        print(f"{k}: attribute_accuracy={r['attribute_accuracy']:.4f} "
              f"psnr_vs_bf16={r.get('psnr_vs_bf16_mean', float('nan')):.2f} {r.get('path', '')}")
    for mode, c in results["paired_vs_w4a4"].items():
        print(f"{mode} vs w4a4: right only under {mode} {c['a_only']}, only under w4a4 {c['b_only']} "
              f"(McNemar p {c['mcnemar_p']:.3f}); agreement with bf16's verdicts {c['a_agreement_with_reference']:.4f} "
              f"vs {c['b_agreement_with_reference']:.4f}")


if __name__ == "__main__":
    main()
