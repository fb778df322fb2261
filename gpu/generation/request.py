"""The data that crosses the boundary between the generation service and its callers (CLI, app)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gpu.errors import BadRequestError
from gpu.lora.metadata import LoraRequest

# The guidance a job takes, any float between (the CLI's --guidance, the app's field, restored images): one definition
GUIDANCE_MIN, GUIDANCE_MAX = 0.0, 50.0
BATCH_COUNT_MAX = 100  # images one job makes (the app's field offers fewer)
# The largest seed (torch's generators take a signed 64-bit one): the CLI's --seed, the app's field, restored images
SEED_MAX = 2**63 - 1


def largest_first_seed(batch_count: int) -> int:
    """The largest seed a job of ``batch_count`` images can take: its images use the seeds S, S+1, …, S+count-1,
    each at most ``SEED_MAX``. The one rule of the engine, which refuses a request past it, and of the app, which
    refuses it at Generate (queued, it failed only when its turn came)."""
    return SEED_MAX - (batch_count - 1)


def check_batch_count(count: int) -> None:
    """BadRequestError unless a job can make ``count`` images (1 to ``BATCH_COUNT_MAX``)."""
    if not 1 <= count <= BATCH_COUNT_MAX:
        raise BadRequestError(f"batch count {count} is not possible: use 1 to {BATCH_COUNT_MAX}")


@dataclass
class GenerationRequest:
    """One job. ``width``/``height``/``steps``/``guidance`` of None take the model's defaults."""

    prompt: str
    model: str = "demo"  # library name, diffusers folder or SVDQ file
    negative_prompt: str = ""  # only white space is none (service.used_negative_prompt)
    seed: int = 0
    steps: int | None = None
    guidance: float | None = None
    width: int | None = None
    height: int | None = None
    batch_count: int = 1
    base: str | None = None  # overrides the base pipeline recorded in an SVDQ file
    loras: list[LoraRequest] = field(default_factory=list)  # strengths in [-2, 2], applied in order

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProgressEvent:
    """Reported after every denoising step. ``preview``: a small PIL image every few steps, else None."""

    image_index: int
    image_count: int
    step: int
    total_steps: int
    elapsed_s: float
    eta_s: float
    preview: Any = None


@dataclass
class GeneratedImage:
    """A finished image and everything needed to reproduce it.

    ``settings`` holds the resolved values (model defaults filled in) that went into the PNG metadata: the values
    that ran, where a setting asked for had no effect (guidance below 1 on a model without a guidance embedding);
    ``extras`` what the job found beside them: ``"prompt_lengths"``, {'prompt' or 'negative prompt' (when the job
    used it): ``gpu.generation.prompt_length.PromptLength``}, says which end of a prompt the model did not read;
    ``"notes"``, [text]: what the job ran otherwise than asked, the same for every image of a batch."""

    image: Any  # PIL.Image.Image
    settings: dict[str, Any]
    path: Path | None = None
    extras: dict[str, Any] = field(default_factory=dict)


class GenerationCancelled(Exception):
    """Raised inside a job when the caller's cancel check returned True; partial results are dropped."""
