"""FLUX.1 transformers with random weights, built directly on the target device (benchmarks, tests).

- ``build_bf16_flux``: diffusers' ``FluxTransformer2DModel`` in 16-bit with N(0, 0.02) weights and biases,
  norm weights 1 (the stock BF16 baseline).
- ``build_quantized_flux``: the same model with every W4A4/W4A16 linear of ``gpu.adapters.flux`` replaced by an
  ``SVDQLinear`` holding random int4 codes in [-7, 7], 16-bit group scales sized so the effective weight has
  std ~0.02 (like the BF16 model), smoothing near 1, random low-rank factors and a bias: exactly the tensors (and
  bytes) a real SVDQ checkpoint of that rank has, with no SVD and no calibration. Layers that share an input and
  are merged by ``gpu.models.flux_fused`` (Q/K/V; in single blocks also ``proj_mlp``) get one shared smoothing
  vector per group, as a checkpoint made for fusion would, so the fused path can be benchmarked.

- ``random_lora_deltas``: a random LoRA of a given rank on every W4A4 linear, in ``gpu.lora.apply``'s form.

Both models are built on the meta device first (no memory), cast to the 16-bit dtype there, then materialised once on
``device`` with ``to_empty`` and filled in place by a generator on that device: a full FLUX.1-dev never exists
in fp32 nor on the CPU. ``device="meta"`` gives the full-size module tree without memory (shape/byte checks).
"""

from __future__ import annotations

import torch
from torch import nn

# The groups of linears that share an input (merged by the fused model); re-exported for benchmark users.
from gpu.models.flux_fused import shared_input_groups  # noqa: F401

FLUX_DEV_CONFIG: dict = {
    "patch_size": 1,
    "in_channels": 64,
    "out_channels": None,
    "num_layers": 19,
    "num_single_layers": 38,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,
    "pooled_projection_dim": 768,
    "guidance_embeds": True,
    "axes_dims_rope": (16, 56, 56),
}

# CPU-test sizes: head dim 128 as in FLUX (rope axes unchanged), 2 heads -> hidden 256; every quantized
# layer's in_features is a multiple of the INT4 group (64).
FLUX_TINY_CONFIG: dict = {
    **FLUX_DEV_CONFIG,
    "num_layers": 2,
    "num_single_layers": 2,
    "num_attention_heads": 2,
    "joint_attention_dim": 64,
    "pooled_projection_dim": 32,
}

WEIGHT_STD = 0.02
GROUP = 64  # INT4 group size of the W4A4/W4A16 formats (gpu.quant "int4")
INT4_CODE_STD = (((2 * 7 + 1) ** 2 - 1) / 12) ** 0.5  # std of codes uniform on -7..7 (4.32)


def _meta_flux(config: dict, dtype: torch.dtype) -> nn.Module:
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        model = FluxTransformer2DModel.from_config(config)
        nn.Module.to(model, dtype)  # diffusers' own .to() warns on dtype casts
    return model


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm | nn.RMSNorm | nn.GroupNorm)


@torch.no_grad()
def _fill_dense(model: nn.Module, gen: torch.Generator, skip: tuple[type, ...] = ()) -> None:
    """Every parameter/buffer of modules not in ``skip``: norm weights 1 / biases 0, the rest N(0, 0.02)."""
    for module in model.modules():
        if isinstance(module, skip):
            continue
        norm = _is_norm(module)
        for name, t in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
            if t is None or not t.is_floating_point():
                continue
            if norm:
                t.fill_(1.0 if name == "weight" else 0.0)
            else:
                t.normal_(0.0, WEIGHT_STD, generator=gen)


def _finish(model: nn.Module) -> nn.Module:
    model.eval()
    model.requires_grad_(False)
    if next(model.parameters()).device.type == "cuda":  # as the app's loader does: one 4-bit copy on the GPU
        from gpu.kernels.repack import enable_canonical_offload

        enable_canonical_offload(model)
    return model


def build_bf16_flux(
    config: dict, device: torch.device | str, dtype: torch.dtype = torch.bfloat16, seed: int = 0
) -> nn.Module:
    """Diffusers' ``FluxTransformer2DModel`` of ``config`` on ``device`` in ``dtype``, random weights.

    Linear weights and biases (and embedders) ~ N(0, 0.02); RMSNorm/LayerNorm weights 1, biases 0."""
    device = torch.device(device)
    model = _meta_flux(config, dtype)
    if device.type == "meta":
        return _finish(model)
    model.to_empty(device=device)
    _fill_dense(model, torch.Generator(device).manual_seed(seed))
    return _finish(model)


