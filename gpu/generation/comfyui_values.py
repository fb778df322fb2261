"""What a ComfyUI graph's inputs hold, read the same by each module that reads a graph (``comfyui_passes``,
``comfyui_scripts``): a link to another node's output, a number as the user typed it."""

from __future__ import annotations

from typing import Any


def node_id(value: Any) -> str | None:
    """The node a link ``[id, slot]`` points to, or None when ``value`` is a literal."""
    return str(value[0]) if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int) else None


def shown(number: float) -> str:
    """A number of the graph as the user typed it ("0.5", "1152"); an integer as it is (one too large for a float,
    as an untrusted file may hold, made :g raise)."""
    return f"{number:g}" if isinstance(number, float) else str(number)
