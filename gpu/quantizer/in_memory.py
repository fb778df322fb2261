"""The in-memory quantizer: whole pipeline loaded, calibration by hooks, layers quantized one after another.

Kept as the reference the streaming engine (``gpu.streaming``) is tested against: both build calibration
from the same (prompt, timestep) samples and quantize with the same ``gpu.quantizer.shared`` pieces."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from gpu.adapters import adapter_named
from gpu.calibration_set import calibration_prompts, calibration_steps
from gpu.checkpoint.format import save_checkpoint
from gpu.errors import ModelLoadError
from gpu.generation.pipeline_loader import load_pipeline
from gpu.library import ModelEntry, ModelLibrary, builtin_models
from gpu.quantizer.calibrate import collect_calibration
from gpu.quantizer.config import EmitEvent, QuantizeConfig, QuantizeEvent, emitter, raise_if_cancelled
from gpu.quantizer.shared import (
    CalibSample,
    PromptEmbeds,
    TransformerFn,
    calibration_kwargs,
    check_rank_fits,
    checkpoint_meta,
    denoise_and_record,
    encode_prompts,
    layer_message,
    plain_config,
    quantize_layers,
    scheduler_record,
)  # fmt: skip
from gpu.svdquant.decompose import DecomposeConfig

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

ENCODING_LINES = 10  # at most about this many "encoded i/N prompts" lines: hundreds of prompts gave one each


def quantize_model_in_memory(
    source: str | Path,
    out_path: Path | str,
    config: QuantizeConfig | None = None,
    on_event: Callable[[QuantizeEvent], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    library: ModelLibrary | None = None,
    device: torch.device | None = None,
) -> Path:
    """Quantize the diffusers pipeline ``source`` (folder or library name) into the SVDQ file ``out_path``."""
    config = config or QuantizeConfig()
    config.validate()
    library = library or ModelLibrary()
    out_path = Path(out_path)
    emit = emitter(on_event, time.perf_counter())
    check_cancel = partial(raise_if_cancelled, should_cancel)

    entry = library.resolve(str(source))
    if entry.facts is None or entry.facts.kind != "diffusers":
        raise ModelLoadError(f"{entry.name}: only a 16-bit diffusers pipeline folder can be quantized")
    emit("stage", f"loading {entry.name}")
    loaded = load_pipeline(entry, library, device)
    pipe = loaded.pipe
    transformer = pipe.transformer
    adapter = adapter_named(entry.facts.architecture)
    targets = adapter.quantizable_linears(transformer)
    check_rank_fits(targets, config)  # before the calibration, which takes most of the run
    storage_dtype = torch.float16 if entry.facts.precision == "fp16" else torch.bfloat16

    defaults = entry.facts.defaults
    prompts = calibration_prompts(entry.path, defaults, config.calib_prompts)
    steps = calibration_steps(config.calib_steps, defaults, entry.path)
    samples = make_samples(pipe, prompts, steps, defaults, config, loaded.dtype,
                           bool(transformer.config.guidance_embeds), transformer.config.in_channels,
                           lambda xs: [transformer(**{k: v.to(loaded.device) for k, v in x.items()},
                                                   return_dict=False)[0].cpu() for x in xs],
                           should_cancel, emit)  # fmt: skip
    emit("stage", f"calibrating on {len(samples)} samples", total=len(samples))
    calib = collect_calibration(
        transformer, {name: m for name, (m, _role) in targets.items()}, samples, config.seed,
        config.max_tokens_per_layer, loaded.device,
        on_sample=lambda done, total: emit("stage", f"calibrated {done}/{total} samples", index=done, total=total),
        should_cancel=should_cancel,
    )  # fmt: skip
    emit("stage", f"quantizing {len(targets)} layers ({config.method}, {config.precision}, rank {config.rank})")
    dcfg = DecomposeConfig(refine_iters=config.refine_iters, seed=config.seed, dtype=storage_dtype)
    tensors: dict[str, torch.Tensor] = {}
    layer_meta: dict[str, dict] = {}
    t0 = time.perf_counter()
    for i, (name, layer_tensors, meta, error) in enumerate(quantize_layers(targets, calib.__getitem__, config, dcfg,
                                                                          adapter)):  # fmt: skip
        check_cancel()
        tensors.update(layer_tensors)
        layer_meta[name] = meta
        done = i + 1
        per_layer = (time.perf_counter() - t0) / done
        emit("layer", layer_message(name, meta), index=done, total=len(targets), layer=name, error=error,
             eta_s=per_layer * (len(targets) - done))  # fmt: skip
    quantized = set(targets)
    for key, t in transformer.state_dict().items():
        owner = key.rsplit(".", 1)[0]
        if owner not in quantized:
            tensors[key] = t.to(storage_dtype).cpu() if t.is_floating_point() else t.cpu()
    check_cancel()
    meta = checkpoint_meta(adapter.architecture, adapter.diffusers_class, plain_config(transformer.config),
                           storage_dtype, layer_meta, config, len(prompts), len(samples), steps,
                           base_record(entry, out_path, defaults),
                           scheduler_record(entry.path, adapter.architecture))  # fmt: skip
    emit("stage", f"writing {out_path.name}")
    save_checkpoint(out_path, tensors, meta)
    size_mib = out_path.stat().st_size / 2**20
    emit("done", f"wrote {out_path} ({size_mib:.1f} MiB)", index=len(targets), total=len(targets))
    return out_path


def make_samples(pipe: DiffusionPipeline, prompts: Sequence[str], steps: int, defaults: dict[str, Any],
                 config: QuantizeConfig, dtype: torch.dtype, guidance_embeds: bool, in_channels: int,
                 transformer_fn: TransformerFn, should_cancel: Callable[[], bool] | None,
                 emit: EmitEvent) -> list[CalibSample]:
    """Text encoders for every prompt, then the seeded short trajectories -> recorded samples (CPU).

    ``pipe`` needs its text encoders, scheduler and ``prepare_latents``; its transformer is not used
    (``transformer_fn`` runs it), so the streaming engine passes a pipeline loaded without one."""
    kw = calibration_kwargs(defaults, guidance_embeds)
    emit("stage", f"encoding {len(prompts)} prompts", total=len(prompts))
    every = max(1, len(prompts) // ENCODING_LINES)

    def encoded(done: int, total: int) -> None:  # the bar moves with each prompt; a line now and then, not each
        emit("stage", f"encoded {done}/{total} prompts" if done % every == 0 or done == total else "", index=done,
             total=total)  # fmt: skip

    embeds = encode_prompts(pipe, prompts, kw["max_sequence_length"], kw["true_cfg"], should_cancel, encoded)
    return record_trajectories(embeds, pipe, steps, config, kw, dtype, guidance_embeds, in_channels, transformer_fn,
                               should_cancel, emit)  # fmt: skip


def record_trajectories(embeds: list[PromptEmbeds], pipe: DiffusionPipeline, steps: int, config: QuantizeConfig,
                        kw: dict[str, Any], dtype: torch.dtype, guidance_embeds: bool, in_channels: int,
                        transformer_fn: TransformerFn, should_cancel: Callable[[], bool] | None,
                        emit: EmitEvent) -> list[CalibSample]:
    """Seeded latents per prompt + the shared lock-step trajectory recorder (``pipe``: prepare_latents and
    scheduler only)."""
    scheduler_config = pipe.scheduler.config
    scheduler_cls = type(pipe.scheduler)

    def prepare(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator("cpu").manual_seed(config.seed + i)
        lat, ids = pipe.prepare_latents(1, in_channels // 4, kw["height"], kw["width"], dtype, torch.device("cpu"), g)
        return lat, ids

    emit("stage", f"recording calibration samples ({steps}-step trajectories)")
    with torch.inference_mode():
        return denoise_and_record(
            embeds, transformer_fn, lambda: scheduler_cls.from_config(scheduler_config), prepare, steps,
            config.timesteps_per_prompt, config.seed, kw["guidance"], guidance_embeds, dtype, should_cancel,
            on_step=lambda done, total: emit("stage", f"trajectory step {done}/{total}", index=done, total=total),
        )  # fmt: skip


def base_record(entry: ModelEntry, out_path: Path, defaults: dict) -> dict:
    builtin_name = next((n for n, p in builtin_models().items() if p.resolve() == entry.path.resolve()), None)
    try:
        relative = os.path.relpath(entry.path.resolve(), out_path.resolve().parent)
    except ValueError:  # different drives on Windows
        relative = None
    return {
        "name": builtin_name or entry.name,
        "path": str(entry.path.resolve()),
        "relative_path": relative,
        "defaults": {k: v for k, v in defaults.items() if k != "calibration_prompts"},
    }
