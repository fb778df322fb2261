"""PNG metadata: the AUTOMATIC1111 ``parameters`` text chunk other tools read, plus our own JSON chunk.

A1111 layout (what civitai, Forge, ComfyUI readers expect)::

    <prompt>
    Negative prompt: <negative>            (only when there is one)
    Steps: 20, Sampler: Euler, CFG scale: 4.0, Seed: 1, Size: 128x128, Model hash: 0123456789, Model: demo, ...

``Steps`` comes first; a value containing ``,`` ``:`` ``"``, a newline or edge spaces is JSON-quoted. The LoRAs of an
A1111/Forge image are tags in its prompt (``<lora:NAME:TE:UNET>``, ``<lyco:…>``), their short hashes in ``Lora
hashes``: read as ``lora_refs`` (``gpu.lora.refs.lora_ref``), the tags cut from the prompt restored. Text chunks
are read straight from the PNG byte stream (tEXt, zTXt, iTXt): Qt's reader mangles newlines.

``inspect_png_file`` says, besides the settings, why a PNG has none or what in it could not be read (a damaged
chunk, a value that is no number): a dropped file is user input, and a silent "no settings" or a half-read prompt
leaves the user guessing. Range checks belong to the caller, which knows its own limits. Files of any kind (a
JPEG, a PNG named .jpg, no image at all) are read by ``gpu.generation.image_metadata``; the settings in ComfyUI's
``prompt`` graph and ``workflow`` chunks by ``gpu.generation.comfyui_graph``.
"""

from __future__ import annotations

import json
import os
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from gpu.atomic import atomic_path
from gpu.generation.comfyui_graph import read_graph, workflow_settings
from gpu.generation.extras_upscale import ExtrasUpscale
from gpu.generation.passes_said import (
    GROWN,
    NOT_TOLD,
    SAME,
    Named,
    PassSize,
    Resized,
    Side,
    detailer_passes,
    img2img_not_restored,
    later_passes,
    not_restored,
    pass_size,
    pixels,
    resize_after_passes,
    resized_after_its_pass,
    resized_to,
)
from gpu.lora.metadata import a1111_tags
from gpu.lora.refs import finite, hashes_name, lora_ref, lora_stem

PARAMETERS_KEY = "parameters"
# The chunks A1111/Forge's Extras tab says what it did to an image in ("Postprocess upscale by: 4, Postprocess
# upscaler: R-ESRGAN 4x+"), both alike, beside the ``parameters`` of the picture it was given (its
# modules/postprocessing.py): the picture those make is the one before that
POSTPROCESSING_KEYS = ("postprocessing", "extras")
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
    model, version, ...) -> A1111 ``parameters`` text. The LoRAs of ``lora_list`` are tags at the prompt's end, as
    A1111/Forge write and read them (``_cut_lora_tags`` takes them out again); our own chunk keeps the prompt as
    it was given."""
    prompt, tags = str(settings.get("prompt", "")), a1111_tags(settings.get("lora_list"))
    lines = [f"{prompt}, {tags}" if prompt and tags else prompt or tags]
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
# "WIDTHxHEIGHT", as A1111 writes a Size and a Hires resize ("896x1152"; an "X" or a "×" read too)
_SIZE_RE = re.compile(r"\s*(\d+)\s*[x×]\s*(\d+)\s*", re.IGNORECASE)


def _wxh(text: Any) -> tuple[int, int] | None:
    """The (width, height) of a "WIDTHxHEIGHT" value (``_SIZE_RE``), or None when ``text`` is none: the one reader
    of A1111's sizes, its Size and its Hires resize alike."""
    match = _SIZE_RE.fullmatch(text) if isinstance(text, str) else None
    return (int(match[1]), int(match[2])) if match else None


def _is_settings_line(line: str) -> bool:
    """A1111 always starts it with Steps; without Steps, it is still the settings line when it holds three fields
    or more, two of them known ones (the rule A1111's own reader uses, plus the known labels, so that a prompt
    line such as "style: ink, mood: calm, light: soft" stays prompt). Missed, the line ended up in the prompt."""
    if re.match(r"\s*Steps:", line):
        return True
    found = _PARAM_RE.findall(line)
    return len(found) >= 3 and len({label.strip() for label, _ in found} & _SETTINGS_LABELS) >= 2


