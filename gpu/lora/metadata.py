"""What a LoRA file says about itself, from the safetensors header alone (no torch: the app reads this while
its window is still opening)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple

from gpu.lora.refs import finite
from gpu.safetensors_header import TensorReader, TensorSink, open_safetensors, read_data_hashed, read_safetensors_header

if TYPE_CHECKING:
    from gpu.lora.fit import TargetShape

MAX_STRENGTH = 2.0  # |strength| the engine applies (``check_strength``); here, torch-free, for the app's controls too
# One LoRA of a generation request: (file, strength) or (file, strength, strength of its CLIP/T5 parts: ComfyUI's
# strength_clip, A1111's te=); a text strength of None is the strength.
LoraRequest = tuple[str | Path, float] | tuple[str | Path, float, float | None]


def file_stamp(path: str | Path) -> tuple[int, int]:
    """(mtime_ns, size) of ``path``: how the engine's LoRA manager and the LoRA panel tell a file changed on disk
    (another saved over it) without reading it. Raises ``OSError`` (gone, no access)."""
    st = Path(path).stat()
    return st.st_mtime_ns, st.st_size


# A tensor's bytes as the file holds them: (its key, its header entry, its bytes) -> None.
TensorTaker = Callable[[str, dict[str, Any], bytearray], None]


def read_hashed(path: str | Path) -> tuple[dict[str, Any], str, str]:
    """Reads a safetensors file once, start to end: (its checked header, the hex SHA-256 of the whole file, that of
    its data after the header), as ``read_opened`` reads them, keeping no tensor. Raises ``CheckpointError``
    (damaged, cut short, unreadable)."""
    with open_safetensors(Path(path)) as (f, _, header):
        whole, data = read_opened(f, Path(path).name, header)
    return header, whole, data


def read_opened(f: BinaryIO, name: str, header: dict[str, Any], take: TensorTaker | None = None) -> tuple[str, str]:
    """(the hex SHA-256 of the whole file, that of its data after the header) of the safetensors file ``f`` (file
    ``name``, open at its data section with its checked ``header``, as ``open_safetensors`` gives them), read once
    to its end. ``take`` gets each tensor's bytes in file order, one fresh buffer per tensor (the caller converts
    and drops it: no more than one tensor's raw bytes is held here); without it, nothing is kept. The data hash is
    kohya's and A1111/Forge's "addnet" hash, Civitai's AutoV3 (``Lora hashes`` gives its first 12 digits): it stays
    when only the metadata is edited. Plain reads, never a mapping of the file (Windows does not let the user
    delete or replace a mapped file). Raises ``CheckpointError`` (cut short)."""
    whole, data = hashlib.sha256(), hashlib.sha256()
    start = f.tell()
    f.seek(0)
    whole.update(f.read(start))
    read_data_hashed(f, name, header, None if take is None else _into_fresh_buffers(take), whole, data)
    for chunk in iter(lambda: f.read(1 << 20), b""):  # bytes past the last tensor: A1111 hashes to the end
        whole.update(chunk)
        data.update(chunk)
    return whole.hexdigest(), data.hexdigest()


def _into_fresh_buffers(take: TensorTaker) -> TensorSink:
    """The sink that reads each tensor whole into a buffer of its own and hands it to ``take``."""

    def sink(key: str, entry: dict[str, Any], read: TensorReader) -> None:
        raw = bytearray(entry["data_offsets"][1] - entry["data_offsets"][0])
        read(memoryview(raw))
        take(key, entry, raw)

    return sink


def content_hashes(path: str | Path) -> tuple[str, ...]:
    """The hex SHA-256 digests other programs name a LoRA file by, read in one pass: of the whole file (what
    ``lora_list`` gives the first 12 digits of) and of its tensor data after the header (kohya's and
    A1111/Forge's "addnet" hash, Civitai's AutoV3, 12 digits in their ``Lora hashes`` and ours), then the
    ``sshs_model_hash`` its trainer wrote into the metadata, if any. Reads the whole file (a LoRA is tens to
    hundreds of MB: callers read it only when a hash is asked for). Raises ``OSError`` and ``CheckpointError``."""
    header, whole, data = read_hashed(path)
    kept = header.get("__metadata__", {}).get("sshs_model_hash")
    return whole, data, *([kept.lower()] if isinstance(kept, str) and kept else [])


def trigger_words_from(metadata: dict[str, str]) -> list[str]:
    """Trigger words recorded by trainers: modelspec/civitai fields, else kohya's most frequent tags."""
    for key in ("modelspec.trigger_phrase", "trigger_words", "trigger_phrase", "ss_trigger_words", "activation text"):
        value = metadata.get(key, "").strip()
        if value:
            try:
                parsed = json.loads(value)
                if isinstance(parsed, list):
                    return [str(w).strip() for w in parsed if str(w).strip()]
            except json.JSONDecodeError:
                pass
            return [w.strip() for w in value.split(",") if w.strip()]
    raw = metadata.get("ss_tag_frequency")
    if raw:
        try:
            counts: dict[str, int] = {}
            for tags in json.loads(raw).values():
                for tag, n in tags.items():
                    counts[tag.strip()] = counts.get(tag.strip(), 0) + int(n)
            return [t for t, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:3] if t]
        except (ValueError, TypeError, AttributeError):
            pass
    return []


