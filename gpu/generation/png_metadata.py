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
JPEG, a PNG named .jpg, no image at all) are read by ``gpu.generation.image_metadata``.
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
from gpu.errors import named_few

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
    ("prompt", "ComfyUI prompt graph", lambda text: (_from_comfyui(text), [])),
    ("workflow", "ComfyUI workflow", lambda text: _from_comfyui_workflow(text)),
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


# ComfyUI graph ("prompt" chunk): node id -> {"class_type", "inputs"}; an input is a literal or a link
# [node id, output slot] to the node that makes it (a primitive, a string node, a guider, a conditioning step).
_TEXT_INPUTS = ("text", "t5xxl", "text_g", "clip_l", "text_l", "prompt", "string", "value")
# Nodes known to hand on the conditioning they are given (with guidance, an area, a mask, a ControlNet added), by
# the input it comes from. Any other node ends the chain: ConditioningZeroOut makes an empty conditioning of the
# prompt it is fed (FLUX's negative), and a node we do not know may as well.
_PASS_THROUGH = {
    **dict.fromkeys(("FluxGuidance", "ConditioningSetArea", "ConditioningSetAreaPercentage",
                     "ConditioningSetAreaStrength", "ConditioningSetMask", "ConditioningSetTimestepRange",
                     "ControlNetApply", "StyleModelApply", "unCLIPConditioning"), "conditioning"),
    "ConditioningCombine": "conditioning_1", "ConditioningConcat": "conditioning_to",
    "ConditioningAverage": "conditioning_to",
}  # fmt: skip
# Nodes that take and give both a positive and a negative conditioning (outputs 0 and 1): the link's slot says which
# one it follows; following "positive" for both read the positive prompt as the negative one.
_PAIRED = ("ControlNetApplyAdvanced", "ControlNetApplySD3", "ControlNetInpaintingAliMamaApply",
           "InpaintModelConditioning", "InstructPixToPixConditioning")  # fmt: skip
_ZERO_OUT = "ConditioningZeroOut"  # no prompt at all: the negative of a FLUX graph, fed by the positive text
_NUMBER_INPUTS = ("value", "int", "float", "number", "seed", "noise_seed")
_MAX_HOPS = 32  # a graph is untrusted: links may loop


def _node_id(value: Any) -> str | None:
    """The node a link ``[id, slot]`` points to, or None when ``value`` is a literal."""
    return str(value[0]) if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int) else None


def _empty_latent_kind(kind: str) -> bool:
    """Whether a node of class ``kind`` makes a new, empty latent (EmptyLatentImage, EmptySD3LatentImage...)."""
    return kind.startswith("Empty") and "Latent" in kind


def _from_comfyui(graph_json: str) -> dict[str, Any] | None:
    """``_from_graph`` of the ComfyUI ``prompt`` graph's JSON text."""
    graph = _json_or_none(graph_json)
    return _from_graph(graph) if isinstance(graph, dict) else None


# ComfyUI's UI workflow ("workflow" chunk: what the editor saves, beside the graph it ran) keeps each node's widget
# values as a list by position, its links apart. For ComfyUI's own node types below, the input each position
# holds (None: the "control after generate" choice the editor keeps after a seed). Another type, or values that do
# not fit the list (another ComfyUI version's layout), give the node's links but no values: never a guess.
_WIDGETS = {
    "KSampler": ("seed", None, "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "KSamplerAdvanced": ("add_noise", "noise_seed", None, "steps", "cfg", "sampler_name", "scheduler",
                         "start_at_step", "end_at_step", "return_with_leftover_noise"),
    "RandomNoise": ("noise_seed", None), "BasicScheduler": ("scheduler", "steps", "denoise"),
    "KSamplerSelect": ("sampler_name",), "CFGGuider": ("cfg",), "FluxGuidance": ("guidance",),
    "CLIPTextEncode": ("text",), "EmptyLatentImage": ("width", "height", "batch_size"),
    "EmptySD3LatentImage": ("width", "height", "batch_size"),
}  # fmt: skip
_CONTROL_CHOICES = ("fixed", "increment", "decrement", "randomize")
_MODE_ALWAYS = 0  # a node's "mode": muted (2) and bypassed (4) nodes did not run


