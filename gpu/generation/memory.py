"""Applies a ``MemoryPolicy`` (``gpu.runtime.memory_policy``) to a diffusers FLUX pipeline.

Generation runs in stages: the prompt is encoded with the text encoders wherever the policy puts them
(resident on the GPU, visiting it, or on the CPU), the embeddings go to the transformer's device, and the
pipeline denoises and decodes from those embeddings with the text encoders detached, so nothing in it
can pull them back onto the GPU. The VAE tiles large decodes when the policy says so.

"Visiting" the GPU copies an encoder's weights there and, afterwards, simply drops the copies: the CPU
tensors were never replaced, so there is no copy back (9 GiB of T5-XXL each way would cost a second).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gpu.errors import CheckpointError
from gpu.generation.prompt_length import t5_encoding
from gpu.runtime.memory_policy import (
    FLUX_DEV_INT4,
    REFERENCE_SIZE,
    EncoderSize,
    MemoryPolicy,
    ModelSizes,
    choose_policy,
    detect_total_vram,
)

log = logging.getLogger(__name__)

TEXT_ENCODERS = ("text_encoder", "text_encoder_2")  # FluxPipeline's names (CLIP, T5)
# A text encoder keeps its embeddings in system memory between prompts; at most this many prompts' embeddings
# are kept per pipeline (repeated prompts and batches skip the encoders).
PROMPT_CACHE_SIZE = 8


# -- sizes ------------------------------------------------------------------------------------------------


def tensors_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of distinct tensors (tied weights counted once)."""
    seen: dict[int, torch.Tensor] = {}
    for t in tensors:
        seen[id(t)] = t
    return sum(t.numel() * t.element_size() for t in seen.values())


def module_bytes(module: nn.Module) -> int:
    return tensors_bytes([*module.parameters(), *module.buffers()])


def block_list(module: nn.Module) -> nn.ModuleList | None:
    """The encoder's stack of blocks: its ``nn.ModuleList`` holding the most bytes (T5 ``encoder.block``,
    CLIP ``encoder.layers``); None when it has none."""
    lists = [m for m in module.modules() if isinstance(m, nn.ModuleList) and len(m) > 0]
    return max(lists, key=module_bytes, default=None)


def encoder_size(module: nn.Module) -> EncoderSize:
    """An encoder's bytes: its parameters and buffers (what goes to the GPU, whole or by block), and in
    ``in_ram`` the originals its LoRA'd layers keep for removal, which stay in CPU memory wherever the plan puts
    the encoder (``gpu.lora.apply``)."""
    from gpu.lora.apply import held_originals

    total = module_bytes(module)
    in_ram = tensors_bytes(held_originals(module))
    blocks = block_list(module)
    if blocks is None:
        return EncoderSize(total, total, in_ram)
    return EncoderSize(total, total - module_bytes(blocks) + max(module_bytes(b) for b in blocks), in_ram)


def transformer_bytes(transformer: nn.Module) -> int:
    """The transformer's parameters and buffers, with the LoRA branches it carries, plus the originals its
    LoRA'd layers keep for removal."""
    from gpu.lora.apply import held_originals

    return tensors_bytes([*transformer.parameters(), *transformer.buffers(), *held_originals(transformer)])


def kernel_copies_bytes(transformer: nn.Module, device: torch.device) -> int:
    """GPU bytes the fused kernels that will run the transformer's SVDQ layers on ``device`` keep beside the
    layers' buffers (e.g. the Hopper path's down projection divided by the smoothing; 0 on the reference path)."""
    from gpu.modules.svdq_linear import SVDQLinear
    from gpu.runtime.dispatch import held_bytes

    return held_bytes([m for m in transformer.modules() if isinstance(m, SVDQLinear)], device)


def transformer_run_bytes(transformer: nn.Module, device: torch.device) -> int:
    """What the memory plan counts for the transformer on ``device``: ``transformer_bytes`` plus
    ``kernel_copies_bytes``."""
    return transformer_bytes(transformer) + kernel_copies_bytes(transformer, device)


def weight_bits(formats: Iterable[str]) -> int:
    """The widest of the quantized weight ``formats`` (``gpu.quant`` names) in bits; 16 when there are none."""
    from gpu.quant import get_format

    return max((get_format(f).bits for f in formats), default=16)


