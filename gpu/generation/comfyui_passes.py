"""The passes of a ComfyUI graph (the ``prompt`` chunk's, or one made of a ``workflow``): which sampler is the first
pass, whose settings ``comfyui_graph.read_graph`` reads, and what the graph did besides it that no setting here
makes, said (``passes_said``): a hires fix (a second sampler fed the first's latent through an upscale: the image is
larger than the first pass, and not the picture the settings make), a later pass at the same size (a refiner's; or
after a resize the graph does not say enlarged: a scale of 1, a downscale), a custom node that samples the picture
again in one node (an Ultimate SD Upscale, a detailer: ``one_node_pass``), a sampler's own hires fix (Efficiency
Nodes' HighRes-Fix Script: ``comfyui_scripts``), a first pass that started from a loaded picture (img2img). Restored
without a word, the settings looked complete and made another picture. Where the graph saves the picture of a pass
before the last too, the file may be that one: the passes after it are said as ones it may have had.

A pass is found by walking up from a sampler's ``latent_image`` (a one-node pass's picture) through any node's links
(a latent upscale; or a decode, an image upscale and an encode again) to the pass that made that latent. The graph
is another program's data: links may loop or point nowhere; the walk is bounded and never raises."""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from gpu.generation.comfyui_scripts import (
    hires_script,
    is_hires_script,
    picture_of,
    script_passes,
    script_said,
    script_size,
)
from gpu.generation.comfyui_values import node_id
from gpu.generation.comfyui_values import shown as _shown
from gpu.generation.extras_upscale import ExtrasUpscale
from gpu.generation.passes_said import (
    BACK_TO_ITS_SIZE,
    GROWN,
    NOT_TOLD,
    SAME,
    Named,
    PassSize,
    Resized,
    Side,
    detailer_passes,
    extras_after_saved,
    img2img_not_restored,
    later_passes,
    not_restored,
    pass_size,
    passes_size,
    pixels,
    ratio,
    resize_after_passes,
    resized_after_its_pass,
    resized_to,
    scaled,
)

_MAX_WALK = 512  # nodes visited walking up from one sampler: a graph is untrusted, its links may loop
_MAX_SAMPLERS = 64  # samplers looked at: a file is read at each drop and at the images folder's import
# Custom nodes that sample a picture they are given again, in one node (a picture in, one out; no latent a sampler
# gives): a tiled img2img upscale (Ultimate SD Upscale and its variants; Impact Pack's SEGSUpscaler and Iterative
# Upscale (Image)), a detailer's of the faces or parts it finds (FaceDetailer, Impact Pack's Detailer (SEGS) nodes,
# SEGSDetailer, MaskDetailer), by their class's name: a workflow alone gives a custom node's links, not its values.
_ONE_NODE_PASS = re.compile(r"UltimateSDUpscale|Detailer|SEGSUpscaler|IterativeImageUpscale")
_DETAILER = re.compile(r"Detailer")  # of those, the detailers: the parts they find, sampled again at their size
_PICTURE_INPUTS = ("image", "pixels")  # the inputs a one-node pass takes its picture by


def one_node_pass(kind: str, inputs: dict[str, Any]) -> bool:
    """Whether a node of class ``kind`` with ``inputs`` samples a picture it is given again, in one node: it takes a
    picture by a link, and its class names such a node (``_ONE_NODE_PASS``) or it takes what a sampler takes, a
    seed, steps and a model to sample with (by a link: its ``model``, or a pipe of it, Impact Pack's ``basic_pipe``).
    A pipe of the model (ToDetailerPipe) or a detector takes no picture to sample; a noise or grain generator (a
    seed and steps of its own) no model."""
    if not any(node_id(inputs.get(name)) is not None for name in _PICTURE_INPUTS):
        return False
    samples = any(node_id(value) is not None and (name == "model" or name.endswith("pipe")) for name, value in
                  inputs.items())  # fmt: skip
    return bool(_ONE_NODE_PASS.search(kind)) or (("seed" in inputs or "noise_seed" in inputs) and "steps" in inputs
                                                 and samples)  # fmt: skip


