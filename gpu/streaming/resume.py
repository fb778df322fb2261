"""Whether a quantize run resumes from the parts folder it finds (``gpu.streaming.parts_folder``): the resume key a
run has (``ResumeKey``: the settings its blocks depend on, and their hash) against the one the folder's manifest keeps,
those of an earlier version put in this version's terms first (a source's files by the time a coarser file system
rounded, or a record without a digest), and, where no run of these settings resumes from it, why, in words: no
manifest, another version, a source that cannot be proven, or the settings that differ ("rank 8 -> 16"). The key
itself is made from the run's inputs by ``gpu.streaming.run_inputs.resume_key``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

from gpu.quantizer.config import effective_fingerprint, output_fields
from gpu.streaming.parts_folder import ENGINE_VERSION, parts_in_the_way, read_manifest


@dataclass(frozen=True)
class ResumeKey:
    """What a run's parts folder must have been made with for the run to resume from it (``resume_key``):
    ``settings`` (kept in the manifest, to name a difference), their hash ``key``, and whether the run resumes
    at all (``QuantizeConfig.resume``)."""

    settings: dict
    key: str
    resume: bool = True
    # The source's weight files, resolved: what parts folders of earlier versions recorded (``in_current_terms``).
    weight_files: tuple[str, ...] = ()


def resumes_from(parts_folder: Path, key: ResumeKey | None) -> bool | None:
    """What a run whose resume key is ``key`` does with the parts folder ``parts_folder`` (``parts_dir(out)``):
    None when there is none, True when it resumes from it (keeps its finished blocks), False when it would
    discard it to start over (``discards_nothing`` says whether anything is lost then) or refuse it (a file, a
    link, a folder holding files the engine did not write).
    ``key`` None (unknown: the source could not be read) is False for any folder. The run's own decision
    (``resumes``), so that an output name is offered as free exactly when the run loses nothing there."""
    if not (parts_folder.exists() or parts_folder.is_symlink()):
        return None
    if key is None:
        return False
    if parts_in_the_way(parts_folder):
        return False
    return resumes(read_manifest(parts_folder), key)


def differs_from(parts_folder: Path, key: ResumeKey) -> str:
    """What differs between the settings ``parts_folder`` was made with and ``key``'s, in words ("rank 8 -> 16"):
    what the run says when it discards the folder. Exactly ``NO_MANIFEST``, ``ANOTHER_VERSION`` or ``UNPROVEN`` for
    a folder that no run of these settings resumes for that reason (one reading of the manifest answers which)."""
    return what_differs(read_manifest(parts_folder), key)


def unproven(parts_folder: Path, key: ResumeKey) -> bool:
    """Whether ``parts_folder`` is an earlier version's whose source files cannot be proven to be ``key``'s: a run
    with ``key`` would resume from it but for their whole-second times (``source_unproven``). No run resumes from
    it, and none deletes it unasked: it may well be this source's blocks (hours of work)."""
    return source_unproven(read_manifest(parts_folder), key)


def made_by_another_version(parts_folder: Path) -> bool:
    """Whether ``parts_folder`` was made by another version of the quantizer (its manifest keeps no settings, or
    another version's): no run of this version resumes from it, whatever its settings. False for a folder without
    a readable manifest (``has_manifest``), which no version could resume. Used by tests (the engine asks
    ``how_made``)."""
    return _another_version(read_manifest(parts_folder))


def _another_version(manifest: dict) -> bool:
    settings = manifest.get("settings")
    return bool(manifest) and (not isinstance(settings, dict) or settings.get("engine") != ENGINE_VERSION)


def resumes(manifest: dict, key: ResumeKey) -> bool:
    """Whether a run with ``key`` keeps the finished work a parts folder's ``manifest`` records: its key is
    ``key``'s, or the settings it keeps are ``key``'s once put in this version's terms (``in_current_terms``)."""
    if not key.resume:
        return False
    if manifest.get("key") == key.key:
        return True
    current = in_current_terms(manifest, key)
    return current is not None and settings_key(current) == key.key


def source_unproven(manifest: dict, key: ResumeKey) -> bool:
    """Whether a parts folder's ``manifest`` is one a run with ``key`` does not resume only because the source's
    files cannot be proven the same (``_same_file``: an earlier version's record, whole-second times), all else
    being ``key``'s: such a folder is this source's as likely as another model's of the same name and size."""
    if not key.resume or resumes(manifest, key):
        return False
    current = in_current_terms(manifest, key, whole_seconds=True)
    return current is not None and settings_key(current) == key.key


