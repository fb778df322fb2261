"""Calibration: record what every quantizable linear sees on the (prompt, timestep) samples."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from gpu.calibration_set import calibration_prompts, calibration_steps  # noqa: F401 - where they were
from gpu.quantizer.config import raise_if_cancelled
from gpu.quantizer.shared import CalibSample
from gpu.svdquant.calibration import CalibrationCollector, LayerCalibration


def make_collectors(
    layers: dict[str, nn.Linear], seed: int, max_tokens: int, offset: int = 0
) -> dict[str, CalibrationCollector]:
    """One collector per layer, seeded by the layer's index in the whole model (``offset`` + position), so
    block-by-block collection draws exactly the same token subsample as whole-model collection."""
    return {
        name: CalibrationCollector(m.in_features, max_tokens, seed=seed + offset + i)
        for i, (name, m) in enumerate(layers.items())
    }


def hooked(layers: dict[str, nn.Linear], collectors: dict[str, CalibrationCollector]) -> list[RemovableHandle]:
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
            raise_if_cancelled(should_cancel)
            with torch.inference_mode():
                transformer(**{k: v.to(device) for k, v in s.items()}, return_dict=False)
            if on_sample is not None:
                on_sample(i + 1, len(samples))
    finally:
        for h in hooks:
            h.remove()
    return {name: c.result() for name, c in collectors.items()}
