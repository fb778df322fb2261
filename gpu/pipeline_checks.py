"""Whether a diffusers pipeline folder is one the app can run or use as a base, said before any work: a text-to-image
FLUX.1 pipeline (not SDXL, not FLUX.1 Fill or Kontext), complete, not saved quantized by another library, its
weights loadable; and whether a base's text encoders and VAE fit a FLUX.1 transformer (``pipeline_misfit``).
Torch-free: reads JSON files and safetensors headers only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpu.errors import ModelLoadError, named_few
from gpu.pipeline_config import (
    config_json,
    model_index_or_empty,
    pipeline_components,
    read_model_index,
    transformer_config,
)
from gpu.safetensors_header import checked_weight_files

# The pipeline the app runs (``gpu.adapters``' pipeline_class), and the input channels of its transformer (16
# latent channels in 2x2 patches). FLUX.1 Fill/Canny/Depth (FluxFillPipeline, FluxControlPipeline) load as a
# FluxPipeline too, with a transformer taking 384 or 128 channels, and generating then died at step 1.
TEXT_TO_IMAGE_PIPELINE = "FluxPipeline"
FLUX_IN_CHANNELS = 64
# FluxPipeline's components (its __init__'s parameters), the optional ones last. A folder saved by another FLUX.1
# pipeline class with these components and a 64-channel transformer (FluxImg2ImgPipeline, FluxInpaintPipeline: the
# same weights, saved from another pipeline) loads as a FluxPipeline and generates from text alone.
FLUX_COMPONENTS = ("scheduler", "vae", "text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "transformer",
                   "image_encoder", "feature_extractor")  # fmt: skip
FLUX_OPTIONAL = ("image_encoder", "feature_extractor")
# Words in the class names of the FLUX.1 pipelines whose model needs an input image: Kontext's transformer takes
# 64 channels as text-to-image FLUX.1's does (the image's tokens come beside the latents), so only its name tells.
_IMAGE_INPUT_CLASSES = ("Fill", "Control", "Kontext", "Redux")
_IMAGE_INPUT = ("it needs an input image (FLUX.1 Fill, Canny, Depth, Kontext, Redux), which Nibble Studio does not "
                "offer")  # fmt: skip
_PICK_TEXT_TO_IMAGE = "add a text-to-image FLUX.1 pipeline (FLUX.1-dev or FLUX.1-schnell) or an SVDQ file made from one"


def check_text_to_image_pipeline(folder: Path) -> None:
    """ModelLoadError when the diffusers pipeline at ``folder`` is not one the app can run: another pipeline
    (an SDXL folder was "not a diffusers pipeline folder"), a FLUX.1 one that needs an input image (its class,
    or its transformer's input channels, say so), or a FLUX.1 class whose components are not FluxPipeline's.
    Torch-free: reads model_index.json and transformer/config.json."""
    name = folder.name or str(folder)
    index = model_index_or_empty(folder)
    cls = index.get("_class_name")
    if isinstance(cls, str) and cls != TEXT_TO_IMAGE_PIPELINE:
        if not cls.startswith("Flux"):
            raise ModelLoadError(f"{name}: a {cls} folder; Nibble Studio runs FLUX.1 pipelines", _PICK_TEXT_TO_IMAGE)
        if any(word in cls for word in _IMAGE_INPUT_CLASSES):
            raise ModelLoadError(f"{name}: a {cls} folder; {_IMAGE_INPUT}", _PICK_TEXT_TO_IMAGE)
        components = pipeline_components(index)
        required = [c for c in FLUX_COMPONENTS if c not in FLUX_OPTIONAL]
        odd = [c for c in components if c not in FLUX_COMPONENTS] + [f"no {c}" for c in required if c not in components]
        if odd:  # e.g. a ControlNet's controlnet/: what it needs is not FluxPipeline's, nor what the app gives it
            raise ModelLoadError(f"{name}: a {cls} folder, whose components are not a text-to-image FLUX.1 "
                                 f"pipeline's ({named_few(odd)})", _PICK_TEXT_TO_IMAGE)  # fmt: skip
    try:
        cfg = transformer_config(folder)
    except ModelLoadError:
        return  # no transformer/config.json, or an unreadable one: the callers name it
    if cfg.get("_class_name") == "FluxTransformer2DModel":
        check_input_channels(name, cfg.get("in_channels", FLUX_IN_CHANNELS))


def check_input_channels(name: str, channels: object, hint: str = _PICK_TEXT_TO_IMAGE) -> None:
    """ModelLoadError when the FLUX.1 transformer of the model ``name`` takes other input ``channels`` than
    text-to-image FLUX.1's (Fill's 384, Canny's and Depth's 128: the latents with an input image's), a pipeline
    folder's or a single file's alike; ``hint``: what to pick instead where it is asked (the library's, by default:
    the quantizer's source page refuses the SVDQ files it names)."""
    if channels != FLUX_IN_CHANNELS:
        raise ModelLoadError(f"{name}: its transformer takes {channels} input channels, not the {FLUX_IN_CHANNELS} "
                             f"of text-to-image FLUX.1; {_IMAGE_INPUT}", hint)  # fmt: skip


def check_not_prequantized(folder: Path) -> None:
    """ModelLoadError when a component of the pipeline at ``folder`` was saved quantized by another library (a
    ``quantization_config`` in its config.json, e.g. HF's diffusers/FLUX.1-dev-bnb-4bit): it was listed as
    bf16, and generating failed with "PackageNotFoundError: bitsandbytes"."""
    for component in sorted(k for k in model_index_or_empty(folder) if not k.startswith("_")):
        # {} for no config.json (a tokenizer, the scheduler) or an unreadable one, which loading names
        quant = config_json(folder / component).get("quantization_config")
        if not isinstance(quant, dict):
            continue
        method = str(quant.get("quant_method", "another library"))
        bits = " 4-bit" if quant.get("load_in_4bit") else " 8-bit" if quant.get("load_in_8bit") else ""
        raise ModelLoadError(
            f"{folder.name or folder}: its {component} is saved quantized ({method}{bits}); Nibble Studio reads "
            "16-bit weights only, and quantizes them itself",
            "add the 16-bit FLUX.1 pipeline instead (e.g. FLUX.1-dev), and quantize it with the Quantize wizard "
            "(or python main.py quantize) to run it in 4 bits")  # fmt: skip


def check_pipeline_complete(folder: Path, label: str, skip: tuple[str, ...] = ()) -> None:
    """Raises ModelLoadError naming the first component of ``model_index.json`` whose folder is missing or
    empty. Without this check diffusers says only "no file named config.json", and a missing tokenizer
    folder is not even an error: transformers then builds a default tokenizer and the images silently change."""
    for component in pipeline_components(read_model_index(folder, label)):
        if component in skip:
            continue
        where = folder / component
        if not where.is_dir():
            problem = "is missing"
        elif not any(where.iterdir()):
            problem = "is empty"
        else:
            continue
        raise ModelLoadError(
            f"{label} is incomplete: folder {component}/ {problem} ({where})",
            "copy or download the whole model folder again",
        )


def check_weight_components(folder: Path, model: str, skip: tuple[str, ...] = ()) -> None:
    """``checked_weight_files`` of every component of the pipeline at ``folder`` that has weights (a config.json:
    the transformer, the text encoders, the VAE; not the tokenizers or the scheduler), but those in ``skip``:
    ModelLoadError naming ``model`` and the component whose weights are missing, damaged, a variant only, or
    PyTorch pickles only (from_pretrained loads safetensors only here, and such a folder then failed to load, or
    before that, loaded the pickle). Headers only; an unreadable model_index.json is left to
    ``check_pipeline_complete``."""
    for component in pipeline_components(model_index_or_empty(folder)):
        if component not in skip and (folder / component / "config.json").is_file():
            checked_weight_files(folder / component, model)


# The transformer settings a base pipeline's text encoders and latents must agree with (``pipeline_misfit``: the
# wizard's check, the quantizer's and generation's).
BASE_MUST_MATCH = ("joint_attention_dim", "pooled_projection_dim", "in_channels")

# What gives each BASE_MUST_MATCH value in a pipeline: (component, config.json key, factor). T5's width is the
# text input's, CLIP's the pooled input's; the VAE's latent channels come packed in 2x2 patches.
_GIVEN_BY = {
    "joint_attention_dim": ("text_encoder_2", "d_model", 1),
    "pooled_projection_dim": ("text_encoder", "hidden_size", 1),
    "in_channels": ("vae", "latent_channels", 4),
}


def pipeline_misfit(file_config: dict[str, Any], folder: Path) -> list[str] | None:
    """How the diffusers pipeline at ``folder`` fails a FLUX.1 transformer of ``file_config`` (a single file's
    ``SingleFileFacts.config``, the quantizer's source config, an SVDQ file's model_config) as its base, e.g.
    ["joint_attention_dim 128 vs 4096 (text_encoder_2's d_model)"]; empty when it fits; None when ``folder`` gives
    none of the values (no config.json readable). The check of the quantize wizard, the quantizer and generation.

    Each value is read from what supplies it (``_GIVEN_BY``): the text encoders and the VAE, the only parts of a base
    that calibrating or generating run. The base's own transformer is never run: its config.json answers only for a
    value those cannot give. A FLUX.1 Fill pipeline (a 384-channel transformer beside FLUX.1's encoders and VAE)
    fits; a pipeline whose T5 was swapped for a wider one does not, whatever its transformer says."""
    transformer = config_json(folder / "transformer")
    found: dict[str, tuple[Any, str]] = {}
    for key in BASE_MUST_MATCH:
        component, field_name, factor = _GIVEN_BY[key]
        value = config_json(folder / component).get(field_name)
        if isinstance(value, int) and not isinstance(value, bool):
            given = f"{component}'s {field_name}" + (f" {value} x {factor}" if factor != 1 else "")
            found[key] = (factor * value, given)
        elif key in transformer:
            found[key] = (transformer[key], "transformer/config.json")
    if not found:
        return None
    # a value the file's config lacks is not checked (an SVDQ file of an older version may not record it)
    return [f"{k} {file_config[k]} vs {value} ({given})" for k, (value, given) in found.items()
            if k in file_config and value != file_config[k]]  # fmt: skip
