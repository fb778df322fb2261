"""A quantize run's calibration samples recorded: its text encoders encode the prompts (then are freed), and short
seeded trajectories through the streamed transformer (``gpu.streaming.forward``) record the (prompt, timestep)
inputs each block sees (``record_samples``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
from torch import nn

from gpu.adapters import adapter_named
from gpu.generation.memory import module_bytes
from gpu.generation.pipeline_loader import load_errors
from gpu.library import ModelEntry
from gpu.quantizer.config import QuantizeConfig, raise_if_cancelled
from gpu.quantizer.in_memory import make_samples
from gpu.quantizer.shared import CalibSample
from gpu.streaming.forward import streamed_forward
from gpu.streaming.memory import RunStage, release
from gpu.streaming.source import WeightSource


def record_samples(src: WeightSource, head: nn.Module, blocks: list[tuple[str, int]], entry: ModelEntry,
                   prompts: list[str], defaults: dict, steps: int, config: QuantizeConfig, device: torch.device,
                   dtype: torch.dtype, should_cancel: Callable[[], bool] | None, emit: Callable[..., None],
                   stage: RunStage) -> list[CalibSample]:  # fmt: skip
    """Text encoders (then freed) + streamed trajectories -> samples. ``stage`` follows the steps (loading the
    text encoders, encoding, recording), for an out-of-memory error to name the one that ran out."""
    adapter = adapter_named(entry.facts.architecture)
    pipeline_cls = getattr(importlib.import_module("diffusers"), adapter.pipeline_class)
    emit("stage", "loading text encoders")
    stage.doing = "loading the text encoders"
    with load_errors(entry.name, entry.path):  # a damaged text encoder: named, not a traceback
        pipe = pipeline_cls.from_pretrained(entry.path, transformer=None, vae=None, dtype=dtype,
                                            use_safetensors=True).to(device)  # never a pickle  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    try:
        raise_if_cancelled(should_cancel)  # loading them took a while: a cancel since stops here
        stage.doing = "encoding the calibration prompts"
        forward = streamed_forward(src, head, blocks, device, dtype)

        def recording(inputs: list[CalibSample]) -> list[torch.Tensor]:  # the prompts are encoded by the first call
            stage.doing = "recording the calibration samples"
            return forward(inputs)

        samples = make_samples(pipe, prompts, steps, defaults, config, dtype, bool(src.config["guidance_embeds"]),
                               int(src.config["in_channels"]), recording, should_cancel, emit)  # fmt: skip
    finally:
        freed = sum(module_bytes(m) for n in ("text_encoder", "text_encoder_2")
                    if (m := getattr(pipe, n, None)) is not None)
        del pipe
        release(freed, device)
    return samples
