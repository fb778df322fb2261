"""``python main.py bench flux``: one FLUX.1-dev transformer step, BF16 baselines against our quantized model.

Full-size FLUX.1-dev transformer (19 double + 38 single blocks) with random weights (``gpu.bench.flux_random``),
1024x1024 (4096 image tokens + 512 text tokens), batch 1, all in one run, in this order so that the two
models never coexist (BF16 22.2 GiB is deleted, dynamo caches included, before the quantized one is built):

  bf16_eager           diffusers' FluxTransformer2DModel in BF16, eager
  bf16_compiled        the same model under torch.compile (mode ``--compile-mode``, default "default"; scope
                       ``--compile-scope``: "regional" = diffusers' ``compile_repeated_blocks`` (each double /
                       single block class compiled once, fullgraph) to keep compile time inside the budget, or
                       "full" = ``torch.compile`` of the whole model)
  fp8_rowwise_compiled the same model with every attention/MLP linear of its blocks on FP8 rowwise
                       ``torch._scaled_mm`` (weights per channel, activations per token, dynamic;
                       ``gpu.bench.fp8_rowwise``), the adaLN linears left in BF16, compiled alike: the 8-bit
                       baseline, which carries twice our weight bytes and no low-rank branch
  svdq_unfused_eager   SVDQ INT4 r32 (W4A4 attention/MLP, W4A16 adaLN), diffusers' blocks, our linears through
                       ``gpu.runtime.dispatch`` (on sm_90 the Hopper W4A8 kernels), eager
  svdq_fused_eager     after ``fuse_flux_transformer``: merged Q/K/V(+MLP) linears, fused block ops, eager
  ours                 the fused model with its CUDA graph (``FusedFluxTransformer2DModel``)
  ours_lora            ``ours`` after a random rank-``--lora-rank`` LoRA (default 16; 0 skips it) is put on every
                       W4A4 linear the way the app does it (split, apply to the named layers, fuse again)

Per variant: median step latency over ``--steps`` (>= 10) timed steps after warm-up (CUDA events per step, as in
``gpu.bench.kernels``), the first call's seconds (compile / capture included), transformer weight GiB (parameter
+ buffer bytes), peak GPU GiB of a step (``reset_peak_memory_stats`` before the timed steps, then
``max_memory_allocated``) and the memory reserved by PyTorch's allocator. CUDA-graph activations live in the
graph's private pool, which ``max_memory_allocated`` does not see during replay; for ``ours`` the peak of the
capture call is therefore reported too (``capture_peak_gib``).

Correctness: before fusing, the unfused model runs once with every ``SVDQLinear`` forced onto its PyTorch
reference with the numerics of the kernels the dispatch picks on this GPU (FP8 activations for the Hopper
W4A8 path, INT4 elsewhere) and diffusers' own block ops, recording each block's inputs and outputs. Reported:
(1) per block, teacher-forced: every block of the unfused (our linears) and of the fused model run on the
recorded inputs, relative error ``||y - y_ref|| / ||y_ref||`` against the recorded outputs - the check of
the implementation; (2) end to end, every quantized variant's output against the reference output, next to
the reference's own change when the input latents move by one bf16 rounding step: with random weights,
rounding-level differences compound through the 57 blocks (measured on the CPU at full FLUX.1-dev size, 288
tokens: fused vs unfused 0.28 end to end although merging is bit-exact - the fused ops round once in fp32,
diffusers after every op), so (2) is only meaningful relative to that floor.

``--tiny``: the same plumbing at ``FLUX_TINY_CONFIG`` on whatever device is there (CPU in CI, seconds;
torch.compile then uses the "eager" backend).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gc
import json
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from gpu.bench import FULL_SIZE_MIN_STEPS
from gpu.bench.flux_random import (
    FLUX_DEV_CONFIG,
    FLUX_TINY_CONFIG,
    build_bf16_flux,
    build_quantized_flux,
    random_lora_deltas,
)
from gpu.bench.fp8_rowwise import to_fp8_rowwise
from gpu.generation.memory import module_bytes

GIB = 2**30
VARIANTS = {
    "bf16_eager": "diffusers BF16, eager",
    "bf16_compiled": "diffusers BF16 + torch.compile",
    "fp8_rowwise_compiled": "FP8 rowwise block linears (8-bit weights; adaLN in BF16) + torch.compile",
    "svdq_unfused_eager": "SVDQ INT4 r32, diffusers blocks, our linears, eager",
    "svdq_fused_eager": "SVDQ INT4 r32, fused (merged QKV(+MLP), fused ops), eager",
    "ours": "SVDQ INT4 r32, fused + CUDA graph",
    "ours_lora": "SVDQ INT4 r32 + a random LoRA on every W4A4 linear, fused + CUDA graph",
}


def make_inputs(config: dict, img_side: int, txt_len: int, device: torch.device, seed: int = 0) -> dict:
    """Transformer inputs for batch 1 at ``img_side``^2 image tokens (64 for 1024x1024) and ``txt_len`` text
    tokens, made on ``device``: latents, T5 states and CLIP pooled vector ~ N(0, 1) in bf16, timestep 0.5,
    guidance 3.5 (when the model embeds it), FLUX's position ids."""
    from diffusers import FluxPipeline

    g = torch.Generator(device).manual_seed(seed)
    dt = torch.bfloat16

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, device=device).to(dt)

    return {
        "hidden_states": randn(1, img_side * img_side, config["in_channels"]),
        "encoder_hidden_states": randn(1, txt_len, config["joint_attention_dim"]),
        "pooled_projections": randn(1, config["pooled_projection_dim"]),
        "timestep": torch.full((1,), 0.5, device=device, dtype=dt),
        "guidance": torch.full((1,), 3.5, device=device, dtype=dt) if config["guidance_embeds"] else None,
        "img_ids": FluxPipeline._prepare_latent_image_ids(1, img_side, img_side, device, dt),
        "txt_ids": torch.zeros(txt_len, 3, device=device, dtype=dt),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _allocated(device: torch.device) -> int:
    return torch.cuda.memory_allocated(device) if device.type == "cuda" else 0


def graph_pool_idle_bytes(device: torch.device) -> int:
    """Bytes reserved by CUDA-graph private pools but not held by a live tensor: the captured step's
    intermediates, which ``memory_allocated`` does not count during a replay but the GPU must have."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    return sum(
        seg["total_size"] - seg["allocated_size"]
        for seg in torch.cuda.memory_snapshot()
        if seg.get("device", index) == index and tuple(seg.get("segment_pool_id", (0, 0))) != (0, 0)
    )


def warm_up(fn: Callable[[], object], calls: int, device: torch.device) -> float:
    """Run ``fn`` ``calls`` (>= 1) times; returns the seconds of the first call (compile / capture included)."""
    t0 = time.perf_counter()
    fn()
    _sync(device)
    first_s = time.perf_counter() - t0
    for _ in range(calls - 1):
        fn()
    _sync(device)
    return first_s


def time_steps(fn: Callable[[], object], steps: int, device: torch.device) -> list[float]:
    """Seconds of each of ``steps`` calls: one CUDA event pair per call and one synchronize at the end (as
    ``gpu.bench.kernels._time``); perf_counter per call on the CPU."""
    if device.type != "cuda":
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return times
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(steps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(steps)]
    for i in range(steps):
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize(device)
    return [s.elapsed_time(e) * 1e-3 for s, e in zip(starts, ends, strict=True)]


def bench_variant(
    fn: Callable[[], torch.Tensor], steps: int, warmup: int, device: torch.device, baseline: int
) -> tuple[dict, torch.Tensor]:
    """Time ``fn`` (one transformer step) and measure its memory; returns (row, one output [B, S, C])."""
    is_cuda = device.type == "cuda"
    if is_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    first_s = warm_up(fn, max(1, warmup), device)
    warm_peak = torch.cuda.max_memory_allocated(device) if is_cuda else 0
    if is_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    times = time_steps(fn, steps, device)
    row = {
        "median_ms": statistics.median(times) * 1e3,
        "min_ms": min(times) * 1e3,
        "max_ms": max(times) * 1e3,
        "steps": steps,
        "warmup": warmup,
        "first_call_s": first_s,
    }
    if is_cuda:
        # A graph replay allocates nothing, so its intermediates only show as idle bytes of the graph's pool:
        # the step peak counts them (an upper bound: every intermediate at once).
        pool_idle = graph_pool_idle_bytes(device)
        peak = torch.cuda.max_memory_allocated(device) + pool_idle
        row["peak_step_gib"] = peak / GIB
        row["peak_step_allocated_gib"] = torch.cuda.max_memory_allocated(device) / GIB
        row["graph_pool_idle_gib"] = pool_idle / GIB
        row["peak_step_above_start_gib"] = (peak - baseline) / GIB
        row["warmup_peak_gib"] = warm_peak / GIB
        row["reserved_gib"] = torch.cuda.memory_reserved(device) / GIB
    out = fn()
    _sync(device)
    return row, out.detach().float().clone()


def _step_fn(model: torch.nn.Module, inputs: dict) -> Callable[[], torch.Tensor]:
    def step() -> torch.Tensor:
        with torch.inference_mode():
            return model(**inputs, return_dict=False)[0]

    return step


def rel_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    """||y - ref|| / ||ref|| in fp32."""
    return float((y.float() - ref.float()).norm() / ref.float().norm().clamp_min(1e-30))


def output_stats(y: torch.Tensor) -> dict:
    """y (any shape, any float dtype): whether every value is finite, its standard deviation (fp32) and shape."""
    return {"finite": bool(torch.isfinite(y).all()), "std": float(y.float().std()), "shape": list(y.shape)}


def bench_compiled(
    model: torch.nn.Module,
    inputs: dict,
    scope: str,
    compile_kw: dict,
    steps: int,
    warmup: int,
    device: torch.device,
    baseline: int,
) -> tuple[dict | None, torch.Tensor | None, bool | None, list[str]]:
    """Compile ``model`` (``scope`` "regional": diffusers' ``compile_repeated_blocks``, in place; "full":
    ``torch.compile`` of the whole model) and time a step as ``bench_variant``. Regional blocks are meant to
    compile as whole graphs; should dynamo refuse one, it is retried without fullgraph. Returns (row, output,
    fullgraph, errors); row and output are None when every attempt failed: one failed variant must not lose the
    whole run."""
    errors: list[str] = []
    for fullgraph in [True, False] if scope == "regional" else [False]:
        try:
            if scope == "regional":
                model.compile_repeated_blocks(fullgraph=fullgraph, **compile_kw)  # re-compiling replaces it
                compiled = model
            else:
                compiled = torch.compile(model, fullgraph=fullgraph, **compile_kw)
            row, y = bench_variant(_step_fn(compiled, inputs), steps, warmup, device, baseline)
            return row, y, fullgraph, errors
        except Exception as err:  # noqa: BLE001 - reported in the result instead
            errors.append(f"fullgraph={fullgraph}: {type(err).__name__}: {str(err)[:300]}")
            print(f"torch.compile failed ({errors[-1]})", flush=True)
            torch._dynamo.reset()
    return None, None, None, errors


# -- quantized-model helpers -------------------------------------------------------------------------------


def kernel_numerics(model: torch.nn.Module, device: torch.device) -> tuple[str | None, str]:
    """(activation format of the reference that reproduces what runs this model's W4A4 layers on ``device``,
    that execution path in words). None = the layer's own format (INT4), also when the reference itself runs."""
    from gpu.modules.svdq_linear import SVDQLinear
    from gpu.runtime.dispatch import choose_path

    layer = next(m for m in model.modules() if isinstance(m, SVDQLinear) and m.spec.act_format is not None)
    backend, why = choose_path(layer, device)
    if backend is None:
        return None, why
    from gpu.kernels import backend as kernel_backends

    for value in vars(kernel_backends).values():
        if isinstance(value, kernel_backends.FusedPath) and value.name == backend.name:
            return value.act_format, why
    return None, why


@contextlib.contextmanager
def reference_linears(model: torch.nn.Module, act_format: str | None) -> Iterator[None]:
    """Every ``SVDQLinear`` of ``model`` runs ``forward_reference`` inside the block (W4A4 layers with
    ``act_format``, W4A16 layers with 16-bit activations as stored)."""
    from gpu.modules.svdq_linear import SVDQLinear

    layers = [m for m in model.modules() if isinstance(m, SVDQLinear)]
    for m in layers:
        fmt = act_format if m.spec.act_format is not None else None
        m.forward = functools.partial(m.forward_reference, act_format=fmt)  # instance attribute shadows forward
    try:
        yield
    finally:
        for m in layers:
            del m.forward


def packed_bytes(model: torch.nn.Module) -> int:
    """Bytes of the kernels' repacked weight copies cached on the ``SVDQLinear`` layers (dataclasses of
    tensors held as layer attributes, e.g. ``_svdq_packed``), each storage counted once."""
    from gpu.modules.svdq_linear import SVDQLinear

    seen: set[int] = set()
    total = 0
    for m in model.modules():
        if not isinstance(m, SVDQLinear):
            continue
        for value in vars(m).values():
            if not dataclasses.is_dataclass(value) or isinstance(value, type):
                continue
            for f in dataclasses.fields(value):
                t = getattr(value, f.name)
                if isinstance(t, torch.Tensor) and t.data_ptr() not in seen:
                    seen.add(t.data_ptr())
                    total += t.numel() * t.element_size()
    return total


@torch.inference_mode()
def record_blocks(model: torch.nn.Module, inputs: dict) -> tuple[list[dict], torch.Tensor]:
    """One forward of ``model`` recording every block's inputs and outputs (clones; ~56 MB per block at
    1024x1024): ([{"name", "kwargs", "out": (text, image)}], model output as float32)."""
    records: list[dict] = []
    handles = []
    for blocks_name in ("transformer_blocks", "single_transformer_blocks"):
        for i, block in enumerate(getattr(model, blocks_name)):

            def hook(_mod: torch.nn.Module, _args: tuple[Any, ...], kwargs: dict[str, Any],
                     out: tuple[torch.Tensor, torch.Tensor], name: str = f"{blocks_name}.{i}") -> None:  # fmt: skip
                kw = {k: v.clone() if k in ("hidden_states", "encoder_hidden_states") else v for k, v in kwargs.items()}
                records.append({"name": name, "kwargs": kw, "out": tuple(t.clone() for t in out)})

            handles.append(block.register_forward_hook(hook, with_kwargs=True))
    try:
        y = model(**inputs, return_dict=False)[0].float().clone()
    finally:
        for h in handles:
            h.remove()
    return records, y


@torch.inference_mode()
def block_errors(model: torch.nn.Module, records: list[dict]) -> dict:
    """Teacher-forced check: each block of ``model`` run on the recorded inputs of the reference run,
    relative error of its (text, image) output against the recorded one. Unlike the end-to-end error this
    does not compound through the 57 blocks."""
    errs = []
    for rec in records:
        out = model.get_submodule(rec["name"])(**rec["kwargs"])
        y = torch.cat([t.float().flatten() for t in out])
        ref = torch.cat([t.float().flatten() for t in rec["out"]])
        errs.append(rel_error(y, ref))
    return {"max": max(errs), "median": statistics.median(errs), "per_block": errs}


def perturbed(inputs: dict, seed: int = 1) -> dict:
    """``inputs`` with every latent element moved by about one bf16 rounding step (relative 2^-8, random sign)."""
    x = inputs["hidden_states"]
    g = torch.Generator(x.device).manual_seed(seed)
    sign = torch.randint(0, 2, x.shape, generator=g, device=x.device).float() * 2 - 1
    return {**inputs, "hidden_states": (x.float() * (1 + sign * 2.0**-8)).to(x.dtype)}


def _launch_context(device: torch.device) -> contextlib.AbstractContextManager:
    """As the app runs generation on a GPU: torch on the kernels' stream (nothing elsewhere)."""
    if device.type == "cuda":
        with contextlib.suppress(ImportError):
            from gpu.kernels.launch import launch_stream

            return launch_stream(device)
    return contextlib.nullcontext()


def _free(device: torch.device) -> None:
    torch._dynamo.reset()  # compiled code holds the module (and its 22 GiB) through its guards
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# -- the run ----------------------------------------------------------------------------------------------


def run(
    out_dir: Path,
    tiny: bool = False,
    steps: int | None = None,
    warmup: int | None = None,
    rank: int = 32,
    compile_mode: str = "default",
    compile_scope: str = "regional",
    device: torch.device | str | None = None,
    seed: int = 0,
    lora_rank: int = 16,
) -> dict:
    """Run every variant (see module docstring); writes ``bench_flux.json`` and ``bench_flux.md`` into
    ``out_dir`` and returns the result dict."""
    t_start = time.perf_counter()
    device = (
        torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if not tiny and device.type != "cuda":
        raise SystemExit("error: bench flux needs a CUDA GPU (use --tiny to check the plumbing on the CPU)")
    steps = steps if steps is not None else (3 if tiny else FULL_SIZE_MIN_STEPS)
    warmup = warmup if warmup is not None else (1 if tiny else 3)
    if not tiny and steps < FULL_SIZE_MIN_STEPS:
        raise SystemExit(f"error: --steps must be >= {FULL_SIZE_MIN_STEPS} for a full-size run")
    from gpu.output_folders import make_output_folder

    make_output_folder(out_dir)  # a file in the way is said now, not after the whole run
    threads = torch.get_num_threads()
    if device.type == "cpu" and tiny:
        # Tiny ops are too short to split across cores; OpenMP spin-waiting then dominates (pipeline_loader).
        torch.set_num_threads(1)
    try:
        return _run(out_dir, tiny, steps, warmup, rank, compile_mode, compile_scope, device, seed, lora_rank, t_start)
    finally:
        torch.set_num_threads(threads)


def _run(out_dir: Path, tiny: bool, steps: int, warmup: int, rank: int, compile_mode: str, compile_scope: str,
         device: torch.device, seed: int, lora_rank: int, t_start: float) -> dict:  # fmt: skip
    config = FLUX_TINY_CONFIG if tiny else FLUX_DEV_CONFIG
    img_side, txt_len = (8, 16) if tiny else (64, 512)
    compile_backend = "inductor" if device.type == "cuda" else "eager"
    timeline: dict[str, float] = {}

    def mark(what: str) -> None:
        timeline[what] = time.perf_counter() - t_start
        print(f"[{timeline[what]:7.1f} s] {what}", flush=True)

    inputs = make_inputs(config, img_side, txt_len, device, seed)
    variants: dict[str, dict] = {}
    outputs: dict[str, dict] = {}

    # --- BF16: eager, then compiled; then deleted before the quantized model exists --------------------------
    baseline = _allocated(device)
    model = build_bf16_flux(config, device, seed=seed)
    _sync(device)
    mark("built BF16 model")
    bf16_bytes = module_bytes(model)
    row, y = bench_variant(_step_fn(model, inputs), steps, warmup, device, baseline)
    variants["bf16_eager"] = {**row, "weight_gib": bf16_bytes / GIB}
    outputs["bf16_eager"] = output_stats(y)
    # The same one-rounding-step input change as the quantized reference's below, on the 16-bit model: whether
    # the random model itself amplifies rounding differences, or only its quantized form does.
    outputs["bf16_eager"]["sensitivity_1ulp_input"] = rel_error(_step_fn(model, perturbed(inputs))(), y)
    mark("bf16_eager done")
    compile_kw = {"mode": compile_mode, "backend": compile_backend}
    if compile_backend != "inductor":
        compile_kw.pop("mode")  # modes are inductor options

    def add_compiled(name: str, row: dict, model: torch.nn.Module, y_eager: torch.Tensor) -> None:
        """Compile and time ``model`` as variant ``name`` (``row``: its fields known beforehand); its output is
        compared with eager BF16's ``y_eager``."""
        timed, out, fullgraph, errors = bench_compiled(model, inputs, compile_scope, compile_kw, steps, warmup,
                                                       device, baseline)  # fmt: skip
        variants[name] = row
        outputs[name] = {}
        if out is not None:
            row.update(timed, fullgraph=fullgraph)
            outputs[name] = {**output_stats(out), "rel_error_vs_bf16_eager": rel_error(out, y_eager)}
        else:
            row["error"] = " | ".join(errors)
        if errors:
            row["compile_errors"] = errors
        mark(f"{name} done")

    add_compiled("bf16_compiled", {"weight_gib": bf16_bytes / GIB}, model, y)
    # The 8-bit baseline: the same model with FP8 rowwise block linears, compiled alike.
    torch._dynamo.reset()
    fp8_linears = sum(to_fp8_rowwise(blocks) for blocks in (model.transformer_blocks, model.single_transformer_blocks))
    fp8_row = {"weight_gib": module_bytes(model) / GIB, "fp8_linears": fp8_linears}
    add_compiled("fp8_rowwise_compiled", fp8_row, model, y)
    del model, y
    _free(device)
    leftover = (_allocated(device) - baseline) / GIB
    mark(f"BF16 model freed (left allocated: {leftover:.3f} GiB)")

    # --- ours: quantized, reference output, unfused, fused, fused + graph ---------------------------------------
    from gpu.models.flux_fused import fuse_flux_transformer

    baseline = _allocated(device)
    q = build_quantized_flux(config, device, rank=rank, seed=seed)
    _sync(device)
    mark("built SVDQ model")
    q_bytes = module_bytes(q)
    act_format, path = kernel_numerics(q, device)
    with reference_linears(q, act_format), torch.inference_mode():
        t = time.perf_counter()
        records, y_ref = record_blocks(q, inputs)
        _sync(device)
        ref_s = time.perf_counter() - t
        # How much the reference itself moves when the input moves by one rounding step: the floor for any
        # end-to-end comparison of two implementations that round differently (random weights compound it).
        sensitivity = rel_error(q(**perturbed(inputs), return_dict=False)[0], y_ref)
    mark("reference output done")
    y_o = None
    with _launch_context(device):
        row, y_u = bench_variant(_step_fn(q, inputs), steps, warmup, device, baseline)
        variants["svdq_unfused_eager"] = {**row, "weight_gib": q_bytes / GIB}
        outputs["svdq_unfused_eager"] = {**output_stats(y_u), "rel_error_vs_reference": rel_error(y_u, y_ref)}
        mark("svdq_unfused_eager done")
        blocks_unfused = block_errors(q, records)
        fuse_flux_transformer(q)
        blocks_fused = block_errors(q, records)
        del records
        mark("per-block checks done")
        fused_bytes = module_bytes(q)
        q.cuda_graphs = False
        row, y_f = bench_variant(_step_fn(q, inputs), steps, warmup, device, baseline)
        variants["svdq_fused_eager"] = {**row, "weight_gib": fused_bytes / GIB}
        outputs["svdq_fused_eager"] = {**output_stats(y_f), "rel_error_vs_reference": rel_error(y_f, y_ref)}
        mark("svdq_fused_eager done")
        # What the model holds on the GPU once every layer is packed (canonical 4-bit buffers in host memory):
        # allocated bytes now, with no step running, minus the inputs and the kept output.
        _sync(device)
        gpu_resident = _allocated(device) - baseline - y_f.numel() * y_f.element_size()
        q.cuda_graphs = True
        try:
            row, y_o = bench_variant(_step_fn(q, inputs), steps, warmup, device, baseline)
        except Exception as err:  # noqa: BLE001 - report a failed capture, keep the other numbers
            print(f"ours (CUDA graph) failed: {type(err).__name__}: {err}", flush=True)
            variants["ours"] = {"error": f"{type(err).__name__}: {str(err)[:500]}", "weight_gib": fused_bytes / GIB}
            outputs["ours"] = {}
        else:
            row["cuda_graph"] = device.type == "cuda"
            if device.type == "cuda":
                row["capture_peak_gib"] = row["warmup_peak_gib"]
            variants["ours"] = {**row, "weight_gib": fused_bytes / GIB}
            outputs["ours"] = {
                **output_stats(y_o),
                "rel_error_vs_reference": rel_error(y_o, y_ref),
                "max_abs_diff_vs_fused_eager": float((y_o - y_f).abs().max()),
            }
        mark("ours done")
    repacked = packed_bytes(q)
    fusion = {k: v for k, v in q.fusion_report.items() if k != "groups"}
    linear_path = next((m.last_path for m in q.modules() if getattr(m, "spec", None) is not None
                        and m.spec.act_format is not None), "")  # fmt: skip
    lora_fusion = None
    if lora_rank:
        # As the app switches LoRAs on a fused model: split it, apply the LoRA to the named layers, fuse again
        # (members whose combined branch the kernels cannot run stay separate).
        from gpu.lora.apply import apply_deltas
        from gpu.models.flux_fused import unfuse_flux_transformer

        t = time.perf_counter()
        unfuse_flux_transformer(q)
        apply_deltas(random_lora_deltas(q, lora_rank, seed))
        fuse_flux_transformer(q)
        _sync(device)
        switch_s = time.perf_counter() - t
        with _launch_context(device):
            row, y_l = bench_variant(_step_fn(q, inputs), steps, warmup, device, baseline)
        variants["ours_lora"] = {**row, "weight_gib": module_bytes(q) / GIB, "lora_rank": lora_rank,
                                 "lora_switch_s": switch_s}  # fmt: skip
        change = None if y_o is None else rel_error(y_l, y_o)
        outputs["ours_lora"] = {**output_stats(y_l), "lora_change_vs_ours": change}
        lora_fusion = {k: v for k, v in q.fusion_report.items() if k != "groups"}
        mark("ours + LoRA done")
    del q
    _free(device)

    def ratio(a: str, b: str) -> float | None:
        """median(a) / median(b), None when either variant failed."""
        ma, mb = variants[a].get("median_ms"), variants[b].get("median_ms")
        return None if ma is None or mb is None else ma / mb

    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
        "capability": "sm_{}{}".format(*torch.cuda.get_device_capability(device)) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "diffusers": __import__("diffusers").__version__,
        "model": "FLUX_TINY_CONFIG" if tiny else "FLUX.1-dev (random weights)",
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in config.items()},
        "image_tokens": img_side * img_side,
        "text_tokens": txt_len,
        "resolution": f"{img_side * 16}x{img_side * 16}",
        "batch": 1,
        "rank": rank,
        "steps": steps,
        "warmup": warmup,
        "compile": {
            "mode": compile_mode if compile_backend == "inductor" else None,
            "scope": compile_scope,
            "backend": compile_backend,
            "fullgraph": variants["bf16_compiled"].get("fullgraph"),
        },
        "linear_path": path,
        "linear_path_last_run": linear_path,
        "reference_act_format": act_format or "as stored (int4)",
        "fused_ops": fusion.get("ops"),
        "timing": "median of per-step CUDA-event times" if device.type == "cuda" else "median of perf_counter times",
    }
    result = {
        "meta": meta,
        "variants": variants,
        "speedup": {
            "ours_vs_bf16_eager": ratio("bf16_eager", "ours"),
            "ours_vs_bf16_compiled": ratio("bf16_compiled", "ours"),
            "compiled_vs_eager": ratio("bf16_eager", "bf16_compiled"),
            "fp8_compiled_vs_bf16_eager": ratio("bf16_eager", "fp8_rowwise_compiled"),
            "ours_vs_fp8_compiled": ratio("fp8_rowwise_compiled", "ours"),
            "fusion_and_graph_vs_unfused": ratio("svdq_unfused_eager", "ours"),
            "fused_eager_vs_unfused": ratio("svdq_unfused_eager", "svdq_fused_eager"),
            "lora_step_vs_ours": ratio("ours_lora", "ours") if "ours_lora" in variants else None,
        },
        "memory": {
            "bf16_weight_gib": bf16_bytes / GIB,
            "svdq_weight_gib": q_bytes / GIB,
            "svdq_fused_weight_gib": fused_bytes / GIB,
            "kernel_repacked_copies_gib": repacked / GIB,
            "svdq_fused_gpu_resident_gib": gpu_resident / GIB if device.type == "cuda" else None,
            "weight_ratio_bf16_vs_fused": bf16_bytes / fused_bytes,
            "bf16_left_allocated_after_free_gib": leftover,
        },
        "correctness": {
            "reference": "unfused model, every SVDQLinear on its PyTorch reference "
            f"(activations {act_format or 'int4'}), diffusers' block ops",
            "reference_s": ref_s,
            "reference_sensitivity_1ulp_input": sensitivity,
            "per_block_unfused_vs_reference": blocks_unfused,
            "per_block_fused_vs_reference": blocks_fused,
            "outputs": outputs,
            "ours_rel_error_vs_reference": outputs["ours"].get("rel_error_vs_reference"),
        },
        "fusion": fusion,
        "fusion_with_lora": lora_fusion,
        "timeline_s": timeline,
        "total_s": time.perf_counter() - t_start,
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench_flux.json").write_text(json.dumps(result, indent=2))
    (out_dir / "bench_flux.md").write_text(markdown(result))
    print(markdown(result), flush=True)
    return result


def markdown(result: dict) -> str:
    meta, v = result["meta"], result["variants"]
    c = meta["compile"]
    comp = f"torch.compile backend {c['backend']}, mode {c['mode']}, {c['scope']}"
    lines = [
        f"FLUX transformer step, {meta['date']}, {meta['device']} ({meta['capability']}), torch {meta['torch']}, "
        f"diffusers {meta['diffusers']}; {meta['model']}, {meta['resolution']} ({meta['image_tokens']} image + "
        f"{meta['text_tokens']} text tokens), batch 1, rank {meta['rank']}; median of {meta['steps']} timed steps "
        f"after {meta['warmup']} warm-up; {comp}.",
        "",
        "| variant | median ms | min–max ms | vs BF16 eager | vs compiled | weights GiB | peak step GiB "
        "| reserved GiB | first call s | rel. error vs reference |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    eager, compiled = v["bf16_eager"].get("median_ms"), v["bf16_compiled"].get("median_ms")
    outs = result["correctness"]["outputs"]
    for name, label in VARIANTS.items():
        if name not in v:
            continue
        r = v[name]
        if "median_ms" not in r:
            lines.append(f"| {label} | failed: {r.get('error', '?')[:200]} | | | | {r['weight_gib']:.2f} | | | | |")
            continue
        err = outs[name].get("rel_error_vs_reference")
        lines.append(
            f"| {label} | {r['median_ms']:.2f} | {r['min_ms']:.2f}–{r['max_ms']:.2f} "
            f"| {_x(eager and eager / r['median_ms'])} | {_x(compiled and compiled / r['median_ms'])} "
            f"| {r['weight_gib']:.2f} | {_gib(r.get('peak_step_gib'))} | {_gib(r.get('reserved_gib'))} "
            f"| {r['first_call_s']:.1f} | {'–' if err is None else f'{err:.2e}'} |"
        )
    m, s, corr, fu = result["memory"], result["speedup"], result["correctness"], result["fusion"]
    lines += [
        "",
        f"- ours vs BF16 eager {_x(s['ours_vs_bf16_eager'])}, vs BF16 compiled {_x(s['ours_vs_bf16_compiled'])}; "
        f"fusion + graph vs unfused {_x(s['fusion_and_graph_vs_unfused'])} (fused eager vs unfused "
        f"{_x(s['fused_eager_vs_unfused'])}); compiled vs eager BF16 {_x(s['compiled_vs_eager'])}.",
        f"- FP8 rowwise baseline ({v['fp8_rowwise_compiled'].get('fp8_linears')} block linears on "
        f"`torch._scaled_mm`, compiled): {_x(s['fp8_compiled_vs_bf16_eager'])} BF16 eager; ours vs it "
        f"{_x(s['ours_vs_fp8_compiled'])}; its output vs eager BF16 "
        f"{_e(outs['fp8_rowwise_compiled'].get('rel_error_vs_bf16_eager'))}.",
        f"- Weights: BF16 {m['bf16_weight_gib']:.2f} GiB, SVDQ {m['svdq_weight_gib']:.2f} GiB (fused "
        f"{m['svdq_fused_weight_gib']:.2f} GiB: block-diagonal low-rank up projections); the kernels' packed "
        f"copies ({m['kernel_repacked_copies_gib']:.2f} GiB, shared storages included) replace the canonical 4-bit "
        f"buffers, which move to host memory: GPU-resident after first use "
        f"{_gib(m.get('svdq_fused_gpu_resident_gib'))} GiB.",
        f"- ours: peak step = allocated {_gib(v['ours'].get('peak_step_allocated_gib'))} GiB + the graph pool's "
        f"idle {_gib(v['ours'].get('graph_pool_idle_gib'))} GiB (the replayed step's intermediates); CUDA-graph "
        f"capture peak {_gib(v['ours'].get('capture_peak_gib'))} GiB.",
        f"- Correctness, per block (teacher-forced: each block on the reference run's inputs): fused max "
        f"{_e(corr['per_block_fused_vs_reference']['max'])} (median "
        f"{_e(corr['per_block_fused_vs_reference']['median'])}), unfused (our linears only) max "
        f"{_e(corr['per_block_unfused_vs_reference']['max'])}.",
        f"- Correctness, end to end: ours vs reference {_e(corr['ours_rel_error_vs_reference'])}, unfused vs "
        f"reference {_e(outs['svdq_unfused_eager'].get('rel_error_vs_reference'))}, fused eager vs reference "
        f"{_e(outs['svdq_fused_eager'].get('rel_error_vs_reference'))}; the reference's own change for a "
        f"one-rounding-step change of the input: {_e(corr['reference_sensitivity_1ulp_input'])} (random weights "
        f"compound rounding differences through the blocks). Reference: {corr['reference']} "
        f"({corr['reference_s']:.1f} s). Graph vs fused eager max |diff| "
        f"{_e(outs['ours'].get('max_abs_diff_vs_fused_eager'))}; compiled vs eager BF16 "
        f"{_e(outs['bf16_compiled'].get('rel_error_vs_bf16_eager'))}; eager BF16's own change for the same input "
        f"change {_e(outs['bf16_eager'].get('sensitivity_1ulp_input'))}.",
        f"- Linears: {meta['linear_path']}. Block ops: {meta['fused_ops']}.",
        f"- Fusion: {fu['merged']} groups merged, {fu['kept_separate']} kept separate"
        + (f" ({'; '.join(f'{n}× {r}' for r, n in fu['reasons'].items())})" if fu["reasons"] else "")
        + ".",
    ]
    lf = result.get("fusion_with_lora")
    if lf is not None:
        r, out = v["ours_lora"], outs["ours_lora"]
        lines.append(
            f"- With a rank-{r['lora_rank']} LoRA on every W4A4 linear (applied as the app does: split, apply, fuse "
            f"again, {r['lora_switch_s']:.1f} s): step {_x(s['lora_step_vs_ours'])} the time of ours, output moved "
            f"{_e(out.get('lora_change_vs_ours'))}; {lf['merged']} groups merged, {lf['kept_separate']} kept separate"
            + (f" ({'; '.join(f'{n}× {why}' for why, n in lf['reasons'].items())})" if lf["reasons"] else "")
            + "."
        )
    lines.append(f"- Whole run {result['total_s']:.0f} s.")
    return "\n".join(lines) + "\n"


def _gib(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def _x(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}×"


def _e(x: float | None) -> str:
    return "–" if x is None else f"{x:.2e}"
