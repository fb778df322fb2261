"""Efficiency Nodes' scripts (efficiency-nodes-comfyui): its samplers (KSampler (Efficient), KSampler Adv.
(Efficient), KSampler SDXL (Eff.)) run what the script nodes on their ``script`` input ask after their own pass,
inside the sampler node: its outputs, the latent and the picture, are of the last of those passes. Its HighRes-Fix
Script samples the picture again, larger, ``iterations`` times: a hires fix the graph shows only as that node's
inputs, said as a later pass of its own (``comfyui_passes``). Restored without a word, the settings looked complete
and made a smaller, other picture.

As the script's own code runs it: "latent", each iteration a LatentUpscaleBy of ``upscale_by`` with its
``latent_upscaler``, then a sampler at its ``denoise``; "both", each iteration its ``pixel_upscaler`` model's
picture scaled by ``upscale_by`` / 4 (the factor of a 4x model), encoded and sampled again; "pixel" samples nothing
again (its picture only upscaled), no pass."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from gpu.generation.comfyui_values import node_id, shown
from gpu.generation.passes_said import GROWN, Side, ratio, scaled

if TYPE_CHECKING:
    from gpu.generation.comfyui_passes import Graph

_HIRES_SCRIPT = "HighRes-Fix Script"
_SAMPLING_TYPES = {"latent": "latent_upscaler", "both": "pixel_upscaler"}  # upscale_type -> what upscales it
_MAX_SCRIPTS = 16  # script nodes followed up a chain: a graph is untrusted, its links may loop
_MAX_ITERATIONS = 64  # sizes worked out: the node allows 5; an untrusted file may say any number


def hires_script(graph: Graph, sampler: str) -> str | None:
    """The HighRes-Fix Script node on the ``script`` input of ``sampler`` (directly, or through the other script
    nodes chained on the way, each by its own ``script`` input) that samples its picture again; None where none
    does (no script, no iterations, a "pixel" upscale only)."""
    node = graph.nodes[sampler].get("script")
    for _ in range(_MAX_SCRIPTS):
        up = node_id(node)
        if up not in graph.nodes:
            return None
        if graph.kinds.get(up) == _HIRES_SCRIPT:
            return up if _upscale_type(graph, up) in _SAMPLING_TYPES and _iterations(graph, up) > 0 else None
        node = graph.nodes[up].get("script")
    return None


def picture_of(graph: Graph, node: str) -> str:
    """The pass whose picture ``node`` gives: a sampler with a HighRes-Fix Script gives its script's, else ``node``."""
    return (hires_script(graph, node) or node) if graph.is_sampler(node) else node


def is_hires_script(graph: Graph, node: str) -> bool:
    """Whether ``node`` is a HighRes-Fix Script node (a pass ``hires_script`` found)."""
    return graph.kinds.get(node) == _HIRES_SCRIPT


def script_passes(graph: Graph, node: str) -> int:
    """How many passes the HighRes-Fix Script ``node`` runs: its iterations."""
    return _iterations(graph, node)


def script_said(graph: Graph, node: str) -> str:
    """The HighRes-Fix Script ``node`` in words, as a one-node pass is said ("HighRes-Fix Script node 40 by 1.5 with
    nearest-exact at denoise 0.56")."""
    inputs = graph.nodes[node]
    by = graph.number(inputs, "upscale_by")
    upscaler = graph.text(inputs.get(_SAMPLING_TYPES[_upscale_type(graph, node)]), ("value",))
    return (f"{_HIRES_SCRIPT} node {node}{f' by {shown(by)}' if by is not None else ''}"
            f"{f' with {upscaler}' if upscaler else ''}{graph.denoise(node)[0]}")  # fmt: skip


def script_size(graph: Graph, node: str, size: tuple[Side, Side]) -> tuple[Side, Side]:
    """The size the HighRes-Fix Script ``node`` makes of a picture of ``size`` (factors of the first pass's): scaled
    by ``upscale_by`` each iteration ("latent"); by an upscale model's factor, not said, times ``upscale_by`` / 4
    ("both"); any factor where the graph does not give ``upscale_by`` (a link to a node not read)."""
    given = graph.number(graph.nodes[node], "upscale_by")
    by = max(ratio(given, 1), 0.0) if given is not None else None  # a float of it (one too large: infinite)
    latent = _upscale_type(graph, node) == "latent"
    for _ in range(min(_iterations(graph, node), _MAX_ITERATIONS)):
        if by is None:
            size = scaled(size, (0.0, math.inf))
        else:
            size = scaled(size, (by, by)) if latent else scaled(scaled(size, GROWN), (by / 4, by / 4))
    return size


def _upscale_type(graph: Graph, node: str) -> str | None:
    """The HighRes-Fix Script ``node``'s upscale_type ("latent", "pixel", "both"), its link followed."""
    return graph.text(graph.nodes[node].get("upscale_type"), ("value",))


def _iterations(graph: Graph, node: str) -> int:
    """The HighRes-Fix Script ``node``'s iterations, 0 where it gives none that is a whole number."""
    value = graph.number(graph.nodes[node], "iterations")
    return value if isinstance(value, int) and value > 0 else 0
