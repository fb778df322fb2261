"""Observable state of the prompt panel and of the running job. Widgets bind to these; tests drive them."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from app.engine_errors import EngineError
from app.observable import Prop
from app.settings import LastJob
from gpu.generation.request import GUIDANCE_MAX, GUIDANCE_MIN, SEED_MAX, largest_first_seed

# The prompt panel's limits, defined once: the widgets take their ranges from here and the state never holds a
# value outside them (a value the widget cannot show would silently differ from what the next job uses).
SEED_MIN = 0  # to SEED_MAX: what the engine (and the CLI) accepts
RANDOM_SEED_MAX = 2**31 - 1  # fresh random seeds stay short enough to read and retype
STEPS_MIN, STEPS_MAX = 1, 150
# Guidance: the engine's range, shown to two decimals (A1111's and ComfyUI's CFG steps, FLUX's 3.25); one decimal
# turned a restored 3.25 into 3.3 and the next image differed.
GUIDANCE_DECIMALS = 2
SIDE_MIN, SIDE_MAX, SIDE_STEP = 64, 2048, 16  # sides are multiples of 16: the latent patch grid needs it
BATCH_MIN, BATCH_MAX = 1, 16

# The panel's number fields: (their label, the values they take), as a refused Generate names them.
FIELD_RANGES = {
    "seed": ("Seed", f"{SEED_MIN} to {SEED_MAX}"),
    "steps": ("Steps", f"{STEPS_MIN} to {STEPS_MAX}"),
    "guidance": ("Guidance", f"{GUIDANCE_MIN:g} to {GUIDANCE_MAX:g}"),
    "width": ("Width", f"{SIDE_MIN} to {SIDE_MAX} px"),
    "height": ("Height", f"{SIDE_MIN} to {SIDE_MAX} px"),
    "batch_count": ("Images", f"{BATCH_MIN} to {BATCH_MAX}"),
}

# (label, width, height); sizes are multiples of 16 (the latent patch grid needs it).
SIZE_PRESETS: list[tuple[str, int, int]] = [
    ("Square 256", 256, 256),
    ("Square 512", 512, 512),
    ("Portrait 512×768", 512, 768),
    ("Landscape 768×512", 768, 512),
    ("Square 768", 768, 768),
    # Short: the size box is as wide as its longest item, and "(needs a big GPU)" made the prompt panel wider than
    # its dock at 1000x700.
    ("Square 1024 (big GPU)", 1024, 1024),
]


def snap16(value: int) -> int:
    """``value`` on the latent grid: the nearest multiple of ``SIDE_STEP``, a half step rounding up (100 -> 96,
    72 -> 80), never below one step. The one rule of the size fields and of the request: Python's ``round`` took a
    half step to the even multiple (72 -> 64 but 88 -> 96), so the image made was not the size shown."""
    return max(SIDE_STEP, (int(value) + SIDE_STEP // 2) // SIDE_STEP * SIDE_STEP)


# ---- values from outside (PNG metadata, settings.json): parsed without raising, then fitted to the limits ----


def _number(value: Any) -> int | float | None:
    """An int or a finite float from JSON/metadata (numbers or numeric text); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def _clamp(value: int | float, low: int | float, high: int | float) -> int | float:
    return min(max(value, low), high)


def valid_seed(value: Any) -> int | None:
    """A seed is exact or nothing: clamping would silently give a different image, so out of range is None."""
    n = _number(value)
    if n is None or (isinstance(n, float) and not n.is_integer()):
        return None
    n = int(n)
    return n if SEED_MIN <= n <= SEED_MAX else None


def valid_steps(value: Any) -> int | None:
    n = _number(value)
    return None if n is None else int(round(_clamp(n, STEPS_MIN, STEPS_MAX)))


def valid_guidance(value: Any) -> float | None:
    """Clamped, and rounded to what the field shows: the state holds what the next job uses, and a value with
    more decimals (3.125) is then said as rounded (``_restore_notes``) rather than shown as one and used as another."""
    n = _number(value)
    return None if n is None else round(float(_clamp(n, GUIDANCE_MIN, GUIDANCE_MAX)), GUIDANCE_DECIMALS)


def valid_side(value: Any) -> int | None:
    n = _number(value)
    return None if n is None else snap16(int(round(_clamp(n, SIDE_MIN, SIDE_MAX))))


def valid_batch(value: Any) -> int | None:
    n = _number(value)
    return None if n is None else int(round(_clamp(n, BATCH_MIN, BATCH_MAX)))


def _same(raw: Any, value: float) -> bool:
    """Whether the restored ``value`` is the saved ``raw`` one (not clamped or rounded)."""
    try:
        return float(raw) == value
    except (TypeError, ValueError, OverflowError):
        return False


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


