"""PNG metadata: the AUTOMATIC1111 ``parameters`` text chunk other tools read, plus our own JSON chunk.

A1111 layout (what civitai, Forge, ComfyUI readers expect)::

    <prompt>
    Negative prompt: <negative>            (only when there is one)
    Steps: 20, Sampler: Euler, CFG scale: 4.0, Seed: 1, Size: 128x128, Model hash: 0123456789, Model: demo, ...

``Steps`` comes first; a value containing ``,`` ``:`` ``"``, a newline or edge spaces is JSON-quoted. Text chunks
are read straight from the PNG byte stream (tEXt, zTXt, iTXt): Qt's reader mangles newlines.

``inspect_png_data`` says, besides the settings, why a PNG has none or what in it could not be read (a damaged
chunk, a value that is no number): a dropped file is user input, and a silent "no settings" or a half-read prompt
leaves the user guessing. Range checks belong to the caller, which knows its own limits. Files of any kind (a
JPEG, a PNG named .jpg, no image at all) are read by ``gpu.generation.image_metadata``; the settings in ComfyUI's
``prompt`` graph and ``workflow`` chunks by ``gpu.generation.comfyui_graph``.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from gpu.atomic import atomic_path
from gpu.generation.comfyui_graph import graph_settings, workflow_settings

PARAMETERS_KEY = "parameters"
NIBBLE_KEY = "nibble"
# Why a PNG without damage has no settings: none of the chunks the settings are read from is there.
NO_PNG_SETTINGS = "it carries no generation settings (no A1111, ComfyUI or Nibble Studio text chunk)"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# (settings key, A1111 label) in the order they are written after Steps.
_A1111_FIELDS = (
    ("steps", "Steps"),
    ("sampler", "Sampler"),
    ("guidance", "CFG scale"),
    ("seed", "Seed"),
    ("size", "Size"),
    ("model_hash", "Model hash"),
    ("model", "Model"),
    ("loras", "Lora hashes"),
    ("version", "Version"),
)


def png_name_problem(path: Path | str) -> str:
    """Why ``path`` is no name for an image of ours ("" when it ends in .png, any case): the generation
    settings live in PNG text chunks, which other formats would drop. The CLI and the app's Save as… both ask."""
    return "" if Path(path).suffix.lower() == ".png" else "only .png keeps the generation settings"


def _quote(value: Any) -> str:
    # A leading quote or an edge space is quoted too: unquoted, the reader took the quote for its own and
    # stripped the spaces ('"raw' came back as 'raw').
    text = str(value)
    return json.dumps(text) if any(c in text for c in ',:\n"') or text != text.strip() else text


def format_parameters(settings: dict[str, Any]) -> str:
    """Settings dict (prompt, negative_prompt, steps, sampler, guidance, seed, width, height, model_hash,
    model, version, ...) -> A1111 ``parameters`` text."""
    lines = [str(settings.get("prompt", ""))]
    if settings.get("negative_prompt"):
        lines.append(f"Negative prompt: {settings['negative_prompt']}")
    values = dict(settings)
    if "width" in settings and "height" in settings:
        values["size"] = f"{settings['width']}x{settings['height']}"
    parts = [f"{label}: {_quote(values[key])}" for key, label in _A1111_FIELDS if values.get(key) not in (None, "")]
    lines.append(", ".join(parts))
    return "\n".join(lines)


