"""Pieces both quantizers share, so the in-memory and streaming paths cannot drift apart.

* ``CalibSample`` / ``denoise_and_record``: the (prompt, timestep) calibration samples. Each prompt runs a
  short seeded 16-bit denoising trajectory (batch 1, its own generator); the transformer inputs at a few
  seeded step indices are recorded. The transformer is a callable over a *list* of inputs so the streaming
  engine can run every prompt through one block before loading the next (one pass over the weights per step).
* ``quantize_layers``: linears -> SVDQ tensors + metadata via ``gpu.svdquant.decompose`` (the only
  implementation of the decomposition), shared-input groups smoothed together.
* ``layer_seed_offsets`` / ``checkpoint_meta``: collector seeds and the checkpoint header.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from gpu.adapters.base import ModelAdapter
from gpu.checkpoint.format import CheckpointMeta
from gpu.errors import BadRequestError, CheckpointError, ModelLoadError, named_few
from gpu.modules.layer_spec import spec_for
from gpu.quantizer.config import QuantizeConfig, raise_if_cancelled
from gpu.svdquant.calibration import LayerCalibration
from gpu.svdquant.decompose import DecomposeConfig, DecomposedLayer, decompose_group
from gpu.svdquant.smoothing import alpha_grid

if TYPE_CHECKING:
    from diffusers import DiffusionPipeline

log = logging.getLogger(__name__)


@dataclass
class PromptEmbeds:
    """One prompt's conditioning (runtime dtype, CPU): prompt_embeds [1, S_txt, D_txt], pooled [1, D_pool],
    text_ids [S_txt, 3]; ``negative`` holds the same for the empty prompt under true CFG, else None."""

    prompt_embeds: torch.Tensor
    pooled: torch.Tensor
    text_ids: torch.Tensor
    negative: PromptEmbeds | None = None


# One transformer input (keyword arguments of FluxTransformer2DModel.forward, batch 1, CPU):
# hidden_states [1, S_img, C], encoder_hidden_states [1, S_txt, D_txt], pooled_projections [1, D_pool],
# timestep [1] (sigma, 0..1), guidance [1] or absent, img_ids [S_img, 3], txt_ids [S_txt, 3].
CalibSample = dict[str, torch.Tensor]
TransformerFn = Callable[[list[CalibSample]], list[torch.Tensor]]  # inputs -> velocity [1, S_img, C] each


def encode_prompts(pipe: DiffusionPipeline, prompts: Sequence[str], max_sequence_length: int, true_cfg: bool,
                   should_cancel: Callable[[], bool] | None = None,
                   on_prompt: Callable[[int, int], None] | None = None) -> list[PromptEmbeds]:  # fmt: skip
    """Runs the pipeline's text encoders prompt by prompt (batch 1, like the samples) -> CPU embeddings.

    ``should_cancel`` is asked before each prompt (``Cancelled``): with T5-XXL on a small GPU the prompts take
    minutes, and a cancel waited for all of them. ``on_prompt(done, total)`` after each."""
    out: list[PromptEmbeds] = []
    negative: PromptEmbeds | None = None
    device = pipe._execution_device
    with torch.inference_mode():
        if true_cfg:
            pe, pooled, ids = pipe.encode_prompt(prompt="", prompt_2=None, device=device,
                                                 max_sequence_length=max_sequence_length)
            negative = PromptEmbeds(pe.cpu(), pooled.cpu(), ids.cpu())
        for i, p in enumerate(prompts):
            raise_if_cancelled(should_cancel)
            pe, pooled, ids = pipe.encode_prompt(prompt=p, prompt_2=None, device=device,
                                                 max_sequence_length=max_sequence_length)
            out.append(PromptEmbeds(pe.cpu(), pooled.cpu(), ids.cpu(), negative))
            if on_prompt is not None:
                on_prompt(i + 1, len(prompts))
    return out


def chosen_steps(steps: int, per_prompt: int, seed: int, prompt_index: int) -> list[int]:
    """Seeded step indices (sorted, distinct) whose transformer inputs become calibration samples."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + prompt_index)
    k = min(per_prompt, steps)
    return sorted(torch.randperm(steps, generator=g)[:k].tolist())


