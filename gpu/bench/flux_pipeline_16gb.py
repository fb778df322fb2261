"""16 GB laptop simulation: a full-size FLUX.1-dev pipeline with random weights under a 16 GiB memory cap.

    python -m gpu.bench.flux_pipeline_16gb --out DIR                 (GPU machine; a few minutes)
    python -m gpu.bench.flux_pipeline_16gb --out DIR --tiny          (CPU, tiny configs, 64x64; seconds)

Builds T5-XXL and CLIP-L (``gpu.bench.random_text_encoders``), the FLUX.1-dev transformer with SVDQuant INT4
linears (``gpu.bench.flux_random.build_quantized_flux``: the bytes of a real rank-32 checkpoint) and the FLUX
VAE, all in bf16 directly on the device, inside a stock diffusers ``FluxPipeline``. Then it caps the CUDA
caching allocator with ``torch.cuda.set_per_process_memory_fraction`` so that ``--budget-gib`` (16) is usable,
chooses the memory policy the app would choose for that much VRAM (``gpu.runtime.memory_policy``) and applies
it with the app's own code (``gpu.generation.memory``): the prompt is encoded with the text encoders visiting
the GPU, the pipeline denoises ``--steps`` (4) steps at ``--size`` (1024) from the embeddings with the encoders
detached, and the VAE decodes (tiled where the policy says). Each stage is timed (CUDA-synchronized) and its
peak GPU memory recorded (``max_memory_allocated`` / ``max_memory_reserved``).

Writes ``DIR/flux_pipeline_16gb.json``, ``DIR/flux_pipeline_16gb.md`` and the image ``DIR/image.png`` (random
weights: noise, but finite) atomically. Exit status 0 when the image was made, 1 when a stage ran out of
memory (the report says which), 2 on bad arguments.

``--text-encoders`` forces a placement instead of the policy's (``gpu``, ``whole``, ``by-block``, ``cpu``) to
compare plans under the same cap. ``--lora-rank R`` puts a random rank-R LoRA on every W4A4 linear after the
policy is chosen and chooses it again with the transformer's new size (as the app does when LoRAs are added),
before the transformer is fused.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

DEFAULT_PROMPT = "a large red star in the top left on a blue background"  # demo-world words: real tokens
GUIDANCE = 3.5  # FLUX.1-dev's distilled guidance
FORCED = {
    "gpu": ("gpu", False),
    "whole": ("gpu-while-encoding", False),
    "by-block": ("gpu-while-encoding", True),
    "cpu": ("cpu", False),
}


def gib(n: float) -> float:
    return round(n / 2**30, 3)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m gpu.bench.flux_pipeline_16gb", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the JSON, markdown and image")
    ap.add_argument("--tiny", action="store_true", help="tiny configs at 64x64 (CPU test of the whole flow)")
    ap.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    ap.add_argument("--budget-gib", type=float, default=16.0, help="usable GPU memory to simulate (default 16)")
    ap.add_argument("--size", type=int, default=None, help="image side (default 1024; 64 with --tiny)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--rank", type=int, default=32, help="low-rank branch of the SVDQ layers")
    ap.add_argument("--lora-rank", type=int, default=0,
                    help="a random LoRA of this rank on every W4A4 linear (0: none)")  # fmt: skip
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prompt", default=DEFAULT_PROMPT)
    ap.add_argument("--no-warmup", dest="warmup", action="store_false",
                    help="skip the untimed 1-step pass that loads kernels and repacks weights first")  # fmt: skip
    ap.add_argument("--text-encoders", choices=["auto", *FORCED], default="auto",
                    help="force where the text encoders run instead of the policy's choice")  # fmt: skip
    args = ap.parse_args(argv)
    args.size = args.size or (64 if args.tiny else 1024)
    if args.size % 16:
        ap.error("--size must be a multiple of 16")
    return args


class Stages:
    """Times stages (synchronizing CUDA around each) and records each one's GPU peak and what stays after."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.results: dict[str, dict[str, float]] = {}

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        cuda = self.device.type == "cuda"
        self._sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device) if cuda else 0
        started = time.perf_counter()
        try:
            return fn()
        finally:
            self._sync()
            r = {"seconds": round(time.perf_counter() - started, 3)}
            if cuda:
                r.update(
                    allocated_before_gib=gib(before),
                    peak_allocated_gib=gib(torch.cuda.max_memory_allocated(self.device)),
                    peak_reserved_gib=gib(torch.cuda.max_memory_reserved(self.device)),
                    allocated_after_gib=gib(torch.cuda.memory_allocated(self.device)),
                )  # fmt: skip
            self.results[name] = r