# The prompt panel's fields a model's defaults set, and how each is read.
_DEFAULT_FIELDS = {"width": valid_side, "height": valid_side, "steps": valid_steps, "guidance": valid_guidance}


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

    def __init__(self) -> None:
        super().__init__()
        # Per number field, by name: what it shows while that is no value it takes ("30" typed in Width, of 64 to
        # 2048; a field cleared), None while it is one. Read at Generate, not told as typed: a spin box puts its
        # value back when it is left, with its signals blocked, and a text kept as told was then a stale one.
        self._typed: dict[str, Callable[[], str | None]] = {}

    def watch_typed(self, name: str, read: Callable[[], str | None]) -> None:
        """``read`` says what the field ``name`` (a key of ``FIELD_RANGES``) shows while it is no value the field
        takes, None while it is one (``app.bindings.bind_typed``)."""
        self._typed[name] = read

    def typed_error(self) -> EngineError | None:
        """Why no job may start with the fields as they are, None when one may: a field showing text that is no
        value it takes (``_text_error``), else a seed too large for the images asked for (``_seed_batch_error``)."""
        return self._text_error() or self._seed_batch_error()

    def _text_error(self) -> EngineError | None:
        """Why no job may start while a field shows text that is no value it takes, naming each such field and its
        range; None when there is none. Generate ran the value the field held before ("30" in Width ran 128 px,
        "0" in Images one image) while the field still showed the text: an image other than the one asked for.
        Refused rather than set to a value it takes: a job of minutes is not spent on a value the user did not
        choose (the seed's rule: exact or nothing). A seed field cleared with Lock unticked is no problem: the job
        takes a new random seed, which the field then shows."""
        shown = {name: read() for name, read in self._typed.items() if name != "seed" or self.seed_locked}
        fields = [(name, text) for name, text in shown.items() if text is not None]
        if not fields:
            return None
        said = "; ".join(f"{FIELD_RANGES[name][0]} {f'shows “{text}”' if text else 'is empty'}, and takes "
                         f"{FIELD_RANGES[name][1]}" for name, text in fields)  # fmt: skip
        one = len(fields) == 1
        return EngineError("user", f"No image was made: {said}.",
                           f"Type {'a value in that range' if one else 'values in those ranges'}, then generate "
                           "again.")  # fmt: skip

    def _seed_batch_error(self) -> EngineError | None:
        """Why the locked seed cannot start a job of this many images, naming Seed, Images and the largest seed
        that can (``largest_first_seed``, the engine's rule); None when it can. Queued, the job failed only when
        its turn came, minutes later, behind the jobs before it. Unlocked, the job takes a random seed, far below."""
        largest = largest_first_seed(self.batch_count)
        if not self.seed_locked or self.seed <= largest:
            return None
        seed, images = FIELD_RANGES["seed"][0], FIELD_RANGES["batch_count"][0]
        return EngineError("user", f"No image was made: {seed} {self.seed} with {images} {self.batch_count} runs "
                                   f"past the largest seed, {SEED_MAX} (each image of a job takes the seed after "
                                   "the one before).",
                           f"Type a seed up to {largest} for {self.batch_count} images, or make fewer images, then "
                           "generate again.")  # fmt: skip

    def model_default_fields(self) -> dict[str, Any]:
        """The fields a model's defaults set, as they are now (``apply_model_defaults``' ``unchanged_since``)."""
        return {key: getattr(self, key) for key in _DEFAULT_FIELDS}

    def apply_model_defaults(self, defaults: dict[str, Any], unchanged_since: dict[str, Any] | None = None) -> None:
        """Laptop-friendly defaults that the engine reports for a model (size, steps, guidance). With
        ``unchanged_since`` (``model_default_fields()`` when the model was picked), only to the fields still as they
        were then: the defaults arrive after a running job, and the user's edits made meanwhile are kept."""
        for key, parse in _DEFAULT_FIELDS.items():
            if unchanged_since is not None and getattr(self, key) != unchanged_since.get(key):
                continue
            raw = defaults.get(key)
            value = None if raw is None or (key != "guidance" and not raw) else parse(raw)
            if value is not None:
                setattr(self, key, value)

    def next_seed(self) -> int:
        """The seed for the next job: kept when locked, a fresh random one otherwise."""
        return self.seed if self.seed_locked else self.random_seed()

    def random_seed(self) -> int:
        """A fresh random seed in the field now (the dice button), locked or not: a lock keeps it for the jobs after."""
        self.seed = random.randint(SEED_MIN, RANDOM_SEED_MAX)
        return self.seed

    def add_words(self, words: str) -> None:
        """The comma-separated ``words`` (the LoRAs' trigger words) that the prompt lacks, appended after a comma.
        A word is there when the prompt holds it as a whole word, in any case ("mono" is in "a mono photo", not in
        "monochrome"): a second Insert after switching on another LoRA added the first ones' words again."""
        have = self.prompt
        missing: list[str] = []
        for word in (w.strip() for w in words.split(",")):
            if word and not re.search(rf"(?<!\w){re.escape(word)}(?!\w)", have, re.IGNORECASE):
                missing.append(word)
                have += f", {word}"
        if missing:
            added = ", ".join(missing)
            self.prompt = f"{self.prompt.rstrip()}, {added}" if self.prompt.strip() else added

    def snap_size(self) -> None:
        """The size put on the grid the model needs (``snap16``) in the panel itself: a side typed and not yet
        left (Ctrl+Enter in the field), or set in code, ran snapped while the field still showed it as typed."""
        self.width, self.height = snap16(self.width), snap16(self.height)

    def build_request(self) -> Any:
        from gpu.generation.request import GenerationRequest

        return GenerationRequest(
            prompt=self.prompt, model=self.model, negative_prompt=self.negative_prompt, seed=int(self.seed),
            steps=int(self.steps), guidance=float(self.guidance), width=snap16(self.width),
            height=snap16(self.height), batch_count=int(self.batch_count),
        )

    def apply_settings(self, settings: dict[str, Any]) -> list[str]:
        """Restore from PNG metadata or a gallery entry; returns the names it set (``restore_settings``)."""
        return self.restore_settings(settings)[0]

    def restore_settings(self, settings: dict[str, Any]) -> tuple[list[str], list[str]]:
        """Restore from PNG metadata or a gallery entry -> (the names it set, what it did not take as saved, as
        phrases about the image: "its steps value 500 is outside the form's 1 to 150; set to 150"). Locks the seed
        so the user gets the same image back. Never raises: values that are not numbers (or a seed outside
        ``SEED_MIN..SEED_MAX``) are skipped, others are clamped to the panel's limits; unsaid, the next image
        silently differed from the one restored, or A1111's "random" seed -1 was taken for the last one."""
        if not isinstance(settings, dict):
            return [], []
        applied: list[str] = []
        parsers = {"prompt": _text, "negative_prompt": _text, "seed": valid_seed, "steps": valid_steps,
                   "guidance": valid_guidance, "width": valid_side, "height": valid_side}
        raw = {key: settings.get(key) for key in parsers}
        if raw["prompt"] not in (None, "") and raw["negative_prompt"] is None:
            raw["negative_prompt"] = ""  # A1111 text leaves out an empty negative prompt: the image had none
        # An empty negative prompt is a value (the image had none: the form's own must go), and so is an empty prompt
        # (ours, a ComfyUI graph's text: kept, the next image, its seed locked, silently differed; A1111 text gives
        # none, as a settings line alone cannot tell "empty" from "not said"); an empty other field is not.
        given = {key: value for key, value in raw.items()
                 if value is not None and (value != "" or key in ("prompt", "negative_prompt"))}  # fmt: skip
        taken = {key: parsers[key](value) for key, value in given.items()}
        for key, value in taken.items():
            if value is not None:
                setattr(self, key, value)
                applied.append(key)
        if "seed" in applied:
            self.seed_locked = True
        return applied, self._restore_notes(given, taken)

    def _restore_notes(self, given: dict[str, Any], taken: dict[str, Any]) -> list[str]:
        """``restore_settings``' phrases for the values in ``given`` that were not ``taken`` as they are."""
        notes = []
        if "prompt" in given and not str(taken["prompt"]).strip():
            notes.append("its prompt is empty, and the app makes no image without one: type a prompt to generate")
        if "seed" in given and taken["seed"] is None:
            seed = given["seed"]
            why = ("is A1111's 'random seed': the seed the image was made with was not saved" if str(seed) == "-1"
                   else f"is not a seed the form takes (a whole number from {SEED_MIN} to {SEED_MAX})")  # fmt: skip
            notes.append(f"its seed {seed} {why}; the seed stays {self.seed}")
        for key, low, high in (("steps", STEPS_MIN, STEPS_MAX), ("guidance", GUIDANCE_MIN, GUIDANCE_MAX)):
            if key not in given:
                continue
            if taken[key] is None:
                notes.append(f"its {key} value {given[key]!r} is not a number; the {key} value stays "
                             f"{getattr(self, key)}")  # fmt: skip
            elif not _same(given[key], taken[key]):
                inside = taken[key] not in (low, high)  # clamped values land on a limit; others were rounded
                change = "rounded to" if inside else f"outside the form's {low} to {high}; set to"
                notes.append(f"its {key} value {given[key]} is {change} {taken[key]}")
        sides = [key for key in ("width", "height") if key in given]
        if any(taken[key] is None or not _same(given[key], taken[key]) for key in sides):
            shown = "x".join(str(given.get(key, "?")) for key in ("width", "height"))
            notes.append(f"its size {shown} is not one the model can make (sides of {SIDE_MIN} to {SIDE_MAX} px, "
                         f"multiples of {SIDE_STEP}); the size is {self.width}x{self.height}")  # fmt: skip
        return notes

    def to_last_job(self, pending: Iterable[str] = ()) -> LastJob:
        """The panel as it is now, for ``settings.json``; the fields ``pending`` (of ``model_default_fields``) are
        saved as the model's default (0, a guidance of None): they show placeholders still, which the model's
        defaults replace once the engine is ready, and the next start must not take them for the user's."""
        job = LastJob(model=self.model, prompt=self.prompt, negative_prompt=self.negative_prompt,
                      seed=int(self.seed), seed_locked=bool(self.seed_locked), steps=int(self.steps),
                      guidance=float(self.guidance), width=int(self.width), height=int(self.height),
                      batch_count=int(self.batch_count))
        return replace(job, **{key: getattr(LastJob, key) for key in pending})

    def load_last_job(self, job: LastJob) -> list[str]:
        """The panel as the last session left it; gives the fields of ``model_default_fields`` it had no value
        for (the model's default: a first launch's, or a session closed before the engine was ready), which keep
        the placeholders until the model's defaults come. ``settings.json`` may be hand-edited or come from another
        version: a value the widgets cannot show is skipped (seed) or clamped, never raised on."""
        values = asdict(job)
        self.model = str(values["model"])
        self.prompt = str(values["prompt"])
        self.negative_prompt = str(values["negative_prompt"])
        self.seed_locked = bool(values["seed_locked"])
        parsers = {"seed": valid_seed, "steps": valid_steps, "guidance": valid_guidance, "width": valid_side,
                   "height": valid_side, "batch_count": valid_batch}
        left: list[str] = []
        for key, parse in parsers.items():
            raw = values[key]
            value = None if raw is None or (key in ("steps", "width", "height") and not raw) else parse(raw)
            if value is not None:  # else the model's default: ours kept until the engine reports them
                setattr(self, key, value)  # (a guidance of 0 is one a user may choose)
            elif key in _DEFAULT_FIELDS:
                left.append(key)
        return left


