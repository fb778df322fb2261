"""The linears of a model that is not loaded, as its files' headers give them (no tensor data read): what the app's
LoRA panel judges each listed LoRA against (``gpu.lora.fit``; sent in ``ModelInfo.lora_layers``), the same table
``gpu.lora.apply.model_layers`` makes of the loaded model's modules.

A diffusers folder's component (``transformer/``, ``text_encoder/``, ``text_encoder_2/``) gives each linear as its
weight, ``<path>.weight`` [outputs, inputs]; an SVDQ file its quantized layers in its metadata (``in_features``,
``out_features``: their codes are packed) and its other linears as weights. An SVDQ file's text encoders are its
base pipeline's. A component that cannot be read is left out (not known: its LoRA parts are not judged before a job
loads the model, which says what is wrong with it); so are the text encoders of an SVDQ file whose base is not
found."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gpu.errors import UserError
from gpu.lora.fit import Layer, index_layers
from gpu.lora.keys import TEXT_ENCODERS


def file_layers(facts: Any, base: Path | None) -> dict[str, dict[str, Layer]]:
    """component -> name a LoRA file may give a linear -> the linear, of the model ``facts``
    (``gpu.model_files.ModelFacts``) whose text encoders are in the pipeline folder ``base`` (None: not known)."""
    if facts.kind == "svdq":
        transformer = _svdq_linears(facts.path)
        encoders = base
    else:
        transformer = _folder_linears(facts.path / "transformer")
        encoders = facts.path
    parts = {"transformer": transformer}
    for component in TEXT_ENCODERS if encoders is not None else ():
        parts[component] = _folder_linears(encoders / component)
    return {component: index_layers(component, linears) for component, linears in parts.items() if linears is not None}


def _weights(header: dict[str, Any]) -> Iterator[Layer]:
    """The linears of a safetensors ``header`` given as weights, [outputs, inputs]: its 2-d ``.weight`` tensors (an
    embedding's too, which no LoRA names: no layer a file can target is one)."""
    for key, entry in header.items():
        path = key.removesuffix(".weight")
        if path != key and len(entry.get("shape", ())) == 2:
            outputs, inputs = entry["shape"]
            yield Layer(path, inputs, outputs)


def _folder_linears(folder: Path) -> list[Layer] | None:
    """The linears of a component folder's weight files (``loaded_weight_files``); None when it has none that can
    be read."""
    from gpu.generation.pipeline_loader import safetensors_header
    from gpu.safetensors_header import loaded_weight_files

    try:
        files = loaded_weight_files(folder)
        headers = [safetensors_header(f) for f in files]
    except (OSError, ValueError, UserError):  # no such folder, a damaged index, a damaged file (CheckpointError)
        return None
    return [layer for header in headers for layer in _weights(header)] if headers else None


def _svdq_linears(path: Path) -> list[Layer] | None:
    """The linears of an SVDQ file: its quantized layers as its metadata gives them, and its 16-bit ones."""
    from gpu.generation.pipeline_loader import checkpoint_meta, safetensors_header

    try:
        meta = checkpoint_meta(path)
        header = safetensors_header(path)
        quantized = [Layer(name, int(entry["in_features"]), int(entry["out_features"]))
                     for name, entry in meta.layers.items()]  # fmt: skip
    except (UserError, KeyError, TypeError, ValueError):  # damaged since it was listed: loading says how
        return None
    return quantized + list(_weights(header))  # an SVDQ layer's codes are no .weight
