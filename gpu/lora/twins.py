"""Whether two LoRA files are the same LoRA, by their contents alone (torch-free): a copy listed under another name
or in another folder, or one whose metadata alone was edited (its trigger words, its title). The engine refuses such
a pair in one job (``LoraManager``: applied twice, the LoRA would count double), from the tensors it reads; the app's
LoRA panel says it before Generate, from what this reads of the files (``app.lora_twins``).

Only files that change the same layers can be (``changed_layers``). A quick look (``look_at``: the header and the
data's first 64 KiB, milliseconds) tells most of them apart; only files of one look are read whole
(``read_contents``), and are the same LoRA (``same_lora``) when their whole files are identical, or their data is
and nothing else that decides what they change differs: the layer each tensor changes, read from its key by the
engine's own names (``check_layout``: kohya's ``lora_transformer_…lora_down`` and diffusers/PEFT's
``transformer.…lora_A`` name one layer), its type, shape and place in the file, and the scales the metadata gives
the layers, read by the engine's own rule (``gpu.lora.peft_config.metadata_scales``: the same weights with another
PEFT ``lora_alpha`` are another LoRA; its config written again, laid out another way or with a setting no scale
comes from, is the same). Whatever this calls the same, the engine refuses (``LoraFile.same_change``), and the
reverse holds but for tensors of equal values placed otherwise in the same data. A text encoder's layer is read by
its name as written, by both (kohya's and diffusers' names of one CLIP layer are two layers to both)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, NamedTuple

from gpu.lora.fit import TargetShape
from gpu.lora.keys import LoraLayout, check_layout
from gpu.lora.metadata import read_opened
from gpu.lora.peft_config import metadata_scales
from gpu.safetensors_header import open_safetensors

_START = 1 << 16  # bytes of a file's data a quick look reads (``LoraContents.start``)


class LoraContents(NamedTuple):
    """What a LoRA file's contents are, as far as being the same LoRA as another goes: ``weights``, what beside its
    data decides what it changes (the layer each tensor changes, its type, shape and place; the scales its metadata
    gives); ``start``, the SHA-256 of the data's first 64 KiB; ``keys``, that of its tensors' keys as written (a copy
    under renamed keys is said so); ``sha256`` and ``data_sha256``, those of the whole file and of its data after
    the header, "" until it is read whole (``read_contents``)."""

    weights: tuple[Any, ...]
    start: str
    keys: str
    sha256: str = ""
    data_sha256: str = ""


def changed_layers(targets: tuple[TargetShape, ...]) -> tuple[Any, ...]:
    """What the files of one layout (``gpu.lora.fit.layout_targets``) change, whatever their keys are named: each
    target's pipeline component, layers (as the engine names them) and shape, in one order. Files that change
    other layers are never the same LoRA; those of one layout under other key names may be."""
    return tuple(sorted((t.component, t.modules, t.inputs, t.outputs) for t in targets))


def look_at(path: str | Path) -> LoraContents:
    """A quick look at the LoRA file ``path``: its header and its data's first 64 KiB, not its hashes. Raises
    ``CheckpointError`` (gone, unreadable, no safetensors file) or ``LoraError`` (no LoRA this app applies)."""
    with open_safetensors(Path(path)) as (f, _, header):
        weights, keys = _weights(Path(path).name, header)
        return LoraContents(weights, hashlib.sha256(f.read(_START)).hexdigest(), keys)


def read_contents(path: str | Path) -> LoraContents:
    """The LoRA file ``path`` read whole, once, for its hashes (``look_at``'s too, from the same open file). Raises
    ``CheckpointError`` or ``LoraError``."""
    with open_safetensors(Path(path)) as (f, _, header):
        at = f.tell()
        start = hashlib.sha256(f.read(_START)).hexdigest()
        f.seek(at)
        whole, data = read_opened(f, Path(path).name, header)
    weights, keys = _weights(Path(path).name, header)
    return LoraContents(weights, start, keys, whole, data)


def _weights(label: str, header: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    """What in a checked safetensors ``header`` (of the file ``label``) decides what its data changes, as the engine
    reads it (``read_lora``): its tensors' table, each by the layer and factor its key names (``_layer``), and the
    scale its metadata gives each layer without an alpha tensor (PEFT's config as JSON text differs with its layout
    and with settings that set no scale, the scales do not); with the SHA-256 of its keys as written."""
    layout = check_layout(label, header)
    table = sorted((_layer(layout, base), role, entry["dtype"], tuple(entry["shape"]), tuple(entry["data_offsets"]))
                   for base, roles in layout.keys.items() for role, key in roles.items()
                   for entry in (header[key],))  # fmt: skip
    metadata = header.get("__metadata__") or {}
    scales = sorted((_layer(layout, base), scale) for base, scale in metadata_scales(layout, metadata))
    return (tuple(table), tuple(scales)), key_names(header)


def key_names(header: dict[str, Any]) -> str:
    """The SHA-256 of the tensors' keys of a safetensors ``header`` as written, whatever their order: two files of
    the same weights that differ in it are the same LoRA under other key names."""
    return hashlib.sha256("\n".join(sorted(k for k in header if k != "__metadata__")).encode()).hexdigest()


def _layer(layout: LoraLayout, base: str) -> tuple[Any, ...]:
    """What the module ``base`` of a file (its ``layout``) changes, whatever its key's name: the pipeline component,
    its layers as the engine names them, and whether the halves of its output swap (BFL's final layer), as the
    engine matches the targets of two files (``LoraFile.same_change``)."""
    modules, swap = layout.modules[base]
    return layout.components[base], modules, swap


def may_be_same(a: LoraContents, b: LoraContents) -> bool:
    """Whether the files of the looks ``a`` and ``b`` may be the same LoRA: only their hashes tell then
    (``same_lora``); files of other looks never are."""
    return a.weights == b.weights and a.start == b.start


def same_lora(a: LoraContents, b: LoraContents) -> str | None:
    """How the files ``a`` and ``b``, each read whole (``read_contents``), are the same LoRA, in the engine's words
    (``same_lora_words``); None when they are not."""
    if not (a.sha256 and b.sha256):
        raise ValueError("same_lora compares files read whole (read_contents), not looks")
    if a.sha256 == b.sha256:
        return same_lora_words(identical=True)
    if a.data_sha256 == b.data_sha256 and a.weights == b.weights:
        return same_lora_words(identical=False, renamed=a.keys != b.keys)
    return None


def same_lora_words(identical: bool, renamed: bool = False) -> str:
    """How two files are the same LoRA, in words: "identical files", "the same weights under other key names" (a copy
    whose keys were ``renamed``: kohya's for diffusers'), or "the same weights; only their metadata differs" (a
    copy whose trigger words were edited)."""
    if identical:
        return "identical files"
    return "the same weights under other key names" if renamed else "the same weights; only their metadata differs"
