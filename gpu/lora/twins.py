"""Whether two LoRA files are the same LoRA, by their contents alone (torch-free): a copy listed under another name
or in another folder, or one whose metadata alone was edited (its trigger words, its title). The engine refuses such
a pair in one job (``LoraManager``: applied twice, the LoRA would count double), from the tensors it reads; the app's
LoRA panel says it before Generate, from what this reads of the files (``app.lora_twins``).

A quick look (``look_at``: the header and the data's first 64 KiB, milliseconds) tells most files apart; only files
of one look are read whole (``read_contents``), and are the same LoRA (``same_lora``) when their whole files are
identical, or their data is and nothing else that decides what they change differs: each tensor's key, type,
shape and place in the file, and the scales the metadata gives its layers, read by the engine's own rule
(``gpu.lora.peft_config.metadata_scales``: the same weights with another PEFT ``lora_alpha`` are another LoRA; its
config written again, laid out another way or with a setting no scale comes from, is the same). Whatever this
calls the same, the engine refuses; the engine may also refuse a pair this tells apart (the same weights under
renamed keys), as it did before the panel looked."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, NamedTuple

from gpu.lora.keys import check_layout
from gpu.lora.metadata import read_opened
from gpu.lora.peft_config import metadata_scales
from gpu.safetensors_header import open_safetensors

_START = 1 << 16  # bytes of a file's data a quick look reads (``LoraContents.start``)


class LoraContents(NamedTuple):
    """What a LoRA file's contents are, as far as being the same LoRA as another goes: ``weights``, what beside its
    data decides what it changes (each tensor's key, type, shape and place; the scales its metadata gives);
    ``start``, the SHA-256 of the data's first 64 KiB; ``sha256`` and ``data_sha256``, those of the whole file and of
    its data after the header, "" until it is read whole (``read_contents``)."""

    weights: tuple[Any, ...]
    start: str
    sha256: str = ""
    data_sha256: str = ""


def look_at(path: str | Path) -> LoraContents:
    """A quick look at the LoRA file ``path``: its header and its data's first 64 KiB, not its hashes. Raises
    ``CheckpointError`` (gone, unreadable, no safetensors file) or ``LoraError`` (no LoRA this app applies)."""
    with open_safetensors(Path(path)) as (f, _, header):
        return LoraContents(_weights(Path(path).name, header), hashlib.sha256(f.read(_START)).hexdigest())


def read_contents(path: str | Path) -> LoraContents:
    """The LoRA file ``path`` read whole, once, for its hashes (``look_at``'s too, from the same open file). Raises
    ``CheckpointError`` or ``LoraError``."""
    with open_safetensors(Path(path)) as (f, _, header):
        at = f.tell()
        start = hashlib.sha256(f.read(_START)).hexdigest()
        f.seek(at)
        whole, data = read_opened(f, Path(path).name, header)
    return LoraContents(_weights(Path(path).name, header), start, whole, data)


def _weights(label: str, header: dict[str, Any]) -> tuple[Any, ...]:
    """What in a checked safetensors ``header`` (of the file ``label``) decides what its data changes: its tensors'
    table and the scale its metadata gives each layer without an alpha tensor, as the engine reads them (PEFT's
    config as JSON text differs with its layout and with settings that set no scale, the scales do not)."""
    table = sorted((key, entry["dtype"], tuple(entry["shape"]), tuple(entry["data_offsets"]))
                   for key, entry in header.items() if key != "__metadata__")  # fmt: skip
    metadata = header.get("__metadata__") or {}
    return tuple(table), metadata_scales(check_layout(label, header), metadata)


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
        return same_lora_words(identical=False)
    return None


def same_lora_words(identical: bool) -> str:
    """How two files are the same LoRA, in words: "identical files", or "the same weights; only their metadata
    differs" (a copy whose trigger words were edited)."""
    return "identical files" if identical else "the same weights; only their metadata differs"
