"""The block loop of a quantize run: each transformer block loaded in turn, every calibration sample run through it
with input hooks (token-subsampling collectors), its linears quantized and the finished block written to its shard
(``gpu.streaming.shards``), and its outputs kept as the next block's inputs (``ActivationStore``: in RAM, or on
disk above the RAM budget). A block the manifest records as finished is only run forward (``quantize_blocks``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gpu.adapters import adapter_named
from gpu.adapters.base import ModelAdapter
from gpu.generation.memory import module_bytes
from gpu.quantizer.calibrate import hooked, make_collectors
from gpu.quantizer.config import QuantizeConfig
from gpu.quantizer.shared import CalibSample, layer_message, quantize_layers
from gpu.streaming.activation_store import ActivationStore, activation_bytes, remove_scratch, spills
from gpu.streaming.forward import preamble
from gpu.streaming.memory import RunStage, release
from gpu.streaming.parts_folder import SCRATCH_FOLDERS, write_manifest
from gpu.streaming.samples_file import sample_tokens
from gpu.streaming.shards import write_shard
from gpu.streaming.source import WeightSource, block_module, load_block, prefixed
from gpu.svdquant.calibration import LayerCalibration
from gpu.svdquant.decompose import DecomposeConfig


@dataclass
class _BlockLoop:
    """What every block of the loop is run with, and the layers quantized so far (for the events' ETA)."""

    src: WeightSource
    blocks: list[tuple[str, int]]
    samples: list[CalibSample]
    extras: list[tuple[torch.Tensor, tuple]]  # per sample: (temb [1, D], rotary embedding), from ``preamble``
    spill: Path | None
    parts: Path
    manifest: dict
    config: QuantizeConfig
    dcfg: DecomposeConfig
    adapter: ModelAdapter
    storage_dtype: torch.dtype
    device: torch.device
    dtype: torch.dtype
    stage: RunStage
    emit: Callable[..., None]
    check_cancel: Callable[[], None]
    total_layers: int
    offset: int = 0  # the whole-model index of the block's first layer (its collector seed, its event index)
    started: float = 0.0
    layers_done: int = 0  # quantized by this run, for the time per layer


def quantize_blocks(src: WeightSource, head: nn.Module, blocks: list[tuple[str, int]], samples: list[CalibSample],
                    parts: Path, manifest: dict, config: QuantizeConfig, storage_dtype: torch.dtype,
                    device: torch.device, dtype: torch.dtype, stage: RunStage, emit: Callable[..., None],
                    check_cancel: Callable[[], None]) -> int:  # fmt: skip
    """Runs ``samples`` through every block of ``blocks`` in turn, quantizing those ``manifest`` does not record as
    finished into their shards under ``parts`` (recorded in the manifest as each is written) -> the model's count of
    quantizable layers. The block inputs spilled to disk are removed after the last block, and at once on a cancel
    or failure (resume never reads them)."""
    adapter = adapter_named("flux")
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
        loop = _BlockLoop(src, blocks, samples, extras, spill, parts, manifest, config, dcfg, adapter, storage_dtype,
                          device, dtype, stage, emit, check_cancel, total_layers, started=time.perf_counter())
        for bi in range(len(blocks)):
            check_cancel()
            store = _run_block(loop, bi, store)
    finally:  # after the last block, and at once on a cancel or failure (resume never reads them)
        for folder in SCRATCH_FOLDERS:
            remove_scratch(parts / folder)
    return total_layers


def _run_block(loop: _BlockLoop, bi: int, store: ActivationStore) -> ActivationStore:
    """Block ``bi`` of the loop over the inputs in ``store`` (discarded once read), quantized unless finished ->
    the store of its outputs, the next block's inputs."""
    kind, index = loop.blocks[bi]
    name = f"{kind}.{index}"
    finished = name in loop.manifest["done"]
    loop.stage.doing = f"{'running' if finished else 'quantizing'} block {bi + 1} of {len(loop.blocks)}"
    block = load_block(loop.src, kind, index, loop.device, loop.dtype)
    named_block = prefixed(block, kind, index)
    targets = loop.adapter.quantizable_linears(named_block)
    collectors = None
    handles = []
    if not finished:
        linears = {n: m for n, (m, _r) in targets.items()}
        collectors = make_collectors(linears, loop.config.seed, loop.config.max_tokens_per_layer, loop.offset)
        handles = hooked(linears, collectors)
    # The last block's outputs feed no block: spilled, they were a whole set of inputs written for nothing.
    keep = bi + 1 < len(loop.blocks)
    nxt = ActivationStore(loop.spill.with_name(f"act{bi % 2}") if loop.spill and keep else None)
    try:
        _propagate(loop, block, store, nxt if keep else None)
    finally:
        for hd in handles:
            hd.remove()
    store.discard()  # this block's inputs, read by no other block: before the quantization, which may take long
    if not finished:
        assert collectors is not None
        results = {n: c.result for n, c in collectors.items()}
        _quantize_block(loop, bi, named_block, targets, lambda n, r=results: r[n]())
    loop.offset += len(targets)
    freed = module_bytes(block)
    del block, named_block, targets, collectors
    release(freed, loop.device)
    return nxt


def _propagate(loop: _BlockLoop, block: nn.Module, store: ActivationStore, nxt: ActivationStore | None) -> None:
    """Every sample's inputs in ``store`` (hidden [1, S_img, D], encoder [1, S_txt, D]) run through ``block`` on
    the device, its outputs (the same shapes) put in ``nxt`` (None: the last block, whose outputs feed none)."""
    for i in range(len(loop.samples)):
        h, e = store.get(i)
        temb, rot = loop.extras[i]
        with torch.inference_mode():
            e2, h2 = block(hidden_states=h.to(loop.device), encoder_hidden_states=e.to(loop.device), temb=temb,
                           image_rotary_emb=rot)  # fmt: skip
        if nxt is not None:
            nxt.put(i, h2, e2)


def _quantize_block(loop: _BlockLoop, bi: int, named_block: nn.Module, targets: dict[str, tuple[nn.Linear, str]],
                    calibration: Callable[[str], LayerCalibration]) -> None:  # fmt: skip
    """Quantizes block ``bi``'s linears ``targets`` (name -> (linear, adapter role)) from what their collectors
    gathered (``calibration``: a layer's name -> its calibration) and writes the block's shard: the quantized
    layers, the block's other tensors at the storage dtype. The block counts as done only once its shard is on disk
    and the manifest records it."""
    shard: dict[str, torch.Tensor] = {}
    total, blocks = loop.total_layers, len(loop.blocks)
    layers = quantize_layers(targets, calibration, loop.config, loop.dcfg, loop.adapter)
    for j, (lname, lt, meta, error) in enumerate(layers):
        loop.check_cancel()
        shard.update(lt)
        loop.manifest["layers"][lname] = meta
        loop.layers_done += 1
        per_layer = (time.perf_counter() - loop.started) / loop.layers_done
        loop.emit("layer", f"block {bi + 1}/{blocks} {layer_message(lname, meta)}", index=loop.offset + j + 1,
                  total=total, layer=lname, error=error, block=bi + 1, blocks=blocks,
                  eta_s=per_layer * (total - loop.offset - j - 1))  # fmt: skip
    quantized = set(targets)
    for k, t in named_block.state_dict().items():
        if k.rsplit(".", 1)[0] not in quantized:
            shard[k] = t.to(loop.storage_dtype).cpu() if t.is_floating_point() else t.cpu()
    shard_name = f"block-{bi:04d}.safetensors"
    digest = write_shard(loop.parts / shard_name, shard)
    kind, index = loop.blocks[bi]
    loop.manifest["done"][f"{kind}.{index}"] = {"file": shard_name, "sha256": digest}
    write_manifest(loop.parts, loop.manifest)  # the block counts as done only once its shard is on disk
