"""The streaming, resumable quantizer: never more than one transformer block in memory.

1. Text encoders encode every calibration prompt, then are freed.
2. Short seeded trajectories record the (prompt, timestep) samples (``gpu.quantizer.shared``); each step
   streams the blocks once over all prompts. Samples are saved to ``OUT.parts/samples.safetensors``.
3. Per block: weights from the mapped source to the device, every sample run through it with input hooks
   (token-subsampling collectors), every linear quantized by ``quantize_layers``, the finished block written
   to ``OUT.parts/block-XXXX.safetensors`` (atomic) and recorded in ``manifest.json``; the block's 16-bit
   outputs become the next block's inputs (CPU, or disk above the RAM budget).
4. The SVDQ file is assembled from the shards, written atomically with its checksum, verified, and the parts
   folder removed: what the engine wrote in it, then the folder unless a file of the user's is in it. A rerun
   with the same source and settings skips finished blocks (it re-propagates through them, forward only);
   different settings discard the folder, said as the run begins, once the new samples are recorded.

This module holds the run's driver (``quantize_model``): its lock, GPU memory budget and what it says of memory
running out or a full disk, and its stages in order (``_quantize_model``). Each stage's work is elsewhere in
``gpu.streaming``: the run's inputs and resume key ``run_inputs``, the source and base pipeline ``base_pipeline``,
what it says of a folder it replaces ``replaced_parts``, its disk space ``space_needed``, the calibration samples
``sample_recording`` (through ``forward``) and ``samples_file``, the block loop ``block_loop`` (its inputs in
``activation_store``, its shards ``shards``), memory ``memory``. The parts folder itself (manifest, own files,
deletion, what it keeps) is ``parts_folder``, whether a run resumes from it ``resume``, the unfinished runs in a
folder ``unfinished``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from gpu.adapters import adapter_named
from gpu.atomic import output_errors, remove_stale_temps
from gpu.checkpoint.format import save_checkpoint
from gpu.checkpoint.verified import verify_checkpoint_once
from gpu.errors import OutputAppeared, OutputError, UserError
from gpu.generation.pipeline_loader import default_device, quiet_libraries, runtime_dtype
from gpu.library import ModelLibrary
from gpu.output_folders import make_folders, missing_folders, remove_empty_folders
from gpu.output_lock import OutputClaim, output_lock
from gpu.quantizer.config import PartsToReplace, QuantizeConfig, QuantizeEvent, emitter, raise_if_cancelled
from gpu.quantizer.in_memory import base_record
from gpu.quantizer.shared import CalibSample, checkpoint_meta, scheduler_record
from gpu.streaming.activation_store import remove_scratch
from gpu.streaming.base_pipeline import base_pipeline_record, check_output_not_read
from gpu.streaming.block_loop import quantize_blocks
from gpu.streaming.disk_space import check_free_space, disk_full_said, folder_usage
from gpu.streaming.memory import RunStage, gpu_memory_budget, over_budget, quantize_out_of_memory, release
from gpu.streaming.parts_folder import (
    ENGINE_VERSION,
    SAMPLES,
    SCRATCH_FOLDERS,
    check_parts_folder,
    delete_parts,
    discards_nothing,
    kept_words,
    parts_dir,
    read_manifest,
    remove_finished_parts,
    write_manifest,
)  # fmt: skip
from gpu.streaming.replaced_parts import asked_to_start_over, deleted_for, resumed_with, to_replace_unasked
from gpu.streaming.resume import NO_MANIFEST, UNPROVEN, how_made, resumes, source_unproven, what_differs
from gpu.streaming.run_inputs import RunInputs, run_inputs
from gpu.streaming.sample_recording import record_samples
from gpu.streaming.samples_file import sample_tokens, save_samples, verified_samples
from gpu.streaming.shards import damaged_shards
from gpu.streaming.source import WeightSource, load_head, transformer_blocks
from gpu.streaming.space_needed import space_needed
from gpu.version import __version__

log = logging.getLogger(__name__)


def quantize_model(
    source: str | Path,
    out_path: Path | str,
    config: QuantizeConfig | None = None,
    on_event: Callable[[QuantizeEvent], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    library: ModelLibrary | None = None,
    device: torch.device | None = None,
    samples_override: Callable[[WeightSource, QuantizeConfig], list[CalibSample]] | None = None,
    replace: bool = True,
    claim: OutputClaim | None = None,
) -> Path:
    """Quantize ``source`` (library name, diffusers folder, or single-file BFL ``.safetensors``) into the SVDQ
    file ``out_path``, one block at a time, resumably. ``samples_override`` (benchmarks without text
    encoders) supplies the calibration samples instead of the text encoders + trajectories. A second run on
    the same ``out_path`` (another process, or another claim in this one) is refused while this one works: both
    would use one parts folder. ``claim``: the lock on ``out_path`` its caller took as it chose the name
    (``gpu.output_lock.claim_first_free``), which the run holds, and leaves held for the caller to release.
    ``replace=False``: an existing ``out_path`` is an OutputError, checked under that lock (a run on the same
    output that finishes just before this one starts is not overwritten), and a file put there while the run works
    is kept too: ``OutputAppeared`` at the end, the finished blocks kept for a run that resumes once it is moved."""
    config = config or QuantizeConfig()
    config.validate()
    device = device or default_device()
    out_path = Path(out_path)
    library = library or ModelLibrary()
    # Before the lock (its file lies beside the output) and before the check of an existing output, whose remedy
    # (replace it) would then be refused: with or without leave to replace, the source is never the output
    check_output_not_read(out_path, source, config.base, library)
    stage = RunStage()
    said: UserError | None = None
    capped = False
    try:
        # A full disk is said as such wherever the run writes, with what it keeps for the next one.
        with (output_lock(out_path, "quantize run", claim=claim),
              gpu_memory_budget(device, config.gpu_budget_gib) as capped,
              disk_full_said(out_path.parent, lambda: kept_words(parts_dir(out_path), config.resume),
                             config.resume)):  # fmt: skip
            if not replace and out_path.exists():
                # e.g. a typo naming another model: replaced only when asked (the source's own weights never are)
                raise OutputError(f"{out_path} exists already", "give another --out, or add --overwrite to replace it")
            return _quantize_model(source, out_path, config, on_event, should_cancel, library, device,
                                   samples_override, replace, stage)  # fmt: skip
    except (MemoryError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
        # Running out of memory said as what ran out and while doing what (``quantize_out_of_memory``), or as the
        # budget where the budget was the limit (``over_budget``). It passed as torch's error: a traceback from the
        # command line, and a job's advice in the wizard.
        said = over_budget(exc, capped, config.gpu_budget_gib) or quantize_out_of_memory(exc, stage)
        if said is None:
            raise
        log.warning("quantize run out of memory: %s", str(exc))  # the text: a record holding exc held its frames
    # Raised here, outside the handler and not from it: the error's traceback holds the failed run's frames (its text
    # encoders, a block and its inputs), which kept them alive, on the GPU too, while the caller freed memory.
    raise said


def _quantize_model(
    source: str | Path,
    out_path: Path,
    config: QuantizeConfig,
    on_event: Callable[[QuantizeEvent], None] | None,
    should_cancel: Callable[[], bool] | None,
    library: ModelLibrary,
    device: torch.device,
    samples_override: Callable[[WeightSource, QuantizeConfig], list[CalibSample]] | None,
    replace_output: bool,  # not ``replace``: that is dataclasses.replace here
    stage: RunStage,
) -> Path:
    """The run itself, its stages in order (``quantize_model`` holds the lock, the budget, and what it says of
    memory running out or a full disk)."""
    out_path = Path(out_path)
    dtype = runtime_dtype(device)
    emit = emitter(on_event, time.perf_counter())
    quiet_libraries()
    check_cancel = partial(raise_if_cancelled, should_cancel)

    supplied = samples_override is not None
    run = run_inputs(source, config, library, dtype, supplied)
    parts = parts_dir(out_path)
    manifest, stale = _read_parts_folder(parts, out_path, run)
    # Said when the stale parts are removed, below: a run refused or cancelled before that keeps them.
    starting_over, freed_by = None, ""
    if stale:
        freed_by = deleted_for(manifest, run.key)
        starting_over = _say_what_is_replaced(parts, manifest, run, config, dtype, library, supplied, emit)
        manifest = {}  # other settings, other source, or a fresh start was asked for: the folder goes below
    elif manifest:  # resumed: a folder of an earlier version is recorded in this version's terms from now on
        manifest["key"], manifest["settings"] = run.key.key, run.key.settings
        manifest.update(base_pipeline_record(run, config))  # the base that resumed it, which resumes it again

    stage.doing = "loading the model's first layers"
    head = load_head(run.src, device, dtype)
    blocks = transformer_blocks(run.src)
    stage.doing = "reading the saved calibration samples"
    samples = verified_samples(parts, manifest)
    kept = (len(samples), sample_tokens(samples[0]) if samples else 0) if samples is not None else None
    need = space_needed(run, config, blocks, manifest, kept, supplied, dtype)
    check_free_space(out_path.parent, need, folder_usage(parts)[0] if stale else 0, freed_by)
    recorded = samples is None
    if samples is not None:
        prompts_n = int(manifest["samples"]["prompts"])
    else:
        prompts_n = len(run.prompts)
        samples = _record_calibration_samples(run, head, blocks, manifest, config, samples_override, device, dtype,
                                              should_cancel, emit, stage)  # fmt: skip
    # The parts folder is made (and a stale one replaced) only now that the samples exist: a run refused before
    # (a damaged text encoder or transformer file) or cancelled while recording leaves no folder behind, and
    # leaves a previous run's parts as they were.
    if stale:
        _replace_stale_parts(parts, out_path, starting_over, emit)
    manifest = _start_parts_folder(parts, manifest, run, config, samples if recorded else None, prompts_n)
    _redo_damaged_shards(parts, manifest, len(blocks), emit)

    total_layers = quantize_blocks(run.src, head, blocks, samples, parts, manifest, config, run.storage_dtype, device,
                                   dtype, stage, emit, check_cancel)  # fmt: skip

    check_cancel()
    _write_model(out_path, parts, head, manifest, run, config, prompts_n, len(samples), replace_output, stage, emit)
    _remove_parts_once_verified(out_path, parts, total_layers, emit)
    return out_path


def _read_parts_folder(parts: Path, out_path: Path, run: RunInputs) -> tuple[dict, bool]:
    """The output's parts folder ``parts`` as the run finds it -> (its manifest, whether the run does not resume
    from it: stale). Refuses a folder in the way, and one of an earlier version whose source cannot be proven the
    run's; clears what a killed run left that no run reads (a temporary model file, spilled block inputs)."""
    check_parts_folder(parts)  # before deleting anything in it: it may be a file or a folder of the user's
    manifest = read_manifest(parts)
    if parts.exists() and source_unproven(manifest, run.key):
        # Not resumed (another model's blocks mixed into this one's is the worst outcome), and not deleted either:
        # nothing was seen to differ, and it is as likely this source's finished work. The user decides.
        raise OutputError(f"{parts} is kept and not resumed: {UNPROVEN}",
                          "to start over with this --out, add --no-resume (which deletes that folder) or delete it "
                          "yourself; or choose another --out, and delete the folder once it is of no use")  # fmt: skip
    stale = parts.exists() and not resumes(manifest, run.key)
    # A kill during the final write left one, as big as the model: its parts folder may have been deleted since
    remove_stale_temps(out_path)
    if parts.exists():
        for folder in SCRATCH_FOLDERS:  # a killed run's spilled inputs (GiBs): before recording samples needs room
            remove_scratch(parts / folder)
    return manifest, stale