def denoise_and_record(
    embeds: list[PromptEmbeds],
    transformer_fn: TransformerFn,
    scheduler_factory: Callable[[], object],
    prepare_latents: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    per_prompt: int,
    seed: int,
    guidance: float,
    guidance_embeds: bool,
    dtype: torch.dtype,
    should_cancel: Callable[[], bool] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> list[CalibSample]:
    """Runs every prompt's seeded denoising in lock-step and returns the recorded transformer inputs.

    ``prepare_latents(i)`` -> (latents [1, S_img, C], img_ids [S_img, 3]) seeded for prompt ``i``.
    Samples are ordered (prompt, step, branch); under true CFG each step gives two samples (the positive
    and the empty-prompt branch, which the transformer really sees). Steps after the last recorded one are
    skipped: they cannot influence any sample."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift, retrieve_timesteps

    n = len(embeds)
    plans = [chosen_steps(steps, per_prompt, seed, i) for i in range(n)]
    last = max(p[-1] for p in plans)
    states = [prepare_latents(i) for i in range(n)]
    latents = [s[0] for s in states]
    img_ids = [s[1] for s in states]
    schedulers = [scheduler_factory() for _ in range(n)]
    timesteps = None
    for sch in schedulers:
        cfg = sch.config
        mu = calculate_shift(latents[0].shape[1], cfg.get("base_image_seq_len", 256),
                             cfg.get("max_image_seq_len", 4096), cfg.get("base_shift", 0.5),
                             cfg.get("max_shift", 1.15))  # fmt: skip
        sigmas = np.linspace(1.0, 1 / steps, steps)
        timesteps, _ = retrieve_timesteps(sch, steps, "cpu", sigmas=sigmas, mu=mu)
        sch.set_begin_index(0)
    assert timesteps is not None
    g_vec = torch.full([1], guidance, dtype=torch.float32) if guidance_embeds else None
    recorded: dict[tuple[int, int, int], CalibSample] = {}
    for step, t in enumerate(timesteps[: last + 1]):
        raise_if_cancelled(should_cancel)
        inputs: list[CalibSample] = []
        owners: list[tuple[int, int]] = []
        for i, e in enumerate(embeds):
            if step > plans[i][-1]:
                continue
            branches = [e] + ([e.negative] if e.negative is not None else [])
            for b, emb in enumerate(branches):
                x: CalibSample = {
                    "hidden_states": latents[i],
                    "encoder_hidden_states": emb.prompt_embeds.to(dtype),
                    "pooled_projections": emb.pooled.to(dtype),
                    "timestep": t.expand(1).to(dtype) / 1000,
                    "img_ids": img_ids[i],
                    "txt_ids": emb.text_ids,
                }
                if g_vec is not None:
                    x["guidance"] = g_vec
                inputs.append(x)
                owners.append((i, b))
                if step in plans[i]:
                    recorded[(i, step, b)] = x
        needs_step = [k for k, (i, _b) in enumerate(owners) if step < plans[i][-1]]
        if needs_step:
            # Only prompts that still have a sample ahead need the velocity.
            outs = transformer_fn([inputs[k] for k in needs_step])
            preds: dict[tuple[int, int], torch.Tensor] = {owners[k]: o for k, o in zip(needs_step, outs, strict=True)}
            for i in {owners[k][0] for k in needs_step}:
                v = preds[(i, 0)]
                if (i, 1) in preds:
                    v = preds[(i, 1)] + guidance * (v - preds[(i, 1)])
                latents[i] = schedulers[i].step(v, t, latents[i], return_dict=False)[0]
        if on_step is not None:
            on_step(step + 1, last + 1)
    return [recorded[k] for k in sorted(recorded)]


def quantize_layers(
    targets: dict[str, tuple[nn.Linear, str]],
    calib_of: Callable[[str], LayerCalibration],
    config: QuantizeConfig,
    dcfg: DecomposeConfig,
    adapter: ModelAdapter,
) -> Iterator[tuple[str, dict[str, torch.Tensor], dict, float | None]]:
    """Every target (name -> (linear, role)) -> (name, {"<name>.qweight": ...} CPU storage tensors, layer
    metadata, error), in ``targets`` order, via ``gpu.svdquant.decompose``.

    With ``config.shared_smoothing``, the members of each of the adapter's shared-input groups (same role, a
    smoothing method) are decomposed together on the first member's calibration, when the first of them comes
    up; their metadata names the group (``smooth_group``). Every other layer is a group of one. The alpha search
    tries ``config.alpha_points`` alphas (``dcfg.alpha_grid`` is replaced by them)."""
    dcfg = replace(dcfg, alpha_grid=alpha_grid(config.alpha_points))
    groups = adapter.shared_input_groups(targets) if config.shared_smoothing else []
    group_of = {n: g for g in groups for n in g}
    ready: dict[str, tuple[dict[str, torch.Tensor], dict, float | None]] = {}
    for name, (_module, role) in targets.items():
        if name not in ready:
            spec = spec_for(config.method, config.precision, config.rank, role)
            group = group_of.get(name, [name])
            if not spec.smooth or any(targets[n][1] != role for n in group):
                group = [name]
            mods = [targets[n][0] for n in group]
            calib = calib_of(group[0]) if spec.act_format else None
            _check_finite(group, mods, calib)
            layers = decompose_group([m.weight for m in mods], [m.bias for m in mods], spec, calib, dcfg)
            for n, m, layer in zip(group, mods, layers, strict=True):
                tensors, meta, error = _layer_record(n, m, layer)
                ready[n] = tensors, ({**meta, "smooth_group": list(group)} if len(group) > 1 else meta), error
        yield name, *ready.pop(name)


def _check_finite(group: list[str], mods: list[nn.Linear], calib: LayerCalibration | None) -> None:
    """NaN or infinite weights (a damaged file, a bad conversion), or calibration activations the model already
    turned into NaN/inf before this layer, would end the alpha search in a traceback naming no layer: refused here,
    naming it. weight: [N, K], bias: [N] (or None), any float dtype; calib.x_absmax: float32 [K]."""
    bad = [n for n, m in zip(group, mods, strict=True) if not all(_finite(t) for t in (m.weight, m.bias))]
    if bad:
        raise ModelLoadError(
            f"The weights of {named_few(bad)} hold NaN or infinite values, so the model cannot be quantized.",
            "The model file is damaged or was converted wrongly: download or convert it again.",
        )
    if calib is not None and not torch.isfinite(calib.x_absmax).all():
        raise ModelLoadError(
            f"The model computes NaN or infinite values on the calibration prompts before {named_few(group)}, so "
            "it cannot be quantized.",
            "Check that the model generates images as it is: a damaged or wrongly converted file does this, and so "
            "can float16 on GPUs older than the RTX 30 series (FLUX's activations overflow it).",
        )


def _finite(t: torch.Tensor | None) -> bool:
    return t is None or bool(torch.isfinite(t).all())


def _layer_record(
    name: str, module: nn.Linear, layer: DecomposedLayer
) -> tuple[dict[str, torch.Tensor], dict, float | None]:
    tensors = {f"{name}.{key}": t for key, t in layer.tensors.items()}
    meta = {
        **layer.spec.to_json(),
        "kind": layer.spec.kind,
        "in_features": module.in_features,
        "out_features": module.out_features,
        "alpha": layer.alpha,
        "error": layer.error,
    }
    return tensors, meta, layer.error


def layer_rank_limit(n: int, k: int) -> int:
    """The largest rank whose 16-bit low-rank branch of a layer [N, K] (r * (N + K) numbers) holds no more than its
    16-bit weight (N * K): 128 for the demo's 256x256 layers, 1536 for FLUX.1's 3072x3072; always below
    min(N, K), which the SVD could not go beyond anyway."""
    return n * k // (n + k)


def rank_limit(targets: dict[str, tuple[nn.Linear, str]]) -> int | None:
    """The largest rank every target layer of a run takes (``layer_rank_limit`` of the smallest of those whose
    role uses the rank); None when no target uses one."""
    limits = [layer_rank_limit(module.out_features, module.in_features)
              for module, role in targets.values() if spec_for("svdquant", "int4", 1, role).rank]  # fmt: skip
    return min(limits, default=None)


def check_rank_fits(targets: dict[str, tuple[nn.Linear, str]], config: QuantizeConfig) -> None:
    """Raises BadRequestError when the low-rank branch of a target layer would be beyond ``layer_rank_limit``: the
    quantized model would be larger than the original (rank 256 on the demo's 256x256 layers)."""
    for name, (module, role) in targets.items():
        n, k = module.out_features, module.in_features
        limit = layer_rank_limit(n, k)
        if spec_for(config.method, config.precision, config.rank, role).rank > limit:
            raise BadRequestError(
                f"rank {config.rank} would make the 16-bit low-rank branch of layer {name} ({n}x{k}) larger than "
                "its 16-bit weight: the quantized model would be larger than the original",
                f"use a rank of at most {rank_limit(targets)}",  # of every layer: this one's may not be the least
            )


def effective_quantization(config: QuantizeConfig) -> dict:
    """What the file's layers really are: nf4 has neither an activation precision nor a low-rank branch, and
    only svdquant/svd/lorc use the rank."""
    spec = spec_for(config.method, config.precision, config.rank, "w4a4")
    return {"method": config.method, "precision": spec.weight_format, "rank": spec.rank}


def layer_message(name: str, meta: dict) -> str:
    note = "" if meta["error"] is None else f", error {meta['error']:.2e}"
    return f"{name}: {meta['kind']} {meta['method']}{note}"


def checkpoint_meta(
    architecture: str, model_class: str, model_config: dict, storage_dtype: torch.dtype, layers: dict[str, dict],
    config: QuantizeConfig, n_prompts: int, n_samples: int, steps: int, base_model: dict, scheduler: dict,
) -> CheckpointMeta:
    """The SVDQ header of a quantized model (``scheduler``: ``scheduler_record`` of the pipeline that calibrated
    it, {} where none did)."""
    errors = [m["error"] for m in layers.values() if m["error"] is not None]
    return CheckpointMeta(
        architecture=architecture,
        model_class=model_class,
        model_config=model_config,
        dtype=str(storage_dtype).removeprefix("torch."),
        layers=layers,
        quantization=effective_quantization(config),
        calibration={
            "prompts": n_prompts,
            "samples": n_samples,
            "steps": steps,
            "timesteps_per_prompt": config.timesteps_per_prompt,
            "seed": config.seed,
            "tokens_per_layer": config.max_tokens_per_layer,
            # the alpha search's grid, where the method smooths (searches alpha)
            "alpha_points": config.alpha_points if config.smooths else None,
            "mean_layer_error": sum(errors) / len(errors) if errors else None,
            "max_layer_error": max(errors) if errors else None,
        },
        base_model=base_model,
        scheduler=scheduler,
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def scheduler_record(folder: Path, architecture: str) -> dict:
    """The SVDQ header's record of the scheduler of the pipeline ``folder`` (the one its calibration trajectories
    ran, and generating with it runs): ``{"class": its diffusers class, "config": every setting, defaults filled in
    as diffusers makes it}``, so a base pipeline with another scheduler can run the model as it was made. {} where
    that scheduler cannot be read now, or is none that loading an ``architecture`` model takes (``checked_scheduler``,
    logged): the record is optional, and the quantized model is not lost to it."""
    from gpu.checkpoint.scheduler import checked_scheduler, missing_package, scheduler_class

    try:
        raw = json.loads((folder / "scheduler" / "scheduler_config.json").read_bytes())
        cls = scheduler_class(raw.get("_class_name")) if isinstance(raw, dict) else None
        if cls is None:
            raise ValueError(f"no diffusers scheduler class named in {str(raw)[:80]}")
        record = {"class": cls.__name__, "config": plain_config(cls.from_config(raw).config)}
        checked_scheduler(folder.name, architecture, record, f"the scheduler of the base pipeline {folder}")
        return record
    except ImportError as err:  # a setting whose optional package is not installed (beta sigmas: scipy)
        log.warning("not recorded in the quantized model: %s", missing_package(f"the scheduler of {folder}", err).text)
        return {}
    except (OSError, ValueError, TypeError, KeyError, AttributeError, CheckpointError) as err:
        log.warning("the scheduler of %s is not recorded in the quantized model: %s", folder, err)
        return {}


def plain_config(config: Mapping[str, Any]) -> dict:
    """A diffusers model config (``FrozenDict``) as plain JSON values: tuples as lists, private keys left out."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(config).items() if not k.startswith("_")}


def calibration_kwargs(defaults: dict, guidance_embeds: bool) -> dict:
    """Resolution, text length and guidance mode the samples use (the model's generation defaults)."""
    return {
        "max_sequence_length": int(defaults.get("max_sequence_length", 512)),
        "width": int(defaults.get("width", 1024)),
        "height": int(defaults.get("height", 1024)),
        "guidance": float(defaults.get("guidance", 3.5)),
        "true_cfg": not guidance_embeds,
    }