def pipeline_sizes(pipe: Any, device: torch.device) -> ModelSizes:
    """Run-time bytes of a loaded pipeline's parts (as loaded: dtype already the run-time one; the transformer
    with its LoRAs and the kernels' copies)."""
    encoders = tuple(encoder_size(getattr(pipe, n)) for n in TEXT_ENCODERS if getattr(pipe, n, None) is not None)
    return ModelSizes(
        transformer=transformer_run_bytes(pipe.transformer, device), text_encoders=encoders,
        vae=module_bytes(pipe.vae), weight_bits=transformer_weight_bits(pipe.transformer),
        **widths(pipe.transformer.config, pipe.vae.config),
    )  # fmt: skip


def widths(transformer_config: Mapping[str, Any], vae_config: Mapping[str, Any]) -> dict[str, int]:
    """``ModelSizes``' ``transformer_width`` and ``decoder_width`` from the transformer's and the VAE's configs,
    those they say (FLUX.1's stand for a value missing or odd: a config that could not be read is {})."""
    heads, head_dim = transformer_config.get("num_attention_heads"), transformer_config.get("attention_head_dim")
    channels = vae_config.get("block_out_channels")
    found = {}
    if _positive(heads) and _positive(head_dim):
        found["transformer_width"] = heads * head_dim
    # The decoder's last block works at full resolution in block_out_channels[0] channels, on maps the block before
    # it upsampled there in [1]: the wider of the two sets the decode's peak ([1]: FLUX.1's 256, not [0]'s 128).
    # By [0] alone, a VAE of [64, 256, 512, 512] was planned half of what its decode holds.
    full_resolution = channels[:2] if isinstance(channels, (list, tuple)) else ()
    if full_resolution and all(_positive(c) for c in full_resolution):
        found["decoder_width"] = max(full_resolution)
    return found


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def transformer_weight_bits(transformer: nn.Module) -> int:
    """``weight_bits`` of a loaded transformer's SVDQ layers (16: it has none)."""
    from gpu.modules.svdq_linear import SVDQLinear

    return weight_bits(m.spec.weight_format for m in transformer.modules() if isinstance(m, SVDQLinear))


def _header(path: Path) -> dict[str, Any]:
    """The checked header of the safetensors file at ``path`` (``pipeline_loader.safetensors_header``: read once in
    a describe or job); ``CheckpointError`` when it is damaged."""
    from gpu.generation.pipeline_loader import safetensors_header

    return safetensors_header(path)


_BLOCK_KEY = re.compile(r"^(.*\.(?:block|layers|blocks))\.(\d+)\.")


def folder_sizes(folder: Path, value_bytes: int = 2) -> tuple[int, int]:
    """(bytes, streamed bytes) of a component folder at ``value_bytes`` a value (the run-time dtype's: 2 on a
    GPU, 4 on the CPU), from safetensors headers only. A file that cannot be read is left out: a plan never fails
    on it (loading the pipeline names the damage, in its words)."""
    from gpu.safetensors_header import loaded_weight_files

    total, blocks = 0, {}
    try:
        files = [f for f in loaded_weight_files(folder) if f.is_file()]  # not a .fp16 variant beside them too
    except (OSError, ValueError):  # an unreadable folder or a damaged index: loading the pipeline names it
        files = []
    for f in files:
        try:
            header = _header(f)
        except CheckpointError:  # damaged (or gone) since the model was checked
            continue
        for key, entry in header.items():
            if key == "__metadata__":
                continue
            nbytes = value_bytes * math.prod(entry["shape"])  # the run-time dtype whatever the file stores
            total += nbytes
            if m := _BLOCK_KEY.match(key):
                blocks[m.groups()] = blocks.get(m.groups(), 0) + nbytes
    streamed = total - sum(blocks.values()) + max(blocks.values(), default=0)
    return total, streamed


_FLOAT_DTYPES = ("BF16", "F16", "F32", "F64")  # safetensors dtypes the loaders cast to the run-time dtype


def svdq_sizes(path: Path, value_bytes: int = 2) -> tuple[int, int]:
    """(run-time bytes, ``weight_bits``) of an SVDQ file's transformer, from its header: the quantized layers'
    buffers as stored (no path unpacks them), every other floating-point tensor at ``value_bytes`` a value (the
    run-time dtype ``gpu.checkpoint.skeleton.cast_unquantized`` gives it: 4 on the CPU). ``CheckpointError`` when
    the file cannot be read."""
    from gpu.generation.pipeline_loader import checkpoint_meta

    layers = checkpoint_meta(path).layers  # validated: every spec's formats are known
    total = 0
    for key, entry in _header(path).items():
        if key == "__metadata__":
            continue
        stored = entry["data_offsets"][1] - entry["data_offsets"][0]
        cast = entry["dtype"] in _FLOAT_DTYPES and key.rpartition(".")[0] not in layers
        total += value_bytes * math.prod(entry["shape"]) if cast else stored
    return total, weight_bits(layer["weight_format"] for layer in layers.values())