def _say_what_is_replaced(parts: Path, manifest: dict, run: RunInputs, config: QuantizeConfig, dtype: torch.dtype,
                          library: ModelLibrary, samples_supplied: bool, emit: Callable[..., None]) -> str | None:
    """Says, as the run's first event, what goes of the stale parts folder ``parts`` (``manifest``: its manifest)
    and when, with the settings that would resume it instead (``PartsToReplace``) -> what the run says as the
    deletion begins (None: nothing)."""
    # What goes, and when, said at once as the run's first event: a run stopped before the samples are recorded
    # leaves the folder as it was, and its caller can say so, and how to resume it instead (the same command,
    # run again, replaces it too).
    told = (asked_to_start_over if not config.resume else to_replace_unasked)(parts, manifest, run.key)
    if told:
        unasked = replace(run.key, resume=True)
        differs = "" if resumes(manifest, unasked) else what_differs(manifest, unasked)
        resume_with, other_base = resumed_with(manifest, run, config, dtype, library, samples_supplied)
        emit("stage", told, to_replace=PartsToReplace(differs, resume_with, other_base))
    if not config.resume:  # a fresh run asked for (--no-resume)
        return f"deleting {parts.name}: starting over, as asked" if told else None
    if manifest:
        return f"{parts.name} was {how_made(what_differs(manifest, run.key))}: starting over"
    if not discards_nothing(parts):  # blocks left without their manifest: said as they go
        return f"{parts.name} has {NO_MANIFEST}: starting over"
    return None


