"""ComfyUI's settings: read from the node graph it ran (the ``prompt`` chunk of its PNGs) or, as a last resort,
from the editor's workflow (the ``workflow`` chunk), both as parsed JSON values. Both are another program's data:
links may loop or point nowhere, values may be of any type; the readers follow what they know, never raise, and
read nothing rather than guess.

The LoRAs a graph applied (``LoraLoader``, ``LoraLoaderModelOnly`` on the model's path from its loader to the
sampler) come out as ``lora_refs``, the shape the A1111 reader gives too (``gpu.lora.refs.lora_ref``): present,
even empty, only where the whole path could be followed, so that an empty list means "made without LoRAs", not
"not read". The model that loader loaded comes out as ``model``, named as the library names it (``model_name``'s
rule: a file's stem, as the A1111 reader's "Model" is; a Hugging Face cache snapshot's repository).
"""

from __future__ import annotations

from pathlib import PureWindowsPath
from typing import Any

from gpu.errors import named_few
from gpu.generation.comfyui_passes import Graph, first_pass, passes_not_made
from gpu.generation.comfyui_passes import empty_latent_kind as _empty_latent_kind
from gpu.generation.comfyui_values import node_id as _node_id
from gpu.generation.extras_upscale import ExtrasUpscale
from gpu.library import snapshot_repo_name
from gpu.lora.refs import file_stem, finite, lora_ref, lora_stem
from gpu.safetensors_header import PICKLE_SUFFIXES

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
# ComfyUI's own LoRA nodes -> whether they apply the file's CLIP/T5 parts too (strength_clip); the model-only one
# does not, which is a text strength of 0 here.
_LORA_NODES = {"LoraLoader": True, "LoraLoaderModelOnly": False}
_MODEL_PATH_HOPS = 64  # LoRA stacks are long, but a graph is untrusted
# The input naming the model file (or folder) of the loader at the start of the model's path: CheckpointLoaderSimple's
# and CheckpointLoader's ckpt_name, UNETLoader's (and the GGUF loader's) unet_name, a diffusers or SVDQuant folder
# loader's model_path. Unread, an image of another model restored the settings without a word about it.
_MODEL_INPUTS = ("ckpt_name", "unet_name", "model_path")
_MODEL_SUFFIXES = (".safetensors", ".sft", ".gguf", *PICKLE_SUFFIXES)  # the library names files by stem


def _model_name(name: str) -> str:
    """The library's name of the model a loader names ``name`` (a path ComfyUI was given, in any separators): a
    Hugging Face cache snapshot folder's repository ("models--org--FLUX.1-dev/snapshots/<commit>": "FLUX.1-dev", not
    the commit), else the file's stem (a folder's name)."""
    return snapshot_repo_name(PureWindowsPath(name.strip())) or file_stem(name, _MODEL_SUFFIXES)


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
    "CheckpointLoaderSimple": ("ckpt_name",), "UNETLoader": ("unet_name", "weight_dtype"),
    "CLIPTextEncode": ("text",), "EmptyLatentImage": ("width", "height", "batch_size"),
    "EmptySD3LatentImage": ("width", "height", "batch_size"),
    "LoraLoader": ("lora_name", "strength_model", "strength_clip"), "LoraLoaderModelOnly": ("lora_name",
    "strength_model"),
    # a hires fix's upscale between its passes: what it is said with (``comfyui_passes``)
    "LatentUpscale": ("upscale_method", "width", "height", "crop"), "LatentUpscaleBy": ("upscale_method", "scale_by"),
    "ImageScale": ("upscale_method", "width", "height", "crop"), "ImageScaleBy": ("upscale_method", "scale_by"),
    "UpscaleModelLoader": ("model_name",),
}  # fmt: skip
_CONTROL_CHOICES = ("fixed", "increment", "decrement", "randomize")
_MODE_ALWAYS = 0  # a node's "mode": muted (2) and bypassed (4) nodes did not run
_MODE_BYPASS = 4  # ComfyUI hands a bypassed node's input of an output's type on as that output