def empty_latent_kind(kind: str) -> bool:
    """Whether a node of class ``kind`` makes a new, empty latent (EmptyLatentImage, EmptySD3LatentImage...)."""
    return kind.startswith("Empty") and "Latent" in kind


@dataclass(frozen=True)
class Graph:
    """A graph as ``read_graph`` reads it: ``nodes``, node id -> inputs; ``kinds``, node id -> class type;
    ``is_sampler(node id)``; ``number(inputs, name)`` and ``text(value, names)``, a value with the links that give it
    followed (a primitive node's), None when there is none of that type."""

    nodes: dict[str, dict[str, Any]]
    kinds: dict[str, str]
    is_sampler: Callable[[str], bool]
    number: Callable[[dict[str, Any], str], Any]
    text: Callable[[Any, tuple[str, ...]], Any]

    def one_node_pass(self, node: str) -> bool:
        """Whether ``node`` is no sampler but samples a picture again in one node (``one_node_pass``)."""
        return not self.is_sampler(node) and one_node_pass(self.kinds.get(node, ""), self.nodes[node])

    def walk_up(self, sampler: str, past_one_node: bool = False, by: tuple[str, ...] = ("latent_image",
                *_PICTURE_INPUTS)) -> tuple[dict[str, str | None], list[str]]:  # fmt: skip
        """The nodes the latent of ``sampler`` (or the picture of a one-node pass; ``by``: the inputs it may take it
        by, a save node's "images") comes from, each with the node it was reached from (None: the one its
        ``latent_image`` links to), and the passes among them, nearest first; not walked past a pass
        (``past_one_node``: but for one-node passes, which are walked through)."""
        inputs = self.nodes[sampler]
        start = next((up for name in by if (up := node_id(inputs.get(name)))), None)
        if start not in self.nodes:
            return {}, []
        came_from: dict[str, str | None] = {start: None}
        queue, samplers = deque([start]), []
        while queue:
            here = queue.popleft()
            if self.is_sampler(here) or (not past_one_node and self.one_node_pass(here)):
                samplers.append(here)
                continue
            for value in self.nodes[here].values():
                up = node_id(value)
                if up in self.nodes and up not in came_from and len(came_from) < _MAX_WALK:
                    came_from[up] = here
                    queue.append(up)
        return came_from, samplers

    def denoise(self, sampler: str) -> tuple[str, bool]:
        """How much of ``sampler``'s latent it made again, in words (" at denoise 0.5"; KSamplerAdvanced's " from step
        20 of 25"; "" when not known), and whether that is less than all of it."""
        inputs = self.nodes[sampler]
        sigmas = self.nodes.get(node_id(inputs.get("sigmas")) or "", {})  # SamplerCustomAdvanced's scheduler
        start, steps = self.number(inputs, "start_at_step"), self.number(inputs, "steps")
        if start and steps is not None:
            return f" from step {_shown(start)} of {_shown(steps)}", True
        value = next((v for v in (self.number(inputs, "denoise"), self.number(sigmas, "denoise")) if v is not None),
                     None)  # fmt: skip
        return ("", False) if value is None else (f" at denoise {_shown(value)}", value < 1)

    def resizing(self, node: str) -> Resize | None:
        """What a node that scales the latent or the picture says of the size it makes; None for a node whose class
        names no scale."""
        kind, inputs = self.kinds.get(node, ""), self.nodes[node]
        if "Upscale" not in kind and "Scale" not in kind:
            return None
        width, height, pixels = (self.number(inputs, name) for name in ("width", "height", "megapixels"))
        # a factor: ComfyUI's own nodes' scale_by, Ultimate SD Upscale's upscale_by, Iterative Upscale's factor
        scale = next((v for name in ("scale_by", "upscale_by", "upscale_factor") if (v := self.number(inputs, name))
                      is not None), None)  # fmt: skip
        model = self.text(inputs.get("upscale_model"), ("model_name",))
        return Resize(kind, width, height, scale, pixels, model, "upscale_model" in inputs)

    def resize(self, node: str) -> str | None:
        """What a node that scales the latent or the picture did ("LatentUpscale to 1152x1152", "ImageScaleBy by
        1.5", "ImageUpscaleWithModel with 4x-UltraSharp.pth", "ImageScaleToTotalPixels to 2 megapixels"); None for a
        node that does not."""
        if (r := self.resizing(node)) is None:
            return None
        return r.kind + _resize_words(r)