def predicted_sizes(facts: Any, base_path: Path | None, value_bytes: int = 2) -> ModelSizes:
    """Sizes of a model that is not loaded at ``value_bytes`` a 16-bit value (the run-time dtype's: 2 on a GPU, 4
    on the CPU), from file headers (FLUX.1-dev's encoders/VAE when the base pipeline is unknown). ``facts``:
    ``gpu.model_files.ModelFacts``. Never fails on a file that cannot be read: an SVDQ file counts as its size on
    disk, another file is left out (loading names what is wrong with it)."""
    from gpu.pipeline_config import config_json

    if facts.kind == "svdq":
        try:
            transformer, bits = svdq_sizes(facts.path, value_bytes)
            transformer_config = _svdq_config(facts.path)
        except CheckpointError:  # damaged since it was listed: its size on disk; 4 bits, what SVDQ files mostly are
            (transformer, bits), transformer_config = (facts.size_bytes, 4), {}
    else:
        transformer, bits = value_bytes * facts.transformer_params, 16
        transformer_config = config_json(facts.path / "transformer")
    scale = value_bytes // 2  # FLUX_DEV_INT4 counts 16-bit encoders and VAE
    flux_vae = FLUX_DEV_INT4.vae * scale
    if base_path is None or not (base_path / "model_index.json").is_file():
        encoders = tuple(EncoderSize(e.total * scale, e.streamed * scale) for e in FLUX_DEV_INT4.text_encoders)
        return ModelSizes(transformer, encoders, flux_vae, bits, **widths(transformer_config, {}))
    encoders = tuple(EncoderSize(*folder_sizes(base_path / n, value_bytes)) for n in TEXT_ENCODERS
                     if (base_path / n).is_dir())  # fmt: skip
    vae = folder_sizes(base_path / "vae", value_bytes)[0] if (base_path / "vae").is_dir() else flux_vae
    return ModelSizes(transformer, encoders, vae, bits, **widths(transformer_config, config_json(base_path / "vae")))


def _svdq_config(path: Path) -> dict[str, Any]:
    """The transformer config an SVDQ file records; ``CheckpointError`` when it cannot be read."""
    from gpu.generation.pipeline_loader import checkpoint_meta

    config = checkpoint_meta(path).model_config
    return config if isinstance(config, dict) else {}


def policy_for_pipeline(
    pipe: Any, device: torch.device, image_size: tuple[int, int] = REFERENCE_SIZE
) -> MemoryPolicy:
    """The policy for a loaded (still CPU-resident) pipeline on ``device``, for images of ``image_size`` (the
    model's own): on a GPU weighed against its memory, on the CPU against the RAM."""
    total = detect_total_vram(device)
    if total is not None:
        return choose_policy(total, pipeline_sizes(pipe, device), image_size=image_size)
    from gpu.system_info import installed_ram_bytes

    return choose_policy(None, pipeline_sizes(pipe, device), installed_ram_bytes(), image_size)


# -- placement --------------------------------------------------------------------------------------------


def place_pipeline(pipe: Any, device: torch.device, policy: MemoryPolicy) -> None:
    """Moves the transformer and the VAE to ``device``, the text encoders only when the policy keeps them
    resident (else they stay in system memory and visit the GPU while encoding)."""
    for name, component in pipe.components.items():
        if isinstance(component, nn.Module) and name not in TEXT_ENCODERS:
            component.to(device)
    place_text_encoders(pipe, device, policy)


def place_text_encoders(pipe: Any, device: torch.device, policy: MemoryPolicy) -> None:
    """The text encoders on ``device`` when the policy keeps them resident, else in system memory."""
    for name in TEXT_ENCODERS:
        encoder = getattr(pipe, name, None)
        if isinstance(encoder, nn.Module):
            encoder.to(device if policy.text_encoders == "gpu" else torch.device("cpu"))


def replan(loaded: Any) -> bool:
    """Chooses the memory policy of a loaded pipeline again from its parts' current sizes (after LoRAs grew or
    shrank the transformer), moving the text encoders if their place changes; the VAE follows the new policy at
    the next decode. The new policy is kept either way (its estimates changed); returns whether the plan itself
    (what goes where, VAE tiles, whether it fits) changed. ``loaded``: ``pipeline_loader.LoadedPipeline``."""
    old = loaded.policy
    if old is None or old.device != "cuda":  # the CPU plan has no sizes to weigh
        return False
    from gpu.generation.pipeline_loader import default_size

    facts = loaded.entry.facts
    size = default_size(facts) if facts is not None else REFERENCE_SIZE
    loaded.policy = policy = policy_for_pipeline(loaded.pipe, loaded.device, size)
    if policy.text_encoders != old.text_encoders:
        place_text_encoders(loaded.pipe, loaded.device, policy)
    if _placement(policy) == _placement(old):
        return False
    log.info("memory plan changed with the transformer's LoRAs: %s", policy.description)
    return True