def in_current_terms(manifest: dict, key: ResumeKey, whole_seconds: bool = False) -> dict | None:
    """The settings a parts folder's ``manifest`` keeps, written as this version writes them for the run of
    ``key``; None when it keeps none, or settings that are not what its key hashes (never trusted then).
    Earlier versions of this engine (the same ``ENGINE_VERSION``: the same blocks) kept every quantization field
    (the base as spelled, a rank the method does not use: ``output_fields`` drops them) and each weight file by its
    resolved path, without a digest: a file counts as the same where its time proves it (``_same_file``). Those
    folders stay resumable; the run that resumes one writes its manifest in these terms. A file whose time a coarser
    file system rounded (a copy onto exFAT) is the same file too (``_same_file``, ``_same_calibration_file``).
    ``whole_seconds``: an earlier version's record counts whole-second times too (``source_unproven`` asks)."""
    settings = manifest.get("settings")
    if not isinstance(settings, dict) or settings_key(settings) != manifest.get("key"):
        return None
    out = dict(settings)
    if isinstance(out.get("quantization"), dict):
        out["quantization"] = output_fields(out["quantization"])
    out = prompts_in_use(out)
    now, was = key.settings.get("source"), out.get("source")
    if isinstance(now, list) and isinstance(was, list) and len(was) == len(now) == len(key.weight_files):
        out["source"] = [new if _same_file(old, new, resolved, whole_seconds) else old
                         for old, new, resolved in zip(was, now, key.weight_files, strict=True)]  # fmt: skip
    now, was = key.settings.get("calibration files"), out.get("calibration files")
    if isinstance(now, list) and isinstance(was, list) and len(was) == len(now):
        out["calibration files"] = [new if _same_calibration_file(old, new) else old
                                    for old, new in zip(was, now, strict=True)]  # fmt: skip
    return out


def prompts_in_use(settings: dict) -> dict:
    """A run's resume ``settings`` with the quantization's ``calib_prompts`` the number of prompts the run calibrates
    with (its "calibration prompts"), where it asked for more than its set holds: it uses them all, as a run asking
    for exactly that many does, and makes the same blocks. Each number asked for beyond the set gave another key:
    a run of 512 prompts of the 145 built in (the wizard's field allowed 512) resumed from no other, nor from one
    asking for 145. Earlier folders' settings, which keep the number asked for, read the same (``in_current_terms``).
    Settings without the prompts (samples supplied by the caller) are as they are."""
    prompts, quantization = settings.get("calibration prompts"), settings.get("quantization")
    if not (isinstance(prompts, list) and isinstance(quantization, dict)):
        return settings
    asked = quantization.get("calib_prompts")
    if not isinstance(asked, int) or asked <= len(prompts):
        return settings
    return {**settings, "quantization": {**quantization, "calib_prompts": len(prompts)}}


# How far apart two readings of one file's modification time may be and still be the same file: a copy keeping its
# times (cp -p, rsync -t, Explorer) onto a file system that keeps them coarser reads them rounded, down or up, to
# its step: FAT's 2 s, exFAT's 10 ms or 2 s, 1 s on some network shares. Compared to the nanosecond, such a copy
# started over, discarding hours of finished blocks.
MTIME_STEP_NS = 2 * 10**9


def _near(old: object, new: int) -> bool:
    """Whether the recorded modification time ``old`` (ns) is ``new`` as a coarser file system may keep it."""
    return isinstance(old, int) and not isinstance(old, bool) and abs(old - new) <= MTIME_STEP_NS


def _same_file(old: object, new: list, resolved: str, whole_seconds: bool = False) -> bool:
    """Whether a weight file a manifest records as ``old`` is the file now recorded as ``new`` ([path inside the
    source, size, mtime, sampled digest]) that resolves to ``resolved``.

    Recorded by this version (the same four fields): the same path, size and sampled digest, and a time within
    ``MTIME_STEP_NS``. The time is what tells a file rewritten since as another of the same size whose changes lie
    outside the sampled MiBs (a merge or fine-tune that changed some layers): written later, its time is far off.

    Recorded by an earlier version ([resolved path, size, mtime], no digest): its old path is the one the file
    resolves to now (not moved) or ends with its path inside the source (moved), and size and time are the same,
    the time to the nanosecond and not a whole second. Only such a time proves the file is the one the blocks were
    made from: the file system gave it as the file was written, and another file has it only as a copy of this one
    keeping its times. Whole seconds are what archives, downloads keeping the server's time and coarse file systems
    give, and another model of the same size can have the same (it resumed from the other model's blocks); such a
    folder is not resumed (``whole_seconds`` True: taken as the same, to tell such a folder, ``source_unproven``, from
    another model's). The run that resumes one records it in this version's terms, digest included."""
    if isinstance(old, list) and len(old) == 4:
        return old[0] == new[0] and old[1] == new[1] and old[3] == new[3] and _near(old[2], new[2])
    if not (isinstance(old, list) and len(old) == 3 and isinstance(old[0], str)) or old[1:] != new[1:3]:
        return False
    if new[2] % 10**9 == 0 and not whole_seconds:  # a whole second: proves nothing
        return False
    inside = PurePosixPath(new[0]).parts
    return old[0] == resolved or PurePath(old[0]).parts[-len(inside):] == inside