_PARAM_RE = re.compile(r'\s*([\w][\w \-/+]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
# Labels that mark a last line as the settings line when it does not start with Steps (other tools, hand edits).
_SETTINGS_LABELS = {"Sampler", "CFG scale", "Seed", "Size", "Model hash", "Model"}
_SIZE_RE = re.compile(r"\s*(\d+)\s*[x×]\s*(\d+)\s*")


def _is_settings_line(line: str) -> bool:
    """A1111 always starts it with Steps; without Steps, it is still the settings line when it holds three fields
    or more, two of them known ones (the rule A1111's own reader uses, plus the known labels, so that a prompt
    line such as "style: ink, mood: calm, light: soft" stays prompt). Missed, the line ended up in the prompt."""
    if re.match(r"\s*Steps:", line):
        return True
    found = _PARAM_RE.findall(line)
    return len(found) >= 3 and len({label.strip() for label, _ in found} & _SETTINGS_LABELS) >= 2


def parse_parameters(text: str) -> dict[str, Any]:
    """A1111 ``parameters`` text -> settings dict (unknown fields kept under ``extra``)."""
    return read_parameters(text)[0]


def has_settings_line(text: str) -> bool:
    """Whether ``text`` ends in an A1111 settings line. Where the text comes from a field any program fills (an
    EXIF comment, an XMP description), that line is what says it is A1111's: a camera's "Holiday 2024" is none."""
    return _is_settings_line(text.replace("\r\n", "\n").strip("\n").rpartition("\n")[2])


def read_parameters(text: str) -> tuple[dict[str, Any], list[str]]:
    """``parse_parameters`` and, for each field it had to leave out, why (a phrase naming field and value)."""
    lines = text.replace("\r\n", "\n").strip("\n").split("\n")
    params_line = ""
    if lines and _is_settings_line(lines[-1]):
        params_line = lines.pop()
    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    target = prompt_lines
    for line in lines:
        if line.startswith("Negative prompt:"):
            target = negative_lines
            line = line[len("Negative prompt:") :].lstrip()
        target.append(line)
    out: dict[str, Any] = {
        "prompt": "\n".join(prompt_lines).strip(),
        "negative_prompt": "\n".join(negative_lines).strip(),
    }
    labels = {label: key for key, label in _A1111_FIELDS}
    extra: dict[str, str] = {}
    for label, raw in _PARAM_RE.findall(params_line):
        value = raw.strip()
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = value.strip('"')
        key = labels.get(label.strip())
        if key is None:
            extra[label.strip()] = value
        else:
            out[key] = value
    # Forge writes FLUX's distilled guidance apart, beside a CFG scale of 1: the distilled one is what a FLUX
    # model takes as its guidance (the same choice as FluxGuidance in a ComfyUI graph).
    guidance_label = "CFG scale"
    if "Distilled CFG Scale" in extra:
        guidance_label = "Distilled CFG Scale"
        out["guidance"] = extra[guidance_label]
    problems = _coerce(out, guidance_label)
    if extra:
        out["extra"] = extra
    return out, problems


def _whole(text: str) -> int:
    """An integer written as such, or as a float with nothing after the point ("20.0": some tools write that)."""
    try:
        return int(text)
    except ValueError:
        number = float(text)
        if not number.is_integer():
            raise ValueError(text) from None
        return int(number)


def _coerce(out: dict[str, Any], guidance_label: str = "CFG scale") -> list[str]:
    """Numbers from their text; a value that is none is left out and named (it was dropped without a word), by
    the field it was read from (``guidance_label``: Forge's distilled guidance is no "CFG scale" to the user)."""
    problems = []
    for key, label, kind, what in (("steps", "Steps", _whole, "a whole number"), ("seed", "Seed", _whole,
                                   "a whole number"), ("guidance", guidance_label, float, "a number")):  # fmt: skip
        if key in out:
            try:
                out[key] = kind(str(out[key]).strip())
            except (TypeError, ValueError, OverflowError):
                problems.append(f"its {label} '{out.pop(key)}' is not {what}")
    size = out.pop("size", None)
    match = _SIZE_RE.fullmatch(size) if isinstance(size, str) else None
    if match:
        out["width"], out["height"] = int(match[1]), int(match[2])
    elif size is not None:
        problems.append(f"its Size '{size}' is not WIDTHxHEIGHT")
    return problems


@dataclass
class ImageSettings:
    """What a file says about how it was made. ``settings``: None when it holds none that can be used;
    ``problems``: why not, or what was left out of ``settings``, as phrases about the file ("it is a JPEG image,
    not a PNG"), for a message that names the file."""

    settings: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)


