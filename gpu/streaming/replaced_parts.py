"""What a quantize run says and offers of the parts folder it does not resume, which it replaces: the sentences
said as it begins (``asked_to_start_over``, ``to_replace_unasked``) and in a disk space refusal (``deleted_for``),
and the settings and base pipeline with which a run would resume that folder instead (``resumed_with``)."""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from pathlib import Path

import torch

from gpu.errors import UserError
from gpu.library import ModelLibrary
from gpu.quantizer.config import QuantizeConfig, effective_fingerprint
from gpu.streaming.base_pipeline import BASE_RECORD, base_for_single_file
from gpu.streaming.disk_space import STALE_PARTS
from gpu.streaming.parts_folder import discards_nothing, work_words
from gpu.streaming.resume import NO_MANIFEST, ResumeKey, how_made, in_current_terms, resumes, what_differs
from gpu.streaming.run_inputs import RunInputs, calibration_and_key


def deleted_for(manifest: dict, key: ResumeKey) -> str:
    """Why a run with the resume key ``key`` deletes the parts folder it does not resume (``manifest``: that
    folder's), in the words a disk space refusal counts the space it frees with (``check_free_space``): a run asked
    to start over said the blocks it deletes were "made with other settings", though they were made with its own."""
    if not key.resume:
        return "deleting the old unfinished run, as asked (--no-resume)"
    if not manifest:
        return f"deleting the old unfinished run's folder, which has {NO_MANIFEST}"
    return STALE_PARTS


def asked_to_start_over(parts: Path, manifest: dict, key: ResumeKey) -> str:
    """What a run asked to start over (``QuantizeConfig.resume`` False: ``main.py quantize --no-resume``) says as it
    begins of the parts folder ``parts`` it discards (``manifest``: its manifest; ``key``: the run's resume key);
    "" when that loses nothing (``discards_nothing``). The folder goes only once the run has recorded its samples,
    as any stale one does, so a run refused or stopped before then leaves it as it was; said at once, not minutes
    into the calibration, with the finished work it held and whether the run would have resumed from it."""
    if discards_nothing(parts):
        return ""
    unasked = replace(key, resume=True)  # what the run would have made of the folder, had it not been asked
    work = work_words(manifest)
    if not manifest:
        lost = f"what an earlier run left there ({NO_MANIFEST})"
    elif resumes(manifest, unasked):
        lost = f"{work} a run with these settings resumes from"
    else:
        lost = f"{work} of an earlier run, which this run would not resume ({what_differs(manifest, unasked)})"
    return f"starting over, as asked: {parts} {_DELETED_ONCE_SAMPLES_EXIST.format(lost=lost)}"


def to_replace_unasked(parts: Path, manifest: dict, key: ResumeKey) -> str:
    """What a run not asked to start over says as it begins of the parts folder ``parts`` it does not resume
    (``manifest``: its manifest; ``key``: the run's resume key), which it replaces once its samples are recorded;
    "" when that loses nothing (``discards_nothing``). Said only as the deletion began, a run stopped in the minutes
    of calibration before had said nothing of it, and its caller said the blocks were kept for the same command to
    resume, which deletes them."""
    if discards_nothing(parts):
        return ""
    if not manifest:
        lost = "what an earlier run left there"
        return f"{parts} has {NO_MANIFEST}: it {_DELETED_ONCE_SAMPLES_EXIST.format(lost=lost)}"
    lost = work_words(manifest)
    return f"{parts} was {how_made(what_differs(manifest, key))}: it {_DELETED_ONCE_SAMPLES_EXIST.format(lost=lost)}"


# When a run deletes the parts folder it replaces, and what a run stopped before then leaves: said as it begins.
_DELETED_ONCE_SAMPLES_EXIST = ("is deleted once the calibration samples are recorded, and with it {lost}; a run "
                               "stopped before then leaves it as it is")  # fmt: skip


def resumed_with(manifest: dict, run: RunInputs, config: QuantizeConfig, dtype: torch.dtype,
                  library: ModelLibrary, samples_supplied: bool) -> tuple[dict[str, object] | None, str]:  # fmt: skip
    """The settings with which a run on ``run``'s source resumes the parts folder of ``manifest``, which the run of
    ``config`` replaces (``PartsToReplace.resume_with``): the ``QuantizeConfig`` fields the folder keeps that differ
    from ``config``'s ({}: none, the run was asked to start over); None when no settings resume it. Taken from the
    folder's manifest, and proven by the engine's own decision (``resumes``) for a run made with them, so that a
    folder differing in anything else (the source's files, the version) is never said to resume. With it, the base
    pipeline that run needs instead of ``config.base`` (``PartsToReplace.other_base``; "" when none), proven the
    same way (``base_resuming``)."""
    unasked = replace(run.key, resume=True)
    if resumes(manifest, unasked):
        return {}, ""
    current = in_current_terms(manifest, unasked)
    made_with = current.get("quantization") if current is not None else None
    if not isinstance(made_with, dict):
        return None, ""
    made_with = effective_fingerprint(made_with)  # the alpha grid an earlier folder leaves out, put back
    if not set(made_with) <= {f.name for f in fields(QuantizeConfig)}:  # another version's fields
        return None, ""
    ours = replace(config, resume=True)
    try:
        candidate = replace(ours, **made_with)
        candidate.validate()
        key = calibration_and_key(run.src, run.base_entry, run.storage_dtype, run.defaults, candidate, dtype,
                                  samples_supplied)[2]  # fmt: skip
    except (UserError, TypeError, ValueError):  # settings no run can have (a manifest edited by hand)
        return None, ""
    other_base = ""
    if not resumes(manifest, key):
        other_base = base_resuming(manifest, run, candidate, dtype, library)
        if not other_base:
            return None, ""
    now = asdict(ours)
    return {name: value for name, value in asdict(candidate).items() if now[name] != value}, other_base


def base_resuming(manifest: dict, run: RunInputs, config: QuantizeConfig, dtype: torch.dtype,
                   library: ModelLibrary) -> str:  # fmt: skip
    """The base pipeline (a folder) with which, as --base, a run of ``config`` on ``run``'s single file resumes the
    parts folder of ``manifest``: the one the folder records it was made with (``BASE_RECORD``), where a run with it
    resumes the folder (the engine's own decision, with the key that run has); "" where none does: the folder records
    none (made before it was recorded), or its base is the run's own, or one changed since (its text encoders,
    tokenizers, scheduler or prompts), moved or gone. Said before, "--base naming the pipeline it was made with"
    was said of a folder whose base was the run's own, changed since, which no --base resumes."""
    base = manifest.get(BASE_RECORD)
    if not config.base or not isinstance(base, str) or not base:
        return ""
    try:
        entry = base_for_single_file(run.src.files[0], run.src, library, base)
        key = calibration_and_key(run.src, entry, run.storage_dtype, dict(entry.facts.defaults),
                                  replace(config, base=base), dtype, False)[2]  # fmt: skip
    except (UserError, OSError):  # gone, no pipeline now, one that does not fit the file: no run resumes with it
        return ""
    return base if resumes(manifest, key) else ""
