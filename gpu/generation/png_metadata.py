"""PNG metadata: the AUTOMATIC1111 ``parameters`` text chunk other tools read, plus our own JSON chunk.

A1111 layout (what civitai, Forge, ComfyUI readers expect)::

    <prompt>
    Negative prompt: <negative>            (only when there is one)
    Steps: 20, Sampler: Euler, CFG scale: 4.0, Seed: 1, Size: 128x128, Model hash: 0123456789, Model: demo, ...

``Steps`` comes first; a value containing ``,`` ``:`` or a newline is JSON-quoted. Text chunks are read
straight from the PNG byte stream (tEXt, zTXt, iTXt): Qt's reader mangles newlines.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from gpu.atomic import atomic_path

PARAMETERS_KEY = "parameters"
NIBBLE_KEY = "nibble"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

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
    text = str(value)
    return json.dumps(text) if any(c in text for c in ",:\n") else text


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


def parse_parameters(text: str) -> dict[str, Any]:
    """A1111 ``parameters`` text -> settings dict (unknown fields kept under ``extra``)."""
    lines = text.strip("\n").split("\n")
    params_line = ""
    if lines and re.match(r"\s*Steps:", lines[-1]):
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
    _coerce(out)
    if extra:
        out["extra"] = extra
    return out


def _coerce(out: dict[str, Any]) -> None:
    for key, kind in (("steps", int), ("seed", int), ("guidance", float)):
        if key in out:
            try:
                out[key] = kind(out[key])
            except (TypeError, ValueError):
                out.pop(key)
    size = out.pop("size", None)
    if isinstance(size, str) and re.fullmatch(r"\d+x\d+", size):
        w, h = size.split("x")
        out["width"], out["height"] = int(w), int(h)


def read_png_text(path: Path | str) -> dict[str, str]:
    """All text chunks of a PNG (tEXt, zTXt, iTXt) as keyword -> text; {} if not a readable PNG."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return {}
    if not data.startswith(_PNG_SIGNATURE):
        return {}
    out: dict[str, str] = {}
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        try:
            if kind == b"tEXt":
                key, _, text = body.partition(b"\0")
                out[key.decode("latin-1")] = text.decode("latin-1")
            elif kind == b"zTXt":
                key, _, rest = body.partition(b"\0")
                out[key.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
            elif kind == b"iTXt":
                key, _, rest = body.partition(b"\0")
                compressed = rest[0] == 1
                _lang, _, rest = rest[2:].partition(b"\0")
                _translated, _, text = rest.partition(b"\0")
                out[key.decode("latin-1")] = (zlib.decompress(text) if compressed else text).decode("utf-8")
            elif kind == b"IEND":
                break
        except (zlib.error, UnicodeDecodeError, IndexError):
            continue  # one damaged chunk should not hide the others
    return out


def read_settings(path: Path | str) -> dict[str, Any] | None:
    """Generation settings stored in a PNG: ours (complete), else A1111 ``parameters``, else a best
    effort from a ComfyUI ``prompt`` graph; None when the image carries none."""
    chunks = read_png_text(path)
    if NIBBLE_KEY in chunks:
        settings = _json_or_none(chunks[NIBBLE_KEY])
        if isinstance(settings, dict):
            return settings
    if PARAMETERS_KEY in chunks:
        return parse_parameters(chunks[PARAMETERS_KEY])
    if "prompt" in chunks:
        return _from_comfyui(chunks["prompt"])
    return None


def _json_or_none(text: str) -> Any:
    """The JSON value of ``text``, or None. Another program's chunk is untrusted: besides malformed JSON,
    deep nesting raises RecursionError and an over-long integer a plain ValueError."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _from_comfyui(graph_json: str) -> dict[str, Any] | None:
    """ComfyUI stores its node graph: take the sampler's settings and the longest positive text."""
    graph = _json_or_none(graph_json)
    if not isinstance(graph, dict):
        return None
    out: dict[str, Any] = {}
    texts = []
    for node in graph.values():
        if not isinstance(node, dict):
            continue
        inputs = node.get("inputs")
        if not isinstance(inputs, dict):
            inputs = {}
        kind = str(node.get("class_type", ""))
        if kind.startswith("KSampler"):
            for src, dst in (("seed", "seed"), ("noise_seed", "seed"), ("steps", "steps"), ("cfg", "guidance")):
                if isinstance(inputs.get(src), (int, float)):
                    out[dst] = inputs[src]
            if isinstance(inputs.get("sampler_name"), str):
                out["sampler"] = inputs["sampler_name"]
        if "TextEncode" in kind and isinstance(inputs.get("text"), str):
            texts.append(inputs["text"])
        if kind == "EmptyLatentImage":
            if isinstance(inputs.get("width"), int) and isinstance(inputs.get("height"), int):
                out["width"], out["height"] = inputs["width"], inputs["height"]
    if texts:
        out["prompt"] = max(texts, key=len)
    return out or None


def write_png(path: Path | str, image: Image.Image, settings: dict[str, Any]) -> Path:
    """Writes ``image`` with both metadata chunks, atomically (temp file, fsync, rename)."""
    info = PngInfo()
    info.add_text(PARAMETERS_KEY, format_parameters(settings))
    info.add_itxt(NIBBLE_KEY, json.dumps(settings, sort_keys=True, default=str))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return Path(path)
