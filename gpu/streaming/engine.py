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

This module holds the run: its inputs and resume key (``resume_key``), its disk space check, the calibration
samples (recorded, saved, verified), the streamed forward and the block loop, and what the run says of the folder
it discards. The parts folder itself (manifest, own files, deletion, what it keeps) is ``gpu.streaming.parts_folder``,
whether a run resumes from it ``gpu.streaming.resume``, the unfinished runs in a folder ``gpu.streaming.unfinished``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from gpu.adapters import adapter_named
from gpu.atomic import atomic_path, output_errors, remove_stale_temps
from gpu.checkpoint.format import file_sha256, save_checkpoint
from gpu.checkpoint.verified import verify_checkpoint_once
from gpu.errors import (
    Cancelled,
    OutputAppeared,
    OutputError,
    UserError,
)  # fmt: skip
from gpu.generation.pipeline_loader import default_device, quiet_libraries, runtime_dtype
from gpu.library import ModelLibrary
from gpu.output_lock import OutputClaim, output_lock
from gpu.quantizer.calibrate import hooked, make_collectors
from gpu.quantizer.config import PartsToReplace, QuantizeConfig, QuantizeEvent
from gpu.quantizer.in_memory import base_record
from gpu.quantizer.shared import (
    CalibSample,
    checkpoint_meta,
    layer_message,
    quantize_layers,
)  # fmt: skip
from gpu.streaming.activation_store import ActivationStore, activation_bytes, remove_scratch, spills
from gpu.streaming.base_pipeline import base_pipeline_record
from gpu.streaming.disk_space import (
    check_free_space,
    disk_full_said,
    folder_usage,
)  # fmt: skip
from gpu.streaming.forward import preamble
from gpu.streaming.memory import RunStage, gpu_memory_budget, module_bytes, over_budget, quantize_out_of_memory, release
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
from gpu.streaming.resume import (
    NO_MANIFEST,
    UNPROVEN,
    how_made,
    resumes,
    source_unproven,
    what_differs,
)  # fmt: skip
from gpu.streaming.run_inputs import run_inputs
from gpu.streaming.sample_recording import record_samples
from gpu.streaming.samples_file import sample_tokens, save_samples, verified_samples
from gpu.streaming.shards import damaged_shards
from gpu.streaming.source import (
    WeightSource,
    block_module,
    load_block,
    load_head,
    prefixed,
    transformer_blocks,
)  # fmt: skip
from gpu.streaming.space_needed import space_needed
from gpu.svdquant.decompose import DecomposeConfig
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
                # e.g. a typo naming another model, or the source's own weights: replaced only when asked
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
    library: ModelLibrary | None,
    device: torch.device,
    samples_override: Callable[[WeightSource, QuantizeConfig], list[CalibSample]] | None,
    replace_output: bool,  # not ``replace``: that is dataclasses.replace here
    stage: RunStage,
) -> Path:
    library = library or ModelLibrary()
    out_path = Path(out_path)
    dtype = runtime_dtype(device)
    started = time.perf_counter()
    quiet_libraries()

    def emit(kind: str, message: str, **kw) -> None:
        if on_event is not None:
            on_event(QuantizeEvent(kind, message, elapsed_s=time.perf_counter() - started, **kw))

    def check_cancel() -> None:
        if should_cancel is not None and should_cancel():
            raise Cancelled()

    run = run_inputs(source, config, library, dtype, samples_override is not None)
    src, base_entry, storage_dtype, defaults, steps, prompts = (run.src, run.base_entry, run.storage_dtype,
                                                                 run.defaults, run.steps, run.prompts)  # fmt: skip
    adapter = adapter_named("flux")
    settings = run.key.settings
    parts = parts_dir(out_path)
    check_parts_folder(parts)  # before deleting anything in it: it may be a file or a folder of the user's
    manifest = read_manifest(parts)
    if parts.exists() and source_unproven(manifest, run.key):
        # Not resumed (another model's blocks mixed into this one's is the worst outcome), and not deleted either:
        # nothing was seen to differ, and it is as likely this source's finished work. The user decides.
        raise OutputError(f"{parts} is kept and not resumed: {UNPROVEN}",
                          "to start over with this --out, add --no-resume (which deletes that folder) or delete it "
                          "yourself; or choose another --out, and delete the folder once it is of no use")  # fmt: skip
    stale = parts.exists() and not resumes(manifest, run.key)
    if parts.exists():
        remove_stale_temps(out_path)  # a kill during the final write left one, as big as the model
        for folder in SCRATCH_FOLDERS:  # a killed run's spilled inputs (GiBs): before recording samples needs room
            remove_scratch(parts / folder)
    # Said when the stale parts are removed, below: a run refused or cancelled before that keeps them.
    starting_over, freed_by = None, ""
    if stale:
        freed_by = deleted_for(manifest, run.key)
        # What goes, and when, said at once as the run's first event: a run stopped before the samples are recorded
        # leaves the folder as it was, and its caller can say so, and how to resume it instead (the same command,
        # run again, replaces it too).
        told = (asked_to_start_over if not config.resume else to_replace_unasked)(parts, manifest, run.key)
        if told:
            unasked = replace(run.key, resume=True)
            differs = "" if resumes(manifest, unasked) else what_differs(manifest, unasked)
            resume_with, other_base = resumed_with(manifest, run, config, dtype, library,
                                                    samples_override is not None)  # fmt: skip
            emit("stage", told, to_replace=PartsToReplace(differs, resume_with, other_base))
        if not config.resume:  # a fresh run asked for (--no-resume)
            if told:
                starting_over = f"deleting {parts.name}: starting over, as asked"
        elif manifest:
            starting_over = f"{parts.name} was {how_made(what_differs(manifest, run.key))}: starting over"
        elif not discards_nothing(parts):  # blocks left without their manifest: said as they go
            starting_over = f"{parts.name} has {NO_MANIFEST}: starting over"
        manifest = {}  # other settings, other source, or a fresh start was asked for: the folder goes below
    elif manifest:  # resumed: a folder of an earlier version is recorded in this version's terms from now on
        manifest["key"], manifest["settings"] = run.key.key, settings
        manifest.update(base_pipeline_record(run, config))  # the base that resumed it, which resumes it again

    stage.doing = "loading the model's first layers"
    head = load_head(src, device, dtype)
    blocks = transformer_blocks(src)
    stage.doing = "reading the saved calibration samples"
    samples = verified_samples(parts, manifest)
    kept = (len(samples), sample_tokens(samples[0]) if samples else 0) if samples is not None else None
    need = space_needed(run, config, blocks, manifest, kept, samples_override is not None, dtype)
    check_free_space(out_path.parent, need, folder_usage(parts)[0] if stale else 0, freed_by)
    recorded = samples is None
    if samples is not None:
        prompts_n = int(manifest["samples"]["prompts"])
    else:
        if manifest.get("done"):
            emit("stage", f"{SAMPLES} is missing or damaged: recording the calibration samples again")
        if run.prompts_note:  # said where the samples are recorded: they are made of those prompts
            emit("stage", run.prompts_note)
        prompts_n = len(prompts)
        if samples_override is not None:
            stage.doing = "recording the calibration samples"
            samples = samples_override(src, config)
        else:
            assert base_entry is not None
            samples = record_samples(src, head, blocks, base_entry, prompts, defaults, steps, config, device,
                                      dtype, should_cancel, emit, stage)  # fmt: skip
    # The parts folder is made (and a stale one replaced) only now that the samples exist: a run refused before
    # (a damaged text encoder or transformer file) or cancelled while recording leaves no folder behind, and
    # leaves a previous run's parts as they were.
    if stale:
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
    with output_errors(parts):
        parts.mkdir(parents=True, exist_ok=True)
    if not manifest:
        manifest = {"key": run.key.key, "engine": ENGINE_VERSION, "tool": __version__, "settings": settings, "done": {},
                    "layers": {}, **base_pipeline_record(run, config)}  # fmt: skip
    if recorded:
        digest = save_samples(parts / SAMPLES, samples)
        if manifest.get("samples", {}).get("sha256") != digest:
            manifest["done"], manifest["layers"] = {}, {}  # blocks made from other samples are not this model's
        # The count goes in with the digest, in one manifest write: a kill in between cannot lose it.
        manifest["samples"] = {"sha256": digest, "prompts": prompts_n}
    write_manifest(parts, manifest)
    for name, problem in damaged_shards(parts, manifest["done"]).items():
        emit("stage", f"{problem}: redoing {name}")
        del manifest["done"][name]
    if manifest["done"]:
        emit("stage", f"resuming: {len(manifest['done'])}/{len(blocks)} blocks already done")

    # Per-block layer counts give each layer its whole-model index (its collector seed, its event index).
    counts = {kind: len(adapter.quantizable_linears(prefixed(block_module(src.config, kind), kind)))
              for kind in {k for k, _ in blocks}}  # fmt: skip
    total_layers = sum(counts[k] for k, _ in blocks)
    per_sample = activation_bytes(sample_tokens(samples[0]), src.config, dtype) if samples else 0
    spill = parts / "act" if spills(per_sample, len(samples), config) else None
    emit("stage", f"{len(samples)} samples, {len(blocks)} blocks, {total_layers} layers"
                  f"{' (activations spilled to disk)' if spill else ''}")  # fmt: skip

    try:
        stage.doing = "computing the first block's inputs"
        stage.ram_budget_helps = spill is None  # the block inputs, kept in RAM: a smaller budget sends them to disk
        store, extras = preamble(head, samples, device, ActivationStore(spill))
        dcfg = DecomposeConfig(refine_iters=config.refine_iters, seed=config.seed, dtype=storage_dtype)
        offset = 0
        run_t0, run_layers = time.perf_counter(), 0
        for bi, (kind, index) in enumerate(blocks):
            check_cancel()
            name = f"{kind}.{index}"
            stage.doing = f"{'running' if name in manifest['done'] else 'quantizing'} block {bi + 1} of {len(blocks)}"
            block = load_block(src, kind, index, device, dtype)
            named_block = prefixed(block, kind, index)
            targets = adapter.quantizable_linears(named_block)
            finished = name in manifest["done"]
            collectors = None
            handles = []
            if not finished:
                linears = {n: m for n, (m, _r) in targets.items()}
                collectors = make_collectors(linears, config.seed, config.max_tokens_per_layer, offset)
                handles = hooked(linears, collectors)
            # The last block's outputs feed no block: spilled, they were a whole set of inputs written for nothing.
            keep = bi + 1 < len(blocks)
            nxt = ActivationStore(spill.with_name(f"act{bi % 2}") if spill and keep else None)
            try:
                for i in range(len(samples)):
                    h, e = store.get(i)
                    temb, rot = extras[i]
                    with torch.inference_mode():
                        e2, h2 = block(hidden_states=h.to(device), encoder_hidden_states=e.to(device), temb=temb,
                                       image_rotary_emb=rot)  # fmt: skip
                    if keep:
                        nxt.put(i, h2, e2)
            finally:
                for hd in handles:
                    hd.remove()
            store.discard()  # this block's inputs, read by no other block: before the quantization, which may take long
            if not finished:
                assert collectors is not None
                shard: dict[str, torch.Tensor] = {}
                results = {n: c.result for n, c in collectors.items()}
                layers = quantize_layers(targets, lambda n, r=results: r[n](), config, dcfg, adapter)
                for j, (lname, lt, meta, error) in enumerate(layers):
                    check_cancel()
                    shard.update(lt)
                    manifest["layers"][lname] = meta
                    run_layers += 1
                    per_layer = (time.perf_counter() - run_t0) / run_layers
                    emit("layer", f"block {bi + 1}/{len(blocks)} {layer_message(lname, meta)}", index=offset + j + 1,
                         total=total_layers, layer=lname, error=error, block=bi + 1, blocks=len(blocks),
                         eta_s=per_layer * (total_layers - offset - j - 1))  # fmt: skip
                quantized = set(targets)
                for k, t in named_block.state_dict().items():
                    if k.rsplit(".", 1)[0] not in quantized:
                        shard[k] = t.to(storage_dtype).cpu() if t.is_floating_point() else t.cpu()
                shard_name = f"block-{bi:04d}.safetensors"
                with atomic_path(parts / shard_name) as tmp:
                    save_file({k: v.contiguous() for k, v in shard.items()}, str(tmp))
                    digest = file_sha256(tmp)  # checked on resume: a damaged shard is redone, never assembled
                manifest["done"][name] = {"file": shard_name, "sha256": digest}
                write_manifest(parts, manifest)  # the block counts as done only once its shard is on disk
            offset += len(targets)
            store = nxt
            freed = module_bytes(block)
            del block, named_block, targets, collectors
            release(freed, device)
    finally:  # after the last block, and at once on a cancel or failure (resume never reads them)
        for folder in SCRATCH_FOLDERS:
            remove_scratch(parts / folder)

    check_cancel()
    stage.doing, stage.ram_budget_helps = f"putting {out_path.name} together from the finished blocks", False
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
    meta = checkpoint_meta(adapter.architecture, adapter.diffusers_class, src.config, storage_dtype, layer_meta,
                           config, prompts_n, len(samples), steps, record)  # fmt: skip
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
    # Size and checksum, before the parts are thrown away; no tensor kept. Remembered: the library's add of this
    # file (unchanged) does not read its gigabytes again
    verify_checkpoint_once(out_path)
    left = remove_finished_parts(parts, out_path)
    if left:
        emit("stage", left, parts_left=True)
    size_mib = out_path.stat().st_size / 2**20
    emit("done", f"wrote {out_path} ({size_mib:.1f} MiB)", index=total_layers, total=total_layers)
    return out_path