def quantized_specs(model: nn.Module, rank: int) -> dict:
    """name -> LayerSpec of every linear the FLUX adapter quantizes (SVDQuant INT4 at ``rank``)."""
    from gpu.adapters import adapter_named
    from gpu.modules.layer_spec import spec_for

    targets = adapter_named("flux").quantizable_linears(model)
    return {name: spec_for("svdquant", "int4", rank, role) for name, (_m, role) in targets.items()}


@torch.no_grad()
def _fill_svdq(layer: nn.Module, gen: torch.Generator, smooth: torch.Tensor | None) -> None:
    """Random but plausible SVDQ tensors (INT4, group 64) for one layer, in place on its device.

    Effective weight = codes * scale / smooth (+ the low-rank term) with std ~``WEIGHT_STD``: scales are
    ``WEIGHT_STD / INT4_CODE_STD`` times U(0.5, 1.5), as per-group absmax/7 scales vary; the low-rank
    product ``lora_down @ lora_up.T`` has entries of std ~``WEIGHT_STD / 2``."""
    from gpu.quant.packing import pack_int4

    n, k, dev = layer.out_features, layer.in_features, layer.qweight.device
    # 8192-row slabs bound the int16 temporaries of pack_int4 (~0.4 GB for K = 12288).
    for r0 in range(0, n, 8192):
        rows = min(8192, n - r0)
        codes = torch.randint(-7, 8, (rows, k), generator=gen, device=dev, dtype=torch.int8)
        layer.qweight[r0 : r0 + rows].copy_(pack_int4(codes))
    base = WEIGHT_STD / INT4_CODE_STD
    layer.wscales.uniform_(0.5 * base, 1.5 * base, generator=gen)
    if hasattr(layer, "smooth"):
        if smooth is None:
            smooth = _random_smooth(k, gen, dev, layer.smooth.dtype)
        layer.smooth.copy_(smooth)
    if hasattr(layer, "lora_down"):
        r = layer.lora_down.shape[1]
        factor_std = (WEIGHT_STD / 2 / r**0.5) ** 0.5  # std(sum_r d*u) = sqrt(r) * std_d * std_u
        layer.lora_down.normal_(0.0, factor_std, generator=gen)
        layer.lora_up.normal_(0.0, factor_std, generator=gen)
    if layer.bias is not None:
        layer.bias.normal_(0.0, WEIGHT_STD, generator=gen)


