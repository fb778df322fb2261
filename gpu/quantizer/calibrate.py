"""Calibration: run prompts through the pipeline and record what every quantizable linear sees."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from gpu.errors import Cancelled
from gpu.paths import resources_dir
from gpu.svdquant.calibration import CalibrationCollector, LayerCalibration

DEFAULT_PROMPTS_FILE = "calibration_prompts.txt"
PROMPT_BATCH = 8


def calibration_prompts(model_folder: Path, defaults: dict, count: int) -> list[str]:
    """The model's own calibration prompts (nibble.json's ``calibration_prompts``), else the shipped set."""
    own = defaults.get("calibration_prompts")
    path = model_folder / own if own else resources_dir() / DEFAULT_PROMPTS_FILE
    if not path.is_file():
        path = resources_dir() / DEFAULT_PROMPTS_FILE
    prompts = [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return prompts[:count]


def collect_calibration(
    pipe,
    layers: dict[str, nn.Linear],
    prompts: list[str],
    steps: int,
    generate_kwargs: dict,
    seed: int,
    max_tokens: int,
    on_batch: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> dict[str, LayerCalibration]:
    """Runs ``prompts`` (batched, seeded) for ``steps`` steps with input hooks on ``layers``."""
    collectors = {
        name: CalibrationCollector(m.in_features, max_tokens, seed=seed + i)
        for i, (name, m) in enumerate(layers.items())
    }
    hooks = [
        m.register_forward_pre_hook(lambda _m, args, c=collectors[name]: c.add(args[0]))
        for name, m in layers.items()
    ]
    try:
        for start in range(0, len(prompts), PROMPT_BATCH):
            if should_cancel is not None and should_cancel():
                raise Cancelled()
            batch = prompts[start : start + PROMPT_BATCH]
            with torch.inference_mode():
                pipe(
                    prompt=batch,
                    num_inference_steps=steps,
                    generator=torch.Generator("cpu").manual_seed(seed + start),
                    output_type="latent",
                    **generate_kwargs,
                )
            if on_batch is not None:
                on_batch(min(start + PROMPT_BATCH, len(prompts)), len(prompts))
    finally:
        for h in hooks:
            h.remove()
    return {name: c.result() for name, c in collectors.items()}
