"""Applying LoRAs to a FLUX transformer (SVDQ-quantized or 16-bit) and its text encoders, and removing them
bit-exactly.

A LoRA on a layer W adds ``s · B A x`` (A [r, K], B [N, r], s = strength · alpha / r).

* ``SVDQLinear`` layers: the LoRA joins the 16-bit low-rank branch, which the fused kernels compute anyway.
  The branch's input is ``xs = x / λ``, so the appended factors are ``(A · diag(λ))ᵀ`` [K, r] (down) and
  ``s · B`` [N, r] (up). The new branch is the concatenation [base | LoRA 1 | LoRA 2 | zero padding] with its
  rank rounded up to a multiple of 16 (the ranks the kernels are verified at); ``layer.spec.rank`` follows,
  so a branch wider than the kernels run (``gpu.kernels.rank_limits``: 1024 in all) falls back to the reference
  path with the reason shown; on Hopper a window wider than the FP8 GEMM fuses (240 columns per 128-channel tile)
  runs its up projection on cuBLAS beside the GEMM, and ``last_path`` says so. Layers without a
  branch (W4A16 modulation) get one (the reference path adds it to ``xs @ dequant(W)ᵀ``).
* ``nn.Linear`` layers (embedders, ``norm_out``, ``proj_out`` of a quantized model; every layer of a 16-bit
  model; the text encoders' layers a LoRA's CLIP or T5 part names): merged, ``W' = W + Σ s B A`` computed in
  fp32 on the device W is on, stored in W's dtype. A text encoder's originals are kept in CPU memory: the memory
  plan moves the encoder between the CPU and the GPU while the LoRA is on (``Module.to`` moves parameters only,
  so originals kept on the GPU stayed there, GBs of T5 counted nowhere); removal copies them to wherever the layer
  is by then.

Either way the original tensors are kept and put back on removal (the very same objects, unless a text
encoder's had to be copied to or from the CPU), so removing every LoRA restores the model bit for bit; changing
the set rebuilds from the originals, never by subtraction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from gpu.lora.fit import Layer, applied_parts, index_layers, misfit
from gpu.lora.formats import LoraError, LoraFile, LoraTarget
from gpu.modules.svdq_linear import SVDQLinear

RANK_MULTIPLE = 16
_BASE_ATTR = "_nibble_lora_base"
# On a merged layer (gpu.models.flux_fused): its members' bases, in member order (None: no LoRA on that member).
_MEMBER_BASES_ATTR = "_nibble_lora_member_bases"


@dataclass
class ModuleDelta:
    """Everything the active LoRAs add to one module: pairs (A [r, K], s·B [n, r]) in float32. ``in_ram``: a
    merged layer keeps its original weight in CPU memory (a text encoder's: the memory plan moves the encoder)."""

    module: nn.Module
    parts: list[tuple[torch.Tensor, torch.Tensor]]
    in_ram: bool = False


def round_up(v: int, m: int) -> int:
    return (v + m - 1) // m * m


def plan(model: nn.Module | dict[str, nn.Module],
         loras: list[tuple[LoraFile, float, float]]) -> dict[str, ModuleDelta]:  # fmt: skip
    """Check every target of every LoRA against the model and gather the per-module factors.

    ``model``: the transformer, or the pipeline's components by name (``"transformer"``, ``"text_encoder"``,
    ``"text_encoder_2"``) for LoRAs that also change a text encoder. ``loras``: (file, strength of its transformer
    part, strength of its CLIP/T5 parts); a part at strength 0 is left out (its layers keep their originals).
    Touches nothing: a LoRA that does not fit (``gpu.lora.fit``: another FLUX size, a missing block, a layer the
    encoder lacks) raises ``LoraError`` here, before any layer changes. The result is keyed by module name, a text
    encoder's prefixed with its component's."""
    models = model if isinstance(model, dict) else {"transformer": model}
    layers = model_layers(models)
    deltas: dict[str, ModuleDelta] = {}
    for lora, transformer_strength, text_strength in loras:
        parts = applied_parts(transformer_strength, text_strength)
        wrong = misfit(lora.path.name, [t.shape for t in lora.targets], layers, parts)
        if wrong is not None:
            raise wrong.error()
        for t in lora.targets:
            if t.component not in parts:
                continue
            strength = transformer_strength if t.component == "transformer" else text_strength
            found = [layers[t.component][name].path for name in t.modules]
            modules = [(path, models[t.component].get_submodule(path)) for path in found]
            sizes = [m.out_features for _, m in modules]
            up = t.up * (strength * t.scale)
            _check_range(lora, t, strength, up, modules)
            if t.swap_halves:
                half = up.shape[0] // 2
                up = torch.cat([up[half:], up[:half]])
            prefix = "" if t.component == "transformer" else t.component + "."
            for (name, m), rows in zip(modules, torch.split(up, sizes), strict=True):
                delta = deltas.setdefault(prefix + name, ModuleDelta(m, [], in_ram=bool(prefix)))
                delta.parts.append((t.down, rows))
    return deltas


def model_layers(models: dict[str, nn.Module]) -> dict[str, dict[str, Layer]]:
    """The linears of the pipeline's ``models`` (by component) a LoRA may change, by every name a file may give them
    (``gpu.lora.fit.index_layers``). A layer merged from several that read one input (``gpu.models.flux_fused``:
    ``merged_names``, its members' paths under its parent, and ``merged_from``, their (outputs, rank, bias)) stands
    for its members, which LoRAs name (applying them splits it first): what a file's header is judged against while
    the model runs fused."""
    out = {}
    for component, model in models.items():
        linears = []
        for path, m in model.named_modules():
            if not isinstance(m, nn.Linear | SVDQLinear):
                continue
            members = getattr(m, "merged_names", None)
            if members is None:
                linears.append(Layer(path, m.in_features, m.out_features))
                continue
            parent = path.rpartition(".")[0]
            for member, (outputs, *_) in zip(members, m.merged_from, strict=True):
                linears.append(Layer(f"{parent}.{member}" if parent else member, m.in_features, outputs))
        out[component] = index_layers(component, linears)
    return out


def _dtype_of(m: nn.Module) -> torch.dtype:
    """The dtype the LoRA's factors (a low-rank branch) or its product (a merged weight) end up in."""
    if isinstance(m, SVDQLinear):
        down = m._buffers.get("lora_down")
        return down.dtype if down is not None else m.compute_dtype
    return m.weight.dtype


def _check_range(lora: LoraFile, t: LoraTarget, strength: float, up: torch.Tensor,
                 modules: list[tuple[str, nn.Module]]) -> None:  # fmt: skip
    """Refuses a target whose change its layers' numbers cannot hold (an absurd alpha, factors near the float
    range): applied, it made every image NaN, found only at the first step. ``max|A|·max|s·B|·r`` bounds every
    entry of the change; a quarter of the dtype's range leaves room for the weight it is added to. (A change
    that fits but still drives the image to NaN/inf is caught at the first step, naming the LoRAs.)"""
    bound = float(up.abs().max()) * float(t.down.abs().max()) * t.rank
    for name, m in modules:
        dtype = _dtype_of(m)
        if not bound <= torch.finfo(dtype).max / 4:  # also NaN
            raise LoraError(
                f"{lora.path.name}: {t.key} at strength {strength:g} (alpha / rank {t.scale:g}) would change "
                f"{name} by up to {bound:.3g}, more than its {str(dtype).removeprefix('torch.')} numbers can hold",
                hint="the file's weights or alpha are out of range: use another copy of the LoRA",
            )


def apply_deltas(deltas: dict[str, ModuleDelta]) -> None:
    for d in deltas.values():
        if hasattr(d.module, _BASE_ATTR):
            raise RuntimeError("LoRA applied twice to one layer; remove first")
        if isinstance(d.module, SVDQLinear):
            _append_to_branch(d.module, d.parts)
        else:
            _merge(d.module, d.parts, d.in_ram)


def restore(model: nn.Module) -> int:
    """Put back every original tensor a LoRA replaced; returns the number of layers restored. Layers merged
    since (fused FLUX blocks) hold their members' originals: split them first (``unfuse_flux_transformer``)."""
    if any(m.__dict__.get(_MEMBER_BASES_ATTR) for m in model.modules()):
        raise RuntimeError("LoRA layers are merged (fused FLUX blocks): unfuse the model before changing its LoRAs")
    n = 0
    for m in model.modules():
        base = m.__dict__.pop(_BASE_ATTR, None)
        if base is None:
            continue
        n += 1
        if isinstance(m, SVDQLinear):
            for name in ("lora_down", "lora_up"):
                if base[name] is None:
                    m._buffers.pop(name, None)
                else:
                    m._buffers[name] = base[name]
            m.spec = base["spec"]
        else:
            original, now = base["weight"], m._parameters["weight"]
            if original.device != now.device:  # a text encoder's, kept in CPU memory: the layer's device now
                original = nn.Parameter(original.to(now.device), requires_grad=original.requires_grad)
            m._parameters["weight"] = original
    return n


def held_originals(model: nn.Module) -> list[torch.Tensor]:
    """The original tensors the LoRA'd layers of ``model`` keep for removal (also those a merged layer keeps for
    its members): memory the model holds beyond its parameters and buffers (``gpu.generation.memory`` counts it)."""
    out = []
    for m in model.modules():
        bases = [m.__dict__.get(_BASE_ATTR), *(m.__dict__.get(_MEMBER_BASES_ATTR) or [])]
        for base in bases:
            out.extend(t for t in (base or {}).values() if isinstance(t, torch.Tensor))
    return out


def carry_lora_bases(members: list[nn.Module], merged: nn.Module) -> None:
    """``merged`` replaces ``members`` (a merge of layers that read the same input): it keeps their LoRA
    originals, so that ``hand_back_lora_base`` can return them when it is split again."""
    bases = [m.__dict__.get(_BASE_ATTR) for m in members]
    if any(b is not None for b in bases):
        merged.__dict__[_MEMBER_BASES_ATTR] = bases


def hand_back_lora_base(merged: nn.Module, index: int, member: nn.Module) -> None:
    """``member`` is member ``index`` of ``merged``, rebuilt by a split: it gets back its LoRA originals."""
    bases = merged.__dict__.get(_MEMBER_BASES_ATTR)
    if bases and bases[index] is not None:
        member.__dict__[_BASE_ATTR] = bases[index]


def _append_to_branch(layer: SVDQLinear, parts: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    base_down, base_up = layer._buffers.get("lora_down"), layer._buffers.get("lora_up")
    dtype = base_down.dtype if base_down is not None else layer.compute_dtype
    device = layer.compute_device
    smooth = layer._buffers.get("smooth")
    lam = smooth.float().to(device) if smooth is not None else None
    downs, ups = [], []
    if base_down is not None and base_down.shape[1] > 0:
        downs.append(base_down)
        ups.append(base_up)
    for a, sb in parts:
        a = a.to(device)
        downs.append((a.T * lam[:, None] if lam is not None else a.T).to(dtype))
        ups.append(sb.to(device=device, dtype=dtype))
    rank = sum(t.shape[1] for t in downs)
    pad = round_up(rank, RANK_MULTIPLE) - rank
    if pad:
        downs.append(torch.zeros(layer.in_features, pad, dtype=dtype, device=device))
        ups.append(torch.zeros(layer.out_features, pad, dtype=dtype, device=device))
    layer.__dict__[_BASE_ATTR] = {"lora_down": base_down, "lora_up": base_up, "spec": layer.spec}
    layer._buffers["lora_down"] = torch.cat(downs, dim=1).contiguous()
    layer._buffers["lora_up"] = torch.cat(ups, dim=1).contiguous()
    layer.spec = replace(layer.spec, rank=rank + pad)


def _merge(layer: nn.Linear, parts: list[tuple[torch.Tensor, torch.Tensor]], in_ram: bool = False) -> None:
    """``W' = W + Σ s·B·A``: W [N, K] (``layer.weight``, its own dtype: bf16/fp16/fp32, on any device), each part
    (A [r, K] fp32, s·B [N, r] fp32, on any device); the sum is taken in fp32 on W's device and rounded once to
    W's dtype. W is kept for ``restore``: as it is, or in CPU memory when ``in_ram`` (a text encoder's layer)."""
    w = layer.weight
    delta = torch.zeros(w.shape, dtype=torch.float32, device=w.device)
    for a, sb in parts:
        delta += sb.to(w.device) @ a.to(w.device)
    merged = nn.Parameter((w.detach().float() + delta).to(w.dtype), requires_grad=False)
    if in_ram and w.device.type != "cpu":
        w = nn.Parameter(w.detach().cpu(), requires_grad=w.requires_grad)
    layer.__dict__[_BASE_ATTR] = {"weight": w}
    layer._parameters["weight"] = merged
