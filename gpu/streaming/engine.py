"""The streaming, resumable quantizer: never more than one transformer block in memory.

1. Text encoders encode every calibration prompt, then are freed.
2. Short seeded trajectories record the (prompt, timestep) samples (``gpu.quantizer.shared``); each step
   streams the blocks once over all prompts. Samples are saved to ``OUT.parts/samples.safetensors``.
3. Per block: weights from the mapped source to the device, every sample run through it with input hooks
   (token-subsampling collectors), every linear quantized by ``quantize_layers``, the finished block written
   to ``OUT.parts/block-XXXX.safetensors`` (atomic) and recorded in ``manifest.json``; the block's 16-bit
   outputs become the next block's inputs (CPU, or disk above the RAM budget).
4. The SVDQ file is assembled from the shards, written atomically with its checksum, verified, and the parts
   folder removed. A rerun with the same source and settings skips finished blocks (it re-propagates
   through them, forward only); different settings discard the folder.
"""

from __future__ import annotations

import gc
import hashlib
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from gpu.adapters import adapter_named
from gpu.atomic import atomic_path, atomic_write_bytes, output_errors
from gpu.checkpoint.format import load_checkpoint, save_checkpoint
from gpu.errors import Cancelled, ModelLoadError
from gpu.generation.pipeline_loader import default_device, quiet_libraries, runtime_dtype
from gpu.library import ModelEntry, ModelLibrary
from gpu.model_files import FALLBACK_DEFAULTS
from gpu.quantizer.calibrate import calibration_prompts, calibration_steps, hooked, make_collectors
from gpu.quantizer.config import QuantizeConfig, QuantizeEvent
from gpu.quantizer.in_memory import base_record, make_samples
from gpu.quantizer.shared import CalibSample, check_rank_fits, checkpoint_meta, layer_message, quantize_layers
from gpu.streaming.source import (
    WeightSource,
    bfl_file_source,
    block_module,
    diffusers_folder_source,
    is_bfl_file,
    load_block,
    load_head,
)  # fmt: skip
from gpu.svdquant.decompose import DecomposeConfig
from gpu.version import __version__

MANIFEST = "manifest.json"
SAMPLES = "samples.safetensors"
ENGINE_VERSION = 1  # bump when the shard layout or sample recipe changes: old parts folders are discarded


def parts_dir(out_path: Path) -> Path:
    return out_path.with_name(out_path.name + ".parts")