def _record_calibration_samples(run: RunInputs, head: nn.Module, blocks: list[tuple[str, int]], manifest: dict,
                                config: QuantizeConfig,
                                samples_override: Callable[[WeightSource, QuantizeConfig], list[CalibSample]] | None,
                                device: torch.device, dtype: torch.dtype, should_cancel: Callable[[], bool] | None,
                                emit: Callable[..., None], stage: RunStage) -> list[CalibSample]:  # fmt: skip
    """The calibration samples the run records (none kept, or damaged): the caller's (``samples_override``), or
    its text encoders' and trajectories' (``record_samples``)."""
    if manifest.get("done"):
        emit("stage", f"{SAMPLES} is missing or damaged: recording the calibration samples again")
    if run.prompts_note:  # said where the samples are recorded: they are made of those prompts
        emit("stage", run.prompts_note)
    if samples_override is not None:
        stage.doing = "recording the calibration samples"
        return samples_override(run.src, config)
    assert run.base_entry is not None
    return record_samples(run.src, head, blocks, run.base_entry, run.prompts, run.defaults, run.steps, config, device,
                          dtype, should_cancel, emit, stage)  # fmt: skip


def _replace_stale_parts(parts: Path, out_path: Path, starting_over: str | None, emit: Callable[..., None]) -> None:
    """Deletes the stale parts folder ``parts`` once the new samples exist, said as it begins (``starting_over``);
    files the user saved in it meanwhile stay, said, and the run writes beside them."""
    # Checked again: the recording took minutes, and a file the user put in the folder meanwhile went with it
    check_parts_folder(parts)
    # Said before the first file goes, so that a caller knows from then on nothing of that run resumes
    emit("stage", starting_over or "", replacing_parts=True)
    left = delete_parts(parts)  # the event's callback ran caller code: a file saved meanwhile stays
    if left is not None and not left.foreign:  # a link put there, an entry that cannot go: not written through
        raise OutputError(left.words(), "move or rename it, or choose another --out")
    if left is not None:  # the run writes its parts beside them, and deletes only its own at the end
        emit("stage", f"{left.words()}. Move them elsewhere: a run into {out_path.name} refuses the folder while "
                      "they are in it", parts_left=True)  # fmt: skip


