"""Demo model on Turing's kernel forms, run on the GPU at hand (no Turing GPU can be reached from here): do the
images pass the judge as the W4A4 reference path's do?

    python -m gpu.bench.demo_turing [--n 64] [--out DIR]      (on a CUDA GPU with pycuda)

Executions of the same prompts and seeds, each judged; the quantized ones compared (PSNR) with the 16-bit pipeline
of their own dtype: an fp16 pipeline draws its initial noise in fp16, so its images are not the bf16 pipeline's
(PSNR 14.2 dB between the two unquantized pipelines, H100, 2026-11-23), and the bf16 images are no reference for it.
- ``bf16``, ``fp16``: the 16-bit demo pipeline (bf16 is what other GPUs run; fp16 is Turing's reference);
- ``w4a4_fp16``: the INT4 checkpoint loaded for an fp16 run time, every SVDQLinear on ``forward_reference`` (the
  INT4 kernels' numerics): the reference path Turing's images are held to;
- ``turing``: what an sm_75 GPU runs: the fp16 run time (the file's bf16 scales and factors loaded in fp16,
  ``skeleton.quantized_layer_dtype``), the fused FLUX blocks, the W4A4 layers on the INT4 kernels' m8n8k32 form
  and the adaLN layers on the GEMV's fp16 m16n8k8 form (``mma_forms.uses_turing_mma`` answers yes, and the Hopper
  W4A8 backend is refused as it is on sm_75). Batches of 8 images, as the GEMV takes at most 8 rows. The layers'
  ``last_path`` counts are recorded, so a layer that fell back to the reference shows.
This checks Turing's fragment mapping, fp16 numerics and dispatch end to end, not Turing's speed.
"""

from __future__ import annotations

import json

import torch

from gpu.bench.demo_w4a8 import demo_arguments, mean_psnr


def main() -> None:
    args = demo_arguments(64, "demo-turing").parse_args()
    from gpu.output_folders import make_output_folder

    make_output_folder(args.out)
    from diffusers import FluxPipeline

    from gpu.checkpoint.skeleton import load_quantized_transformer
    from gpu.demo.evaluate import DEFAULT_JUDGE, heldout_set, pipeline_generate_fn
    from gpu.demo.judge import accuracy, judge_images, load_judge
    from gpu.generation.pipeline_loader import quiet_libraries
    from gpu.kernels import backend, mma_forms
    from gpu.models.flux_fused import fuse_flux_transformer
    from gpu.modules.svdq_linear import SVDQLinear

    quiet_libraries()
    dev = torch.device("cuda")
    prompts, seeds = heldout_set(args.n)
    judge = load_judge(DEFAULT_JUDGE, dev)

    def pipeline(dtype: torch.dtype, transformer: torch.nn.Module | None = None) -> FluxPipeline:
        extra = {"transformer": transformer} if transformer is not None else {}
        pipe = FluxPipeline.from_pretrained(args.model, dtype=dtype, use_safetensors=True, **extra).to(dev)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def run(pipe: FluxPipeline) -> tuple[list, dict]:
        with torch.no_grad():
            images = pipeline_generate_fn(pipe, batch=8, model_dir=args.model)(prompts, seeds)
        return images, accuracy(judge_images(judge, images, prompts))

    results: dict = {"gpu": torch.cuda.get_device_name(), "n": args.n}
    _, results["bf16"] = run(pipeline(torch.bfloat16))
    ref_images, results["fp16"] = run(pipeline(torch.float16))

    transformer, _ = load_quantized_transformer(args.svdq, runtime_dtype=torch.float16)
    for layer in transformer.modules():
        if isinstance(layer, SVDQLinear):
            layer.forward = layer.forward_reference  # instance attribute shadows SVDQLinear.forward
    images, results["w4a4_fp16"] = run(pipeline(torch.float16, transformer))
    results["w4a4_fp16"]["psnr_vs_fp16_mean"] = mean_psnr(images, ref_images)

    mma_forms.uses_turing_mma = lambda device: True
    backend.W4A8.arch_refusal = lambda major, minor: "GPU sm_75 has 4-bit tensor cores (simulated Turing)"
    transformer, _ = load_quantized_transformer(args.svdq, runtime_dtype=torch.float16)
    pipe = pipeline(torch.float16, transformer)
    fuse_flux_transformer(pipe.transformer)
    images, turing = run(pipe)
    turing["psnr_vs_fp16_mean"] = mean_psnr(images, ref_images)
    paths: dict[str, int] = {}
    for m in pipe.transformer.modules():
        if isinstance(m, SVDQLinear):
            key = f"{m.spec.kind} {m.compute_dtype}: {m.last_path}"
            paths[key] = paths.get(key, 0) + 1
    turing["paths"] = paths
    results["turing"] = turing
    (args.out / "demo_turing.json").write_text(json.dumps(results, indent=1, default=str))
    for k in ("bf16", "fp16", "w4a4_fp16", "turing"):
        r = results[k]
        print(f"{k}: attribute_accuracy={r['attribute_accuracy']:.4f} "
              f"psnr_vs_fp16={r.get('psnr_vs_fp16_mean', float('nan')):.2f}")
    for path, count in paths.items():
        print(f"  {count} x {path}")


if __name__ == "__main__":
    main()