def _resize_words(r: Resize) -> str:
    """The size a resizing node makes, in words, after its class's name (" to 1152x1152", " to width 2048 keeping
    proportions", " by 1.5 with 4x-UltraSharp.pth"; "" where it says none)."""
    return _target_words(r.width, r.height) + \
        (f" to {_shown(r.megapixels)} megapixel{'' if r.megapixels == 1 else 's'}" if r.megapixels is not None
         else "") + (f" by {_shown(r.scale)}" if r.scale is not None else "") + \
        (f" with {r.model}" if r.model else "")  # fmt: skip


def _target_words(width: Any, height: Any) -> str:
    """A target size in words: " to 1152x1152"; one side 0, which ComfyUI sets by the other's, keeping the
    picture's proportions, " to width 2048 keeping proportions" (no comma: these words sit in a list of resizes);
    a side the graph does not say (None: given by a node not read), the other alone; "" where neither is said."""
    if width and height:
        return f" to {_shown(width)}x{_shown(height)}"
    side, value, other = ("width", width, height) if width else ("height", height, width)
    if not value:
        return ""
    return f" to {side} {_shown(value)}" + (" keeping proportions" if other == 0 else "")


class Resize(NamedTuple):
    """What a node between two passes that scales the latent or the picture says of the size it makes, each None
    where it says nothing (``Graph.resizing``): a target ``width`` and ``height`` in pixels (one 0: kept in aspect
    by the other), a ``scale`` factor, a total of ``megapixels`` (ImageScaleToTotalPixels), the upscale ``model``'s
    file; ``by_model``: an upscale model scales it, by the model's factor, which the graph does not say (unless
    ``scale`` says the size it makes with it, as Ultimate SD Upscale's does)."""

    kind: str
    width: Any
    height: Any
    scale: Any
    megapixels: Any
    model: str | None
    by_model: bool


def first_pass(graph: Graph, samplers: list[str]) -> str | None:
    """Of ``samplers`` (in the graph's order), the first pass: the first fed an empty latent, else the first that no
    other sampler feeds (an empty latent passed through a batch node: the sampler numbered first was taken, a second
    pass numbered before the first gave the settings of the pass that only refines), else the first."""
    samplers = samplers[:_MAX_SAMPLERS]
    for sampler in samplers:
        if empty_latent_kind(graph.kinds.get(node_id(graph.nodes[sampler].get("latent_image")) or "", "")):
            return sampler
    return next((s for s in samplers if not graph.walk_up(s)[1]), samplers[0] if samplers else None)


def passes_not_made(graph: Graph, samplers: list[str], first: str, size: str, dims: tuple[int, int] | None = None,
                    extras: ExtrasUpscale | None = None) -> list[str]:  # fmt: skip
    """What the graph did besides its first pass ``first`` (of ``samplers``), said, with the size new images have
    (``size``, the first pass's; ``dims``, its width and height where known): the passes after it, a sampler's or a
    one-node pass's (a hires fix when one ran at a larger size than the first, or a size of another shape: their
    size as far as the graph says it, ``_sizes``; a detailer said as one, ``_named``), the resizes of the last pass's
    picture before a node saves it, and ``extras``, an upscale in A1111's Extras tab after that; said after its
    start from a loaded picture (``_from_another_picture``). [] when it made the image in one pass."""
    one_node = [node for node in graph.nodes if graph.one_node_pass(node)]
    later = _later_passes(graph, (samplers + one_node)[:_MAX_SAMPLERS], first)
    said = _from_another_picture(graph, first)  # before what was done after its start, as it ran
    sizes = _sizes(graph, later, first, dims)
    # each resize's size beside the picture of the pass before it: the first's, or the last later pass's, where
    # the graph tells it (beside an unknown size, a target size after a hires fix said "resize" of a plain upscale)
    ways, sure = _saved_ways(graph, later, first)
    # the file may be the picture of a pass before the last: the Extras upscale, which it surely had, is said apart,
    # not inside the passes it may have had (which picture it was given is not known)
    apart = extras if sure < len(later) else None
    resized, saved_before = _resized_ways(graph, ways, pixels(dims, sizes[-1]) if later else dims,
                                          None if apart else extras)  # fmt: skip
    if later:
        named, maybe = _named(graph, later, sizes, sure)
        if resized:  # after the last pass: among those it may have had, where there are
            after = len(later) - sure if maybe else len(later)
            (maybe or named).append(resize_after_passes(resized, saved_before, after))
        said.append(not_restored(named, size, maybe))
    elif resized:
        said.append(resized_after_its_pass(resized, saved_before, size))
    if apart is not None:
        said.append(extras_after_saved(apart.words, pass_size(*apart.size(None))))
    return said