def _decode_text(raw: bytes) -> str:
    """tEXt/zTXt text: Latin-1 by the PNG standard, but some tools write UTF-8 there; read as Latin-1, their
    accents and emoji came back as mojibake. Latin-1 text with accents is almost never valid UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _text_chunks(data: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """(keyword -> text, keyword -> why its chunk cannot be read) of the PNG bytes ``data``. A chunk cut short or
    whose checksum does not match is damaged: its text would be partly wrong, so it is not used."""
    out: dict[str, str] = {}
    damaged: dict[str, str] = {}
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        pos += 12 + length
        if kind == b"IEND":
            break
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            continue
        key_bytes, _, rest = body.partition(b"\0")
        key = key_bytes.decode("latin-1")
        if len(body) < length or len(crc) < 4:
            damaged[key] = "the file ends inside it (cut short)"
            continue
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            damaged[key] = "its checksum does not match (the file was changed or damaged)"
            continue
        try:
            if kind == b"tEXt":
                out[key] = _decode_text(rest)
            elif kind == b"zTXt":
                out[key] = _decode_text(zlib.decompress(rest[1:]))
            else:
                compressed = rest[0] == 1
                _lang, _, rest = rest[2:].partition(b"\0")
                _translated, _, text = rest.partition(b"\0")
                out[key] = (zlib.decompress(text) if compressed else text).decode("utf-8")
        except (zlib.error, UnicodeDecodeError, IndexError):
            damaged[key] = "its text cannot be decoded"  # one damaged chunk should not hide the others
    return out, damaged


def read_png_text(path: Path | str) -> dict[str, str]:
    """All readable text chunks of a PNG (tEXt, zTXt, iTXt) as keyword -> text; {} if not a readable PNG."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return {}
    return _text_chunks(data)[0] if data.startswith(PNG_SIGNATURE) else {}


# (chunk keyword, what it is, reader) in the order ``inspect_png_data`` tries them: ours is complete, A1111's text
# lacks our LoRA list, ComfyUI's graph is a best effort, its editor's workflow (values by position) the last resort.
_SOURCES = (
    (NIBBLE_KEY, "Nibble Studio settings", lambda text: (_json_or_none(text), [])),
    (PARAMETERS_KEY, "A1111 parameters", read_parameters),
    ("prompt", "ComfyUI prompt graph", lambda text: (graph_settings(_json_or_none(text)), [])),
    ("workflow", "ComfyUI workflow", lambda text: workflow_settings(_json_or_none(text))),
)
# Why a workflow alone gave nothing: it is what the editor saves, and only the stock nodes' values are read from it.
_NO_WORKFLOW_SETTINGS = (
    "it holds a ComfyUI workflow but not the 'prompt' graph ComfyUI ran, and no settings could be read from the "
    "workflow's nodes (only ComfyUI's own sampler, prompt and latent nodes are read there)"
)


def inspect_png_data(data: bytes) -> ImageSettings:
    """The settings of the PNG file ``data`` (ours, else A1111 ``parameters``, else a best effort from a ComfyUI
    ``prompt`` graph) with the reasons it has none or what was left out: never raises (the file may come from
    any program)."""
    chunks, damaged = _text_chunks(data)
    problems = []
    for key, what, read in _SOURCES:
        if key in damaged:
            problems.append(f"its {what} chunk ('{key}') cannot be read: {damaged[key]}")
        if key not in chunks:
            continue
        settings, left_out = read(chunks[key])
        if isinstance(settings, dict) and settings:
            return ImageSettings(settings, problems + left_out)
        problems += left_out  # damage found on the way may be why nothing could be read
        problems.append(_NO_WORKFLOW_SETTINGS if key == "workflow" else f"its {what} chunk ('{key}') holds no "
                        "settings that can be read")  # fmt: skip
    return ImageSettings(None, problems or [NO_PNG_SETTINGS])


def _json_or_none(text: str) -> Any:
    """The JSON value of ``text``, or None. Another program's chunk is untrusted: besides malformed JSON,
    deep nesting raises RecursionError and an over-long integer a plain ValueError."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def write_png(path: Path | str, image: Image.Image, settings: dict[str, Any]) -> Path:
    """Writes ``image`` with both metadata chunks, atomically (temp file, fsync, rename)."""
    info = PngInfo()
    info.add_text(PARAMETERS_KEY, format_parameters(settings))
    info.add_itxt(NIBBLE_KEY, json.dumps(settings, sort_keys=True, default=str))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return Path(path)