def _is_int(value: Any) -> bool:
    """Whether JSON's ``value`` is a whole number (true and false are ints to Python, not to the file)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _link_source(link: Any) -> tuple[Any, Any, Any]:
    """(link id, node, output slot) a workflow's link comes from, as written (any JSON value; None where there is
    none). ComfyUI's editor saved links as lists [id, from node, from slot, to node, to slot, type] (schema 0.4);
    newer front ends save objects naming those fields (id, origin_id, origin_slot...: schema 1, and 0.4 files of
    some versions): read as lists only, their workflows had no links, and so no prompts."""
    if isinstance(link, list) and len(link) >= 3:
        return link[0], link[1], link[2]
    if isinstance(link, dict):
        return link.get("id"), link.get("origin_id"), link.get("origin_slot")
    return None, None, None


def workflow_settings(workflow: Any, extras: ExtrasUpscale | None = None) -> tuple[dict[str, Any] | None, list[str]]:
    """``read_graph`` of a ComfyUI UI workflow (its JSON value), turned into the ``prompt`` graph's shape:
    the widget values of ComfyUI's own nodes (``_WIDGETS``) by name, a widget fed by a link (a primitive node) as
    that link, reroute nodes passed through. Values of other nodes are left out, so that what is read is what
    ComfyUI ran. With the settings, the damage met on the way (a link id that is no number, a node's inputs that
    are no list): those links and inputs are left out, and saying so beats a vague "could not be read" or a
    half-read graph. ``extras``: as ``read_graph``'s."""
    if not isinstance(workflow, dict) or not isinstance(workflow.get("nodes"), list):
        return None, []
    nodes = {str(n["id"]): n for n in workflow["nodes"]
             if isinstance(n, dict) and "id" in n and n.get("mode", _MODE_ALWAYS) == _MODE_ALWAYS}  # fmt: skip
    bypassed = {str(n["id"]): n for n in workflow["nodes"]
                if isinstance(n, dict) and "id" in n and n.get("mode") == _MODE_BYPASS}  # fmt: skip
    bad_inputs = [node_id for node_id, node in nodes.items() if not isinstance(node.get("inputs") or [], list)]
    links: dict[int, tuple[str, int]] = {}
    bad_links = bad_sources = 0
    listed = workflow.get("links")
    for link in listed if isinstance(listed, list) else []:
        if link is None:  # an entry left empty: nothing lost
            continue
        link_id, node_id, slot = _link_source(link)
        if not _is_int(slot) or not (_is_int(node_id) or isinstance(node_id, str)):
            bad_sources += 1
        elif _is_int(link_id):
            links[link_id] = (str(node_id), slot)
        else:  # a list as id was "unhashable", a float one never matched: neither is any node's link
            bad_links += 1

    def slots(node: dict[str, Any]) -> list[Any]:
        inputs = node.get("inputs")
        return inputs if isinstance(inputs, list) else []

    def passed_on(node: dict[str, Any], slot: int) -> Any:
        """The link a bypassed node hands on as its output ``slot``: that of its first input of the output's type
        (a bypassed LoraLoader gives the model and CLIP it was fed), None when it has none."""
        outputs = node.get("outputs")
        output = outputs[slot] if isinstance(outputs, list) and 0 <= slot < len(outputs) else None
        kind = output.get("type") if isinstance(output, dict) else None
        return next((i.get("link") for i in slots(node) if isinstance(i, dict) and kind is not None
                     and i.get("type") == kind and i.get("link") is not None), None)  # fmt: skip

    def source(link_id: Any) -> list[Any] | None:
        """The [node id, slot] a link comes from, through reroutes and bypassed nodes; None when that node did not
        run (muted, or missing)."""
        for _ in range(_MAX_HOPS):
            node_id, slot = links.get(link_id, ("", 0)) if isinstance(link_id, int) else ("", 0)
            node = nodes.get(node_id)
            if node_id in bypassed:
                link_id = passed_on(bypassed[node_id], slot)
                continue
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
    for count, why in ((bad_links, "without a whole-number id"), (bad_sources, "whose source node and slot cannot "
                       "be read")):  # fmt: skip
        if count:
            damage.append(f"{'a link' if count == 1 else f'{count} links'} {why}")
    if listed is not None and not isinstance(listed, list):
        damage.append("its links are not a list")
    if bad_inputs:
        damage.append(f"the inputs of node{'s' * (len(bad_inputs) > 1)} {named_few(bad_inputs)} are not a list")
    problems = [f"its ComfyUI workflow chunk ('workflow') is damaged ({'; '.join(damage)})"] if damage else []
    settings, left_out = read_graph(graph, extras)
    return settings, problems + left_out


