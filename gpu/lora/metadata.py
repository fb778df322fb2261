"""What a LoRA file says about itself, from the safetensors header alone (no torch: the app reads this while
its window is still opening)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from gpu.safetensors_header import read_safetensors_header

MAX_STRENGTH = 2.0  # |strength| the engine applies (``check_strength``); here, torch-free, for the app's controls too
# One LoRA of a generation request: (file, strength) or (file, strength, strength of its CLIP/T5 parts: ComfyUI's
# strength_clip, A1111's te=); a text strength of None is the strength.
LoraRequest = tuple[str | Path, float] | tuple[str | Path, float, float | None]


def file_stamp(path: str | Path) -> tuple[int, int]:
    """(mtime_ns, size) of ``path``: how the engine's LoRA manager and the LoRA panel tell a file changed on disk
    (another saved over it) without reading it. Raises ``OSError`` (gone, no access)."""
    st = Path(path).stat()
    return st.st_mtime_ns, st.st_size


def content_hashes(path: str | Path) -> tuple[str, ...]:
    """The hex SHA-256 digests other programs name a LoRA file by, read in one pass: of the whole file (what our
    ``Lora hashes`` and ``lora_list`` give the first 12 digits of) and of its tensor data after the header (kohya's
    and A1111/Forge's "addnet" hash, 12 digits in their ``Lora hashes``: it stays when only the metadata is edited),
    then the ``sshs_model_hash`` its trainer wrote into the metadata, if any. Reads the whole file (a LoRA is tens
    to hundreds of MB: callers read it only when a hash is asked for). Raises ``OSError`` and ``CheckpointError``."""
    length, header = read_safetensors_header(path)
    whole, data = hashlib.sha256(), hashlib.sha256()
    with open(path, "rb") as f:
        whole.update(f.read(8 + length))
        for chunk in iter(lambda: f.read(1 << 20), b""):
            whole.update(chunk)
            data.update(chunk)
    kept = header.get("__metadata__", {}).get("sshs_model_hash")
    return whole.hexdigest(), data.hexdigest(), *([kept.lower()] if isinstance(kept, str) and kept else [])


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


_FORMAT_NAMES = {"diffusers": "diffusers/PEFT", "kohya": "kohya", "bfl": "BFL/ComfyUI"}


def header_summary(path: Path) -> tuple[list[str], str, tuple[str, ...]]:
    """(trigger words, "format, rank, N tensors; changes the transformer + CLIP text encoder", the text encoders
    it changes: ``gpu.lora.keys.TEXT_ENCODERS`` names in the pipeline's order, ``()`` for none) from the header
    alone (milliseconds: the LoRA panel reads it as a file is picked). Raises ``CheckpointError`` naming why it is
    no readable safetensors file (a pickle, malformed, truncated, or not a file at all), ``LoraError`` naming why
    it is no FLUX.1 LoRA this app applies (another model's, keys not understood, inconsistent shapes): both
    ``UserError``."""
    from gpu.lora.keys import TEXT_ENCODERS, check_layout

    _, header = read_safetensors_header(path)
    layout = check_layout(Path(path).name, header)
    meta = header.get("__metadata__", {})
    tensors = len(header) - ("__metadata__" in header)
    info = f"{_FORMAT_NAMES[layout.format]}, rank {layout.rank}, {tensors} tensors; changes the {layout.parts}"
    encoders = tuple(c for c in TEXT_ENCODERS if c in layout.components.values())
    return trigger_words_from(meta), info, encoders


def strength_words(lora: dict, number: str = "g", space: str = " ") -> str:
    """The words "strength 0.8", or "strength 0.8, text 0.5" where a ``lora_list`` entry records the strength of its
    CLIP/T5 parts apart (``text_strength``); "" when its strength is no number (a PNG any program may write).
    ``number``: the format of each number; ``space``: between a word and its number (a no-break space in the app)."""
    strength, text = lora.get("strength"), lora.get("text_strength")
    if not _is_number(strength):
        return ""
    words = f"strength{space}{strength:{number}}"
    return f"{words}, text{space}{text:{number}}" if _is_number(text) and text != strength else words


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
