"""Fused elementwise / normalization ops of FLUX.1's transformer blocks, and the W4A16 modulation GEMV.

Each op has an exact PyTorch reference (``*_reference``: the numerics the CUDA kernels reproduce, and the
CPU path) and one dispatching function that runs the fused kernel (``kernels_cu/svdq_fused_norm.cu``,
``kernels_cu/svdq_w4a16_gemv.cu``, launched by ``gpu.kernels.launch``) when the input is on a CUDA device
and the kernels can be had, else the reference. What they replace in diffusers' ``FluxTransformer2DModel``:

- ``layernorm_modulate``: ``AdaLayerNormZero`` / ``AdaLayerNormZeroSingle``'s
  ``norm(x) * (1 + scale[:, None]) + shift[:, None]`` and the double blocks' ``norm2``/``norm2_context`` +
  MLP modulation (LayerNorm without affine, eps 1e-6);
- ``gate_residual``: ``residual + gate.unsqueeze(1) * out`` after attention, MLP and ``proj_out``;
- ``qk_norm_rope`` / ``qk_norm_rope_joint``: ``FluxAttnProcessor``'s split of the QKV projection into
  heads, ``norm_q``/``norm_k`` (RMSNorm per head, weight [D]), the text/image concatenation of the double
  blocks, ``apply_rotary_emb(use_real=True, use_real_unbind_dim=-1)`` on q and k, and the [B, H, S, D]
  shape that ``F.scaled_dot_product_attention`` takes (as views of token-major storage, so the attention
  output comes back token-major and the output projection reads it without a transpose copy);
- ``w4a16_gemv``: the adaLN modulation linears (``norm1.linear``, ``norm1_context.linear``, single
  ``norm.linear``) stored as W4A16 INT4 group-64 ``SVDQLinear`` layers, for B <= 8 rows;
  ``w4a16_gemv_many`` computes all of them in one launch.

Numerics shared by all of them: inputs are upcast to fp32, every intermediate stays fp32 and the result is
rounded to the input's 16-bit dtype once (diffusers rounds after each op, so results agree within a bf16
rounding step, not bit for bit; ``tests/test_fused_ops.py`` checks that). Where the kernel can follow the
reference's operation order exactly (``gate_residual``, the RoPE rotation) it does so with IEEE-rounded
intrinsics; reductions (LayerNorm/RMSNorm statistics, GEMV dot products) are summed in a fixed but
different order, so those agree within fp32 rounding before the final 16-bit rounding.

Dispatch is cheap per call: the first call on a device decides (pycuda present, kernel binaries
obtainable) and caches the answer; a kernel build or load failure is remembered and the op falls back to
the reference from then on (``fused_refusal`` says whether the kernels run, and why not).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
import torch.nn.functional as F

from gpu.kernels import availability, launch, mma_forms
from gpu.kernels.launch import (
    GEMV_MAX_K,  # the W4A16 GEMV kernel's longest row (scales staged in shared memory)
    GEMV_MAX_ROWS,  # rows the W4A16 GEMV kernel serves (mma n8 tile)
    LN_MAX_C,  # the layernorm_modulate kernel's widest row (one block's registers)
)
from gpu.kernels.launch import QK_HEAD_DIM as HEAD_DIM  # the fused qk_norm_rope kernel's head dimension
from gpu.system_info import cuda_index

FP16_MAX = 65504.0  # largest finite fp16: gate_residual saturates fp16 results here (FLUX's clip)


# ----------------------------------------------------------------------------------------------------
# References (also the CPU path)
# ----------------------------------------------------------------------------------------------------


def layernorm_modulate_reference(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """x: T [B, S, C], shift/scale: T [B, C] (any row stride) -> T [B, S, C], T bf16/fp16 (or fp32).

    y = LayerNorm_noaffine(x) * (1 + scale[:, None]) + shift[:, None]: statistics (mean, biased variance)
    and the modulation in fp32, one rounding to T at the end."""
    _check_modulation(x, shift, scale)
    xf = x.float()
    y = F.layer_norm(xf, (x.shape[-1],), eps=eps)
    y = y * (1.0 + scale.float()[:, None]) + shift.float()[:, None]
    return y.to(x.dtype)


def gate_residual_reference(
    residual: torch.Tensor, gate: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """residual, y: T [B, S, C], gate: T [B, C] (any row stride) -> T [B, S, C].

    out = residual + gate[:, None] * y in fp32 (the product, then the sum, each IEEE-rounded), rounded to T
    once; fp16 results saturate at +-65504 (NaN stays NaN), which is what diffusers' ``clip`` after the
    residual adds of the FLUX blocks does. ``out`` (T [B, S, C], may be ``residual`` itself) receives the
    result in place when given."""
    _check_gate(residual, gate, y, out)
    r = residual.float() + gate.float()[:, None] * y.float()
    if residual.dtype == torch.float16:
        r = r.clamp(-FP16_MAX, FP16_MAX)
    if out is None:
        return r.to(residual.dtype)
    out.copy_(r)
    return out


def _rms_norm_f32(t: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """t: [..., D] any float -> fp32 [..., D] = t * rsqrt(mean(t^2) + eps) * weight (torch.nn.RMSNorm's
    formula, kept in fp32: no rounding between the norm and the rotation)."""
    tf = t.float()
    return tf * torch.rsqrt(tf.pow(2).mean(-1, keepdim=True) + eps) * weight.float()


def _rope_f32(t: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """t: fp32 [B, S, H, D], cos/sin: [S, D] -> fp32 [B, S, H, D]: diffusers' ``apply_rotary_emb`` with
    use_real=True, use_real_unbind_dim=-1 (pairs (2i, 2i+1)): out = t * cos + rot(t) * sin with
    rot(t)[2i] = -t[2i+1], rot(t)[2i+1] = t[2i]."""
    real, imag = t.unflatten(-1, (-1, 2)).unbind(-1)
    rotated = torch.stack([-imag, real], dim=-1).flatten(-2)
    c = cos.float()[None, :, None, :]
    s = sin.float()[None, :, None, :]
    return t * c + rotated * s


def _split_heads(qkv: torch.Tensor, heads: int, head_dim: int) -> tuple[torch.Tensor, ...]:
    """qkv: [B, S, >= 3*H*D] -> q, k, v views [B, S, H, D] (the first 3*H*D features, q then k then v)."""
    return qkv[..., : 3 * heads * head_dim].unflatten(-1, (3, heads, head_dim)).unbind(2)


def qk_norm_rope_reference(
    qkv: torch.Tensor,
    q_weight: torch.Tensor,
    k_weight: torch.Tensor,
    rope_cos: torch.Tensor,
    rope_sin: torch.Tensor,
    heads: int,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Single-stream attention prologue (FLUX single blocks).

    qkv: T [B, S, F] with F >= 3*H*D, last dim contiguous (a fused QKV projection's output, or a slice of
    a wider one, e.g. QKV + MLP); the first 3*H*D features are q, k, v, each H heads of D.
    q_weight, k_weight: RMSNorm weights [D] (any float dtype); rope_cos, rope_sin: [S, D] (FLUX's
    ``pos_embed`` output, fp32). -> (q, k, v), each T [B, H, S, D]: q and k RMS-normalized per head (fp32,
    eps) and rotated, as transposed views of new token-major [B, S, H, D] tensors; v a view of qkv's v
    features (no copy: writing into qkv afterwards changes v)."""
    d = _check_qkv(qkv, q_weight, k_weight, heads)
    _check_rope(rope_cos, rope_sin, qkv.shape[1], d)
    q, k, v = _split_heads(qkv, heads, d)
    q = _rope_f32(_rms_norm_f32(q, q_weight, eps), rope_cos, rope_sin)
    k = _rope_f32(_rms_norm_f32(k, k_weight, eps), rope_cos, rope_sin)
    return q.to(qkv.dtype).transpose(1, 2), k.to(qkv.dtype).transpose(1, 2), v.transpose(1, 2)


