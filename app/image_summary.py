"""What the gallery's metadata pane says about an image: how it was made, in labelled lines a user can act on.

The settings dict holds everything the engine wrote (``gpu.generation.service``), internal keys included
(memory_policy, model_hash, lora_list, ...). Shown raw, the pane repeated the A1111 ``parameters`` text as a
"Settings:" dump with Python reprs; this picks the facts that reproduce the image (prompt → LoRAs), then a short
"how it ran" part. The PNG and the database keep everything: only the wording is chosen here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.image_dates import made_at
from app.image_files import read_image_settings, read_image_text
from app.wording import NBSP
from gpu.lora.metadata import strength_words
from gpu.version import APP_NAME


def describe_image(path: Path, stored: dict[str, Any], missing: bool) -> str:
    """The pane's text for the image at ``path``: read back from the file when it is there (what other tools see
    too), else from ``stored`` (its database row's settings), with a warning that the file is missing."""
    try:
        file_time = None if missing else path.stat().st_mtime
    except OSError:  # gone, or cannot be looked at
        file_time = None
    if file_time is None:
        return "\n".join([f"⚠ File missing: {path}", "", *settings_lines(stored)])
    settings = read_image_settings(path)
    if settings is None:  # no metadata, or metadata that could not be read: what the database has
        settings = stored
    lines = settings_lines(settings, file_time)
    note = source_note(read_image_text(path))
    # The path last: the pane is narrow, and a long path first pushed the prompt down by several lines.
    return "\n".join(lines + (["", note] if note else []) + ["", f"File: {path}"])


def source_note(chunks: dict[str, str]) -> str:
    """Where another program's settings came from, so that fields it did not store are not taken for lost
    ("" for ours, which are complete)."""
    if "nibble" in chunks:
        return ""
    if "parameters" in chunks:
        return 'Read from the image\'s A1111 "parameters" text (made with another program).'
    if "prompt" in chunks or "workflow" in chunks:
        return "Read from the image's ComfyUI workflow, as far as it could be (made with another program)."
    return ""


def settings_lines(settings: dict[str, Any] | None, file_time: float | None = None) -> list[str]:
    """How the image was made, then how it ran; a fact the settings lack is left out rather than shown blank.
    ``file_time``: the image file's time, where known, which a date written without a time zone is never after."""
    s = settings or {}
    made: list[tuple[str, str]] = [("Prompt", _text(s.get("prompt")))]
    loras = s.get("lora_list")
    if not isinstance(loras, list):  # another program's image: its LoRAs as it names them
        loras = s.get("lora_refs")
    if _text(s.get("negative_prompt")):
        made.append(("Negative prompt", _text(s["negative_prompt"])))
    made += [("Seed", _text(s.get("seed"))), ("Steps", _text(s.get("steps"))),
             ("Guidance", _text(s.get("guidance"))), ("Size", _size(s)), ("Model", _text(s.get("model"))),
             ("LoRAs", _loras(loras))]  # fmt: skip
    ran = [("Ran on", _text(s.get("execution_path"))), ("Time taken", _duration(s.get("duration_s"))),
           ("Created", _created(s.get("created"), file_time)), ("App version", _version(s.get("version")))]  # fmt: skip
    lines = [f"{label}: {value}" for label, value in made if value]
    ran_lines = [f"{label}: {value}" for label, value in ran if value]
    if not lines and not ran_lines:
        return ["No generation settings are stored with this image."]
    return lines + (["", "How it ran", *ran_lines] if ran_lines else [])


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _size(s: dict[str, Any]) -> str:
    width, height = s.get("width"), s.get("height")
    return f"{width}×{height}" if width and height else ""  # as the prompt panel's presets write it


def _loras(value: Any) -> str:
    """The line "name (strength 0.80), …" from the engine's ``lora_list`` (dicts: name, strength, file, hash, ...)
    or another program's image's ``lora_refs`` (name, strength, text_strength, hash: A1111/Forge tags, ComfyUI LoRA
    nodes), with ", text 0.50" where an entry's CLIP/T5 parts had a strength of their own."""
    if not isinstance(value, list):
        return ""
    parts = []
    for lora in value:
        if not isinstance(lora, dict) or not lora.get("name"):
            continue
        words = strength_words(lora, ".2f", NBSP)  # two decimals, as the LoRA panel shows a strength
        parts.append(f"{lora['name']} ({words})" if words else str(lora["name"]))
    return ", ".join(parts)


def _duration(value: Any) -> str:
    if not isinstance(value, (int, float)) or value < 0:
        return ""
    if value < 60:
        return f"{value:.1f}{NBSP}s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes}{NBSP}min {seconds}{NBSP}s"


def _created(value: Any, file_time: float | None) -> str:
    """The engine writes UTC with its offset (the worker's fallback is local time without one, never shown after
    ``file_time``: ``made_at``): shown in the user's local time, to the minute."""
    when = made_at(value, file_time)
    try:
        if when is not None:
            return when.astimezone().strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):  # a date the local time cannot place (year 9999 at -14:00)
        pass
    return value if isinstance(value, str) else ""  # someone else's format, or such a date: shown as it is


def _version(value: Any) -> str:
    """ "NibbleStudio 0.1.0" for our "NibbleStudio-0.1.0"; another program's version string as it is."""
    text = _text(value)
    prefix = f"{APP_NAME}-"
    return f"{APP_NAME}{NBSP}{text.removeprefix(prefix)}" if text.startswith(prefix) else text