_FORMAT_NAMES = {"diffusers": "diffusers/PEFT", "kohya": "kohya", "bfl": "BFL/ComfyUI", "xlabs": "XLabs"}


class HeaderSummary(NamedTuple):
    """What ``header_summary`` reads of a LoRA file."""

    words: list[str]  # trigger words
    info: str  # "format, rank, N tensors; changes the transformer + CLIP text encoder"
    text_encoders: tuple[str, ...]  # ``gpu.lora.keys.TEXT_ENCODERS`` names in the pipeline's order, () for none
    targets: tuple[TargetShape, ...]  # what a model must take and give to fit it (``gpu.lora.fit``)


def header_summary(path: Path) -> HeaderSummary:
    """What a LoRA file says of itself, from the header alone (milliseconds: the LoRA panel reads it as a file is
    picked). Raises ``CheckpointError`` naming why it is no readable safetensors file (a pickle, malformed,
    truncated, or not a file at all), ``LoraError`` naming why it is no FLUX.1 LoRA this app applies (another
    family's, keys not understood, inconsistent shapes): both ``UserError``. Whether it fits a given model is
    judged from its ``targets``."""
    from gpu.lora.fit import layout_targets
    from gpu.lora.keys import TEXT_ENCODERS, check_layout

    _, header = read_safetensors_header(path)
    layout = check_layout(Path(path).name, header)
    meta = header.get("__metadata__", {})
    tensors = len(header) - ("__metadata__" in header)
    info = f"{_FORMAT_NAMES[layout.format]}, rank {layout.rank}, {tensors} tensors; changes the {layout.parts}"
    encoders = tuple(c for c in TEXT_ENCODERS if c in layout.components.values())
    return HeaderSummary(trigger_words_from(meta), info, encoders, layout_targets(layout))


def strength_words(lora: dict, number: str = "g", space: str = " ") -> str:
    """The words "strength 0.8", or "strength 0.8, text 0.5" where a ``lora_list`` entry records the strength of its
    CLIP/T5 parts apart (``text_strength``); "" when its strength is no number (a PNG any program may write).
    ``number``: the format of each number; ``space``: between a word and its number (a no-break space in the app)."""
    strength, text = lora.get("strength"), lora.get("text_strength")
    if not _is_number(strength):
        return ""
    words = f"strength{space}{strength:{number}}"
    return f"{words}, text{space}{text:{number}}" if _is_number(text) and text != strength else words


def a1111_tags(loras: Any) -> str:
    """A1111/Forge's prompt tags for the LoRAs of a ``lora_list``: ``<lora:NAME:STRENGTH>``, or
    ``<lora:NAME:TEXT_STRENGTH:STRENGTH>`` where the CLIP/T5 parts had a strength apart (A1111 reads the first value
    as the text encoders' and the second as the UNet's), joined by ", "; "" for none. Their "send to txt2img" runs
    the LoRAs only through such tags, and ``Lora hashes`` alone gives no strength. A name A1111 could not read back
    in a tag (with ':', '<', '>' or a line break) is left out, as is an entry that is no LoRA (a PNG any program
    may have written is saved again)."""
    tags = []
    for lora in loras if isinstance(loras, list) else []:
        if not isinstance(lora, dict):
            continue
        name = lora.get("name")
        # Numbers only, finite and within a float's range (an integer of 400 digits is a JSON number too).
        strength, text = (
            finite(v) if _is_number(v) else None for v in (lora.get("strength"), lora.get("text_strength"))
        )
        if not isinstance(name, str) or not name.strip() or any(c in name for c in ":<>\n\r") or strength is None:
            continue
        values = f"{text:g}:{strength:g}" if text is not None and text != strength else f"{strength:g}"
        tags.append(f"<lora:{name}:{values}>")
    return ", ".join(tags)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
