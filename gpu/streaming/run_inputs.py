"""What a quantize run reads before any work (``RunInputs``, ``run_inputs``): the weight source and the pipeline
that calibrates it, the calibration's defaults, steps and prompts, and the resume key they make (``resume_key``:
the settings its parts depend on, ``resume_settings``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gpu.adapters import adapter_named
from gpu.calibration_set import calibration_prompts, calibration_steps, prompts_cut, prompts_file
from gpu.errors import BadRequestError
from gpu.generation.pipeline_loader import default_device, runtime_dtype
from gpu.library import ModelEntry, ModelLibrary
from gpu.model_files import FALLBACK_DEFAULTS
from gpu.quantizer.config import QuantizeConfig
from gpu.quantizer.shared import calibration_kwargs, check_rank_fits, rank_limit
from gpu.streaming.base_pipeline import open_source
from gpu.streaming.parts_folder import ENGINE_VERSION
from gpu.streaming.resume import ResumeKey, prompts_in_use, settings_key
from gpu.streaming.source import WeightSource, block_module, prefixed


def resume_key(source: str | Path, config: QuantizeConfig, library: ModelLibrary | None = None,
               device: torch.device | None = None) -> ResumeKey:  # fmt: skip
    """The resume key a run of ``config`` on ``source`` has: the one ``quantize_model`` computes (same function,
    same reads: the source's weight files, its calibration prompts, text encoders and defaults; no tensor is
    loaded). Raises the ``UserError`` the run would raise before any work (a damaged source, a rank too large)."""
    config.validate()
    device = device or default_device()
    return run_inputs(source, config, library or ModelLibrary(), runtime_dtype(device), False).key


def block_targets(config: dict) -> dict[str, tuple[nn.Linear, str]]:
    """The layers a run quantizes in one double and one single block of the FLUX.1 transformer of ``config`` (its
    config.json), on the meta device: name -> (module, role), as the adapter finds them. Every block of a kind
    has the same layers, so these are all the sizes the run meets."""
    adapter = adapter_named("flux")
    targets: dict[str, tuple[nn.Linear, str]] = {}
    for kind in ("transformer_blocks", "single_transformer_blocks"):
        targets |= adapter.quantizable_linears(prefixed(block_module(config, kind), kind))
    return targets


def source_rank_limit(config: dict) -> int | None:
    """The largest rank a run on the FLUX.1 transformer of ``config`` takes (``rank_limit``): 1536 for FLUX.1's
    3072-wide blocks, 128 for the demo's 256-wide. For the wizard, which bounds its rank field by it."""
    return rank_limit(block_targets(config))


@dataclass(frozen=True)
class RunInputs:
    """What a run reads before any work: the weight source, the pipeline that calibrates it (None: a single file
    with samples supplied), the name to record, the storage dtype, the calibration's defaults, steps and prompts,
    and the resume key all of them make."""

    src: WeightSource
    base_entry: ModelEntry | None
    entry_for_record: str | None
    storage_dtype: torch.dtype
    defaults: dict
    steps: int
    prompts: list[str]
    key: ResumeKey
    # What the run says of prompts asked for beyond those its set holds (``prompts_cut``); "" when it has them all
    prompts_note: str = ""


def run_inputs(source: str | Path, config: QuantizeConfig, library: ModelLibrary, dtype: torch.dtype,
                samples_supplied: bool) -> RunInputs:  # fmt: skip
    """Opens ``source`` and reads what the run is made from; the refusals that need no work come from here."""
    src, base_entry, entry_for_record, storage_dtype = open_source(source, library, config)
    if base_entry is None and not samples_supplied:
        raise BadRequestError(f"{Path(str(source)).name} is a single-file checkpoint: it has no text encoders to "
                              "calibrate with", "add --base PIPELINE, a diffusers FLUX.1 folder or library "
                              "model whose text encoders and tokenizers to use, e.g. FLUX.1-dev")  # fmt: skip
    check_rank_fits(block_targets(src.config), config)  # before any calibration or file
    defaults = dict(base_entry.facts.defaults) if base_entry is not None else dict(FALLBACK_DEFAULTS)
    steps, prompts, key = calibration_and_key(src, base_entry, storage_dtype, defaults, config, dtype, samples_supplied)
    note = ""
    if base_entry is not None and not samples_supplied and len(prompts) < config.calib_prompts:
        note = prompts_cut(config.calib_prompts, len(prompts), prompts_file(base_entry.path, defaults)[1])
    return RunInputs(src, base_entry, entry_for_record, storage_dtype, defaults, steps, prompts, key, note)


def calibration_and_key(src: WeightSource, base_entry: ModelEntry | None, storage_dtype: torch.dtype, defaults: dict,
           config: QuantizeConfig, dtype: torch.dtype,
           samples_supplied: bool) -> tuple[int, list[str], ResumeKey]:  # fmt: skip
    """-> (calibration steps, calibration prompts, resume key) of a run of ``config`` on the opened source ``src``:
    also asked for other settings than the run's (``resumed_with``), without opening the source again."""
    steps = calibration_steps(config.calib_steps, defaults, base_entry.path if base_entry else None)
    prompts: list[str] = []
    if not samples_supplied:
        assert base_entry is not None
        prompts = calibration_prompts(base_entry.path, defaults, config.calib_prompts)
    settings = resume_settings(src, config, dtype, storage_dtype, prompts, steps, defaults, base_entry,
                                samples_supplied)  # fmt: skip
    return steps, prompts, ResumeKey(settings, settings_key(settings), config.resume, tuple(src.resolved_files()))


# What the calibration samples are made of besides the transformer (relative to the pipeline folder).
_CALIBRATION_FILES = ("model_index.json", "scheduler", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")


def resume_settings(src: WeightSource, config: QuantizeConfig, dtype: torch.dtype, storage: torch.dtype,
                     prompts: list[str], steps: int, defaults: dict, base_entry: ModelEntry | None,
                     samples_supplied: bool) -> dict:  # fmt: skip
    """Everything the parts depend on. Kept in the manifest as is (not only hashed), so that a mismatch can
    be named. The samples depend on the prompts' text, the model's generation defaults and the text encoders,
    not only on the command's options."""
    settings: dict = {
        "engine": ENGINE_VERSION,
        "source": src.identity(),
        "quantization": config.fingerprint(),
        "dtypes": {"runtime dtype": str(dtype), "storage dtype": str(storage)},
    }
    if samples_supplied:
        settings["samples"] = "supplied by the caller"
    else:
        settings["calibration prompts"] = prompts
        settings["calibration"] = {"steps": steps,
                                   **calibration_kwargs(defaults, bool(src.config["guidance_embeds"]))}  # fmt: skip
        settings["calibration files"] = calibration_files(base_entry.path) if base_entry is not None else []
    # as it reads back from the manifest (tuples: lists); prompts asked for beyond the set are not counted
    return prompts_in_use(json.loads(json.dumps(settings, default=str)))


def calibration_files(folder: Path) -> list[tuple[str, int, int]]:
    """The files besides the transformer the calibration samples are made of (``_CALIBRATION_FILES`` under the
    pipeline ``folder``): (path inside it, size, mtime in ns) each, in a stable order."""
    out = []
    for name in _CALIBRATION_FILES:
        path = folder / name
        files = [path] if path.is_file() else sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else []
        out += [(f.relative_to(folder).as_posix(), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return out