# A1111/Forge's extra-network tags for LoRAs (and LyCORIS', read the same way): <lora:NAME[:TE[:UNET[:DYN]]]>, each
# value also as te=, unet=, dyn=; a name has no ':' (A1111 splits there).
_LORA_TAG_RE = re.compile(r"<(lora|lyco):([^<>\n]*)>", re.IGNORECASE)
_HASH_RE = re.compile(r"[0-9a-f]{8,64}")
_CUT = "\0"  # where a tag was, while the commas and spaces around it are put right


def _tag_strengths(tag: str, values: list[str]) -> tuple[float, float, list[str]]:
    """(UNet strength, text-encoder strength, what could not be read) of a tag's values after its name, as
    A1111 and Forge read them: the first plain value (or te=) is the text encoders' multiplier, 1 when not given;
    the second (or unet=) the UNet's (the transformer here), the text encoders' when not given."""
    plain = [v for v in values if "=" not in v]
    named = {k.strip().lower(): v for k, _, v in (v.partition("=") for v in values if "=" in v)}
    problems = []

    def read(raw: str | None, default: float, what: str) -> float:
        if raw is None:
            return default
        value = finite(raw.strip())
        if value is None:
            problems.append(f"its LoRA tag '{tag[:80]}' has a {what} that is no number ('{raw.strip()[:40]}'): "
                            f"read as {default:g}")  # fmt: skip
            return default
        return value

    text = read(named.get("te", plain[0] if plain else None), 1.0, "strength")
    unet = read(named.get("unet", plain[1] if len(plain) > 1 else None), text, "UNet strength")
    return unet, text, problems


def _cut_lora_tags(prompt: str) -> tuple[str, list[dict[str, Any]], list[str]]:
    """(the prompt without its LoRA tags, the LoRAs they name, what could not be read). The tags are no words for
    the text encoders; their commas and spaces go with them: "a cat, <lora:x:1>, snow" gives "a cat, snow"."""
    refs, problems = [], []

    def take(match: re.Match[str]) -> str:
        name, *values = match[2].split(":")
        stem = lora_stem(name)
        if not stem:
            problems.append(f"its LoRA tag '{match[0][:80]}' names no LoRA: it was left out")
        else:
            unet, text, why = _tag_strengths(match[0], values)
            refs.append(lora_ref(stem, unet, text))
            problems.extend(why)
        return _CUT

    text = _LORA_TAG_RE.sub(take, prompt)
    if not refs and not problems:
        return prompt, [], []
    return "\n".join(_cut_items(line) if _CUT in line else line for line in text.split("\n")).strip(), refs, problems


def _cut_items(line: str) -> str:
    """A prompt line without the tags marked ``_CUT`` in it, as a list of comma-separated items: an item that was
    only tags goes with its comma ("a, <t>, b": "a, b"), one that keeps words keeps its commas ("a cat <t>, snow":
    "a cat, snow"); the spaces a tag leaves are one."""
    kept = []
    for item in line.split(","):
        if _CUT not in item:  # as it was, an empty one after a last comma too
            kept.append(item)
            continue
        words = re.sub(f"[ \t]*{_CUT}(?:[ \t]*{_CUT})*[ \t]*", " ", item).strip()
        if words:
            kept.append(item[: len(item) - len(item.lstrip())] + words)
    return ",".join(kept).strip()


def _lora_hashes(value: Any) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """A1111's ``Lora hashes`` value ("name: 0123456789ab, name2: …") as folded name -> (name, hash), and the
    entries that are no such pair. The key is the name as ``hashes_name`` gives it (a writer that kept a ':' in it
    is read as A1111's), as ``_lora_refs`` looks up a tag's name."""
    found: dict[str, tuple[str, str]] = {}
    problems = []
    for part in str(value).split(","):
        name, colon, digest = part.rpartition(":")
        name, digest = name.strip(), digest.strip().lower()
        if not part.strip():
            continue
        if not colon or not lora_stem(name) or not _HASH_RE.fullmatch(digest):
            problems.append(f"its Lora hashes entry '{part.strip()[:60]}' is no 'name: hash' pair: it was left out")
            continue
        found[hashes_name(lora_stem(name)).casefold()] = (lora_stem(name), digest)
    return found, problems


