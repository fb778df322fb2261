"""Table-driven adapters: regex over module names -> role ("w4a4", "w4a16" or "keep").

A new architecture (PixArt-Sigma, SDXL) is one more ``ModelAdapter`` with its own table and the
diffusers class that builds it; nothing else in the engine changes.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ModelAdapter:
    architecture: str  # name recorded in checkpoints, e.g. "flux"
    diffusers_class: str  # e.g. "FluxTransformer2DModel"
    pipeline_class: str  # e.g. "FluxPipeline"
    rules: tuple[tuple[str, str], ...]  # (full-match regex over module names, role); first match wins
    # Linears that read the same activation, as (block list name, member names under one block): the
    # quantizer gives each group one smoothing vector, which lets the runtime merge them into one GEMM.
    shared_inputs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # (model config key, block list name): the counts of repeated blocks the config gives, which a file's tensor
    # names show (``<block list name>.<index>.``): a model is built block by block, so the counts set its cost.
    block_counts: tuple[tuple[str, str], ...] = ()
    # (model config key of the rotary embedding's per-axis widths, the key of the attention head width it splits,
    # that width's default, the number of position axes): no tensor's shape shows the split, which must be whole
    rope_axes: tuple[str, str, int, int] | None = None
    # the diffusers scheduler classes its pipeline can drive: the only ones an SVDQ file's recorded scheduler may
    # name (``gpu.checkpoint.scheduler``)
    schedulers: tuple[str, ...] = ()

    def role_of(self, module_name: str) -> str:
        for pattern, role in self.rules:
            if re.fullmatch(pattern, module_name):
                return role
        return "keep"

    def quantizable_linears(self, model: nn.Module) -> dict[str, tuple[nn.Linear, str]]:
        """Every nn.Linear of ``model`` whose role is not "keep": name -> (module, role)."""
        found = {}
        for name, module in model.named_modules():
            if isinstance(module, nn.Linear):
                role = self.role_of(name)
                if role != "keep":
                    found[name] = (module, role)
        return found

    def shared_input_groups(self, names: Iterable[str]) -> list[list[str]]:
        """The groups of ``shared_inputs`` present in ``names`` (full module names, e.g. a whole model's or one
        block's with its ``transformer_blocks.3.`` prefix): ``[["transformer_blocks.3.attn.to_q", ...], ...]``,
        in the order of ``names``; a group counts only when all its members are there."""
        present = list(names)
        known = set(present)
        groups = []
        for name in present:
            for blocks_name, members in self.shared_inputs:
                m = re.fullmatch(rf"((?:.*\.)?{re.escape(blocks_name)}\.\d+\.){re.escape(members[0])}", name)
                if m is None:
                    continue
                group = [m.group(1) + member for member in members]
                if all(g in known for g in group):
                    groups.append(group)
        return groups

    def model_class(self) -> type:
        return getattr(importlib.import_module("diffusers"), self.diffusers_class)


_ADAPTERS: dict[str, ModelAdapter] = {}


def register_adapter(adapter: ModelAdapter) -> ModelAdapter:
    _ADAPTERS[adapter.architecture] = adapter
    return adapter


def adapter_named(architecture: str) -> ModelAdapter:
    _load_builtin()
    try:
        return _ADAPTERS[architecture]
    except KeyError:
        known = ", ".join(sorted(_ADAPTERS))
        raise ValueError(f"unsupported architecture {architecture!r} (supported: {known})") from None


def adapter_for_config(class_name: str) -> ModelAdapter:
    """The adapter whose diffusers class is ``class_name`` (the ``_class_name`` of a model config)."""
    _load_builtin()
    for adapter in _ADAPTERS.values():
        if adapter.diffusers_class == class_name:
            return adapter
    known = ", ".join(a.diffusers_class for a in _ADAPTERS.values())
    raise ValueError(f"no adapter for model class {class_name!r} (supported: {known})")


def _load_builtin() -> None:
    importlib.import_module("gpu.adapters.flux")