def _random_smooth(k: int, gen: torch.Generator, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Smoothing vector [K] near 1: exp(U(-0.25, 0.25)), i.e. 0.78..1.28."""
    u = torch.empty(k, device=device, dtype=torch.float32).uniform_(-0.25, 0.25, generator=gen)
    return u.exp().to(dtype)


def build_quantized_flux(
    config: dict,
    device: torch.device | str,
    dtype: torch.dtype = torch.bfloat16,
    rank: int = 32,
    seed: int = 0,
    shared_smoothing: bool = True,
) -> nn.Module:
    """A ``FluxTransformer2DModel`` whose W4A4/W4A16 linears (``gpu.adapters.flux`` roles) are ``SVDQLinear``
    with random INT4 tensors (see module docstring); the other modules are filled as in ``build_bf16_flux``.

    ``shared_smoothing``: members of each ``shared_input_groups`` group get equal smoothing vectors (separate
    tensors, equal values), which makes them fusable; False gives each layer its own, like a per-layer
    calibrated checkpoint. ``device="meta"``: the module tree only, nothing allocated."""
    from gpu.checkpoint.skeleton import replace_linears
    from gpu.modules.svdq_linear import SVDQLinear

    device = torch.device(device)
    model = _meta_flux(config, dtype)
    specs = quantized_specs(model, rank)
    replace_linears(model, specs, dtype, device="meta")
    if device.type == "meta":
        return _finish(model)
    model.to_empty(device=device)
    gen = torch.Generator(device).manual_seed(seed)
    _fill_dense(model, gen, skip=(SVDQLinear,))
    shared: dict[str, torch.Tensor] = {}
    if shared_smoothing:
        for group in shared_input_groups(model):
            k = model.get_submodule(group[0]).in_features
            vec = _random_smooth(k, gen, device, dtype)
            shared.update(dict.fromkeys(group, vec))
    for name in specs:
        _fill_svdq(model.get_submodule(name), gen, shared.get(name))
    return _finish(model)


# -- sizes, from the config alone (what the built models are checked against) -------------------------------


def _flux_linears(config: dict) -> list[tuple[str, int, int, bool]]:
    """(role, in_features, out_features, bias) of every quantizable linear of FLUX at ``config``."""
    d = config["num_attention_heads"] * config["attention_head_dim"]
    mlp = 4 * d
    double = [("w4a16", d, 6 * d, True)] * 2 + [("w4a4", d, d, True)] * 8
    double += [("w4a4", d, mlp, True), ("w4a4", mlp, d, True)] * 2
    single = [("w4a16", d, 3 * d, True)] + [("w4a4", d, d, True)] * 3
    single += [("w4a4", d, mlp, True), ("w4a4", d + mlp, d, True)]
    return double * config["num_layers"] + single * config["num_single_layers"]


def svdq_layer_bytes(role: str, k: int, n: int, bias: bool, rank: int, dtype_bytes: int = 2) -> int:
    """Bytes of one INT4 SVDQ layer: packed codes, 16-bit group scales, and for W4A4 smoothing + low rank."""
    b = n * k // 2 + n * (k // GROUP) * dtype_bytes + (n * dtype_bytes if bias else 0)
    if role == "w4a4":
        b += k * dtype_bytes + (k + n) * rank * dtype_bytes
    return b


def quantized_flux_bytes(config: dict, rank: int, dtype_bytes: int = 2) -> dict[str, int]:
    """Expected parameter+buffer bytes of ``build_quantized_flux(config, rank=rank)``, by part:
    ``w4a4``, ``w4a16``, ``dense`` (everything kept 16-bit) and ``total``."""
    out = {"w4a4": 0, "w4a16": 0}
    quantized_params = 0
    for role, k, n, bias in _flux_linears(config):
        out[role] += svdq_layer_bytes(role, k, n, bias, rank, dtype_bytes)
        quantized_params += n * k + (n if bias else 0)
    out["dense"] = (bf16_flux_params(config) - quantized_params) * dtype_bytes
    out["total"] = out["w4a4"] + out["w4a16"] + out["dense"]
    return out


def bf16_flux_params(config: dict) -> int:
    """Parameter count of ``FluxTransformer2DModel(**config)`` (FLUX.1-dev: 11,901,408,320)."""
    d = config["num_attention_heads"] * config["attention_head_dim"]
    hd = config["attention_head_dim"]
    c_in, c_out = config["in_channels"], config["out_channels"] or config["in_channels"]
    p = config["patch_size"]

    def lin(k: int, n: int) -> int:
        return k * n + n

    embed = 2 * (lin(256, d) + lin(d, d)) if config["guidance_embeds"] else lin(256, d) + lin(d, d)
    embed += lin(config["pooled_projection_dim"], d) + lin(d, d)  # text_embedder (PixArtAlphaTextProjection)
    embed += lin(config["joint_attention_dim"], d) + lin(c_in, d)  # context_embedder, x_embedder
    tail = lin(d, 2 * d) + lin(d, p * p * c_out)  # norm_out.linear, proj_out
    qkv_norms_double, qkv_norms_single = 4 * hd, 2 * hd
    linears = sum(k * n + (n if bias else 0) for _r, k, n, bias in _flux_linears(config))
    norms = qkv_norms_double * config["num_layers"] + qkv_norms_single * config["num_single_layers"]
    return embed + tail + linears + norms


def random_lora_deltas(model: nn.Module, rank: int, seed: int = 0) -> dict:
    """A random rank-``rank`` LoRA on every W4A4 ``SVDQLinear`` of ``model`` (attention and MLP linears, as
    community FLUX LoRAs target), as ``gpu.lora.apply.apply_deltas`` takes it: {name: ModuleDelta} with
    A [r, K] ~ N(0, 1/K) and s·B [N, r] ~ N(0, 0.01), float32 on the layer's device."""
    from gpu.lora.apply import ModuleDelta
    from gpu.modules.svdq_linear import SVDQLinear

    deltas = {}
    for name, m in model.named_modules():
        if isinstance(m, SVDQLinear) and m.spec.act_format is not None:
            dev = m.compute_device
            gen = torch.Generator(dev).manual_seed(seed + len(deltas))
            a = torch.randn(rank, m.in_features, generator=gen, device=dev) / m.in_features**0.5
            deltas[name] = ModuleDelta(m, [(a, torch.randn(m.out_features, rank, generator=gen, device=dev) * 0.1)])
    return deltas