class ActivationStore:
    """Per-sample block inputs: (hidden [1, S_img, D], encoder [1, S_txt, D]) in runtime dtype.

    In RAM, or one safetensors file per sample under ``spill`` when the estimate exceeds the RAM budget."""

    def __init__(self, spill: Path | None) -> None:
        self.spill = spill
        self.mem: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        if spill is not None:
            spill.mkdir(parents=True, exist_ok=True)

    def put(self, i: int, h: torch.Tensor, e: torch.Tensor) -> None:
        h, e = h.detach().cpu(), e.detach().cpu()
        if self.spill is None:
            self.mem[i] = (h, e)
        else:
            path = self.spill / f"{i}.safetensors"  # scratch, rewritten on resume: no fsync needed
            with output_errors(path):  # a full disk: OutputError naming the file, not a traceback
                save_file({"h": h.contiguous(), "e": e.contiguous()}, str(path))

    def get(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.spill is None:
            return self.mem[i]
        d = load_file(str(self.spill / f"{i}.safetensors"))
        return d["h"], d["e"]


def quantize_model(
    source: str | Path,
    out_path: Path | str,
    config: QuantizeConfig | None = None,
    on_event: Callable[[QuantizeEvent], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    library: ModelLibrary | None = None,
    device: torch.device | None = None,
    samples_override: Callable[[WeightSource, QuantizeConfig], list[CalibSample]] | None = None,
) -> Path:
    """Quantize ``source`` (library name, diffusers folder, or single-file BFL ``.safetensors``) into the SVDQ
    file ``out_path``, one block at a time, resumably. ``samples_override`` (benchmarks without text
    encoders) supplies the calibration samples instead of the text encoders + trajectories."""
    config = config or QuantizeConfig()
    config.validate()
    library = library or ModelLibrary()
    out_path = Path(out_path)
    device = device or default_device()
    dtype = runtime_dtype(device)
    started = time.perf_counter()
    quiet_libraries()

    def emit(kind: str, message: str, **kw) -> None:
        if on_event is not None:
            on_event(QuantizeEvent(kind, message, elapsed_s=time.perf_counter() - started, **kw))

    def check_cancel() -> None:
        if should_cancel is not None and should_cancel():
            raise Cancelled()

    src, base_entry, entry_for_record, storage_dtype = _open_source(source, library, config)
    adapter = adapter_named("flux")
    for kind in ("transformer_blocks", "single_transformer_blocks"):  # before any calibration or file
        check_rank_fits(adapter.quantizable_linears(_prefixed(block_module(src.config, kind), kind)), config)
    defaults = dict(base_entry.facts.defaults) if base_entry is not None else dict(FALLBACK_DEFAULTS)
    steps = calibration_steps(config.calib_steps, defaults)
    key = _resume_key(src, config, dtype, storage_dtype)
    parts = parts_dir(out_path)
    manifest = _read_manifest(parts)
    if parts.exists() and (not config.resume or manifest.get("key") != key):
        shutil.rmtree(parts)  # other settings, other source, or a fresh start was asked for
        manifest = {}
    parts.mkdir(parents=True, exist_ok=True)
    manifest = manifest or {"key": key, "engine": ENGINE_VERSION, "tool": __version__, "done": {}, "layers": {}}
    _write_manifest(parts, manifest)

    head = load_head(src, device, dtype)
    blocks = [("transformer_blocks", i) for i in range(src.n_double)]
    blocks += [("single_transformer_blocks", i) for i in range(src.n_single)]
    prompts_n = 0
    if (parts / SAMPLES).is_file():
        samples = _load_samples(parts / SAMPLES)
        prompts_n = int(manifest.get("prompts", 0))
        emit("stage", f"resuming: {len(manifest['done'])}/{len(blocks)} blocks already done")
    else:
        if samples_override is not None:
            samples = samples_override(src, config)
        else:
            assert base_entry is not None
            samples, prompts_n = _record_samples(src, head, blocks, base_entry, defaults, steps, config, device,
                                                 dtype, should_cancel, emit)  # fmt: skip
        _save_samples(parts / SAMPLES, samples)
        manifest["prompts"] = prompts_n
        _write_manifest(parts, manifest)

    # Per-block layer counts give each layer its whole-model index (its collector seed, its event index).
    counts = {kind: len(adapter.quantizable_linears(_prefixed(block_module(src.config, kind), kind)))
              for kind in {k for k, _ in blocks}}  # fmt: skip
    total_layers = sum(counts[k] for k, _ in blocks)
    per_sample = _activation_bytes(samples[0], src.config, dtype) if samples else 0
    spill = parts / "act" if 2 * per_sample * len(samples) > config.ram_budget_gib * 2**30 / 2 else None
    emit("stage", f"{len(samples)} samples, {len(blocks)} blocks, {total_layers} layers"
                  f"{' (activations spilled to disk)' if spill else ''}")  # fmt: skip

    store, extras = _preamble(head, samples, device, ActivationStore(spill))
    dcfg = DecomposeConfig(refine_iters=config.refine_iters, seed=config.seed, dtype=storage_dtype)
    offset = 0
    run_t0, run_layers = time.perf_counter(), 0
    for bi, (kind, index) in enumerate(blocks):
        check_cancel()
        name = f"{kind}.{index}"
        block = load_block(src, kind, index, device, dtype)
        prefixed = _prefixed(block, kind, index)
        targets = adapter.quantizable_linears(prefixed)
        finished = name in manifest["done"]
        collectors = None
        handles = []
        if not finished:
            linears = {n: m for n, (m, _r) in targets.items()}
            collectors = make_collectors(linears, config.seed, config.max_tokens_per_layer, offset)
            handles = hooked(linears, collectors)
        nxt = ActivationStore(spill.with_name(f"act{bi % 2}") if spill else None)
        try:
            for i in range(len(samples)):
                h, e = store.get(i)
                temb, rot = extras[i]
                with torch.inference_mode():
                    e2, h2 = block(hidden_states=h.to(device), encoder_hidden_states=e.to(device), temb=temb,
                                   image_rotary_emb=rot)  # fmt: skip
                nxt.put(i, h2, e2)
        finally:
            for hd in handles:
                hd.remove()
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
                     total=total_layers, layer=lname, error=error,
                     eta_s=per_layer * (total_layers - offset - j - 1))  # fmt: skip
            quantized = set(targets)
            for k, t in prefixed.state_dict().items():
                if k.rsplit(".", 1)[0] not in quantized:
                    shard[k] = t.to(storage_dtype).cpu() if t.is_floating_point() else t.cpu()
            shard_name = f"block-{bi:04d}.safetensors"
            with atomic_path(parts / shard_name) as tmp:
                save_file({k: v.contiguous() for k, v in shard.items()}, str(tmp))
            manifest["done"][name] = shard_name
            _write_manifest(parts, manifest)  # the block counts as done only once its shard is on disk
        offset += len(targets)
        store = nxt
        del block, prefixed, targets, collectors
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()

    check_cancel()
    tensors: dict[str, torch.Tensor] = {}
    for k, t in head.state_dict().items():
        tensors[k] = t.to(storage_dtype).cpu() if t.is_floating_point() else t.cpu()
    for shard_name in manifest["done"].values():
        with safe_open(str(parts / shard_name), framework="pt", device="cpu") as f:
            for k in f.keys():
                tensors[k] = f.get_tensor(k)
    layer_meta = {n: manifest["layers"][n] for n in sorted(manifest["layers"])}
    record = base_record(base_entry, out_path, defaults) if base_entry is not None else {}
    if entry_for_record is not None and base_entry is None:
        record = {"name": entry_for_record, "defaults": defaults}
    meta = checkpoint_meta(adapter.architecture, adapter.diffusers_class, src.config, storage_dtype, layer_meta,
                           config, prompts_n, len(samples), steps, record)  # fmt: skip
    emit("stage", f"writing {out_path.name}")
    save_checkpoint(out_path, tensors, meta)
    del tensors
    gc.collect()
    load_checkpoint(out_path)  # verifies size and checksum before the parts are thrown away
    shutil.rmtree(parts)
    size_mib = out_path.stat().st_size / 2**20
    emit("done", f"wrote {out_path} ({size_mib:.1f} MiB)", index=total_layers, total=total_layers)
    return out_path


def _open_source(source, library: ModelLibrary, config: QuantizeConfig):
    """-> (weight source, entry supplying text encoders/defaults or None, name to record, storage dtype)."""
    path = Path(str(source)).expanduser()
    if path.is_file() and is_bfl_file(path):
        base = library.resolve(config.base) if config.base else None
        return bfl_file_source(path), base, path.stem, torch.bfloat16
    entry: ModelEntry = library.resolve(str(source))
    if entry.facts is None or entry.facts.kind != "diffusers":
        raise ModelLoadError(f"{entry.name}: only a 16-bit diffusers pipeline folder can be quantized")
    storage = torch.float16 if entry.facts.precision == "fp16" else torch.bfloat16
    return diffusers_folder_source(entry.path), entry, entry.name, storage


def _prefixed(block: torch.nn.Module, kind: str, index: int = 0) -> torch.nn.Module:
    """Wraps a block so its module names read ``kind.index.…`` (what the adapter rules and checkpoint use)."""
    outer = torch.nn.Module()
    blocks = torch.nn.Module()
    blocks.add_module(str(index), block)
    outer.add_module(kind, blocks)
    return outer


def _resume_key(src: WeightSource, config: QuantizeConfig, dtype, storage) -> str:
    blob = json.dumps([ENGINE_VERSION, src.identity(), config.fingerprint(), str(dtype), str(storage)],
                      sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()


def _read_manifest(parts: Path) -> dict:
    try:
        return json.loads((parts / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _write_manifest(parts: Path, manifest: dict) -> None:
    atomic_write_bytes(parts / MANIFEST, json.dumps(manifest, indent=1).encode())


def _save_samples(path: Path, samples: list[CalibSample]) -> None:
    flat = {f"{i}.{k}": v.detach().cpu().clone().contiguous() for i, s in enumerate(samples) for k, v in s.items()}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata={"count": str(len(samples))})


def _load_samples(path: Path) -> list[CalibSample]:
    with safe_open(str(path), framework="pt", device="cpu") as f:
        n = int(f.metadata()["count"])
        out: list[CalibSample] = [{} for _ in range(n)]
        for k in f.keys():
            i, name = k.split(".", 1)
            out[int(i)][name] = f.get_tensor(k)
    return out


def _activation_bytes(sample: CalibSample, config: dict, dtype: torch.dtype) -> int:
    dim = config["num_attention_heads"] * config["attention_head_dim"]
    tokens = sample["hidden_states"].shape[1] + sample["encoder_hidden_states"].shape[1]
    return tokens * dim * torch.empty((), dtype=dtype).element_size()


def _preamble(head, samples: list[CalibSample], device, store: ActivationStore):
    """FluxTransformer2DModel.forward up to the first block, per sample -> (store, [(temb, rotary)])."""
    extras = []
    rot_cache: list[tuple[torch.Tensor, tuple]] = []
    with torch.inference_mode():
        for i, s in enumerate(samples):
            s = {k: v.to(device) for k, v in s.items()}
            h = head.x_embedder(s["hidden_states"])
            timestep = s["timestep"].to(h.dtype) * 1000
            guidance = s.get("guidance")
            if guidance is not None:
                guidance = guidance.to(h.dtype) * 1000
                temb = head.time_text_embed(timestep, guidance, s["pooled_projections"])
            else:
                temb = head.time_text_embed(timestep, s["pooled_projections"])
            e = head.context_embedder(s["encoder_hidden_states"])
            ids = torch.cat((s["txt_ids"], s["img_ids"]), dim=0)
            rot = next((r for cached, r in rot_cache if cached.shape == ids.shape and torch.equal(cached, ids)), None)
            if rot is None:
                rot = head.pos_embed(ids)
                rot_cache.append((ids, rot))
            store.put(i, h, e)
            extras.append((temb, rot))
    return store, extras


def streamed_forward(src: WeightSource, head, blocks, device, dtype) -> Callable[[list[CalibSample]], list]:
    """The whole transformer over a list of inputs, loading each block once per call (trajectory steps)."""

    def run(inputs: list[CalibSample]) -> list[torch.Tensor]:
        store, extras = _preamble(head, inputs, device, ActivationStore(None))
        for kind, index in blocks:
            block = load_block(src, kind, index, device, dtype)
            with torch.inference_mode():
                for i in range(len(inputs)):
                    h, e = store.get(i)
                    temb, rot = extras[i]
                    e, h = block(hidden_states=h.to(device), encoder_hidden_states=e.to(device), temb=temb,
                                 image_rotary_emb=rot)  # fmt: skip
                    store.put(i, h, e)
            del block
        outs = []
        with torch.inference_mode():
            for i in range(len(inputs)):
                h, _ = store.get(i)
                h = head.norm_out(h.to(device), extras[i][0])
                outs.append(head.proj_out(h).cpu())
        return outs

    return run


def _record_samples(src, head, blocks, entry: ModelEntry, defaults, steps, config, device, dtype, should_cancel,
                    emit) -> tuple[list[CalibSample], int]:
    """Text encoders (then freed) + streamed trajectories -> samples."""
    import importlib

    adapter = adapter_named(entry.facts.architecture)
    pipeline_cls = getattr(importlib.import_module("diffusers"), adapter.pipeline_class)
    prompts = calibration_prompts(entry.path, defaults, config.calib_prompts)
    emit("stage", "loading text encoders")
    pipe = pipeline_cls.from_pretrained(entry.path, transformer=None, vae=None, dtype=dtype).to(device)
    pipe.set_progress_bar_config(disable=True)
    try:
        samples = make_samples(pipe, prompts, steps, defaults, config, dtype, bool(src.config["guidance_embeds"]),
                               int(src.config["in_channels"]), streamed_forward(src, head, blocks, device, dtype),
                               should_cancel, emit)  # fmt: skip
    finally:
        del pipe
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return samples, len(prompts)