def _from_another_picture(graph: Graph, first: str) -> list[str]:
    """The start of the first pass ``first`` from a loaded picture, said: an img2img that did not make it again
    whole (a denoise below 1), or an inpainting, which keeps all of it but what a mask gives, whatever its denoise
    (VAEEncodeForInpaint, InpaintModelConditioning, SetLatentNoiseMask: a node on the way that takes a mask by a
    link). [] where it started from noise."""
    came_from, _samplers = graph.walk_up(first, past_one_node=True)  # a detailed picture loaded: from it, too
    loaded = next((node for node in came_from if graph.kinds.get(node, "").startswith("LoadImage")), None)
    if loaded is None:
        return []
    masked = next((node for node in came_from if node_id(graph.nodes[node].get("mask")) is not None), None)
    how, partly = graph.denoise(first)
    if masked is not None:
        what = f"inpainting: {graph.kinds[loaded]} node {loaded}, {graph.kinds.get(masked, '')} node {masked}"
    elif partly:
        what = f"img2img: {graph.kinds[loaded]} node {loaded}"
    else:
        return []
    return [img2img_not_restored(f"{what}, {graph.kinds[first]} node {first}{how}")]


def _saved_ways(graph: Graph, later: list[tuple[str, str, list[str]]], first: str) -> tuple[list[list[str]], int]:
    """The ways the picture of the last pass that ran (of ``later``, else ``first``) was resized before a node saves
    it (one taking "images", a SaveImage, a PreviewImage, that no node takes from): for each such node, the nodes
    between that resize it (an upscale model's, an image scale's), in the order they ran, [] for none; each way once,
    in the graph's order. And how many of the passes ``later`` the file surely had: those before the earliest pass
    whose picture alone a node saves (a preview of the first pass's, a save of a detailer's before an upscale), all
    where only the last's is saved. The graph is the same in each PNG it saves: the file may be any of them."""
    taken = {up for inputs in graph.nodes.values() for value in inputs.values() if (up := node_id(value))}
    savers = [node for node, inputs in graph.nodes.items() if node not in taken and node_id(inputs.get("images"))
              and not graph.is_sampler(node) and not graph.one_node_pass(node)][:_MAX_SAMPLERS]  # fmt: skip
    order = [first, *(sampler for sampler, _made, _between in later)]
    ways: list[list[str]] = []
    sure = len(later)
    for saver in savers:
        came_from, passes = graph.walk_up(saver, by=("images",))
        pictures = [picture_of(graph, made) for made in passes]  # a sampler's picture: its hires script's
        if order[-1] in pictures:
            way = [node for node in _on_the_way(came_from, passes[pictures.index(order[-1])])
                   if graph.resizing(node) is not None]  # fmt: skip
            if way not in ways:
                ways.append(way)
        if len(pictures) == 1 and pictures[0] in order:  # not beside another pass's picture (an image batch)
            sure = min(sure, order.index(pictures[0]))
    return ways, sure


