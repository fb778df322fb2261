"""Calibration: record what every quantizable linear sees on the (prompt, timestep) samples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from gpu.errors import Cancelled, ModelLoadError
from gpu.paths import resources_dir
from gpu.quantizer.shared import CalibSample
from gpu.svdquant.calibration import CalibrationCollector, LayerCalibration

DEFAULT_PROMPTS_FILE = "calibration_prompts.txt"
MAX_DEFAULT_CALIB_STEPS = 8  # calibration trajectories are short: samples need coverage of t, not pretty images


def calibration_prompts(model_folder: Path | None, defaults: dict, count: int) -> list[str]:
    """The model's own calibration prompts (nibble.json's ``calibration_prompts``), else the shipped set."""
    own = defaults.get("calibration_prompts")
    path = model_folder / own if own and model_folder is not None else resources_dir() / DEFAULT_PROMPTS_FILE
    if not path.is_file():
        path = resources_dir() / DEFAULT_PROMPTS_FILE
    # UTF-8 whatever the locale (Windows would read cp1252: other prompts, another model); "-sig" drops the byte
    # order mark Windows Notepad may put first, which would otherwise start the first prompt.
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ModelLoadError(f"the calibration prompts file {path} is not UTF-8 text (byte {err.start})",
                             "save it as UTF-8 (one prompt per line)") from None  # fmt: skip
    prompts = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not prompts:
        raise ModelLoadError(f"the calibration prompts file {path} holds no prompts",
                             "write one prompt per line (lines starting with # are comments)")  # fmt: skip
    return prompts[:count]


def calibration_steps(config_steps: int | None, defaults: dict) -> int:
    return config_steps or min(int(defaults.get("steps", 28)), MAX_DEFAULT_CALIB_STEPS)


def make_collectors(layers: dict[str, nn.Linear], seed: int, max_tokens: int, offset: int = 0):
    """One collector per layer, seeded by the layer's index in the whole model (``offset`` + position), so
    block-by-block collection draws exactly the same token subsample as whole-model collection."""
    return {
        name: CalibrationCollector(m.in_features, max_tokens, seed=seed + offset + i)
        for i, (name, m) in enumerate(layers.items())
    }


def hooked(layers: dict[str, nn.Linear], collectors: dict[str, CalibrationCollector]):
    """Forward-pre-hooks feeding each layer's input [.., K] to its collector; returns the handles."""
    return [
        m.register_forward_pre_hook(lambda _m, args, c=collectors[name]: c.add(args[0]))
        for name, m in layers.items()
    ]


def collect_calibration(
    transformer: nn.Module,
    layers: dict[str, nn.Linear],
    samples: list[CalibSample],
    seed: int,
    max_tokens: int,
    device: torch.device,
    on_sample: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> dict[str, LayerCalibration]:
    """Runs the whole transformer on each sample (batch 1, in order) with input hooks on ``layers``."""
    collectors = make_collectors(layers, seed, max_tokens)
    hooks = hooked(layers, collectors)
    try:
        for i, s in enumerate(samples):
            if should_cancel is not None and should_cancel():
                raise Cancelled()
            with torch.inference_mode():
                transformer(**{k: v.to(device) for k, v in s.items()}, return_dict=False)
            if on_sample is not None:
                on_sample(i + 1, len(samples))
    finally:
        for h in hooks:
            h.remove()
    return {name: c.result() for name, c in collectors.items()}