def _is_int(value: Any) -> bool:
    """Whether JSON's ``value`` is a whole number (true and false are ints to Python, not to the file)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _from_comfyui_workflow(workflow_json: str) -> tuple[dict[str, Any] | None, list[str]]:
    """``_from_graph`` of a ComfyUI UI workflow, turned into the ``prompt`` graph's shape: the widget values of
    ComfyUI's own nodes (``_WIDGETS``) by name, a widget fed by a link (a primitive node) as that link, reroute
    nodes passed through. Values of other nodes are left out, so that what is read is what ComfyUI ran. With
    the settings, the damage met on the way (a link id that is no number, a node's inputs that are no list):
    those links and inputs are left out, and saying so beats a vague "could not be read" or a half-read graph."""
    workflow = _json_or_none(workflow_json)
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        return None, []
    nodes = {str(n["id"]): n for n in workflow["nodes"]
             if isinstance(n, dict) and "id" in n and n.get("mode", _MODE_ALWAYS) == _MODE_ALWAYS}  # fmt: skip
    bad_inputs = [node_id for node_id, node in nodes.items() if not isinstance(node.get("inputs") or [], list)]
    links: dict[int, tuple[str, int]] = {}
    bad_links = 0
    for link in workflow.get("links") or []:  # [id, from node, from slot, to node, to slot, type]
        if isinstance(link, list) and len(link) >= 3 and _is_int(link[2]):
            if _is_int(link[0]):
                links[link[0]] = (str(link[1]), link[2])
            else:  # a list as id was "unhashable", a float one never matched: neither is any node's link
                bad_links += 1

    def slots(node: dict[str, Any]) -> list[Any]:
        inputs = node.get("inputs")
        return inputs if isinstance(inputs, list) else []

    def source(link_id: Any) -> list[Any] | None:
        """The [node id, slot] a link comes from, through reroutes; None when that node did not run."""
        for _ in range(_MAX_HOPS):
            node_id, slot = links.get(link_id, ("", 0)) if isinstance(link_id, int) else ("", 0)
            node = nodes.get(node_id)
            if node is None or node.get("type") != "Reroute":
                return [node_id, slot] if node is not None else None
            link_id = next((i.get("link") for i in slots(node) if isinstance(i, dict)), None)
        return None

    graph: dict[str, Any] = {}
    for node_id, node in nodes.items():
        kind, values = str(node.get("type", "")), node.get("widgets_values")
        names = _WIDGETS.get(kind, ())
        inputs: dict[str, Any] = {}
        if kind == "PrimitiveNode" and isinstance(values, list) and values:  # the editor's value for its link
            inputs["value"] = values[0]
        elif isinstance(values, list) and len(values) == len(names):
            pairs = list(zip(names, values, strict=True))
            if all(value in _CONTROL_CHOICES for name, value in pairs if name is None):
                inputs = {name: value for name, value in pairs if name is not None}
        for slot in slots(node):
            if not isinstance(slot, dict) or slot.get("link") is None:
                continue
            widget = slot.get("widget")  # a widget turned into an input: the link, not the stale value, counts
            name = widget.get("name") if isinstance(widget, dict) else slot.get("name")
            linked = source(slot["link"])
            if isinstance(name, str) and linked is not None:
                inputs[name] = linked
            elif isinstance(name, str):  # fed by a node that did not run: its value is unknown
                inputs.pop(name, None)
        graph[node_id] = {"class_type": kind, "inputs": inputs}
    damage = []
    if bad_links:
        damage.append(f"{'a link' if bad_links == 1 else f'{bad_links} links'} without a whole-number id")
    if bad_inputs:
        damage.append(f"the inputs of node{'s' * (len(bad_inputs) > 1)} {named_few(bad_inputs)} are not a list")
    problems = [f"its ComfyUI workflow chunk ('workflow') is damaged ({'; '.join(damage)})"] if damage else []
    return _from_graph(graph), problems


def _from_graph(graph: dict[Any, Any]) -> dict[str, Any] | None:
    """ComfyUI's node graph: the settings of the sampler that starts from an empty latent (the first pass of a
    hires-fix graph), its positive and negative prompts followed through the conditioning nodes known to pass them
    on (with FLUX's guidance on the way; a ConditioningZeroOut: no negative prompt), its seed, steps and sampler
    also where a SamplerCustomAdvanced takes them from noise, sigmas and sampler nodes. Values given by links (a
    primitive, a string node) are followed."""
    nodes = {str(k): v["inputs"] for k, v in graph.items() if isinstance(v, dict) and isinstance(v.get("inputs"), dict)}
    kinds = {str(k): str(v.get("class_type", "")) for k, v in graph.items() if isinstance(v, dict)}

    def linked(value: Any) -> dict[str, Any]:
        return nodes.get(_node_id(value) or "", {})

    def literal(value: Any, names: tuple[str, ...], types: tuple[type, ...]) -> Any:
        for _ in range(_MAX_HOPS):
            if _node_id(value) is None:
                break
            source = linked(value)
            value = next((source[n] for n in names if n in source), None)
        return value if isinstance(value, types) and not isinstance(value, bool) else None

    def chain(link: Any) -> list[tuple[str, dict[str, Any]]]:
        """(class type, inputs) of the nodes a conditioning link passes through, up to the first that does not
        pass it on as it came (the one holding the text, a ConditioningZeroOut, a node we do not know)."""
        found: list[tuple[str, dict[str, Any]]] = []
        while len(found) < _MAX_HOPS and (inputs := linked(link)):
            kind = kinds.get(_node_id(link) or "", "")
            found.append((kind, inputs))
            if kind in _PAIRED:
                link = inputs.get(("positive", "negative")[link[1]]) if link[1] in (0, 1) else None
            else:
                link = inputs.get(_PASS_THROUGH.get(kind, ""))
        return found

    def text(link: Any) -> str | None:
        for kind, inputs in chain(link):
            if kind == _ZERO_OUT:
                return ""
            for name in _TEXT_INPUTS:
                found = literal(inputs.get(name), _TEXT_INPUTS, (str,))
                if found is not None:
                    return found
        return None

    def number(inputs: dict[str, Any], name: str, types: tuple[type, ...] = (int, float)) -> Any:
        return literal(inputs.get(name), (name, *_NUMBER_INPUTS), types)

    def order(node_id: str) -> tuple[int, str]:
        # isdigit() alone let "²" through, on which int() raises.
        return (int(node_id), "") if node_id.isascii() and node_id.isdecimal() else (1 << 62, node_id)

    def empty_latent(link: Any) -> bool:
        # A node making a new latent of the size asked; LatentUpscale's size is that of a later pass.
        return _empty_latent_kind(kinds.get(_node_id(link) or "", ""))

    def is_sampler(node_id: str, inputs: dict[str, Any]) -> bool:
        # Conditioning nodes (ControlNetApplyAdvanced, InpaintModelConditioning) and guiders (CFGGuider) take a
        # "positive" too: taken for the sampler, they hid its seed, steps and cfg.
        takes = "positive" in inputs or "guider" in inputs
        return takes and ("latent_image" in inputs or "Sampler" in kinds.get(node_id, ""))

    samplers = [i for k, i in sorted(nodes.items(), key=lambda kv: order(kv[0])) if is_sampler(k, i)]
    sampler = next((i for i in samplers if empty_latent(i.get("latent_image"))), samplers[0] if samplers else None)
    out: dict[str, Any] = {}
    if sampler is None:  # no sampler we know: the values by their input names, the longest prompt text
        for inputs in nodes.values():
            for src, dst in (("seed", "seed"), ("noise_seed", "seed"), ("steps", "steps"), ("cfg", "guidance")):
                if number(inputs, src) is not None:
                    out[dst] = number(inputs, src)
            if isinstance(inputs.get("sampler_name"), str):
                out["sampler"] = inputs["sampler_name"]
        texts = [t for k in nodes if "TextEncode" in kinds.get(k, "") and (t := text([k, 0]))]
        if texts:
            out["prompt"] = max(texts, key=len)
    else:
        guider = linked(sampler.get("guider"))
        parts = {"noise": linked(sampler.get("noise")), "sigmas": linked(sampler.get("sigmas")),
                 "sampler": linked(sampler.get("sampler"))}  # fmt: skip
        for dst, sources in (("seed", ((sampler, "seed"), (sampler, "noise_seed"), (parts["noise"], "noise_seed"))),
                             ("steps", ((sampler, "steps"), (parts["sigmas"], "steps"))),
                             ("guidance", ((sampler, "cfg"), (guider, "cfg")))):  # fmt: skip
            value = next((v for inputs, name in sources if (v := number(inputs, name)) is not None), None)
            if value is not None:
                out[dst] = value
        positive = sampler.get("positive", guider.get("positive", guider.get("conditioning")))
        # FLUX's distilled guidance (FluxGuidance, CLIPTextEncodeFlux) rides on the positive conditioning beside
        # a cfg of 1: that is the guidance a FLUX model takes.
        flux = next((v for _, inputs in chain(positive) if (v := number(inputs, "guidance")) is not None), None)
        if flux is not None:
            out["guidance"] = flux
        for dst, link in (("prompt", positive), ("negative_prompt", sampler.get("negative", guider.get("negative")))):
            found = text(link)
            if found is not None:
                out[dst] = found
        name = literal(sampler.get("sampler_name", parts["sampler"].get("sampler_name")), ("sampler_name",), (str,))
        if name is not None:
            out["sampler"] = name
    latents = [linked(sampler.get("latent_image"))] if sampler else []
    latents += [i for k, i in nodes.items() if _empty_latent_kind(kinds.get(k, ""))]
    for inputs in latents:
        width, height = number(inputs, "width", (int,)), number(inputs, "height", (int,))
        if width is not None and height is not None:
            out["width"], out["height"] = width, height
            break
    return out or None


def write_png(path: Path | str, image: Image.Image, settings: dict[str, Any]) -> Path:
    """Writes ``image`` with both metadata chunks, atomically (temp file, fsync, rename)."""
    info = PngInfo()
    info.add_text(PARAMETERS_KEY, format_parameters(settings))
    info.add_itxt(NIBBLE_KEY, json.dumps(settings, sort_keys=True, default=str))
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return Path(path)