def _resized_ways(graph: Graph, ways: list[list[str]], before: tuple[int, int] | None,
                  extras: ExtrasUpscale | None = None) -> tuple[list[Resized], bool]:  # fmt: skip
    """The ``ways`` (``_saved_ways``; none: the picture saved as it is) that resized the picture of the last pass
    (of ``before`` pixels, where known), each then upscaled in A1111's Extras tab (``extras``, where the file says
    so), each in words with how the picture it made compares with that one, each said once; and whether one changed
    nothing the graph tells (none, a scale to its own size): the file may be that picture too. One whose resizes
    gave the picture back its size (ImageScaleBy 0.5, then an Extras upscale by 2) is said, "back to" that size: the
    file is not the picture the settings make."""
    resized, unchanged = [], False
    for way in ways or [[]]:
        size, moved = SAME, False
        for node in way:
            size = _resized(graph, node, size, before)
            moved = moved or size != SAME
        what = _resizes_said(graph, way)
        if extras is not None:
            what, size = extras.after(what, size, before)
        if size == SAME and not moved:
            unchanged = True
            continue
        what += BACK_TO_ITS_SIZE if size == SAME else ""
        if all(what != other.what for other in resized):
            resized.append(Resized(what, pass_size(*size)))
    return resized, unchanged


def _on_the_way(came_from: dict[str, str | None], made: str) -> list[str]:
    """The nodes of a walk up (``Graph.walk_up``'s ``came_from``) from the node after ``made`` on to the node the
    walk started from, in the order they ran."""
    between, node = [], came_from[made]
    while node is not None:
        between.append(node)
        node = came_from[node]
    return between


def _resizes_said(graph: Graph, resizes: list[str]) -> str:
    """``resizes`` in words, in the order they ran ("ImageUpscaleWithModel with 4x-UltraSharp.pth, ImageScaleBy by
    0.5")."""
    return ", ".join(said for node in resizes if (said := graph.resize(node)))


def _named(graph: Graph, later: list[tuple[str, str, list[str]]], sizes: list[Size], sure: int
           ) -> tuple[list[Named], list[Named]]:  # fmt: skip
    """The passes ``later`` (that ran at ``sizes``) named each for what it is, in the order they ran: the detailers
    (``_DETAILER``) as detailer passes, the others as a hires fix (with its size) or later passes; passes of one kind
    that ran one after another said together, a kind met again after another said as "another" (grouped by kind,
    a FaceDetailer, an upscale, a FaceDetailer were said as if both detailers ran first). Said together, a detailer
    after a hires pass was "its hires fix (…; FaceDetailer …: 2 more passes up to a larger size)". A detailer's size
    is said where a resize before it changed it (an upscale model's picture detailed), not where it is a hires
    fix's before it. Named apart: the first ``sure`` passes, which the file surely had, and the rest, which it may
    not have (never said together)."""
    runs: list[tuple[bool, list[tuple[str, Size, int]], list[PassSize]]] = []  # (detailers?, passes, resized sizes)
    size_of = dict(zip((sampler for sampler, _made, _between in later), sizes, strict=True))
    sure_runs = 0
    for number, ((sampler, made, between), size) in enumerate(zip(later, sizes, strict=True)):
        detailer = graph.one_node_pass(sampler) and bool(_DETAILER.search(graph.kinds.get(sampler, "")))
        if number == sure:
            sure_runs = len(runs)
        if not runs or runs[-1][0] != detailer or number == sure:
            runs.append((detailer, [], []))
        count = script_passes(graph, sampler) if is_hires_script(graph, sampler) else 1
        runs[-1][1].append((_pass(graph, sampler, between), size, count))
        if detailer and size != size_of.get(made, SAME):  # a resize before it changed its picture
            runs[-1][2].append(pass_size(*size))
    named, met = [], set()
    for detailer, passes, resized in runs:
        what, again = "; ".join(said for said, _size, _count in passes), detailer in met
        count = sum(count for _said, _size, count in passes)
        met.add(detailer)
        if detailer:
            named.append(detailer_passes(what, count, passes_size(resized) if resized else None, again))
        else:
            named.append(later_passes(what, passes_size(pass_size(*size) for _said, size, _count in passes), count,
                                      again))  # fmt: skip
    sure_runs = sure_runs if sure < len(later) else len(runs)
    return named[:sure_runs], named[sure_runs:]