@dataclass(frozen=True)
class QueueCount:
    """The images of the jobs queued since the queue was last idle: ``images`` in all, ``ended`` those of the jobs
    that ended (made, cancelled or failed: each counted whole), ``running`` those of the running job (0 between
    jobs). One value, changed at once: counted in two steps, a job's end read as 100% (counted twice) or nothing."""

    images: int = 0
    ended: int = 0
    running: int = 0


class JobState(QObject):
    """What the progress area shows: busy flag, step counter, ETA, the latest preview, a status line. ``step`` and
    ``total_steps`` count the whole job's steps, every image of a batch (the bar restarted at each image)."""

    busy_changed = Signal(object)
    step_changed = Signal(object)
    total_steps_changed = Signal(object)
    queue_changed = Signal(object)
    status_changed = Signal(object)
    preview_changed = Signal(object)
    checking_changed = Signal(object)

    busy = Prop(False)
    step = Prop(0)
    total_steps = Prop(0)
    queue = Prop(QueueCount())
    status = Prop("Starting the engine…")
    preview = Prop(None)  # QImage | None
    checking = Prop(False)  # a Generate waits for the LoRA files' copy check (``HeldClicks``): Cancel drops it

    def percent(self) -> int | None:
        """How far the jobs queued since the queue was last idle are, in whole percent of their images (``queue``):
        the jobs ended count whole, the running one by its steps (every image of its batch). One job at a time
        showed "[100%]" at the end of each queued job and started again at the next. None while none runs, or
        nothing of them is done yet (the first job's model loads, it waits for a quantize run): a "0%" read as
        stuck, and an earlier queue's figures as this one's."""
        queue = self.queue
        if not self.busy or queue.images <= 0:
            return None
        steps = self.step if self.total_steps > 0 and self.step > 0 and queue.running else 0
        total = self.total_steps if steps else 1
        done = queue.ended * total + queue.running * steps  # of queue.images * total
        return min(100, 100 * done // (queue.images * total)) if done > 0 else None

    def clear_steps(self) -> None:
        """No step counted (a job from an idle queue, one waiting for a quantize run): the last job's step and total
        are not read as this one's. Set only where they are not 0 already: a first setting is signalled even when
        it changes nothing, and a ``step_changed`` then reads as the engine having started."""
        if self.step or self.total_steps:
            self.step, self.total_steps = 0, 0

    def set_preview(self, image: QImage | None) -> None:
        self.preview = image
