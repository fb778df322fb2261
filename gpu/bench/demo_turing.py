"""Demo model on Turing's kernel forms, run on the GPU at hand (no Turing GPU can be reached from here): do the
images pass the judge as the W4A4 reference path's do?

    python -m gpu.bench.demo_turing [--n 64] [--out DIR]      (on a CUDA GPU with pycuda)

Three executions of the same prompts and seeds, each judged and compared with the BF16 pipeline's images (PSNR):
- ``bf16``: the 16-bit demo pipeline;
- ``w4a4``: the INT4 checkpoint, every SVDQLinear on ``forward_reference`` in bf16 (the INT4 kernels' numerics);
- ``turing``: what an sm_75 GPU runs: the fp16 run time (the file's bf16 scales and factors loaded in fp16,
  ``skeleton.quantized_layer_dtype``), the fused FLUX blocks, the W4A4 layers on the INT4 kernels' m8n8k32 form
  and the adaLN layers on the GEMV's fp16 m16n8k8 form (``mma_forms.uses_turing_mma`` answers yes, and the Hopper
  W4A8 backend is refused as it is on sm_75). The layers' ``last_path`` counts are recorded, so a layer that fell
  back to the reference shows.
This checks Turing's fragment mapping, fp16 numerics and dispatch end to end, not Turing's speed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(REPO / "resources" / "models" / "demo"))
    ap.add_argument("--svdq", default=str(REPO / "resources" / "models" / "demo-int4.safetensors"))
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("demo-turing"))
    args = ap.parse_args()
    from gpu.atomic import make_output_folder

    make_output_folder(args.out)
    from diffusers import FluxPipeline

    from gpu.checkpoint.skeleton import load_quantized_transformer
    from gpu.demo.evaluate import DEFAULT_JUDGE, heldout_set, pipeline_generate_fn
    from gpu.demo.judge import accuracy, judge_images, load_judge
    from gpu.generation.pipeline_loader import quiet_libraries
    from gpu.kernels import backend, mma_forms
    from gpu.metrics import psnr
    from gpu.models.flux_fused import fuse_flux_transformer
    from gpu.modules.svdq_linear import SVDQLinear

    quiet_libraries()
    dev = torch.device("cuda")
    prompts, seeds = heldout_set(args.n)
    judge = load_judge(DEFAULT_JUDGE, dev)

    def pipeline(dtype: torch.dtype, transformer=None) -> FluxPipeline:
        extra = {"transformer": transformer} if transformer is not None else {}
        pipe = FluxPipeline.from_pretrained(args.model, dtype=dtype, use_safetensors=True, **extra).to(dev)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def run(pipe: FluxPipeline) -> tuple[list, dict]:
        with torch.no_grad():
            images = pipeline_generate_fn(pipe, model_dir=args.model)(prompts, seeds)
        return images, accuracy(judge_images(judge, images, prompts))

    ref_images, bf16 = run(pipeline(torch.bfloat16))
    results: dict = {"gpu": torch.cuda.get_device_name(), "n": args.n, "bf16": bf16}

    transformer, _ = load_quantized_transformer(args.svdq, runtime_dtype=torch.bfloat16)
    for layer in transformer.modules():
        if isinstance(layer, SVDQLinear):
            layer.forward = layer.forward_reference  # instance attribute shadows SVDQLinear.forward
    images, results["w4a4"] = run(pipeline(torch.bfloat16, transformer))
    results["w4a4"]["psnr_vs_bf16_mean"] = float(np.mean([psnr(a, b) for a, b in zip(images, ref_images, strict=True)]))

    mma_forms.uses_turing_mma = lambda device: True
    backend.W4A8.arch_refusal = lambda major, minor: "GPU sm_75 has 4-bit tensor cores (simulated Turing)"
    transformer, _ = load_quantized_transformer(args.svdq, runtime_dtype=torch.float16)
    pipe = pipeline(torch.float16, transformer)
    fuse_flux_transformer(pipe.transformer)
    images, turing = run(pipe)
    turing["psnr_vs_bf16_mean"] = float(np.mean([psnr(a, b) for a, b in zip(images, ref_images, strict=True)]))
    paths: dict[str, int] = {}
    for m in pipe.transformer.modules():
        if isinstance(m, SVDQLinear):
            key = f"{m.spec.kind} {m.compute_dtype}: {m.last_path}"
            paths[key] = paths.get(key, 0) + 1
    turing["paths"] = paths
    results["turing"] = turing
    (args.out / "demo_turing.json").write_text(json.dumps(results, indent=1, default=str))
    for k in ("bf16", "w4a4", "turing"):
        r = results[k]
        print(f"{k}: attribute_accuracy={r['attribute_accuracy']:.4f} psnr_vs_bf16={r.get('psnr_vs_bf16_mean', 0):.2f}")
    for path, count in paths.items():
        print(f"  {count} x {path}")


if __name__ == "__main__":
    main()