def qk_norm_rope_joint_reference(
    qkv_txt: torch.Tensor,
    qkv_img: torch.Tensor,
    q_weight_txt: torch.Tensor,
    k_weight_txt: torch.Tensor,
    q_weight_img: torch.Tensor,
    k_weight_img: torch.Tensor,
    rope_cos: torch.Tensor,
    rope_sin: torch.Tensor,
    heads: int,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two-stream attention prologue (FLUX double blocks): text and image QKV written into one sequence.

    qkv_txt: T [B, S_txt, F_txt], qkv_img: T [B, S_img, F_img] (F >= 3*H*D, last dim contiguous);
    text weights (``attn.norm_added_q/k``) and image weights (``attn.norm_q/k``) [D]; rope_cos/sin
    [S_txt + S_img, D] (text positions first, as FLUX builds them). -> (q, k, v), each T
    [B, H, S_txt + S_img, D] (transposed views of new token-major [B, S, H, D] tensors), text tokens first:
    ``FluxAttnProcessor``'s ``torch.cat([encoder_query, query], dim=1)`` without the concatenation copies."""
    d = _check_qkv(qkv_txt, q_weight_txt, k_weight_txt, heads)
    _check_qkv(qkv_img, q_weight_img, k_weight_img, heads)
    if qkv_txt.shape[0] != qkv_img.shape[0] or qkv_txt.dtype != qkv_img.dtype:
        raise ValueError("qkv_txt and qkv_img must have the same batch size and dtype")
    _check_rope(rope_cos, rope_sin, qkv_txt.shape[1] + qkv_img.shape[1], d)
    qt, kt, vt = _split_heads(qkv_txt, heads, d)
    qi, ki, vi = _split_heads(qkv_img, heads, d)
    q = torch.cat([_rms_norm_f32(qt, q_weight_txt, eps), _rms_norm_f32(qi, q_weight_img, eps)], dim=1)
    k = torch.cat([_rms_norm_f32(kt, k_weight_txt, eps), _rms_norm_f32(ki, k_weight_img, eps)], dim=1)
    q = _rope_f32(q, rope_cos, rope_sin)
    k = _rope_f32(k, rope_cos, rope_sin)
    v = torch.cat([vt, vi], dim=1)
    return tuple(t.to(qkv_txt.dtype).transpose(1, 2) for t in (q, k, v))


def w4a16_gemv_reference(x: torch.Tensor, layer: torch.nn.Module) -> torch.Tensor:
    """x: T [..., K] -> T [..., N] through ``layer`` (an ``SVDQLinear``): dequantize(qweight) in fp32, then
    x @ W^T + bias with fp32 accumulation (``SVDQLinear.forward_reference``)."""
    return layer.forward_reference(x)


# ----------------------------------------------------------------------------------------------------
# Dispatching functions (kernel on a CUDA device when available, else the reference)
# ----------------------------------------------------------------------------------------------------

_FUSED_DTYPES = (torch.bfloat16, torch.float16)
_UNKNOWN = object()
# (device index, op family) -> None when the kernels can run there, else why not. "norm" is
# svdq_fused_norm.cu (layernorm_modulate, gate_residual, qk_norm_rope), "gemv" svdq_w4a16_gemv.cu.
_refusals: dict[tuple[int, str], str | None] = {}


def fused_refusal(device: torch.device, family: str = "norm") -> str | None:
    """None when the fused kernels of ``family`` ("norm" or "gemv") can run on ``device``, else the reason.

    Decided once per device (pycuda present, architecture, kernel binaries obtainable through
    ``gpu.kernels.loader``), then a dict lookup; a later build/load failure replaces the answer."""
    if device.type != "cuda":  # nothing to decide once: said as the backends say it
        return availability.gpu_refusal(device, _arch_refusal(family))
    key = (cuda_index(device), family)
    why = _refusals.get(key, _UNKNOWN)
    if why is _UNKNOWN:
        why = _refusals[key] = _probe(*key)
    return why


def _gemv_arch_refusal(major: int, minor: int) -> str | None:
    if (major, minor) < mma_forms.TURING:
        return f"GPU sm_{major}{minor} lacks fp16 mma.sync m16n8k8 (the W4A16 GEMV needs sm_75 or newer)"
    return None


def _any_arch(major: int, minor: int) -> None:
    return None


# The GPUs each family's kernels are built for: the norm kernels need no tensor cores, the GEMV fp16 MMA.
_ARCH_REFUSALS: dict[str, Callable[[int, int], str | None]] = {"norm": _any_arch, "gemv": _gemv_arch_refusal}


def _arch_refusal(family: str) -> Callable[[int, int], str | None]:
    """``family``'s architecture check. A family without one (other than "norm" and "gemv") is turned down by no
    architecture, as before the checks were gathered here: looked up by key, it raised KeyError, even on the CPU,
    whose answer ("not a CUDA GPU") needs no family."""
    return _ARCH_REFUSALS.get(family, _any_arch)


def _probe(index: int, family: str) -> str | None:
    """``fused_refusal`` for CUDA device ``index``: ``availability.gpu_refusal`` (pycuda, not installed or broken,
    then the architecture), then ``availability.binary_refusal`` (the kernel binary)."""
    device = torch.device("cuda", index)
    return availability.gpu_refusal(device, _arch_refusal(family)) or availability.binary_refusal(device)


_Result = TypeVar("_Result")


def _kernel_or_reference(
    device: torch.device, family: str, kernel: Callable[[], _Result], reference: Callable[[], _Result]
) -> _Result:
    """kernel() when the family's kernels can run on ``device``, else reference(); a kernel build or load
    failure is remembered (later calls go straight to the reference) and this call falls back."""
    if fused_refusal(device, family) is None:
        try:
            return kernel()
        except Exception as err:  # noqa: BLE001 - only build/load failures are recovered, others re-raised
            if availability.remember_load_failure(_refusals, (cuda_index(device), family), err) is None:
                raise
    return reference()


def _vec_rows(*ts: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """[B, C] operands the kernels read as 16-byte vectors of rows with one common row stride: returned as
    they are when they qualify (e.g. chunks of the modulation GEMV's [B, 6C] output), else as contiguous
    copies."""

    def ok(t: torch.Tensor) -> bool:
        return t.stride(-1) == 1 and t.stride(0) % 8 == 0 and t.data_ptr() % 16 == 0

    if all(ok(t) for t in ts) and len({t.stride(0) for t in ts if t.shape[0] > 1}) <= 1:
        return ts
    return tuple(t.contiguous() for t in ts)


def _aligned(t: torch.Tensor, nbytes: int) -> torch.Tensor:
    """t contiguous with data_ptr aligned to ``nbytes`` (a copy only when it is not)."""
    t = t.contiguous()
    return t if t.data_ptr() % nbytes == 0 else t.clone()


def layernorm_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x: T [B, S, C] (C % 8 == 0, C <= 16384 for the kernel), shift/scale: T [B, C] -> T [B, S, C];
    see ``layernorm_modulate_reference``. One read of x, one write of y on the GPU."""
    _check_modulation(x, shift, scale)
    c = x.shape[-1]
    if x.dtype not in _FUSED_DTYPES or shift.dtype != x.dtype or scale.dtype != x.dtype or c % 8 or c > LN_MAX_C:
        return layernorm_modulate_reference(x, shift, scale, eps)

    def kernel() -> torch.Tensor:
        sh, sc = _vec_rows(shift, scale)
        return launch.layernorm_modulate(_aligned(x, 16), sh, sc, eps)

    return _kernel_or_reference(x.device, "norm", kernel, lambda: layernorm_modulate_reference(x, shift, scale, eps))


def gate_residual(
    residual: torch.Tensor, gate: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """residual, y: T [B, S, C], gate: T [B, C] -> T [B, S, C] = residual + gate[:, None] * y; ``out``
    (may be ``residual``) is written in place when given. See ``gate_residual_reference``."""
    _check_gate(residual, gate, y, out)
    dt = residual.dtype
    out_ok = out is None or (out.is_contiguous() and out.data_ptr() % 16 == 0)
    if dt not in _FUSED_DTYPES or gate.dtype != dt or y.dtype != dt or residual.shape[-1] % 8 or not out_ok:
        return gate_residual_reference(residual, gate, y, out)

    def kernel() -> torch.Tensor:
        # in place needs residual itself (not a copy) when out is residual: it is contiguous then (out_ok)
        res = residual if out is residual else _aligned(residual, 16)
        return launch.gate_residual(res, _vec_rows(gate)[0], _aligned(y, 16), out)

    return _kernel_or_reference(
        residual.device, "norm", kernel, lambda: gate_residual_reference(residual, gate, y, out)
    )


def _qkv_for_kernel(qkv: torch.Tensor) -> torch.Tensor:
    """qkv as the kernel reads it: unit feature stride, batch/row strides multiple of 4, 8-byte aligned
    (a slice of a wider projection qualifies as it is), else a contiguous copy."""
    ok = qkv.stride(-1) == 1 and qkv.stride(0) % 4 == 0 and qkv.stride(1) % 4 == 0 and qkv.data_ptr() % 8 == 0
    return qkv if ok else _aligned(qkv, 8)


def _rope_for_kernel(t: torch.Tensor) -> torch.Tensor:
    """rope cos/sin: [S, D] any float -> fp32 [S, D] contiguous, 16-byte aligned, as the kernel reads them."""
    return _aligned(t.float(), 16)  # fp32 already in FLUX (pos_embed's output): no copy then


def _qk_fusable(qkv: torch.Tensor, *weights: torch.Tensor) -> bool:
    """qkv: T [B, S, F], weights: norm weights [D] -> whether the kernel serves them: T bf16/fp16 and every weight
    of dtype T with 128 elements."""
    return qkv.dtype in _FUSED_DTYPES and all(w.numel() == HEAD_DIM and w.dtype == qkv.dtype for w in weights)


def qk_norm_rope(
    qkv: torch.Tensor,
    q_weight: torch.Tensor,
    k_weight: torch.Tensor,
    rope_cos: torch.Tensor,
    rope_sin: torch.Tensor,
    heads: int,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """qkv: T [B, S, >= 3*H*D] -> (q, k, v) T [B, H, S, D], v a view of qkv; see ``qk_norm_rope_reference``.
    The kernel serves D = 128 with norm weights of qkv's dtype; anything else runs the reference."""
    d = _check_qkv(qkv, q_weight, k_weight, heads)
    _check_rope(rope_cos, rope_sin, qkv.shape[1], d)

    def reference() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return qk_norm_rope_reference(qkv, q_weight, k_weight, rope_cos, rope_sin, heads, eps)

    if not _qk_fusable(qkv, q_weight, k_weight):
        return reference()

    def kernel() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return launch.qk_norm_rope(
            _qkv_for_kernel(qkv), None, _aligned(q_weight, 8), _aligned(k_weight, 8), None, None,
            _rope_for_kernel(rope_cos), _rope_for_kernel(rope_sin), heads, eps, copy_v=False,
        )  # fmt: skip

    return _kernel_or_reference(qkv.device, "norm", kernel, reference)


def qk_norm_rope_joint(
    qkv_txt: torch.Tensor,
    qkv_img: torch.Tensor,
    q_weight_txt: torch.Tensor,
    k_weight_txt: torch.Tensor,
    q_weight_img: torch.Tensor,
    k_weight_img: torch.Tensor,
    rope_cos: torch.Tensor,
    rope_sin: torch.Tensor,
    heads: int,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """qkv_txt: T [B, S_txt, >= 3HD], qkv_img: T [B, S_img, >= 3HD] -> (q, k, v) T [B, H, S_txt + S_img, D],
    text first; see ``qk_norm_rope_joint_reference``. One kernel launch writes both streams."""
    args = (qkv_txt, qkv_img, q_weight_txt, k_weight_txt, q_weight_img, k_weight_img, rope_cos, rope_sin, heads, eps)
    d = _check_qkv(qkv_txt, q_weight_txt, k_weight_txt, heads)
    _check_qkv(qkv_img, q_weight_img, k_weight_img, heads)
    _check_rope(rope_cos, rope_sin, qkv_txt.shape[1] + qkv_img.shape[1], d)
    weights = (q_weight_txt, k_weight_txt, q_weight_img, k_weight_img)
    if (
        not _qk_fusable(qkv_txt, *weights)
        or qkv_img.dtype != qkv_txt.dtype
        or qkv_img.device != qkv_txt.device
        or qkv_img.shape[0] != qkv_txt.shape[0]
    ):
        return qk_norm_rope_joint_reference(*args)

    def kernel() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return launch.qk_norm_rope(
            _qkv_for_kernel(qkv_txt), _qkv_for_kernel(qkv_img), *(_aligned(w, 8) for w in weights),
            _rope_for_kernel(rope_cos), _rope_for_kernel(rope_sin), heads, eps,
        )  # fmt: skip

    return _kernel_or_reference(qkv_txt.device, "norm", kernel, lambda: qk_norm_rope_joint_reference(*args))


def gemv_layer_refusal(layer: torch.nn.Module) -> str | None:
    """None when the W4A16 GEMV kernel can serve ``layer`` (on a capable GPU), else why not."""
    spec = getattr(layer, "spec", None)
    if spec is None or not hasattr(layer, "qweight"):
        return "not an SVDQLinear layer"
    if spec.weight_format != "int4" or spec.act_format is not None:
        return f"layer is {spec.kind} {spec.weight_format}; the GEMV serves W4A16 INT4 only"
    if getattr(layer, "smooth", None) is not None or getattr(layer, "lora_down", None) is not None:
        return "layer has smoothing or a low-rank branch (e.g. a LoRA); the GEMV has neither"
    if layer.compute_dtype not in _FUSED_DTYPES:
        return f"layer dtype {layer.compute_dtype} (the GEMV takes bf16/fp16)"
    if layer.in_features % 64 or layer.in_features > GEMV_MAX_K:
        return f"in_features {layer.in_features} is not a multiple of 64 up to {GEMV_MAX_K}"
    return None


def gemv_refusal(layer: torch.nn.Module, device: torch.device) -> str | None:
    """None when the W4A16 GEMV kernel can serve ``layer`` on ``device``, else why not, first reason first: the
    layer (``gemv_layer_refusal``), the device (GPU, pycuda, sm_75+, kernel binary: ``fused_refusal``), then
    the layer's dtype on that GPU (Turing's form is fp16 only: ``mma_forms.gemv_dtype_refusal``). The one
    answer the dispatcher's GEMV backend gives and ``w4a16_gemv`` acts on, so the two never disagree."""
    return (gemv_layer_refusal(layer) or fused_refusal(device, "gemv")
            or mma_forms.gemv_dtype_refusal(device, layer.compute_dtype))  # fmt: skip


def _rows(x: torch.Tensor) -> int:
    """Rows of x [..., K] (0 for an empty x)."""
    return x.numel() // max(x.shape[-1], 1)


def _gemv_refusal(x: torch.Tensor, layer: torch.nn.Module) -> str | None:
    """None when the GEMV kernel can compute ``layer(x)``, else why not: ``gemv_refusal``, then what this input
    adds (its dtype, its rows)."""
    why = gemv_refusal(layer, x.device)
    rows = _rows(x)
    if why is None and x.dtype != layer.compute_dtype:
        why = f"input dtype {x.dtype} differs from the layer's {layer.compute_dtype}"
    if why is None and rows > GEMV_MAX_ROWS:
        why = f"{rows} rows > {GEMV_MAX_ROWS} (the GEMV is for the per-image modulation vectors)"
    return why


def w4a16_gemv(x: torch.Tensor, layer: torch.nn.Module) -> torch.Tensor:
    """x: T [..., K] (at most 8 rows for the kernel), layer: ``SVDQLinear`` W4A16 INT4 g64 -> T [..., N];
    see ``w4a16_gemv_reference``. Sets ``layer.last_path``."""
    why = _gemv_refusal(x, layer)
    if why is not None:
        layer.last_path = f"PyTorch reference ({why})"
        return w4a16_gemv_reference(x, layer)

    def kernel() -> torch.Tensor:
        x2 = _aligned(x.reshape(_rows(x), layer.in_features), 16)
        y = launch.w4a16_gemv(x2, layer.qweight, layer.wscales, layer.bias)
        layer.last_path = "fused W4A16 GEMV (pycuda)"
        return y.reshape(*x.shape[:-1], layer.out_features)

    def reference() -> torch.Tensor:
        layer.last_path = f"PyTorch reference ({fused_refusal(x.device, 'gemv')})"
        return w4a16_gemv_reference(x, layer)

    return _kernel_or_reference(x.device, "gemv", kernel, reference)


def w4a16_gemv_many(
    x: torch.Tensor, layers: list[torch.nn.Module], cache: dict | None = None
) -> list[torch.Tensor]:
    """x: T [..., K] -> ``[w4a16_gemv(x, layer) for layer in layers]``, the same bits, in one grouped kernel
    launch when the GEMV serves every layer (FLUX.1's 77 adaLN linears: one pass over their 1.6 GB instead of
    77 short launches). ``cache``: a dict the caller keeps (e.g. on the model) for the launch table, which is
    rebuilt when a layer's weight tensors change; without it, or when any layer is refused, per layer."""
    one_group = len({(layer.in_features, layer.compute_device) for layer in layers}) == 1
    if cache is None or len(layers) < 2 or not one_group or any(_gemv_refusal(x, layer) for layer in layers):
        return [w4a16_gemv(x, layer) for layer in layers]
    rows = _rows(x)

    def kernel() -> list[torch.Tensor]:
        key = tuple((m.qweight.data_ptr(), m.wscales.data_ptr(), m.bias.data_ptr() if m.bias is not None else 0)
                    for m in layers)  # fmt: skip
        group = cache.get(key)
        if group is None:
            cache.clear()  # drop the old table and the weights it keeps alive
            group = cache[key] = launch.gemv_group([(m.qweight, m.wscales, m.bias) for m in layers])
        ys = launch.w4a16_gemv_grouped(_aligned(x.reshape(rows, x.shape[-1]), 16), group)
        for m in layers:
            m.last_path = "fused W4A16 GEMV, grouped (pycuda)"
        return [y.reshape(*x.shape[:-1], m.out_features) for y, m in zip(ys, layers, strict=True)]

    return _kernel_or_reference(x.device, "gemv", kernel, lambda: [w4a16_gemv(x, m) for m in layers])


# ----------------------------------------------------------------------------------------------------
# Shape checks shared by references and kernels
# ----------------------------------------------------------------------------------------------------


def _check_modulation(x: torch.Tensor, *mods: torch.Tensor) -> None:
    """x: [B, S, C], each of mods: [B, C] (any dtype, any strides); ValueError otherwise."""
    if x.dim() != 3:
        raise ValueError(f"x must be [B, S, C], got {tuple(x.shape)}")
    b, _, c = x.shape
    for m in mods:
        if tuple(m.shape) != (b, c):
            raise ValueError(f"modulation must be [B, C] = {(b, c)}, got {tuple(m.shape)}")


def _check_gate(residual: torch.Tensor, gate: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None) -> None:
    """residual, y: [B, S, C], gate: [B, C], out: residual's dtype [B, S, C] or None; ValueError otherwise."""
    _check_modulation(residual, gate)
    if y.shape != residual.shape:
        raise ValueError(f"y {tuple(y.shape)} must match residual {tuple(residual.shape)}")
    if out is not None and (out.shape != residual.shape or out.dtype != residual.dtype):
        raise ValueError(f"out must be {residual.dtype} {tuple(residual.shape)}, got {out.dtype} {tuple(out.shape)}")


def _check_qkv(qkv: torch.Tensor, q_weight: torch.Tensor, k_weight: torch.Tensor, heads: int) -> int:
    """-> head dim D (from the norm weights)."""
    d = q_weight.numel()
    if qkv.dim() != 3 or qkv.shape[-1] < 3 * heads * d:
        raise ValueError(f"qkv must be [B, S, >= 3*{heads}*{d}], got {tuple(qkv.shape)}")
    if q_weight.shape != (d,) or k_weight.shape != (d,) or d % 2:
        raise ValueError(
            f"q/k norm weights must be [D] with D even, got {tuple(q_weight.shape)}, {tuple(k_weight.shape)}"
        )
    return d


def _check_rope(cos: torch.Tensor, sin: torch.Tensor, s: int, d: int) -> None:
    """cos, sin: [S, D] = [s, d] (any float dtype); ValueError otherwise."""
    if tuple(cos.shape) != (s, d) or tuple(sin.shape) != (s, d):
        raise ValueError(f"rope cos/sin must be [S, D] = {(s, d)}, got {tuple(cos.shape)}, {tuple(sin.shape)}")