def _start_parts_folder(parts: Path, manifest: dict, run: RunInputs, config: QuantizeConfig,
                        recorded: list[CalibSample] | None, prompts_n: int) -> dict:  # fmt: skip
    """Makes the parts folder and writes its manifest (``manifest``, or a new one when empty), with the samples the
    run ``recorded`` saved and recorded in it (None: those it keeps) -> the manifest. Blocks made from other
    samples than those recorded are dropped from it: they are not this model's. A folder made here goes again while
    empty when these writes fail (a full disk): Unfinished runs… listed it, a run of nothing."""
    made = missing_folders(parts)
    try:
        with output_errors(parts):
            make_folders(made)
        if not manifest:
            manifest = {"key": run.key.key, "engine": ENGINE_VERSION, "tool": __version__,
                        "settings": run.key.settings, "done": {}, "layers": {}, **base_pipeline_record(run, config)}
        if recorded is not None:
            digest = save_samples(parts / SAMPLES, recorded)
            if manifest.get("samples", {}).get("sha256") != digest:
                manifest["done"], manifest["layers"] = {}, {}  # blocks made from other samples are not this model's
            # The count goes in with the digest, in one manifest write: a kill in between cannot lose it.
            manifest["samples"] = {"sha256": digest, "prompts": prompts_n}
        write_manifest(parts, manifest)
    except BaseException:
        remove_empty_folders(made)  # one holding the samples written before a failed manifest write stays
        raise
    return manifest