def _placement(policy: MemoryPolicy) -> tuple:
    return (policy.name, policy.text_encoders, policy.stream_encoder_blocks, policy.vae_tile_size, policy.fits)


class _Visit:
    """Copies of modules' weights on a device, swapped in place of the originals and swapped back.

    The originals are never modified: ``leave`` puts them back and drops the copies (no copy back)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.copies: dict[int, torch.Tensor] = {}
        self.swapped: list[tuple[dict, str, torch.Tensor]] = []

    def enter(self, modules: Iterable[nn.Module]) -> None:
        for module in modules:
            for store in (module._parameters, module._buffers):
                for name, t in list(store.items()):
                    if t is None:
                        continue
                    copy = self.copies.get(id(t))
                    if copy is None:
                        # copy=True even on the same device, so a CPU test sees real copies come and go
                        copy = t.detach().to(self.device, copy=True)
                        if isinstance(t, nn.Parameter):
                            copy = nn.Parameter(copy, requires_grad=False)
                        self.copies[id(t)] = copy
                    self.swapped.append((store, name, t))
                    store[name] = copy

    def leave(self) -> None:
        for store, name, original in reversed(self.swapped):
            store[name] = original
        self.swapped.clear()
        self.copies.clear()


@contextlib.contextmanager
def visiting(module: nn.Module, device: torch.device, by_block: bool) -> Iterator[None]:
    """Runs ``module`` on ``device`` for the duration of the block, with the originals left where they are.

    ``by_block``: only the parts outside the module's block list (embeddings, final norm) visit for the whole
    duration; each block visits just for its own forward (pre/post hooks), so the GPU holds one block."""
    blocks = block_list(module) if by_block else None
    visits = [_Visit(device)]
    hooks: list[Any] = []
    try:
        if blocks is None:
            visits[0].enter(module.modules())
        else:
            inside = {id(m) for b in blocks for m in b.modules()}
            visits[0].enter(m for m in module.modules() if id(m) not in inside)
            for block in blocks:
                visit = _Visit(device)
                visits.append(visit)
                hooks.append(block.register_forward_pre_hook(lambda mod, args, v=visit: v.enter(mod.modules())))
                hooks.append(block.register_forward_hook(lambda mod, args, out, v=visit: v.leave()))
        yield
    finally:
        for h in hooks:
            h.remove()
        for visit in visits:  # a block interrupted mid-forward (OOM) still holds its copies: put originals back
            visit.leave()


def _module_device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


def _clip_pooled(pipe: Any, prompt: str, device: torch.device) -> torch.Tensor:
    """CLIP pooled embedding [1, D_clip] (the text encoder's dtype), exactly as ``FluxPipeline`` makes it."""
    ids = pipe.tokenizer([prompt], padding="max_length", max_length=pipe.tokenizer_max_length, truncation=True,
                         return_tensors="pt").input_ids  # fmt: skip
    return pipe.text_encoder(ids.to(device), output_hidden_states=False).pooler_output


def _t5_embeds(pipe: Any, prompt: str, max_sequence_length: int, device: torch.device) -> torch.Tensor:
    """T5 per-token embeddings [1, max_sequence_length, D_t5] (the text encoder's dtype) of the prompt cut to
    ``max_sequence_length`` tokens (``gpu.generation.prompt_length`` tells the user what that cut leaves out)."""
    ids = t5_encoding(pipe.tokenizer_2, prompt, max_sequence_length).input_ids
    return pipe.text_encoder_2(ids.to(device), output_hidden_states=False)[0]


def _run_encoder(encoder: nn.Module, fn: Any, policy: MemoryPolicy | None, device: torch.device) -> torch.Tensor:
    """``fn(device)`` with ``encoder`` where the policy puts it; falls back to the CPU if visiting the GPU
    runs out of memory (the plan is an estimate; another program may hold memory too)."""
    if policy is None or policy.text_encoders != "gpu-while-encoding":
        return fn(_module_device(encoder))
    try:
        with visiting(encoder, device, policy.stream_encoder_blocks):
            return fn(device)
    except torch.OutOfMemoryError:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        log.warning("the text encoder did not fit on the GPU next to the transformer: encoding on the CPU")
        return fn(_module_device(encoder))


def encode_prompt(
    pipe: Any, policy: MemoryPolicy | None, device: torch.device, prompt: str, max_sequence_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt_embeds [1, L, D_t5], pooled_prompt_embeds [1, D_clip]) on ``device`` in the encoders' dtype.

    Encoders run one after the other (CLIP, then T5), each where the policy puts it, so a visiting policy
    never has both on the GPU at once."""
    pooled = _run_encoder(pipe.text_encoder, lambda d: _clip_pooled(pipe, prompt, d), policy, device)
    pooled = pooled.to(device)  # before T5 visits: the visit's copies are gone, the small result stays
    embeds = _run_encoder(pipe.text_encoder_2, lambda d: _t5_embeds(pipe, prompt, max_sequence_length, d), policy,
                          device).to(device)  # fmt: skip
    return embeds, pooled


def with_prompt_embeds(loaded: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pipeline call arguments with ``prompt``/``negative_prompt`` replaced by embeddings made under the
    loaded pipeline's memory policy (the negative prompt only when true CFG will use it), and the VAE set to
    tile as the policy says for this size. ``loaded``: ``gpu.generation.pipeline_loader.LoadedPipeline``."""
    pipe, policy = loaded.pipe, loaded.policy
    kwargs = dict(kwargs)
    max_len = int(kwargs.get("max_sequence_length", 512))
    cache: dict = loaded.prompt_cache

    from gpu.lora.manager import encoder_loras

    # An encoding made under other LoRAs on the text encoders is another encoding: the key names them.
    loras = tuple(encoder_loras(getattr(pipe, n)) for n in TEXT_ENCODERS if getattr(pipe, n, None) is not None)

    def embeds(text: str) -> tuple[torch.Tensor, torch.Tensor]:
        key = (text, max_len, loras)
        if key not in cache:
            if len(cache) >= PROMPT_CACHE_SIZE:
                cache.pop(next(iter(cache)))
            cache[key] = encode_prompt(pipe, policy, loaded.device, text, max_len)
        return cache[key]

    kwargs["prompt_embeds"], kwargs["pooled_prompt_embeds"] = embeds(kwargs.pop("prompt"))
    negative = kwargs.pop("negative_prompt", None)
    if negative is not None and float(kwargs.get("true_cfg_scale", 1.0)) > 1.0:
        kwargs["negative_prompt_embeds"], kwargs["negative_pooled_prompt_embeds"] = embeds(negative)
    configure_vae(pipe, policy)
    return kwargs


@contextlib.contextmanager
def encoders_detached(pipe: Any) -> Iterator[None]:
    """The pipeline without its text encoders for the duration (denoise and decode from embeddings).

    Older diffusers infer the execution device from the first component in name order (``text_encoder``, in
    system memory under a visiting policy) and would denoise on the CPU; detached, only the transformer and
    the VAE are left to ask. Set with ``object.__setattr__`` so the pipeline's config is not rewritten."""
    saved = {n: pipe.__dict__[n] for n in TEXT_ENCODERS if pipe.__dict__.get(n) is not None}
    try:
        for name in saved:
            object.__setattr__(pipe, name, None)
        yield
    finally:
        for name, module in saved.items():
            object.__setattr__(pipe, name, module)


def configure_vae(pipe: Any, policy: MemoryPolicy | None) -> None:
    """Tiled decode in tiles of ``policy.vae_tile_size`` pixels for images with a larger side; else untiled.

    diffusers' ``AutoencoderKL`` tiles when a latent side exceeds ``tile_latent_min_size``; its default tile
    is the config's ``sample_size`` (1024 for FLUX), so the sizes are set from the policy."""
    vae = pipe.vae
    if policy is None or not hasattr(vae, "enable_tiling"):
        return
    if policy.vae_tile_size is None:
        vae.disable_tiling()
        return
    vae.tile_sample_min_size = policy.vae_tile_size
    vae.tile_latent_min_size = policy.vae_tile_size // pipe.vae_scale_factor
    vae.enable_tiling()


def decode_latents(pipe: Any, latents: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Packed FLUX latents [1, (H/16)(W/16), 64] -> image [1, 3, H, W] in [-1, 1], the way ``FluxPipeline``
    decodes (for callers that run the denoising with ``output_type="latent"`` to time the stages)."""
    latents = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
    latents = latents / pipe.vae.config.scaling_factor + pipe.vae.config.shift_factor
    return pipe.vae.decode(latents.to(pipe.vae.dtype), return_dict=False)[0]
