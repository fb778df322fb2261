"""Recognising a single-file FLUX.1 transformer in Black Forest Labs' layout (``flux1-dev.safetensors``) from
its tensor names alone, without torch: the quantizer reads such files, and the model loader names them when
one is given where a quantized model is expected.

Two layouts are seen in the wild: BFL's own (``img_in.weight``, ``double_blocks.0.…``), and ComfyUI's
all-in-one checkpoints, where the same names sit under ``model.diffusion_model.`` beside the VAE's and text
encoders' tensors (which the quantizer ignores): ``gpu.bfl_names.bfl_prefix``. A file that is neither is named for
what it is (``gpu.file_kinds``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu.bfl_names import bfl_prefix
from gpu.errors import CheckpointError, ModelLoadError, named_few
from gpu.file_kinds import SVDQ_METADATA_KEY, check_safetensors_name, foreign_quantized, other_file
from gpu.pipeline_checks import check_input_channels
from gpu.safetensors_header import element_counts, read_safetensors_header


@dataclass(frozen=True)
class SingleFileFacts:
    """What the header of a single-file FLUX.1 checkpoint says, read without torch."""

    path: Path
    layout: str  # "bfl" (BFL's own names) or "comfyui" (under model.diffusion_model., beside VAE/encoders)
    config: dict[str, Any]  # the FluxTransformer2DModel settings its shapes imply (pipeline_checks.BASE_MUST_MATCH, …)
    params: int  # the transformer's parameter count (a ComfyUI file's VAE and encoders not included)
    dtype: str  # the transformer's dominant dtype as stored, e.g. "BF16", "F8_E4M3"
    prefix: str = ""  # where the BFL names sit in the file (``gpu.bfl_names.PREFIXES``)
    shapes: dict[str, list[int]] = field(default_factory=dict, repr=False)  # BFL name (unprefixed) -> shape

    @property
    def summary(self) -> str:
        where = "ComfyUI all-in-one file" if self.layout == "comfyui" else "Black Forest Labs layout"
        variant = "with guidance (FLUX.1-dev style)" if self.config["guidance_embeds"] else "without guidance " \
            "(FLUX.1-schnell style)"  # fmt: skip
        size = f"{self.params / 1e9:.1f} B" if self.params >= 1e9 else f"{self.params / 1e6:.1f} M"
        return (f"Single-file FLUX.1 checkpoint ({where}), {size} parameters in "
                f"{self.dtype}, {self.config['num_layers']} double and {self.config['num_single_layers']} "
                f"single blocks, {variant}")  # fmt: skip


def inspect_single_file(path: Path | str) -> SingleFileFacts:
    """The facts of the single-file FLUX.1 checkpoint at ``path``, from its header alone (milliseconds, no
    torch: the app calls it on the GUI thread the moment a file is picked). Anything else raises
    ModelLoadError saying what the file is instead (a LoRA, an SVDQ model, an SDXL checkpoint, ...), so the
    user learns it before a run, not from a failure minutes into one. Completeness (every tensor present, no
    scaled-FP8 extras) is the engine's own check (``gpu.streaming.source.bfl_file_source``, which reads the
    file through these facts)."""
    path = Path(path)
    check_safetensors_name(path)  # in any case, as the library takes it: Windows users save MODEL.SAFETENSORS
    try:
        _, header = read_safetensors_header(path)
    except CheckpointError as err:
        raise ModelLoadError(str(err), err.hint) from None
    meta = header.get("__metadata__") or {}
    keys = [k for k in header if k != "__metadata__"]
    prefix = bfl_prefix(keys)
    # Before the BFL names: a Forge NF4 file has them all, and was described as "0.0 M parameters in U8".
    known = None if SVDQ_METADATA_KEY in meta else foreign_quantized(header)
    if known is None and (prefix is None or SVDQ_METADATA_KEY in meta):
        known = _what_else(keys, meta)
    if known is not None:
        raise ModelLoadError(f"{path.name}: {known[0]}", known[1])
    assert prefix is not None  # _what_else named every file without BFL names
    shapes = {k[len(prefix):]: list(v["shape"]) for k, v in header.items()
              if k != "__metadata__" and k.startswith(prefix)}  # fmt: skip
    config = implied_config(path.name, shapes)
    # a Fill, Canny or Depth file, which is complete: refused for what it is, not for its shapes, which the check of
    # every tensor would find other than a text-to-image transformer's ("the file is incomplete or another model")
    check_input_channels(path.name, config["in_channels"], _PICK_FLUX)
    counts = element_counts(header, prefix)
    dtype = max(counts, key=lambda d: counts[d]) if counts else "?"
    return SingleFileFacts(path, "comfyui" if prefix else "bfl", config, sum(counts.values()), dtype, prefix, shapes)


def implied_config(name: str, shapes: dict[str, list[int]]) -> dict[str, Any]:
    """The FluxTransformer2DModel settings the BFL tensor ``shapes`` (unprefixed name -> shape) imply: widths,
    attention heads, block counts, guidance. ModelLoadError naming ``name`` when a tensor every FLUX.1 has is absent."""
    try:
        doubles = {int(k.split(".")[1]) for k in shapes if k.startswith("double_blocks.")}
        singles = {int(k.split(".")[1]) for k in shapes if k.startswith("single_blocks.")}
        implied = {
            "in_channels": shapes["img_in.weight"][1],
            "joint_attention_dim": shapes["txt_in.weight"][1],
            "pooled_projection_dim": shapes["vector_in.in_layer.weight"][1],
            "guidance_embeds": "guidance_in.in_layer.weight" in shapes,
            "num_layers": 1 + max(doubles),
            "num_single_layers": 1 + max(singles) if singles else 0,
        }
        head_dim = shapes["double_blocks.0.img_attn.norm.query_norm.scale"][0]
        heads = shapes["img_in.weight"][0] // head_dim
        return {**implied, "attention_head_dim": head_dim, "num_attention_heads": heads}
    except (KeyError, IndexError, ValueError, ZeroDivisionError) as err:  # a tensor every FLUX.1 has is absent
        raise incomplete_transformer(name, err) from None  # or malformed


INCOMPLETE = "the file is incomplete or another model"  # the hint when a transformer's tensors are not FLUX.1's


def incomplete_transformer(name: str, err: Exception) -> ModelLoadError:
    """The error for a file whose tensor ``err`` names (a KeyError's key, ...) is absent or of another shape."""
    return malformed_transformer(name, f"{err} is missing or malformed")


def malformed_transformer(name: str, what: str) -> ModelLoadError:
    """The error for the file ``name`` that is no complete FLUX.1 transformer, ``what`` saying which tensor is not."""
    return ModelLoadError(f"{name}: not a complete FLUX.1 transformer ({what})", INCOMPLETE)


_PICK_FLUX = ("pick a text-to-image FLUX.1 transformer (FLUX.1-dev or FLUX.1-schnell): a flux1-dev-style .safetensors "
              "file or a ComfyUI FLUX.1 checkpoint")


def _what_else(keys: list[str], meta: dict[str, str]) -> tuple[str, str]:
    """What a .safetensors file that is no single-file FLUX.1 checkpoint holds, and what to do instead."""
    if SVDQ_METADATA_KEY in meta:
        return ("already a quantized (SVDQ) model",
                "add it to the library as it is (Models panel); only a 16-bit model can be quantized")  # fmt: skip
    if known := other_file(keys, _PICK_FLUX):
        return known
    few = named_few(sorted(keys)) if keys else "no tensors"
    return f"not a FLUX.1 checkpoint: no img_in / double_blocks tensors ({few})", _PICK_FLUX