def _same_calibration_file(old: object, new: list) -> bool:
    """Whether a text encoder, tokenizer or scheduler file a manifest records as ``old`` is the one now recorded as
    ``new`` ([path inside the pipeline, size, mtime]): the same path and size, the time within ``MTIME_STEP_NS``
    (the pipeline copied onto a file system that keeps times coarser: a diffusers source holds these files too)."""
    return (isinstance(old, list) and len(old) == 3 and old[:2] == new[:2]
            and _near(old[2], new[2]))  # fmt: skip


# What a parts folder without a readable manifest is said to be (``read_manifest``): nothing in it resumes.
NO_MANIFEST = "no readable manifest (nothing to resume)"

# What an earlier version's parts folder is said to be when only its record of the source's files, whole-second
# times without a digest, keeps it from resuming (``source_unproven``): nothing differs that can be seen.
UNPROVEN = ("the source's files cannot be proven to be the ones its blocks were made from (an earlier version of "
            "the quantizer recorded them by name, size and time, and their times are whole seconds, which another "
            "model's files can have too)")  # fmt: skip

# What a parts folder made by another version of the quantizer is said to be (``_another_version``): no run of this
# version resumes from it, whatever its settings.
ANOTHER_VERSION = "another version of the quantizer"


# How such a folder was made, in words: not with "other settings (another version of the quantizer)".
BY_ANOTHER_VERSION = "made by another version of Nibble Studio's quantizer"


def how_made(differs: str) -> str:
    """How a parts folder whose settings differ from a run's in ``differs`` (``what_differs``) was made, in words:
    "made with other settings (rank 8 -> 16)", or ``BY_ANOTHER_VERSION``."""
    return BY_ANOTHER_VERSION if differs == ANOTHER_VERSION else f"made with other settings ({differs})"

# How each resume setting is named when a parts folder was made with another value.
_SETTING_LABELS = {
    "engine": ANOTHER_VERSION,
    "source": "other source weights (another model, or its files changed since)",
    "calibration prompts": "other calibration prompts",
    "calibration files": "other text encoders, tokenizers or scheduler (or their files changed since)",
    "samples": "other calibration samples",
}


def settings_key(settings: dict) -> str:
    """The hash of a run's resume ``settings`` (SHA-256 of their JSON, keys sorted): the key a manifest keeps."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def what_differs(manifest: dict, key: ResumeKey) -> str:
    """Names what differs between the manifest's settings and ``key``'s (e.g. "rank 8 -> 16"), those of an earlier
    version put in this version's terms first (``in_current_terms``): else every folder of theirs differed in
    its "source weights", which were recorded by another path."""
    if not manifest:
        return NO_MANIFEST
    if _another_version(manifest):
        return ANOTHER_VERSION
    if source_unproven(manifest, key):
        return UNPROVEN
    settings = key.settings
    # Whole-second times taken as the same: an unproven source (``source_unproven``) is not seen to differ, and was
    # named "other source weights (another model, or its files changed since)" beside the setting that does.
    old = in_current_terms(manifest, key, whole_seconds=True) or manifest["settings"]
    named = []
    for k, new in settings.items():
        was = old.get(k)
        if k == "quantization" and isinstance(was, dict):  # the values in force, not those left out: "alpha points
            was, new = effective_fingerprint(was), effective_fingerprint(new)  # 11 -> 5", never "None -> 5"
        if was == new:
            continue
        if isinstance(new, dict) and isinstance(was, dict):  # name the fields: "rank 8 -> 16"
            prefix = "calibration " if k == "calibration" else ""
            # A field only one side has (the alpha grid of a method that smooths) goes with a change named already
            # (the method).
            named += [f"{prefix}{f.replace('_', ' ')} {was[f]} -> {new[f]}" for f in sorted(set(new) & set(was))
                      if was[f] != new[f]]  # fmt: skip
        else:
            named.append(_SETTING_LABELS.get(k, k))
    return ", ".join(named) or "unknown settings"
