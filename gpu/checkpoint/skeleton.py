"""Build the module tree an SVDQ checkpoint describes, and load its tensors into it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from gpu.adapters import adapter_named
from gpu.checkpoint.format import REMAKE, CheckpointMeta, load_checkpoint
from gpu.errors import CheckpointError
from gpu.modules.layer_spec import LayerSpec
from gpu.modules.svdq_linear import SVDQLinear
from gpu.out_of_memory import gpu_ran_out, ram_ran_out


def replace_linears(
    model: nn.Module, specs: dict[str, LayerSpec], dtype: torch.dtype, device: torch.device | str | None = None
) -> None:
    """Swap each named ``nn.Linear`` for an empty ``SVDQLinear`` of the given spec (in place)."""
    for name, spec in specs.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        old = getattr(parent, child)
        if not isinstance(old, nn.Linear):
            raise ValueError(f"{name} is a {type(old).__name__}, not a Linear")
        new = SVDQLinear(old.in_features, old.out_features, spec, old.bias is not None, dtype, device)
        setattr(parent, child, new)


def layer_specs(meta: CheckpointMeta) -> dict[str, LayerSpec]:
    return {name: LayerSpec.from_json(entry) for name, entry in meta.layers.items()}


def build_skeleton(meta: CheckpointMeta) -> nn.Module:
    """The quantized transformer on the meta device (no tensor memory): base model + SVDQLinear swaps."""
    adapter = adapter_named(meta.architecture)
    with torch.device("meta"):
        model = adapter.model_class().from_config(meta.model_config)
        nn.Module.to(model, meta.torch_dtype)  # diffusers' own .to() warns on dtype casts
        replace_linears(model, layer_specs(meta), meta.torch_dtype)
    return model


def expected_tensors(model: nn.Module) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """Each state-dict tensor of ``model`` -> (shape, dtype): what a checkpoint for it must hold."""
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


def file_skeleton(path: Path | str, meta: CheckpointMeta) -> nn.Module:
    """``build_skeleton`` of the SVDQ file at ``path`` whose metadata is ``meta`` (meta device: no tensor memory, no
    data read; its block counts checked first by ``read_buildable_meta``, as its cost grows with them);
    CheckpointError naming the file when its model_config describes no model that can be built: whatever the
    model's constructor raises for it (a head width of 0 divides by zero), but a memory running out."""
    try:
        return build_skeleton(meta)
    except Exception as err:  # any value of a hand-edited config may fail anywhere in diffusers' constructors
        if gpu_ran_out(err) or ram_ran_out(err):  # no fault of the file: said as the memory it is by the caller
            raise
        raise CheckpointError(
            f"{Path(path).name}: the model_config in its SVDQ metadata does not describe a buildable "
            f"{meta.architecture} model ({err})", hint=REMAKE
        ) from None


def load_quantized_transformer(
    path: Path | str, runtime_dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> tuple[nn.Module, CheckpointMeta]:
    """Validate and load an SVDQ file into a ready transformer, its weights on ``device`` (CPU by default):
    read straight onto a GPU, the file never sits whole in host memory (``load_checkpoint``).

    ``runtime_dtype``: dtype for the 16-bit layers that were not quantized (e.g. float32 on CPU for
    speed); quantized layers keep their stored scales and factors, except that a bf16 file on an fp16 run time
    (GPUs without bf16: Turing) gets them in fp16, so the fused kernels serve them (``cast_quantized_16bit``)."""
    from gpu.checkpoint.format import read_buildable_meta

    meta = read_buildable_meta(path)
    model = file_skeleton(path, meta)
    _, tensors = load_checkpoint(path, expected_tensors(model), device=device)
    model.load_state_dict(tensors, strict=True, assign=True)
    _materialize_leftovers(model)
    if runtime_dtype is not None:
        cast_unquantized(model, runtime_dtype)
        cast_quantized_16bit(model, quantized_layer_dtype(meta.torch_dtype, runtime_dtype))
    model.eval()
    return model, meta


def cast_unquantized(model: nn.Module, dtype: torch.dtype) -> None:
    """Cast parameters/buffers of every module except ``SVDQLinear`` layers (whose storage is canonical)."""
    for module in model.modules():
        if isinstance(module, SVDQLinear):
            continue
        for name, p in list(module.named_parameters(recurse=False)):
            if p.is_floating_point():
                setattr(module, name, nn.Parameter(p.detach().to(dtype), requires_grad=False))
        for name, b in list(module.named_buffers(recurse=False)):
            if b is not None and b.is_floating_point():
                module.register_buffer(name, b.to(dtype), persistent=name not in module._non_persistent_buffers_set)


def quantized_layer_dtype(stored: torch.dtype, runtime: torch.dtype) -> torch.dtype:
    """The 16-bit type an SVDQ file's quantized layers compute in: their stored one, except fp16 for a bf16 file
    on an fp16 run time. GPUs without bf16 MMA (Turing) run fp16, and the kernels take one 16-bit type for the
    activations and the layer's scales and factors; bf16 -> fp16 is exact for every value in fp16's normal range
    (2^-14 .. 65504: fp16 has the wider significand), and rounds smaller ones (``cast_quantized_16bit`` says which
    layers it keeps as they are). fp16 -> bf16 would round every value, so an fp16 file stays fp16 (its layers then
    run the reference on a bf16 run time, which says so)."""
    return torch.float16 if stored == torch.bfloat16 and runtime == torch.float16 else stored


def cast_quantized_16bit(model: nn.Module, dtype: torch.dtype) -> list[str]:
    """Give every ``SVDQLinear`` of ``model`` whose 16-bit type is another one ``dtype``: every buffer of its old
    16-bit type (group scales, smoothing, low-rank factors, bias) is converted, and ``compute_dtype`` follows. Values
    below ``dtype``'s normal range are rounded (tiny low-rank or bias terms: negligible), but a layer keeps its type
    (and runs the reference path, which says why) where a value would overflow, or a nonzero smoothing factor or
    group scale would become 0 (a division by it, or a group lost). Returns the layers kept."""
    kept = []
    for name, layer in model.named_modules():
        if not isinstance(layer, SVDQLinear) or layer.compute_dtype == dtype:
            continue
        old = layer.compute_dtype
        tensors = {n: t for n, t in layer.named_buffers(recurse=False) if t is not None and t.dtype == old}
        converted = {n: t.to(dtype) for n, t in tensors.items()}
        if any(_lost(n, tensors[n], c) for n, c in converted.items()):
            kept.append(name)
            continue
        for n, c in converted.items():
            setattr(layer, n, c)
        layer.compute_dtype = dtype
    return kept


def _lost(name: str, old: torch.Tensor, new: torch.Tensor) -> bool:
    """Whether converting buffer ``name`` from ``old`` to ``new`` (same shape, another 16-bit type) broke a value the
    layer cannot do without: a finite one overflowed, or a nonzero smoothing factor / group scale became 0."""
    if bool((torch.isinf(new) & ~torch.isinf(old)).any()):
        return True
    return name in ("smooth", "wscales") and bool(((new == 0) & (old != 0)).any())


def _materialize_leftovers(model: nn.Module) -> None:
    """Non-persistent buffers are not in the file; anything still on the meta device is an error."""
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_meta:
            raise RuntimeError(f"tensor {name} was not loaded from the checkpoint")