def _redo_damaged_shards(parts: Path, manifest: dict, blocks: int, emit: Callable[..., None]) -> None:
    """Drops the finished blocks whose shard is missing or damaged from ``manifest`` (they are redone), said, and
    says how many of the ``blocks`` the run resumes from."""
    for name, problem in damaged_shards(parts, manifest["done"]).items():
        emit("stage", f"{problem}: redoing {name}")
        del manifest["done"][name]
    if manifest["done"]:
        emit("stage", f"resuming: {len(manifest['done'])}/{blocks} blocks already done")


def _write_model(out_path: Path, parts: Path, head: nn.Module, manifest: dict, run: RunInputs, config: QuantizeConfig,
                 prompts_n: int, samples_n: int, replace_output: bool, stage: RunStage,
                 emit: Callable[..., None]) -> None:  # fmt: skip
    """Puts the SVDQ file ``out_path`` together from ``head``'s tensors (at the storage dtype) and the finished
    blocks' shards, and writes it atomically with its metadata. A file that appeared there meanwhile (asked not to
    replace it) is kept, and so is the parts folder, for a run that resumes once it is moved."""
    stage.doing, stage.ram_budget_helps = f"putting {out_path.name} together from the finished blocks", False
    adapter = adapter_named("flux")
    storage_dtype, base_entry, defaults = run.storage_dtype, run.base_entry, run.defaults
    tensors: dict[str, torch.Tensor] = {}
    for k, t in head.state_dict().items():
        tensors[k] = t.to(storage_dtype).cpu() if t.is_floating_point() else t.cpu()
    for shard in manifest["done"].values():
        with safe_open(str(parts / shard["file"]), framework="pt", device="cpu") as f:
            for k in f.keys():
                tensors[k] = f.get_tensor(k)
    layer_meta = {n: manifest["layers"][n] for n in sorted(manifest["layers"])}
    record = base_record(base_entry, out_path, defaults) if base_entry is not None else {}
    if run.entry_for_record is not None and base_entry is None:
        record = {"name": run.entry_for_record, "defaults": defaults}
    # the scheduler of the pipeline that calibrated it (none: samples supplied by the caller)
    scheduler = scheduler_record(base_entry.path, adapter.architecture) if base_entry is not None else {}
    meta = checkpoint_meta(adapter.architecture, adapter.diffusers_class, run.src.config, storage_dtype, layer_meta,
                           config, prompts_n, samples_n, run.steps, record, scheduler)  # fmt: skip
    emit("stage", f"writing {out_path.name}")
    try:
        save_checkpoint(out_path, tensors, meta, replace=replace_output)
    except OutputAppeared:
        # Hours of work are in the parts folder, which stays: resuming only writes the model file again
        raise OutputAppeared(f"{out_path} appeared while this run worked, and is kept: the quantized model was not "
                             "written over it",
                             f"move that file elsewhere, then run again: the run resumes from the finished blocks in "
                             f"{parts} and only writes the model file") from None  # fmt: skip
    freed = sum(t.nbytes for t in tensors.values())
    del tensors
    release(freed, torch.device("cpu"))


def _remove_parts_once_verified(out_path: Path, parts: Path, total_layers: int, emit: Callable[..., None]) -> None:
    """Verifies the written ``out_path`` (size and checksum), then removes what the run wrote in ``parts``; says
    what is left there, and that the run is done."""
    # Size and checksum, before the parts are thrown away; no tensor kept. Remembered: the library's add of this
    # file (unchanged) does not read its gigabytes again
    verify_checkpoint_once(out_path)
    left = remove_finished_parts(parts, out_path)
    if left:
        emit("stage", left, parts_left=True)
    size_mib = out_path.stat().st_size / 2**20
    emit("done", f"wrote {out_path} ({size_mib:.1f} MiB)", index=total_layers, total=total_layers)
