"""Settings of a quantization run, the progress events it reports and how it asks whether it was cancelled."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from gpu.errors import Cancelled
from gpu.modules.layer_spec import METHODS, PRECISIONS, spec_for
from gpu.quantize_defaults import (
    DEFAULT_ALPHA_POINTS,
    DEFAULT_CALIB_PROMPTS,
    DEFAULT_GPU_BUDGET_GIB,
    DEFAULT_RAM_BUDGET_GIB,
    DEFAULT_RANK,
    LEGACY_ALPHA_POINTS,
    MAX_ALPHA_POINTS,
    MAX_RANK,
    RANK_ZERO_SAME_AS,
    SMOOTHING_METHODS,
    unused_fields,
)

# Far above any useful calibration (the paper uses 64 prompts); they stop a typo from running for days.
MAX_CALIB_PROMPTS = 10_000
MAX_CALIB_STEPS = 500  # the generation limit of steps


@dataclass
class QuantizeConfig:
    method: str = "svdquant"  # svdquant | naive | smoothquant | svd | lorc | nf4
    precision: str = "int4"  # int4 | nvfp4 | fp4 | int8
    rank: int = DEFAULT_RANK
    calib_prompts: int = DEFAULT_CALIB_PROMPTS  # how many calibration prompts to run
    calib_steps: int | None = None  # steps of each prompt's calibration trajectory (None: min(model default, 8))
    timesteps_per_prompt: int = 2  # (prompt, timestep) samples drawn from each trajectory
    seed: int = 0
    refine_iters: int = 2
    # Smoothing strengths the alpha search tries, evenly spaced over 0..1 (svdquant, smoothquant): fewer points
    # quantize faster and may pick a slightly worse alpha per layer.
    alpha_points: int = DEFAULT_ALPHA_POINTS
    max_tokens_per_layer: int = 1024  # calibration tokens kept per layer for the objectives
    # One smoothing vector per group of linears reading the same input (FLUX's Q/K/V), so the fused runtime
    # can merge them into one GEMM; False smooths every layer on its own.
    shared_smoothing: bool = True
    gpu_budget_gib: float = DEFAULT_GPU_BUDGET_GIB
    ram_budget_gib: float = DEFAULT_RAM_BUDGET_GIB
    resume: bool = True  # continue from finished blocks in OUT.parts/ when the settings match
    base: str | None = None  # diffusers folder/library name with text encoders, for single-file sources

    def validate(self) -> None:
        from gpu.errors import BadRequestError

        if self.method not in METHODS or self.method == "rtn":
            raise BadRequestError(f"unknown method {self.method!r} (use svdquant, naive, smoothquant, svd, lorc, nf4)")
        if self.precision not in PRECISIONS:
            raise BadRequestError(f"unknown precision {self.precision!r} (use {', '.join(PRECISIONS)})")
        if self.rank == 0 and self.method in RANK_ZERO_SAME_AS:
            same = RANK_ZERO_SAME_AS[self.method]
            raise BadRequestError(f"{self.method} at rank 0 has no low-rank branch: it makes the same model as {same}",
                                  f"use --method {same} for that model, or a rank of 1 or more")  # fmt: skip
        lowest = 1 if self.method in RANK_ZERO_SAME_AS else 0  # "use 0 to 1024" sent an svdquant run to rank 0
        if not lowest <= self.rank <= MAX_RANK:
            raise BadRequestError(f"rank {self.rank} is not possible: use {lowest} to {MAX_RANK}")
        if not 1 <= self.calib_prompts <= MAX_CALIB_PROMPTS:
            raise BadRequestError(
                f"{self.calib_prompts} calibration prompts is not possible: use 1 to {MAX_CALIB_PROMPTS}"
            )
        if self.calib_steps is not None and not 1 <= self.calib_steps <= MAX_CALIB_STEPS:
            raise BadRequestError(f"{self.calib_steps} calibration steps is not possible: use 1 to {MAX_CALIB_STEPS}")
        if not 0 <= self.seed < 2**63:
            raise BadRequestError(f"seed {self.seed} is not possible: use 0 to 2^63-1")
        if self.timesteps_per_prompt < 1:
            raise BadRequestError("at least one timestep per prompt is needed")
        for name, gib in (("GPU", self.gpu_budget_gib), ("RAM", self.ram_budget_gib)):
            if not (math.isfinite(gib) and gib > 0):
                raise BadRequestError(f"a {name} memory budget of {gib:g} GiB is not possible: give more than 0 GiB")
        if not 2 <= self.alpha_points <= MAX_ALPHA_POINTS:
            raise BadRequestError(
                f"{self.alpha_points} alpha points is not possible: use 2 to {MAX_ALPHA_POINTS}",
                f"the smoothing search tries that many alphas from 0 to 1; the default {DEFAULT_ALPHA_POINTS} "
                "tries 0, 0.1, ..., 1",
            )

    @property
    def smooths(self) -> bool:
        """Whether the method searches a smoothing alpha (svdquant, smoothquant): where ``alpha_points`` matters."""
        return spec_for(self.method, "int4", 0, "w4a4").smooth

    def fingerprint(self) -> dict:
        """The settings that change the output (what a resumable parts folder must match): ``output_fields``."""
        d = asdict(self)
        for k in ("resume", "gpu_budget_gib", "ram_budget_gib"):
            d.pop(k)
        return output_fields(d)

    def to_json(self) -> dict:
        return asdict(self)


def output_fields(settings: dict) -> dict:
    """Of a run's quantization ``settings`` (``QuantizeConfig``'s fields, or a fingerprint a parts folder's
    manifest keeps, which earlier versions wrote whole), those its finished blocks depend on. Left out:

    * ``base``, the pipeline a single file is calibrated with, as it was spelled: a library name (the wizard), a
      path (the command line), with a trailing ``/`` or through a link each gave another key, and a run started
      over for it. What the base gives the blocks is in the key already, by content: its calibration prompts,
      defaults, text encoder, tokenizer and scheduler files (``gpu.streaming.run_inputs``);
    * a field the method does not use, which the wizard greys out: the rank but for the low-rank methods, the
      shared smoothing and the alpha grid but for the smoothing methods, the precision for NF4 (its own format);
    * a smoothing method's ``alpha_points`` at ``LEGACY_ALPHA_POINTS``, as folders from before the setting
      recorded it (not at all).

    Applied again to its own result it changes nothing, so a manifest's fingerprint of any version can be put in
    these terms and compared."""
    unused = unused_fields(settings.get("method"))
    d = {k: v for k, v in settings.items() if k != "base" and k not in unused}
    if d.get("alpha_points") == LEGACY_ALPHA_POINTS:
        d.pop("alpha_points")
    return d


def effective_fingerprint(fingerprint: dict) -> dict:
    """``fingerprint`` (``QuantizeConfig.fingerprint()``, or one a parts folder's manifest keeps) with the values
    it leaves out for compatibility put back: a smoothing method's ``alpha_points`` is absent when it is
    ``LEGACY_ALPHA_POINTS``, and a message comparing two fingerprints said "alpha_points None -> 5" of a run made
    with the default 11. Methods that do not smooth have no alpha grid, so none is put in for them."""
    out = dict(fingerprint)
    if out.get("method") in SMOOTHING_METHODS:
        out.setdefault("alpha_points", LEGACY_ALPHA_POINTS)
    return out


@dataclass(frozen=True)
class PartsToReplace:
    """An earlier run's parts folder (``OUT.parts``) that a run replaces once its calibration samples are recorded,
    as the run says it when it begins (``QuantizeEvent.to_replace``): until then the folder is as it was, and a
    caller telling where a stopped run left it can say how its work is resumed instead of replaced."""

    # What differs from the run's settings, in the words a run says it with ("rank 8 -> 16", the engine's
    # NO_MANIFEST or ANOTHER_VERSION); "" when it was made with the run's own (asked to start over).
    differs: str
    # The ``QuantizeConfig`` fields, by name, with the values a run on the same source needs to resume the folder
    # instead: those it was made with, where they differ from the run's ({} when the run's own settings resume it,
    # were it not asked to start over). None when no settings do (nothing to resume, another version's folder,
    # other source weights, a pipeline's own text encoders changed): the engine's own resume decision, made for
    # those settings.
    resume_with: dict[str, object] | None
    # The base pipeline (its folder) that run needs as its ``QuantizeConfig.base`` besides ``resume_with``, where a
    # single file's folder was calibrated with another one than the run's: the one the folder records, proven by
    # the engine's own resume decision for a run with it; "" when none (the run's own base resumes it, or none does).
    other_base: str = ""


@dataclass
class QuantizeEvent:
    """kind: "stage" (a phase starts), "layer" (one layer done; ``error`` = its relative output error),
    "done". ``index``/``total`` count layers (or prompts during calibration); a layer's ``block`` of ``blocks``
    is the transformer block it belongs to (1-based; 0 on other events). ``replacing_parts``: True on the one
    event said just before the run deletes an earlier run's parts folder it does not resume (``OUT.parts``: other
    settings, or ``QuantizeConfig.resume`` False), its message possibly "" (nothing said of a folder that holds no
    finished work). Once it has been said, nothing of that earlier run in the folder resumes, and a manifest found
    there is the run's own; a caller telling where a stopped run left the folder reads this, not the folder's
    bytes, which the new run can write again as they were. ``to_replace``: on the run's first event, said as it
    begins when it will replace an earlier run's parts folder once its samples are recorded (``PartsToReplace``);
    a run that has said no event yet has not decided what it does with the folder. ``parts_left``: True on an event
    whose message says what stays of a parts folder the run deleted, and why (``PartsLeft``: files of the user's in
    it, which stay with the folder; what could not be deleted), for a caller to show where its user sees it."""

    kind: str
    message: str
    index: int = 0
    total: int = 0
    layer: str = ""
    error: float | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None
    block: int = 0
    blocks: int = 0
    replacing_parts: bool = False
    to_replace: PartsToReplace | None = None
    parts_left: bool = False


class EmitEvent(Protocol):
    """A run's way of saying a ``QuantizeEvent``: ``emit(kind, message, index=..., total=...)``, its elapsed time
    filled in by the run."""

    def __call__(self, kind: str, message: str, **kw: Any) -> None: ...  # kw: QuantizeEvent's other fields


def emitter(on_event: Callable[[QuantizeEvent], None] | None, started: float) -> EmitEvent:
    """A run's ``emit(kind, message, **fields)``: a ``QuantizeEvent`` to ``on_event`` (if any), its ``elapsed_s``
    counted from ``started`` (a ``time.perf_counter()`` reading)."""

    def emit(kind: str, message: str, **kw: Any) -> None:  # kw: QuantizeEvent's other fields
        if on_event is not None:
            on_event(QuantizeEvent(kind, message, elapsed_s=time.perf_counter() - started, **kw))

    return emit


def raise_if_cancelled(should_cancel: Callable[[], bool] | None) -> None:
    """Raises ``Cancelled`` when ``should_cancel`` (a run's cancel flag; None: it cannot be cancelled) says so."""
    if should_cancel is not None and should_cancel():
        raise Cancelled()