def _lora_refs(out: dict[str, Any]) -> list[str]:
    """Puts the LoRAs of A1111 text read into ``out`` as ``lora_refs``: those of the prompt's tags, with the hash
    ``Lora hashes`` gives for each, then those only ``Lora hashes`` names (their strength is not known: 1, A1111's
    default). Always a list: stock A1111 and Forge apply LoRAs only through tags, so none means none were used.
    Returns what could not be read."""
    out["prompt"], refs, problems = _cut_lora_tags(out["prompt"])
    hashes, bad = _lora_hashes(out["loras"]) if "loras" in out else ({}, [])
    for ref in refs:
        # A1111 (and this app) write the name of <lora:Ink, Style:0.8> there as "Ink Style": looked up as is, it
        # was a second LoRA, at strength 1.
        ref["hash"] = hashes.pop(hashes_name(ref["name"]).casefold(), (None, None))[1]
    for name, digest in hashes.values():
        refs.append(lora_ref(name, 1.0, None, digest))
        problems.append(f"its Lora hashes name the LoRA '{name}' without a <lora:{name}:…> tag in the prompt: its "
                        "strength is not known and is read as 1")  # fmt: skip
    out["lora_refs"] = refs
    return problems + bad


def parse_parameters(text: str) -> dict[str, Any]:
    """A1111 ``parameters`` text -> settings dict (unknown fields kept under ``extra``)."""
    return read_parameters(text)[0]


def has_settings_line(text: str) -> bool:
    """Whether ``text`` ends in an A1111 settings line. Where the text comes from a field any program fills (an
    EXIF comment, an XMP description), that line is what says it is A1111's: a camera's "Holiday 2024" is none."""
    return _is_settings_line(_lines(text).rpartition("\n")[2])


