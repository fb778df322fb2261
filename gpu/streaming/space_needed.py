"""The disk space a quantize run still needs beside its output, estimated from what it reads before any work
(``space_needed``: headers and meta-device skeletons, no tensor loaded), and the run's own check of it made before
the run (``check_disk_space``). What the bytes are and the refusal itself: ``gpu.streaming.disk_space``."""

from __future__ import annotations

from pathlib import Path

import torch

from gpu.adapters import adapter_named
from gpu.generation.pipeline_loader import default_device, runtime_dtype
from gpu.library import ModelLibrary
from gpu.quantizer.config import QuantizeConfig
from gpu.quantizer.shared import calibration_kwargs
from gpu.streaming.activation_store import activation_bytes, spills
from gpu.streaming.disk_space import (
    HEADER_PER_TENSOR,
    SpaceNeeded,
    block_bytes,
    check_free_space,
    folder_usage,
    head_bytes,
    unpublished_bytes,
)
from gpu.streaming.parts_folder import SCRATCH_FOLDERS, check_parts_folder, not_a_folder, parts_dir, read_manifest
from gpu.streaming.replaced_parts import deleted_for
from gpu.streaming.resume import resumes
from gpu.streaming.run_inputs import RunInputs, run_inputs
from gpu.streaming.samples_file import kept_samples
from gpu.streaming.source import block_module, head_module, prefixed, transformer_blocks


def check_disk_space(source: str | Path, out_path: Path | str, config: QuantizeConfig,
                     library: ModelLibrary | None = None, device: torch.device | None = None) -> None:  # fmt: skip
    """The run's own check of the disk space it needs (``DiskSpaceError``), made before the run, cheaply: before
    the app has its generation model unloaded for a run refused at once. The same estimate from the same reads
    as ``resume_key`` (headers, meta-device skeletons); samples a parts folder keeps are counted from their file's
    header, neither read nor hashed (damaged, they are recorded again, which the run's own check counts). Raises
    what the run raises before any work as well (an unreadable source, a parts folder in the way)."""
    config.validate()
    dtype = runtime_dtype(device or default_device())
    run = run_inputs(source, config, library or ModelLibrary(), dtype, False)
    out_path = Path(out_path)
    parts = parts_dir(out_path)
    check_parts_folder(parts)
    manifest = read_manifest(parts)
    # The model file a run was killed writing, in its scratch folder (hidden, as big as the model), which the run
    # deletes before its own check: counted as taken, a resume that fit was refused, the space unaccounted for.
    unpublished = unpublished_bytes(out_path)
    if parts.exists() and not resumes(manifest, run.key):
        need = space_needed(run, config, transformer_blocks(run.src), {}, None, False, dtype)
        freed_by = deleted_for(manifest, run.key) + (f", and {_UNPUBLISHED}" if unpublished else "")
        check_free_space(out_path.parent, need, folder_usage(parts)[0] + unpublished, freed_by)
        return
    need = space_needed(run, config, transformer_blocks(run.src), manifest, kept_samples(parts, manifest), False,
                         dtype)  # fmt: skip
    # A killed run's spilled inputs, which the run deletes before its check.
    scratch = sum(folder_usage(parts / folder)[0] for folder in SCRATCH_FOLDERS if not not_a_folder(parts / folder))
    left = " and ".join(words for words, size in ((_SPILLED, scratch), (_UNPUBLISHED, unpublished)) if size)
    check_free_space(out_path.parent, need, scratch + unpublished, f"deleting {left or _SPILLED}")


# What a stopped or killed run left that the next run deletes before it writes, as the disk space refusal says it.
_SPILLED = "the block inputs a stopped run spilled to disk"
_UNPUBLISHED = "the model file a killed run did not finish writing"


def space_needed(run: RunInputs, config: QuantizeConfig, blocks: list[tuple[str, int]], manifest: dict,
                  samples: tuple[int, int] | None, samples_supplied: bool,
                  dtype: torch.dtype) -> SpaceNeeded:  # fmt: skip
    """What the run still writes beside its output (``gpu.streaming.disk_space``): the model file, the blocks that
    ``manifest`` does not record as finished, the samples when they are still to be recorded (``samples``, the
    (count, tokens per sample) of those kept, None), and the block inputs if they spill. Samples a caller supplies
    (benchmarks) are not known yet: not counted. Sizes only: the head and blocks are meta-device skeletons."""
    adapter = adapter_named("flux")
    per_kind = {}
    for kind in {k for k, _ in blocks}:
        block = prefixed(block_module(run.src.config, kind), kind)
        per_kind[kind] = block_bytes(block, adapter.quantizable_linears(block), config, run.storage_dtype)
    model = head_bytes(head_module(run.src), run.storage_dtype) + sum(per_kind[k] for k, _ in blocks)
    todo = sum(per_kind[k] for k, i in blocks if f"{k}.{i}" not in manifest.get("done", {}))
    recording = 0
    if samples is not None:
        count, tokens = samples
    elif samples_supplied:
        count, tokens = 0, 0
    else:
        count, tokens, recording = samples_to_record(run, config, dtype)
    per_sample = activation_bytes(tokens, run.src.config, dtype)
    # Two sets of inputs at a time, one file of two tensors per sample in each.
    spill = 2 * count * (per_sample + 2 * HEADER_PER_TENSOR) if spills(per_sample, count, config) else 0
    return SpaceNeeded(model, todo, recording, spill)


def samples_to_record(run: RunInputs, config: QuantizeConfig, dtype: torch.dtype) -> tuple[int, int, int]:
    """-> (how many samples the calibration records, tokens per sample, bytes of their file), from the settings
    (``gpu.quantizer.shared.denoise_and_record``: each prompt's chosen steps, both branches under true CFG;
    FLUX packs 2 x 2 latent pixels of an 8x-downscaled image into one token)."""
    cfg = run.src.config
    kw = calibration_kwargs(run.defaults, bool(cfg["guidance_embeds"]))
    count = len(run.prompts) * min(config.timesteps_per_prompt, run.steps) * (2 if kw["true_cfg"] else 1)
    image, text = (kw["height"] // 16) * (kw["width"] // 16), kw["max_sequence_length"]
    # hidden_states, encoder_hidden_states, their position ids (3 each), pooled projections, timestep, guidance
    values = image * (cfg["in_channels"] + 3) + text * (cfg["joint_attention_dim"] + 3) + cfg["pooled_projection_dim"]
    per_sample = (values + 2) * torch.empty((), dtype=dtype).element_size() + 7 * HEADER_PER_TENSOR
    return count, image + text, count * per_sample
