"""Choose, per call, between fused CUDA kernels and the PyTorch reference for an ``SVDQLinear``.

The fused backends register themselves here (see ``register_backend``); a backend answers whether it
can serve a layer on a device (and why not), so the app can show the user the path that will run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch

from gpu.modules.reference import check_gelu_from, gelu_columns_


@dataclass(frozen=True)
class Backend:
    name: str
    # (layer, device) -> None when the backend can serve the layer there, else the reason it cannot
    refuses: Callable[[torch.nn.Module, torch.device], str | None]
    # (layer, x, gelu_from) -> y; GELU on output columns >= gelu_from (None: none), fused where it can be
    run: Callable[[torch.nn.Module, torch.Tensor, int | None], torch.Tensor]
    # layer -> how this backend runs it when not in its usual way, in words (None: the usual way)
    note: Callable[[torch.nn.Module], str | None] | None = None
    # layer -> GPU bytes this backend keeps for the layer beside the layer's own buffers (its packed copies)
    held_bytes: Callable[[torch.nn.Module], int] | None = None


@dataclass(frozen=True)
class ExecutionPath:
    """What runs a model's linears, in words, in parts: ``summary`` is the path itself ("<backend> on <device>"),
    ``why`` the other backends' refusals and ``notes`` how it runs (a LoRA, fused blocks). The app shows the
    summary and keeps the rest for a tooltip; ``str()`` is the whole text, as the PNG metadata and CLI print it."""

    summary: str
    why: str = ""  # why no fused backend serves the layer ("" when one does)
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.summary + (f" ({self.why})" if self.why else "") + "".join(f"; {n}" for n in self.notes)

    def with_note(self, note: str) -> ExecutionPath:
        return replace(self, notes=(*self.notes, note))


_BACKENDS: list[Backend] = []
_builtin_loaded = False


def _load_builtin_backends() -> None:
    """Import the fused-kernel package once; it registers its backends on import (if it exists)."""
    global _builtin_loaded
    if _builtin_loaded:
        return
    _builtin_loaded = True
    try:
        import gpu.kernels.backend  # noqa: F401
    except ModuleNotFoundError as err:
        if err.name not in ("gpu.kernels", "gpu.kernels.backend"):
            raise


def register_backend(backend: Backend) -> None:
    _BACKENDS[:] = [b for b in _BACKENDS if b.name != backend.name] + [backend]


def choose_backend(layer: torch.nn.Module, device: torch.device) -> tuple[Backend | None, ExecutionPath]:
    """The backend that will run ``layer`` on ``device`` (None = PyTorch reference), and that path in words."""
    _load_builtin_backends()
    reasons = []
    for backend in _BACKENDS:
        refusal = backend.refuses(layer, device)
        if refusal is None:
            return backend, ExecutionPath(f"{backend.name} on {describe_device(device)}")
        reasons.append(f"{backend.name}: {refusal}")
    why = "; ".join(reasons) if reasons else "no fused kernel backend is installed"
    return None, ExecutionPath(f"PyTorch reference on {describe_device(device)}", why)


def choose_path(layer: torch.nn.Module, device: torch.device) -> tuple[Backend | None, str]:
    """``choose_backend`` with the path as one text (a layer's ``last_path``, the benchmarks' reports)."""
    backend, path = choose_backend(layer, device)
    return backend, str(path)


def _serving(layers: list[torch.nn.Module], device: torch.device) -> Iterator[tuple[torch.nn.Module, Backend]]:
    """(layer, backend) for each of ``layers`` that a fused backend will run on ``device``."""
    for layer in layers:
        backend, _ = choose_backend(layer, device)
        if backend is not None:
            yield layer, backend


def path_notes(layers: list[torch.nn.Module], device: torch.device) -> dict[str, int]:
    """How many of ``layers`` their backends run in an unusual way on ``device``, per note (``Backend.note``)."""
    notes: dict[str, int] = {}
    for layer, backend in _serving(layers, device):
        note = backend.note(layer) if backend.note is not None else None
        if note:
            notes[note] = notes.get(note, 0) + 1
    return notes


def held_bytes(layers: list[torch.nn.Module], device: torch.device) -> int:
    """GPU bytes the backends that will run ``layers`` on ``device`` keep beside the layers' own buffers."""
    return sum(backend.held_bytes(layer) for layer, backend in _serving(layers, device) if backend.held_bytes)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"{torch.cuda.get_device_name(device)} (sm_{major}{minor})"
    return device.type.upper()


def run_linear(layer: torch.nn.Module, x: torch.Tensor, gelu_from: int | None = None) -> torch.Tensor:
    """x: T [..., K] -> T [..., N] on the chosen path; tanh-GELU on output columns >= ``gelu_from``."""
    check_gelu_from(gelu_from, layer.out_features)
    backend, why = choose_path(layer, x.device)
    layer.last_path = why
    if backend is None:
        return gelu_columns_(layer.forward_reference(x), gelu_from)
    return backend.run(layer, x, gelu_from)


def predicted_backend(
    device: torch.device, layers: dict[str, dict] | None = None, dtype: torch.dtype = torch.bfloat16
) -> ExecutionPath:
    """The path an SVDQ model's main layers would take on ``device``, before the model is loaded: a layer of the
    kind ``layers`` (an SVDQ file's layer metadata, name -> spec and in/out features) holds probed on the meta
    device, as ``execution_path`` reports a loaded model by its first layer with quantized activations (W4A4,
    W8A8), else its first layer; ``dtype``: the one its quantized layers will have when loaded
    (``gpu.checkpoint.skeleton.quantized_layer_dtype``). Without ``layers``: an INT4
    W4A4 rank-32 layer."""
    from gpu.modules.layer_spec import LayerSpec, spec_for
    from gpu.modules.svdq_linear import SVDQLinear

    spec, shape = spec_for("svdquant", "int4", 32, "w4a4"), (128, 128)
    if layers:
        # min is stable: the first layer with quantized activations, as execution_path's stable sort picks
        entry = min(layers.values(), key=lambda layer: layer.get("act_format") is None)
        try:
            spec, shape = LayerSpec.from_json(entry), (int(entry["in_features"]), int(entry["out_features"]))
        except (KeyError, TypeError, ValueError):  # a damaged entry: the kind alone, loading names the damage
            spec = LayerSpec.from_json(entry)
    with torch.device("meta"):
        probe = SVDQLinear(*shape, spec, dtype=dtype)
    return choose_backend(probe, device)[1]