def _lines(text: str) -> str:
    """``text`` with its line ends as "\n": Windows' "\r\n", and old Mac text's lone "\r" (read as one line, its
    prompt, negative prompt and settings were lost without a word)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip("\n")


def _fields(line: str) -> list[tuple[str, str]]:
    """The (label, value) fields of an A1111 settings line, each value as written (a JSON-quoted one unquoted)."""
    fields = []
    for label, raw in _PARAM_RE.findall(line):
        value = raw.strip()
        if value.startswith('"'):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = value.strip('"')
        fields.append((label.strip(), value))
    return fields


def read_parameters(text: str, postprocessing: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """``parse_parameters`` and, for each field it had to leave out, why (a phrase naming field and value); with
    what A1111's Extras tab did to the picture after that (``postprocessing``, its chunk's text), its upscale."""
    lines = _lines(text).split("\n")
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
    for label, value in _fields(params_line):
        key = labels.get(label)
        if key is None:
            extra[label] = value
        else:
            out[key] = value
    # Forge writes FLUX's distilled guidance apart, beside a CFG scale of 1: the distilled one is what a FLUX
    # model takes as its guidance (the same choice as FluxGuidance in a ComfyUI graph).
    guidance_label = "CFG scale"
    if "Distilled CFG Scale" in extra:
        guidance_label = "Distilled CFG Scale"
        out["guidance"] = extra[guidance_label]
    problems = _coerce(out, guidance_label) + _lora_refs(out) + _passes_not_made(extra, out, postprocessing)
    if not out["prompt"]:  # a settings line alone, or an empty prompt: the text cannot tell them apart
        del out["prompt"]
    if extra:
        out["extra"] = extra
    return out, problems


# The fields a hires pass is named by where neither its upscale nor its resize says its size (with their values)
_HIRES_NAMED = ("Hires resize", "Hires steps", "Hires upscaler")


def _passes_not_made(extra: dict[str, str], out: dict[str, Any], postprocessing: str | None = None) -> list[str]:
    """What the image had that no setting here makes, said: restored without it, the settings looked complete and
    made another picture. A hires fix's second pass, named by the field that set its size (``Hires upscale``, or a
    ``Hires resize`` of a size: Size is the first pass's, the image larger), else by the ``Hires`` fields that show
    it, its size not known ("Hires upscaler: None" alone: it was said an img2img); else an img2img's start from
    another picture (``Denoising strength`` alone, the second pass's in a hires fix). Then ADetailer's passes
    (``_adetailer_passes``) and an upscale in A1111's Extras tab (``postprocessing``), after the hires fix or the one
    pass, as ComfyUI's detailers and upscale after its passes."""
    upscale, resize = extra.get("Hires upscale"), extra.get("Hires resize")
    resize = resize if _sized(resize) else None  # "0x0": no size of its own, A1111 goes by its upscale
    hires = [field for field in extra if field.startswith("Hires ")]
    first = f"{out['width']}x{out['height']}" if "width" in out else "its Size"
    dims = (out["width"], out["height"]) if "width" in out and "height" in out else None
    detailers = _adetailer_passes(extra)
    if hires:
        if upscale or resize:
            field = f"Hires resize {resize}" if resize else f"Hires upscale {upscale}"
            hires_size = _hires_size(upscale, resize, dims)
            passes = [later_passes(field, pass_size(*hires_size))]
        else:
            named = ", ".join(f"{field} {extra[field]}" for field in _HIRES_NAMED if field in extra) or hires[0]
            hires_size, passes = NOT_TOLD, [later_passes(named, PassSize.NOT_KNOWN)]
        passes += detailers
        if (after := _extras_upscale(postprocessing, pixels(dims, hires_size))) is not None:
            passes.append(resize_after_passes([after], saved_before=False, passes=len(passes)))
        return [not_restored(passes, first)]
    said = []
    if "Denoising strength" in extra:
        said.append(img2img_not_restored(f"img2img, Denoising strength {extra['Denoising strength']}"))
    after = _extras_upscale(postprocessing, dims)
    if detailers:
        extras = [resize_after_passes([after], saved_before=False, passes=1)] if after is not None else []
        said.append(not_restored(detailers + extras, first))
    elif after is not None:
        said.append(resized_after_its_pass([after], saved_before=False, first=first))
    return said


# ADetailer's fields, one set for each of its tabs that ran: "ADetailer model" for the first, "ADetailer model 2nd"
# for the second... (its args.py: the tab's ordinal after each field's name)
_ADETAILER_MODEL = re.compile(r"ADetailer model( \d+(?:st|nd|rd|th))?")


def _adetailer_passes(extra: dict[str, str]) -> list[Named]:
    """ADetailer's passes (the faces or hands its models find, sampled again after the hires fix, before Extras),
    named by each tab's model and denoising strength as a detailer of a ComfyUI graph is; [] where none ran."""
    tabs = [match.group(1) or "" for name in extra if (match := _ADETAILER_MODEL.fullmatch(name))]
    if not tabs:
        return []
    what = "; ".join(", ".join(f"{name} {extra[name]}" for name in (f"ADetailer model{tab}",
                     f"ADetailer denoising strength{tab}") if name in extra) for tab in tabs)  # fmt: skip
    return [detailer_passes(what, len(tabs))]


def read_extras(postprocessing: str | None) -> ExtrasUpscale | None:
    """The upscale A1111's Extras tab made (``postprocessing``: its chunk's text), None where it made none (faces
    restored only)."""
    fields = dict(_fields(postprocessing or ""))
    by, to = fields.get("Postprocess upscale by"), fields.get("Postprocess upscale to")
    if by is None and to is None:
        return None
    words = "Extras: " + ", ".join(f"{label} {value}" for label, value in fields.items() if label.startswith(
        "Postprocess ") or label == "Max side length")  # fmt: skip
    return ExtrasUpscale(words, _factor(by), _wxh(to), _wxh(fields.get("Postprocess crop to")),
                         _factor(fields.get("Max side length")))  # fmt: skip


def _extras_upscale(postprocessing: str | None, before: tuple[int, int] | None) -> Resized | None:
    """The upscale A1111's Extras tab made of the picture (``postprocessing``: its chunk's text; ``before``: that
    picture's size in pixels, where known) in words, with how its size compares with that picture's; None where it
    resized nothing (faces restored only; a "Scale to" the picture's own size)."""
    if (extras := read_extras(postprocessing)) is None:
        return None
    what, size = extras.after("", SAME, before)
    return None if size == SAME else Resized(what, pass_size(*size))


def _factor(text: str | None) -> float | None:
    """A number of A1111's text ("4", "2.0"), None where it is none (NaN too)."""
    try:
        value = float(text or "")
    except ValueError:
        return None
    return value if value == value else None


def _sized(resize: str | None) -> bool:
    """Whether a ``Hires resize`` value gives the hires pass a size: not "0x0" (A1111 goes by ``Hires upscale``
    then); one that cannot be read is taken as it is written."""
    if not resize:
        return False
    sides = _wxh(resize)
    return sides is None or any(sides)


def _hires_size(upscale: str | None, resize: str | None, dims: tuple[int, int] | None) -> tuple[Side, Side]:
    """A1111's hires pass's size as factors of its first pass's (of ``dims``, its Size): by its ``Hires resize``
    "WxH" (``_wxh``; a side of 0 follows the other, in the first pass's aspect, as A1111's "resize width/height to"
    does; with no Size read, any size), else by its ``Hires upscale`` ("Hires upscale: 1" is a second pass at the
    same size, which was said "at a larger size"). A value that cannot be read is taken as the larger size a hires
    fix mostly is."""
    if resize:
        sides = _wxh(resize)
        return (GROWN, GROWN) if sides is None else resized_to(*sides, dims)
    factor = _factor(upscale)
    return (GROWN, GROWN) if factor is None else ((factor, factor), (factor, factor))


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
    if (sides := _wxh(size)) is not None:
        out["width"], out["height"] = sides
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


def decode_text(raw: bytes, encoding: str = "utf-8") -> str:
    """Metadata text in ``encoding``, else Latin-1 (which decodes any bytes). tEXt/zTXt text is Latin-1 by the PNG
    standard, but some tools write UTF-8 there; read as Latin-1, their accents and emoji came back as mojibake.
    Latin-1 text with accents is almost never valid UTF-8."""
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def too_long(subject: str) -> str:
    """Why a piece of metadata over ``MAX_TEXT_BYTES`` is not read, as a phrase about ``subject``."""
    return f"{subject} is over {MAX_TEXT_BYTES >> 20} MB long: not read"


# The most text read from one chunk, packed or unpacked: a ComfyUI workflow of hundreds of nodes is a few MB, and a
# chunk is read whole into memory (a damaged length, or a zTXt packed to unpack to gigabytes, is not).
MAX_TEXT_BYTES = 16 << 20
# Metadata walks open files unbuffered: each 8-byte chunk header read after a seek refilled an 8 KB buffer, so the
# walk read most of a PNG written in libpng's 8 KB IDAT chunks (GIMP, Krita, OpenCV) whole.
UNBUFFERED = 0
_TEXT_KINDS = (b"tEXt", b"zTXt", b"iTXt")
_KEYWORD_MAX = 80  # a keyword is 1 to 79 bytes and its zero byte
_CUT_SHORT = "the file ends inside it (cut short)"


@dataclass
class _PngText:
    """What ``_text_chunks`` found: keyword -> text, keyword -> why its chunk cannot be read, the type of the
    chunk other than text the file ends inside ("" when none: the file is whole), and the keywords of the chunks
    whose UTF-8 text holds bytes that are not UTF-8 (read as U+FFFD; ``_chunk_text``)."""

    texts: dict[str, str] = field(default_factory=dict)
    damaged: dict[str, str] = field(default_factory=dict)
    cut_in: str = ""
    not_utf8: set[str] = field(default_factory=set)


def _inflate(packed: bytes) -> bytes | None:
    """The zlib stream ``packed`` unpacked; None when it unpacks to more than ``MAX_TEXT_BYTES``. Raises
    zlib.error when it is damaged or cut short, as ``zlib.decompress`` did."""
    inflater = zlib.decompressobj()
    text = inflater.decompress(packed, MAX_TEXT_BYTES)
    if inflater.unconsumed_tail:
        return None
    if not inflater.eof:
        raise zlib.error("the packed text is cut short")
    return text


def _chunk_text(kind: bytes, rest: bytes) -> tuple[str | None, bool]:
    """The text of a tEXt, zTXt or iTXt chunk, given its body after the keyword (None when it unpacks to more than
    ``MAX_TEXT_BYTES``), and whether its UTF-8 holds bytes that are not UTF-8. Those are read as U+FFFD, the rest as
    written: a writer that cut an emoji in two left such a byte, and the whole chunk was taken for damaged (iTXt), or
    read as Latin-1, each other accent and emoji of it two or three letters (tEXt, zTXt)."""
    if kind == b"tEXt":
        return _latin1_or_utf8(rest)
    if kind == b"zTXt":
        text = _inflate(rest[1:])
        return (None, False) if text is None else _latin1_or_utf8(text)
    compressed = rest[0] == 1
    _lang, _, rest = rest[2:].partition(b"\0")
    _translated, _, text = rest.partition(b"\0")
    text = _inflate(text) if compressed else text
    return (None, False) if text is None else _utf8(text)


def _utf8(raw: bytes) -> tuple[str, bool]:
    """``raw`` as UTF-8, each byte that is not U+FFFD, and whether there was one."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), True


# A character of UTF-8 text other than ASCII and U+FFFD: bytes that decode to one are UTF-8 (Latin-1 text almost never
# holds such a sequence: "Ã" followed by a control character or "©")
_UTF8_BEYOND_ASCII = re.compile("[^\x00-\x7f\ufffd]")


def _latin1_or_utf8(raw: bytes) -> tuple[str, bool]:
    """A tEXt or zTXt chunk's text (Latin-1 by the PNG standard; some programs write UTF-8 there), as ``_utf8`` gives
    it: UTF-8 where it is, and where it holds UTF-8's characters besides bytes that are not (a character cut in two);
    else Latin-1 (``decode_text``)."""
    text, cut = _utf8(raw)
    if cut and not _UTF8_BEYOND_ASCII.search(text):
        return raw.decode("latin-1"), False
    return text, cut


def _text_chunks(f: BinaryIO) -> _PngText:
    """The text chunks of the PNG file ``f`` (its signature read or not: the chunks start after it). Only text
    chunks are read: the others (the image data of a 200 MB render among them) are skipped with a seek, and the
    walk ends at IEND. A chunk cut short or whose checksum does not match is damaged: its text would be partly
    wrong, so it is not used."""
    found = _PngText()
    size = f.seek(0, os.SEEK_END)
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:  # the file shrank since its size was taken (another program rewriting it)
            found.cut_in = "last"
            break
        (length,), kind = struct.unpack(">I", head[:4]), head[4:8]
        pos += 12 + length
        if kind == b"IEND":
            break
        if kind not in _TEXT_KINDS:
            if pos > size:
                found.cut_in = kind.decode("latin-1")
            continue
        if pos > size or length > MAX_TEXT_BYTES:
            key = f.read(min(length, _KEYWORD_MAX)).partition(b"\0")[0].decode("latin-1")
            found.damaged[key] = _CUT_SHORT if pos > size else too_long("it")
            continue
        body, crc = f.read(length), f.read(4)
        key_bytes, _, rest = body.partition(b"\0")
        key = key_bytes.decode("latin-1")
        if len(body) < length or len(crc) < 4:  # shrank while read
            found.damaged[key] = _CUT_SHORT
            continue
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            found.damaged[key] = "its checksum does not match (the file was changed or damaged)"
            continue
        try:
            text, not_utf8 = _chunk_text(kind, rest)
        except (zlib.error, IndexError):
            found.damaged[key] = "its text cannot be decoded"  # one damaged chunk should not hide the others
            continue
        if text is None:
            found.damaged[key] = f"its text is over {MAX_TEXT_BYTES >> 20} MB unpacked: not read"
        else:
            found.texts[key] = text
            if not_utf8:
                found.not_utf8.add(key)
    return found


def png_problem(path: str | Path) -> str:
    """Why the file at ``path`` is not a whole PNG, "" when it is: the signature, then chunk after chunk, each whole
    and its checksum (CRC) matching, IHDR first, image data (IDAT), IEND last and nothing after it. What tells a
    picture whose write ended from one a kill cut short (or a power loss left with blocks of zeros): the signature
    alone passes a file cut anywhere after its first 8 bytes."""
    try:
        with open(path, "rb") as f:
            if f.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                return "it does not start as a PNG does"
            kinds: set[bytes] = set()
            while True:
                head = f.read(8)
                if len(head) < 8:
                    return "it ends before its last chunk (IEND): cut short"
                length, kind = struct.unpack(">I4s", head)
                if not kind.isalpha() or length >= 2**31:  # the PNG standard's limits: no chunk of this file
                    return f"it holds no PNG chunk at byte {f.tell() - 8}: damaged"
                if not kinds and kind != b"IHDR":
                    return "its first chunk is not IHDR: damaged"
                name = kind.decode("ascii")
                crc, left = zlib.crc32(kind), length
                while left:
                    block = f.read(min(left, 1 << 20))
                    if not block:
                        return f"it ends inside its {name} chunk: cut short"
                    crc, left = zlib.crc32(block, crc), left - len(block)
                stored = f.read(4)
                if len(stored) < 4:
                    return f"it ends inside its {name} chunk: cut short"
                if struct.unpack(">I", stored)[0] != crc:
                    return f"the checksum of its {name} chunk does not match: damaged"
                kinds.add(kind)
                if kind == b"IEND":
                    break
            if b"IDAT" not in kinds:
                return "it holds no image data (IDAT chunk)"
            return "it goes on after its last chunk (IEND)" if f.read(1) else ""
    except OSError as exc:
        return f"it cannot be read: {exc.strerror or exc}"


def read_png_text(path: Path | str) -> dict[str, str]:
    """All readable text chunks of a PNG (tEXt, zTXt, iTXt) as keyword -> text; {} if not a readable PNG."""
    try:
        with open(path, "rb", buffering=UNBUFFERED) as f:
            return _text_chunks(f).texts if f.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE else {}
    except OSError:
        return {}


def _postprocessing(texts: dict[str, str]) -> str | None:
    """What A1111's Extras tab did to the picture, as the text chunks ``texts`` say it (``POSTPROCESSING_KEYS``);
    None where they do not."""
    return next((texts[key] for key in POSTPROCESSING_KEYS if key in texts), None)


# (chunk keyword, what it is, reader) in the order ``inspect_png_file`` tries them: ours is complete, A1111's text
# lacks our LoRA list, ComfyUI's graph is a best effort, its editor's workflow (values by position) the last resort.
# A reader takes its chunk's text and all the file's texts (what A1111's Extras tab did after, in another chunk: it
# keeps an A1111 image's and a ComfyUI image's chunks alike).
_SOURCES = (
    (NIBBLE_KEY, "Nibble Studio settings", lambda text, _texts: (_json_or_none(text), [])),
    (PARAMETERS_KEY, "A1111 parameters", lambda text, texts: read_parameters(text, _postprocessing(texts))),
    ("prompt", "ComfyUI prompt graph", lambda text, texts: read_graph(_json_or_none(text), read_extras(
        _postprocessing(texts)))),  # fmt: skip
    ("workflow", "ComfyUI workflow", lambda text, texts: workflow_settings(_json_or_none(text), read_extras(
        _postprocessing(texts)))),  # fmt: skip
)
# Why a workflow alone gave nothing: it is what the editor saves, and only the stock nodes' values are read from it.
_NO_WORKFLOW_SETTINGS = (
    "it holds a ComfyUI workflow but not the 'prompt' graph ComfyUI ran, and no settings could be read from the "
    "workflow's nodes (only ComfyUI's own sampler, prompt and latent nodes are read there)"
)


def inspect_png_file(f: BinaryIO) -> ImageSettings:
    """The settings of the PNG file ``f`` (ours, else A1111 ``parameters``, else a best effort from a ComfyUI
    ``prompt`` graph, else its ``workflow``) with the reasons it has none or what was left out: never raises on
    what the file holds (it may come from any program); only its reading may (OSError)."""
    found = _text_chunks(f)
    problems = []
    for key, what, read in _SOURCES:
        if key in found.damaged:
            problems.append(f"its {what} chunk ('{key}') cannot be read: {found.damaged[key]}")
        if key not in found.texts:
            continue
        if key in found.not_utf8:
            problems.append(f"its {what} chunk ('{key}') holds bytes that are not UTF-8 (a character cut in two): "
                            "each is read as \ufffd")  # fmt: skip
        settings, left_out = read(found.texts[key], found.texts)
        if isinstance(settings, dict) and settings:
            return ImageSettings(settings, problems + left_out)
        problems += left_out  # damage found on the way may be why nothing could be read
        problems.append(_NO_WORKFLOW_SETTINGS if key == "workflow" else f"its {what} chunk ('{key}') holds no "
                        "settings that can be read")  # fmt: skip
    if found.cut_in:  # the settings may have been in the part that is missing
        problems.append(f"it is cut short (the file ends inside its {found.cut_in} chunk), and no generation "
                        "settings were found before that point")  # fmt: skip
    return ImageSettings(None, problems or [NO_PNG_SETTINGS])


def _json_or_none(text: str) -> Any:
    """The JSON value of ``text``, or None. Another program's chunk is untrusted: besides malformed JSON,
    deep nesting raises RecursionError and an over-long integer a plain ValueError."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


# A lone surrogate: what Python makes of a byte that is not UTF-8 in a file name (U+DC80-U+DCFF, "surrogateescape"),
# or of one a Windows name holds. No PNG text chunk can hold it: UTF-8 refuses it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escaped(char: re.Match[str]) -> str:
    code = ord(char.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def encodable(value: Any) -> Any:
    """``value`` (settings: dicts, lists, text) with every lone surrogate in its text written as its escape, the
    byte a name held as ``\\xe9`` (as ``ls`` shows it): a model file named ``mod\\xe9le.safetensors`` on Linux
    (Latin-1, not UTF-8) made writing the PNG fail after the job had run, and the image was lost."""
    if isinstance(value, str):
        return _SURROGATE.sub(_escaped, value)
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encodable(v) for v in value]
    return value


def write_png(path: Path | str, image: Image.Image, settings: dict[str, Any]) -> Path:
    """Writes ``image`` with both metadata chunks (``encode_png``), atomically (temp file, fsync, rename)."""
    with atomic_path(path) as tmp:
        encode_png(tmp, image, settings)
    return Path(path)


def encode_png(target: Path | str | BinaryIO, image: Image.Image, settings: dict[str, Any]) -> None:
    """Writes ``image`` as a PNG with both metadata chunks to ``target`` (a path, or a binary file open for
    writing), as it is: not atomically. For the scratch file of a write that makes it durable and publishes it
    itself (``gpu.atomic.atomic_write_new``, which names the image in its errors): ``write_png`` there made a
    scratch folder inside the scratch folder, fsynced the image twice, and a failed write named its hidden
    temporary file. Text that UTF-8 cannot hold is escaped (``encodable``): the image is saved whatever its
    settings name."""
    settings = encodable(settings)
    info = PngInfo()
    info.add_text(PARAMETERS_KEY, format_parameters(settings))
    info.add_itxt(NIBBLE_KEY, json.dumps(settings, sort_keys=True, default=str))
    image.save(target, format="PNG", pnginfo=info)