def _later_passes(graph: Graph, samplers: list[str], first: str) -> list[tuple[str, str, list[str]]]:
    """The passes after ``first``, in the order they ran: each sampler of ``samplers`` fed the latent of ``first``,
    or of a pass after it, with the pass whose picture that is (``picture_of``: a sampler's HighRes-Fix Script's,
    said as a pass of its own after the sampler, ``hires_script``) and the nodes on the way from it, in the order
    they ran."""
    walks = {sampler: graph.walk_up(sampler) for sampler in samplers if sampler != first}
    done, later = {first}, []
    if (script := hires_script(graph, first)) is not None:
        later.append((script, first, []))
    while True:
        fed = next(((sampler, came_from, made) for sampler, (came_from, met) in walks.items() if sampler not in done
                    and (made := next((m for m in met if m in done), None)) is not None), None)  # fmt: skip
        if fed is None:
            return later
        sampler, came_from, made = fed
        # from the node after ``made`` to ``sampler``
        later.append((sampler, picture_of(graph, made), _on_the_way(came_from, made)))
        done.add(sampler)
        if graph.is_sampler(sampler) and (script := hires_script(graph, sampler)) is not None:
            later.append((script, sampler, []))


def _pass(graph: Graph, sampler: str, between: list[str]) -> str:
    """A later pass in words: its resizes, then its sampler ("LatentUpscale to 1152x1152, then KSampler node 11 at
    denoise 0.5"); a one-node pass with the size it makes ("UltimateSDUpscale node 31 by 2 with 4x-UltraSharp.pth at
    denoise 0.2"); a HighRes-Fix Script as ``script_said`` says it."""
    if is_hires_script(graph, sampler):
        return script_said(graph, sampler)
    resizes = [said for node in between if (said := graph.resize(node))]
    own = graph.resizing(sampler) if graph.one_node_pass(sampler) else None
    made = (f"{graph.kinds.get(sampler, '')} node {sampler}{_resize_words(own) if own else ''}"
            f"{graph.denoise(sampler)[0]}")  # fmt: skip
    return ", ".join([*resizes, f"then {made}"]) if resizes else made


Size = tuple[Side, Side]  # a pass's (width, height), each as a factor of the first pass's, between bounds


def _sizes(graph: Graph, later: list[tuple[str, str, list[str]]], first: str, dims: tuple[int, int] | None
           ) -> list[Size]:  # fmt: skip
    """The size each pass of ``later`` ran at, beside ``first``'s (of ``dims``), as far as the graph says: its
    resizes from ``first`` on (through the passes that fed it, a one-node pass's own resize after them)."""
    sizes: dict[str, Size] = {first: SAME}
    for sampler, made, between in later:
        size = sizes.get(made, SAME)
        for node in [*between, *([sampler] if graph.one_node_pass(sampler) else [])]:
            size = _resized(graph, node, size, dims)
        if is_hires_script(graph, sampler):
            size = script_size(graph, sampler, size)
        sizes[sampler] = size
    return [sizes[sampler] for sampler, _made, _between in later]


def _resized(graph: Graph, node: str, size: Size, dims: tuple[int, int] | None) -> Size:
    """The size after ``node``, from ``size`` before it, beside the first pass's (``dims``). A target size is in
    pixels, as the first pass's (one side 0: ComfyUI keeps the aspect by the other; one given by a node not read:
    any size), or a total of megapixels: any size where the first pass's is not known. A factor scales it, an
    upscale model by its own, above 1 but not said (a later target size sets it again); a resize whose size the
    graph does not say leaves it as it was: never said larger on a guess."""
    if (r := graph.resizing(node)) is None:
        return size
    if r.width or r.height:
        width, height = resized_to(r.width or 0, r.height or 0, dims)
        # a side given by a node not read (None) is any size: only a side of 0 keeps the proportions
        return (NOT_TOLD[0] if r.width is None else width), (NOT_TOLD[1] if r.height is None else height)
    if r.megapixels is not None:  # a total of megapixels * 2**20 pixels, the aspect kept
        if dims is None or min(dims) <= 0:
            return NOT_TOLD
        factor = math.sqrt(max(ratio(r.megapixels * 2**20, dims[0] * dims[1]), 0.0))
        return (factor, factor), (factor, factor)
    if r.scale is not None:
        factor = max(ratio(r.scale, 1), 0.0)
        return scaled(size, (factor, factor))
    return scaled(size, GROWN) if r.by_model else size  # a model's factor: above 1 (what one is for), not said
