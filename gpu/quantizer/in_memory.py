"""The in-memory quantizer: whole pipeline loaded, layers quantized one after another.

Phases are separate functions (load → calibrate → decompose layers → save) so the streaming,
block-by-block variant for 12B models replaces only how calibration data is produced and consumed."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

from gpu.adapters import adapter_named
from gpu.checkpoint.format import CheckpointMeta, save_checkpoint
from gpu.errors import Cancelled, ModelLoadError
from gpu.generation.pipeline_loader import load_pipeline
from gpu.library import ModelEntry, ModelLibrary, builtin_models
from gpu.modules.layer_spec import spec_for
from gpu.quantizer.calibrate import calibration_prompts, collect_calibration
from gpu.quantizer.config import QuantizeConfig, QuantizeEvent
from gpu.svdquant.decompose import DecomposeConfig, decompose_linear


def quantize_model(
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
    started = time.perf_counter()

    def emit(kind: str, message: str, **kw) -> None:
        if on_event is not None:
            on_event(QuantizeEvent(kind, message, elapsed_s=time.perf_counter() - started, **kw))

    def check_cancel() -> None:
        if should_cancel is not None and should_cancel():
            raise Cancelled()

    entry = library.resolve(str(source))
    if entry.facts is None or entry.facts.kind != "diffusers":
        raise ModelLoadError(f"{entry.name}: only a 16-bit diffusers pipeline folder can be quantized")
    emit("stage", f"loading {entry.name}")
    loaded = load_pipeline(entry, library, device)
    pipe = loaded.pipe
    adapter = adapter_named(entry.facts.architecture)
    targets = adapter.quantizable_linears(pipe.transformer)
    storage_dtype = torch.float16 if entry.facts.precision == "fp16" else torch.bfloat16

    defaults = entry.facts.defaults
    prompts = calibration_prompts(entry.path, defaults, config.calib_prompts)
    steps = config.calib_steps or int(defaults.get("steps", 28))
    emit("stage", f"calibrating on {len(prompts)} prompts x {steps} steps", total=len(prompts))
    calib = collect_calibration(
        pipe,
        {name: m for name, (m, _role) in targets.items()},
        prompts,
        steps,
        _calibration_kwargs(pipe, defaults),
        config.seed,
        config.max_tokens_per_layer,
        on_batch=lambda done, total: emit("stage", f"calibrated {done}/{total} prompts", index=done, total=total),
        should_cancel=should_cancel,
    )
    emit("stage", f"quantizing {len(targets)} layers ({config.method}, {config.precision}, rank {config.rank})")
    dcfg = DecomposeConfig(refine_iters=config.refine_iters, seed=config.seed, dtype=storage_dtype)
    tensors: dict[str, torch.Tensor] = {}
    layer_meta: dict[str, dict] = {}
    errors: dict[str, float] = {}
    t0 = time.perf_counter()
    for i, (name, (module, role)) in enumerate(targets.items()):
        check_cancel()
        spec = spec_for(config.method, config.precision, config.rank, role)
        layer = decompose_linear(module.weight, module.bias, spec, calib[name] if spec.act_format else None, dcfg)
        for key, t in layer.tensors.items():
            tensors[f"{name}.{key}"] = t
        layer_meta[name] = {
            **spec.to_json(),
            "kind": spec.kind,
            "in_features": module.in_features,
            "out_features": module.out_features,
            "alpha": layer.alpha,
            "error": layer.error,
        }
        if layer.error is not None:
            errors[name] = layer.error
        done = i + 1
        per_layer = (time.perf_counter() - t0) / done
        note = "" if layer.error is None else f", error {layer.error:.2e}"
        emit(
            "layer", f"{name}: {spec.kind} {spec.method}{note}",
            index=done, total=len(targets), layer=name, error=layer.error, eta_s=per_layer * (len(targets) - done),
        )  # fmt: skip
    quantized = set(targets)
    for key, t in pipe.transformer.state_dict().items():
        owner = key.rsplit(".", 1)[0]
        if owner not in quantized:
            tensors[key] = t.to(storage_dtype) if t.is_floating_point() else t
    check_cancel()
    meta = CheckpointMeta(
        architecture=adapter.architecture,
        model_class=adapter.diffusers_class,
        model_config=_plain_config(pipe.transformer.config),
        dtype=str(storage_dtype).removeprefix("torch."),
        layers=layer_meta,
        quantization={"method": config.method, "precision": config.precision, "rank": config.rank},
        calibration={
            "prompts": len(prompts),
            "steps": steps,
            "seed": config.seed,
            "tokens_per_layer": config.max_tokens_per_layer,
            "mean_layer_error": sum(errors.values()) / len(errors) if errors else None,
            "max_layer_error": max(errors.values()) if errors else None,
        },
        base_model=_base_record(entry, out_path, defaults),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    emit("stage", f"writing {out_path.name}")
    save_checkpoint(out_path, tensors, meta)
    size_mib = out_path.stat().st_size / 2**20
    emit("done", f"wrote {out_path} ({size_mib:.1f} MiB)", index=len(targets), total=len(targets))
    return out_path


def _calibration_kwargs(pipe, defaults: dict) -> dict:
    """The same conditioning path as generation: true CFG for models without a guidance input."""
    kw: dict = {
        "max_sequence_length": int(defaults.get("max_sequence_length", 512)),
        "width": int(defaults.get("width", 1024)),
        "height": int(defaults.get("height", 1024)),
    }
    guidance = float(defaults.get("guidance", 3.5))
    if getattr(pipe.transformer.config, "guidance_embeds", False):
        kw["guidance_scale"] = guidance
    else:
        kw.update(negative_prompt="", true_cfg_scale=guidance)
    return kw


def _plain_config(config) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(config).items()}


def _base_record(entry: ModelEntry, out_path: Path, defaults: dict) -> dict:
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