def read_graph(graph: Any, extras: ExtrasUpscale | None = None) -> tuple[dict[str, Any] | None, list[str]]:
    """ComfyUI's node graph (the ``prompt`` chunk's JSON value; None read from one that is no object): the
    settings of its first pass (``comfyui_passes.first_pass``: the sampler that starts from an empty latent), its
    positive and negative prompts followed through the conditioning nodes known to pass them on (with FLUX's
    guidance on the way; a ConditioningZeroOut: no negative prompt), its seed, steps and sampler also where a
    SamplerCustomAdvanced takes them from noise, sigmas and sampler nodes, the LoRAs on its model's path
    (``lora_refs``) and the model its loader loaded (``model``: the file's stem, as ComfyUI's models folder names
    it). Values given by links (a primitive, a string node) are followed. With the settings, what was left out of
    them, as phrases about the file (a LoRA node whose strength is no number; what the graph made besides its
    first pass, a hires fix or an img2img: ``comfyui_passes.passes_not_made``; ``extras``, an upscale in A1111's
    Extras tab of the picture the graph saved, said after them)."""
    if not isinstance(graph, dict):
        return None, []
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
            # The first text input that holds one (CLIPTextEncodeFlux's t5xxl may be left empty beside its clip_l);
            # "" only where every text input of the node is empty
            texts = [t for name in _TEXT_INPUTS if (t := literal(inputs.get(name), _TEXT_INPUTS, (str,))) is not None]
            if texts:
                return next((t for t in texts if t), "")
        return None

    def number(inputs: dict[str, Any], name: str, types: tuple[type, ...] = (int, float)) -> Any:
        return literal(inputs.get(name), (name, *_NUMBER_INPUTS), types)

    def order(node_id: str) -> tuple[int, str]:
        # isdigit() alone let "²" through, on which int() raises.
        return (int(node_id), "") if node_id.isascii() and node_id.isdecimal() else (1 << 62, node_id)

    def model_path(link: Any) -> tuple[list[dict[str, Any]] | None, list[str], str | None]:
        """The LoRAs on the model's path from ``link`` (the sampler's model) back to the node that loads it, in
        the order they were applied, what was left out of them, and the model that node loads (``_model_name``;
        None where the path cannot be followed to its start or the node names no file in ``_MODEL_INPUTS``); None
        for the list where the path cannot be followed to its start (a link to no node, a loop) or a LoRA node not
        read (a custom node's) is on it: then no LoRAs found does not mean none were used."""
        refs: list[dict[str, Any]] = []
        problems: list[str] = []
        whole = True
        for _ in range(_MODEL_PATH_HOPS):
            node_id = _node_id(link)
            inputs = nodes.get(node_id or "")
            if inputs is None:
                return refs[::-1] or None, problems, None
            kind = kinds.get(node_id or "", "")
            if kind in _LORA_NODES:
                ref, why = lora_node(kind, inputs)
                refs += [ref] if ref else []
                problems += [f"its ComfyUI {kind} node {node_id} {why}"] if why else []
            elif "lora" in kind.lower():
                whole = False
                problems.append(f"its ComfyUI graph applies LoRAs with a node this app does not read ({kind}, node "
                                f"{node_id}): those LoRAs are not restored")  # fmt: skip
            if "model" not in inputs:  # the node that loads the model: the start of the path
                names = (literal(inputs.get(name), (name, *_TEXT_INPUTS), (str,)) for name in _MODEL_INPUTS)
                model = next((found for name in names if name and (found := _model_name(name))), None)
                return (refs[::-1] if whole or refs else None), problems, model
            link = inputs["model"]
        return refs[::-1] or None, problems, None

    def lora_node(kind: str, inputs: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """A LoRA node's ``lora_ref`` (None when it names no file) and what in it could not be read ("")."""
        name = literal(inputs.get("lora_name"), ("lora_name", *_TEXT_INPUTS), (str,))
        stem = lora_stem(name) if name is not None else ""
        if not stem:
            return None, f"names no LoRA file ({str(inputs.get('lora_name'))[:60]!r}): it was left out"
        why = []
        strengths = []
        for key in ("strength_model", "strength_clip") if _LORA_NODES[kind] else ("strength_model",):
            raw = inputs.get(key, 1.0)
            value = finite(literal(raw, (key, *_NUMBER_INPUTS), (int, float)))
            if value is None:
                value = strengths[0] if strengths else 1.0
                why.append(f"has a {key} that is no number ({str(raw)[:40]}): read as {value:g}")
            strengths.append(value)
        text = strengths[1] if len(strengths) > 1 else 0.0  # model-only: the file's CLIP/T5 parts are not applied
        return lora_ref(stem, strengths[0], text), (f"('{stem}') " + " and ".join(why) if why else "")

    def is_sampler(node_id: str, inputs: dict[str, Any]) -> bool:
        # Conditioning nodes (ControlNetApplyAdvanced, InpaintModelConditioning) and guiders (CFGGuider) take a
        # "positive" too: taken for the sampler, they hid its seed, steps and cfg.
        takes = "positive" in inputs or "guider" in inputs
        return takes and ("latent_image" in inputs or "Sampler" in kinds.get(node_id, ""))

    problems: list[str] = []
    samplers = [k for k, i in sorted(nodes.items(), key=lambda kv: order(kv[0])) if is_sampler(k, i)]
    passes = Graph(nodes, kinds, lambda k: is_sampler(k, nodes[k]), number, lambda v, names: literal(v, names, (str,)))
    first = first_pass(passes, samplers)
    sampler = None if first is None else nodes[first]
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
        refs, problems, model = model_path(sampler.get("model", guider.get("model")))
        if refs is not None:
            out["lora_refs"] = refs
        if model is not None:
            out["model"] = model
    latents = [linked(sampler.get("latent_image"))] if sampler else []
    latents += [i for k, i in nodes.items() if _empty_latent_kind(kinds.get(k, ""))]
    for inputs in latents:
        width, height = number(inputs, "width", (int,)), number(inputs, "height", (int,))
        if width is not None and height is not None:
            out["width"], out["height"] = width, height
            break
    if first is not None:  # a hires fix, an img2img: said, with the size new images have
        size = f"{out['width']}x{out['height']}" if "width" in out else "at the size the prompt panel has"
        problems += passes_not_made(passes, samplers, first, size, (out["width"], out["height"]) if "width" in out
                                    else None, extras)  # fmt: skip
    return out or None, problems