def build_pipeline(args: argparse.Namespace, device: torch.device, dtype: torch.dtype, budget: int | None,
                   report: dict[str, Any]) -> tuple[Any, Any]:  # fmt: skip
    """(FluxPipeline, MemoryPolicy): encoders and VAE built on the device, then the policy chosen from their
    measured sizes and the transformer's (counted on a meta build), the encoders moved to system memory if the
    policy keeps them there, and only then the transformer built (so the cap is never crossed while building)."""
    from diffusers import FluxPipeline

    from gpu.bench import random_text_encoders as rte
    from gpu.bench.flux_random import FLUX_DEV_CONFIG, FLUX_TINY_CONFIG, build_quantized_flux
    from gpu.generation.memory import encoder_size, module_bytes, place_pipeline, transformer_run_bytes
    from gpu.kernels.repack import enable_canonical_offload
    from gpu.runtime.memory_policy import ModelSizes, choose_policy

    tiny = args.tiny
    t0 = time.perf_counter()
    clip_tok, t5_tok = rte.build_tokenizers()
    t5 = rte.build_t5_encoder(rte.T5_TINY_CONFIG if tiny else rte.T5_XXL_CONFIG, device, dtype)
    t5_size = encoder_size(t5)
    if device.type == "cuda":
        t5.to("cpu")  # until the policy is known: it must not sit next to the transformer while that is built
    clip = rte.build_clip_text(rte.CLIP_TINY_CONFIG if tiny else rte.CLIP_L_CONFIG, device, dtype,
                               eos_token_id=clip_tok.eos_token_id, bos_token_id=clip_tok.bos_token_id)  # fmt: skip
    vae = rte.build_flux_vae(rte.FLUX_VAE_TINY_CONFIG if tiny else rte.FLUX_VAE_CONFIG, device, dtype)
    config = FLUX_TINY_CONFIG if tiny else FLUX_DEV_CONFIG
    meta = build_quantized_flux(config, "meta", dtype, rank=args.rank, seed=args.seed)
    if device.type == "cuda":  # as the app's loader marks it before planning (one 4-bit copy on the GPU)
        enable_canonical_offload(meta)
    # As the app's plan (gpu.generation.memory.pipeline_sizes): the transformer with the kernels' copies.
    sizes = ModelSizes(transformer_run_bytes(meta, device), (encoder_size(clip), t5_size), module_bytes(vae))
    policy = choose_policy(budget, sizes)
    if args.text_encoders != "auto":
        place, by_block = FORCED[args.text_encoders]
        policy = replace(
            policy, name=f"forced-{args.text_encoders}", text_encoders=place, stream_encoder_blocks=by_block,
            description=f"text encoders forced to {args.text_encoders!r}; the policy chose {policy.name}: "
            f"{policy.description}",
        )  # fmt: skip
    if policy.text_encoders != "gpu":
        clip.to("cpu")
    if device.type == "cuda":
        torch.cuda.empty_cache()
    transformer = build_quantized_flux(config, device, dtype, rank=args.rank, seed=args.seed)
    if args.lora_rank:
        from gpu.bench.flux_random import random_lora_deltas
        from gpu.lora.apply import apply_deltas

        apply_deltas(random_lora_deltas(transformer, args.lora_rank, args.seed))
        if args.text_encoders == "auto":  # as the app's service does when LoRAs change (memory.replan)
            sizes = replace(sizes, transformer=transformer_run_bytes(transformer, device))
            policy = choose_policy(budget, sizes)
    pipe = FluxPipeline(
        scheduler=rte.build_scheduler(), vae=vae, text_encoder=clip, tokenizer=clip_tok, text_encoder_2=t5,
        tokenizer_2=t5_tok, transformer=transformer,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    place_pipeline(pipe, device, policy)  # T5 joins the GPU only under a resident policy
    from gpu.generation.fusion import fuse_if_allowed, fuse_mode

    # Fused blocks + CUDA graphs exactly when the app's service would fuse (NIBBLE_FUSE overrides).
    why_not = fuse_if_allowed(transformer, device, "svdq", fuse_mode())
    report["fused_blocks"] = "yes" if why_not is None else f"no: {why_not}"
    if device.type == "cuda":
        torch.cuda.empty_cache()
    report["build_seconds"] = round(time.perf_counter() - t0, 2)
    report["sizes_gib"] = {
        "transformer": gib(sizes.transformer),
        "t5": gib(t5_size.total), "t5_streamed": gib(t5_size.streamed), "clip": gib(sizes.text_encoders[0].total),
        "vae": gib(sizes.vae),
    }  # fmt: skip
    report["transformer_weight_gib"] = gib(module_bytes(transformer))
    report["transformer_params"] = sum(t.numel() for t in [*transformer.parameters(), *transformer.buffers()])
    return pipe, policy


def generate(pipe: Any, policy: Any, args: argparse.Namespace, device: torch.device, stages: Stages,
             steps: int, prefix: str = "") -> Any:  # fmt: skip
    """Encode -> denoise (latents) -> decode, each a timed stage named ``prefix + stage``, as the app's service
    does it. Returns the decoded image [1, 3, H, W] in [-1, 1]."""
    from gpu.generation.memory import configure_vae, decode_latents, encode_prompt, encoders_detached

    max_len = 32 if args.tiny else 512
    with torch.inference_mode():
        encode = lambda: encode_prompt(pipe, policy, device, args.prompt, max_len)  # noqa: E731
        embeds, pooled = stages.run(prefix + "encode", encode)

        def denoise() -> torch.Tensor:
            with encoders_detached(pipe):
                return pipe(
                    prompt_embeds=embeds, pooled_prompt_embeds=pooled, num_inference_steps=steps,
                    width=args.size, height=args.size, guidance_scale=GUIDANCE, max_sequence_length=max_len,
                    generator=torch.Generator("cpu").manual_seed(args.seed), output_type="latent",
                ).images  # fmt: skip

        latents = stages.run(prefix + "denoise", denoise)

        def decode() -> torch.Tensor:
            configure_vae(pipe, policy)
            return decode_latents(pipe, latents, args.size, args.size)

        image = stages.run(prefix + "decode", decode)
    return image


def execution_path(transformer: Any) -> str:
    from gpu.modules.svdq_linear import SVDQLinear

    layers = [m for m in transformer.modules() if isinstance(m, SVDQLinear) and m.spec.act_format is not None]
    return layers[0].last_path if layers else "no W4A4 layers"


def _na(value: Any) -> Any:
    return "n/a" if value is None else value


def markdown(r: dict[str, Any]) -> str:
    pol = r.get("policy", {})
    lines = [
        "# FLUX.1-dev pipeline, 16 GB laptop simulation" + (" (tiny configs)" if r["tiny"] else ""),
        "",
        f"- completed: **{'yes' if r['completed'] else 'no'}**"
        + ("" if r["completed"] else f" (failed in {r.get('failed_stage')}: {r.get('error', '')[:300]})"),
        f"- device: {r['device_name']}; usable memory simulated: {_na(r['budget_gib'])} GiB",
        f"- policy: **{pol.get('name', '?')}**: {pol.get('description', '')}",
        f"- image: {r['size']}x{r['size']}, {r['steps']} steps; "
        f"transformer weights {r.get('transformer_weight_gib')} GiB"
        + (f" (with a random rank-{r['lora_rank']} LoRA on every W4A4 linear)" if r.get("lora_rank") else ""),
        f"- peak GPU: allocated **{_na(r.get('peak_allocated_gib'))} GiB**, "
        f"reserved **{_na(r.get('peak_reserved_gib'))} GiB**",
        f"- execution path: {r.get('execution_path', '?')}; fused blocks: {r.get('fused_blocks', '?')}",
        f"- build: {r.get('build_seconds')} s",
        "",
        "| stage | seconds | peak allocated GiB | peak reserved GiB | allocated before GiB | allocated after GiB |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in r.get("stages", {}).items():
        lines.append(f"| {name} | {s['seconds']} | {s.get('peak_allocated_gib', '–')} | "
                     f"{s.get('peak_reserved_gib', '–')} | {s.get('allocated_before_gib', '–')} | "
                     f"{s.get('allocated_after_gib', '–')} |")  # fmt: skip
    lines += ["", "Sizes (GiB): " + ", ".join(f"{k} {v}" for k, v in r.get("sizes_gib", {}).items()), ""]
    return "\n".join(lines)


def write_report(out: Path, report: dict[str, Any], image: Any) -> None:
    from gpu.atomic import atomic_write_bytes

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "flux_pipeline_16gb.json", json.dumps(report, indent=1, default=str).encode())
    atomic_write_bytes(out / "flux_pipeline_16gb.md", markdown(report).encode())
    if image is not None:
        import io

        buf = io.BytesIO()
        image.save(buf, format="PNG")
        atomic_write_bytes(out / "image.png", buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gpu.generation.pipeline_loader import quiet_libraries
    from gpu.output_folders import make_output_folder

    make_output_folder(args.out)  # a file in the way is said now, not after the whole run
    from gpu.runtime.memory_policy import detect_total_vram

    quiet_libraries()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and device.index is None:  # the memory-fraction API wants an indexed device
        device = torch.device("cuda", torch.cuda.current_device())
    dtype = torch.bfloat16
    report: dict[str, Any] = {
        "tiny": args.tiny, "size": args.size, "steps": args.steps, "rank": args.rank, "lora_rank": args.lora_rank,
        "prompt": args.prompt,
        "device": str(device), "completed": False, "python": platform.python_version(), "torch": torch.__version__,
    }  # fmt: skip
    budget = None
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        fraction = min(1.0, args.budget_gib * 2**30 / total)
        torch.cuda.set_per_process_memory_fraction(fraction, device)
        detected = detect_total_vram(device)  # honours the fraction where torch can report it
        budget = min(int(args.budget_gib * 2**30), detected or total)
        report.update(device_name=torch.cuda.get_device_name(device), gpu_total_gib=gib(total),
                      memory_fraction=round(fraction, 4), budget_gib=gib(budget))  # fmt: skip
    else:
        report.update(device_name=platform.processor() or "CPU", budget_gib=None)
        if args.tiny:  # tiny ops: thread start-up costs more than the work (as the app does for small models)
            torch.set_num_threads(1)
    import diffusers

    report["diffusers"] = diffusers.__version__
    stages = Stages(device)
    image, stage = None, "build"
    try:
        pipe, policy = build_pipeline(args, device, dtype, budget, report)
        report["policy"] = {k: v for k, v in asdict(policy).items() if k != "details"}
        report["policy_name"] = policy.name
        report["vae_tiled"] = policy.tiles_vae(args.size, args.size)
        if device.type == "cuda":
            report["allocated_after_build_gib"] = gib(torch.cuda.memory_allocated(device))
        stage = "generate"
        if args.warmup:
            # One untimed 1-step pass first: kernel loading (or compiling) and weight repacking happen once per
            # process and would otherwise land in the first denoising step. Its stages are reported too.
            generate(pipe, policy, args, device, stages, steps=1, prefix="warmup_")
        decoded = generate(pipe, policy, args, device, stages, steps=args.steps)
        report["execution_path"] = execution_path(pipe.transformer)
        image = pipe.image_processor.postprocess(decoded.float(), output_type="pil")[0]
        finite = bool(torch.isfinite(decoded).all())
        report.update(completed=True, image_finite=finite, image_std=round(float(decoded.float().std()), 4))
        report["seconds_per_step"] = round(stages.results["denoise"]["seconds"] / args.steps, 3)
    except torch.OutOfMemoryError as err:
        report.update(completed=False, failed_stage=_failed_stage(stages, stage), error=str(err))
    report["stages"] = stages.results
    report["seconds"] = {name: s["seconds"] for name, s in stages.results.items() if not name.startswith("warmup_")}
    report["peak_allocated_gib"] = max((s["peak_allocated_gib"] for s in stages.results.values()
                                        if "peak_allocated_gib" in s), default=None)  # fmt: skip
    report["peak_reserved_gib"] = max((s["peak_reserved_gib"] for s in stages.results.values()
                                       if "peak_reserved_gib" in s), default=None)  # fmt: skip
    write_report(args.out, report, image)
    print(markdown(report))
    return 0 if report["completed"] else 1


def _failed_stage(stages: Stages, phase: str) -> str:
    """The stage an out-of-memory error came from: the last one started (recorded even when it failed)."""
    return next(reversed(stages.results)) if stages.results and phase == "generate" else phase


if __name__ == "__main__":
    sys.exit(main())
