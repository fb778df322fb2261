"""Observable state of the prompt panel and of the running job. Widgets bind to these; tests drive them."""

from __future__ import annotations

import random
from dataclasses import asdict
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from app.observable import Prop
from app.settings import LastJob

MAX_SEED = 2**31 - 1  # QSpinBox holds a signed 32-bit int

# (label, width, height); sizes are multiples of 16 (the latent patch grid needs it).
SIZE_PRESETS: list[tuple[str, int, int]] = [
    ("Square 256", 256, 256),
    ("Square 512", 512, 512),
    ("Portrait 512×768", 512, 768),
    ("Landscape 768×512", 768, 512),
    ("Square 768", 768, 768),
    ("Square 1024 (needs a big GPU)", 1024, 1024),
]


def snap16(value: int) -> int:
    return max(16, int(round(value / 16)) * 16)


class PromptState(QObject):
    model_changed = Signal(object)
    prompt_changed = Signal(object)
    negative_prompt_changed = Signal(object)
    seed_changed = Signal(object)
    seed_locked_changed = Signal(object)
    steps_changed = Signal(object)
    guidance_changed = Signal(object)
    width_changed = Signal(object)
    height_changed = Signal(object)
    batch_count_changed = Signal(object)

    model = Prop("demo")
    prompt = Prop("")
    negative_prompt = Prop("")
    seed = Prop(0)
    seed_locked = Prop(False)
    steps = Prop(4)
    guidance = Prop(3.5)
    width = Prop(256)
    height = Prop(256)
    batch_count = Prop(1)

    def apply_model_defaults(self, defaults: dict[str, Any]) -> None:
        """Laptop-friendly defaults that the engine reports for a model (size, steps, guidance)."""
        if defaults.get("width"):
            self.width = snap16(int(defaults["width"]))
        if defaults.get("height"):
            self.height = snap16(int(defaults["height"]))
        if defaults.get("steps"):
            self.steps = int(defaults["steps"])
        if defaults.get("guidance") is not None:
            self.guidance = float(defaults["guidance"])

    def next_seed(self) -> int:
        """The seed for the next job: kept when locked, a fresh random one otherwise."""
        if not self.seed_locked:
            self.seed = random.randint(0, MAX_SEED)
        return self.seed

    def build_request(self) -> Any:
        from gpu.generation.request import GenerationRequest

        return GenerationRequest(
            prompt=self.prompt, model=self.model, negative_prompt=self.negative_prompt, seed=int(self.seed),
            steps=int(self.steps), guidance=float(self.guidance), width=snap16(self.width),
            height=snap16(self.height), batch_count=int(self.batch_count),
        )

    def apply_settings(self, settings: dict[str, Any]) -> list[str]:
        """Restore from PNG metadata or a gallery entry; returns the names it set. Locks the seed so the
        user gets the same image back."""
        applied = []
        casts = {"prompt": str, "negative_prompt": str, "seed": int, "steps": int, "guidance": float,
                 "width": int, "height": int}
        for key, cast in casts.items():
            if settings.get(key) in (None, ""):
                continue
            try:
                value = cast(settings[key])
            except (TypeError, ValueError):
                continue
            if key in ("width", "height"):
                value = snap16(value)
            setattr(self, key, value)
            applied.append(key)
        if "seed" in applied:
            self.seed_locked = True
        return applied

    def to_last_job(self) -> LastJob:
        return LastJob(model=self.model, prompt=self.prompt, negative_prompt=self.negative_prompt,
                       seed=int(self.seed), seed_locked=bool(self.seed_locked), steps=int(self.steps),
                       guidance=float(self.guidance), width=int(self.width), height=int(self.height),
                       batch_count=int(self.batch_count))

    def load_last_job(self, job: LastJob) -> None:
        for key, value in asdict(job).items():
            if key in ("steps", "width", "height") and not value:
                continue  # 0 means "model default": keep ours until the engine reports them
            if key == "guidance" and not value:
                continue
            setattr(self, key, value)


class JobState(QObject):
    """What the progress area shows: busy flag, step counter, ETA, the latest preview, a status line."""

    busy_changed = Signal(object)
    step_changed = Signal(object)
    total_steps_changed = Signal(object)
    status_changed = Signal(object)
    preview_changed = Signal(object)

    busy = Prop(False)
    step = Prop(0)
    total_steps = Prop(0)
    status = Prop("Starting the engine…")
    preview = Prop(None)  # QImage | None

    def set_preview(self, image: QImage | None) -> None:
        self.preview = image
