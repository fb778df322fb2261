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
  blocks, ``apply_rotary_emb(use_real=True, use_real_unbind_dim=-1)`` on q and k, and the transpose to the
  [B, H, S, D] layout that ``F.scaled_dot_product_attention`` takes;
- ``w4a16_gemv``: the adaLN modulation linears (``norm1.linear``, ``norm1_context.linear``, single
  ``norm.linear``) stored as W4A16 INT4 group-64 ``SVDQLinear`` layers, for B <= 8 rows.

Numerics shared by all of them: inputs are upcast to fp32, every intermediate stays fp32 and the result is
rounded to the input's 16-bit dtype once (diffusers rounds after each op, so results agree within a bf16
rounding step, not bit for bit; ``tests/test_fused_ops.py`` checks that). Where the kernel can follow the
reference's operation order exactly (``gate_residual``, the RoPE rotation) it does so with IEEE-rounded
intrinsics; reductions (LayerNorm/RMSNorm statistics, GEMV dot products) are summed in a fixed but
different order, so those agree within fp32 rounding before the final 16-bit rounding.

Dispatch is cheap per call: the first call on a device decides (pycuda present, kernel binaries
obtainable) and caches the answer; a kernel build or load failure is remembered and the op falls back to
the reference from then on (``fused_path`` says which path runs and why).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FP16_MAX = 65504.0  # largest finite fp16: gate_residual saturates fp16 results here (FLUX's clip)
GEMV_MAX_ROWS = 8  # the W4A16 GEMV kernel serves x with at most this many rows (mma n8 tile)
HEAD_DIM = 128  # the fused qk_norm_rope kernel is built for FLUX's head dimension

# Set by the kernel section of gpu.kernels.launch once the kernels exist; until then every op runs its
# reference (the API is final, the other modules can be written against it).
_KERNELS_READY = False


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
    ``pos_embed`` output, fp32). -> (q, k, v), each T [B, H, S, D] contiguous: q and k RMS-normalized per
    head (fp32, eps) and rotated, v copied."""
    d = _check_qkv(qkv, q_weight, k_weight, heads)
    _check_rope(rope_cos, rope_sin, qkv.shape[1], d)
    q, k, v = _split_heads(qkv, heads, d)
    q = _rope_f32(_rms_norm_f32(q, q_weight, eps), rope_cos, rope_sin)
    k = _rope_f32(_rms_norm_f32(k, k_weight, eps), rope_cos, rope_sin)
    return tuple(t.to(qkv.dtype).transpose(1, 2).contiguous() for t in (q, k, v))


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
    [B, H, S_txt + S_img, D] contiguous, text tokens first: ``FluxAttnProcessor``'s
    ``torch.cat([encoder_query, query], dim=1)`` without the concatenation copies."""
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
    return tuple(t.to(qkv_txt.dtype).transpose(1, 2).contiguous() for t in (q, k, v))


def w4a16_gemv_reference(x: torch.Tensor, layer: torch.nn.Module) -> torch.Tensor:
    """x: T [..., K] -> T [..., N] through ``layer`` (an ``SVDQLinear``): dequantize(qweight) in fp32, then
    x @ W^T + bias with fp32 accumulation (``SVDQLinear.forward_reference``)."""
    return layer.forward_reference(x)


# ----------------------------------------------------------------------------------------------------
# Dispatching functions (kernel on a CUDA device when available, else the reference)
# ----------------------------------------------------------------------------------------------------


def layernorm_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x: T [B, S, C] (C % 8 == 0, C <= 16384 for the kernel), shift/scale: T [B, C] -> T [B, S, C];
    see ``layernorm_modulate_reference``. One read of x, one write of y on the GPU."""
    return layernorm_modulate_reference(x, shift, scale, eps)


def gate_residual(
    residual: torch.Tensor, gate: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """residual, y: T [B, S, C], gate: T [B, C] -> T [B, S, C] = residual + gate[:, None] * y; ``out``
    (may be ``residual``) is written in place when given. See ``gate_residual_reference``."""
    return gate_residual_reference(residual, gate, y, out)


def qk_norm_rope(
    qkv: torch.Tensor,
    q_weight: torch.Tensor,
    k_weight: torch.Tensor,
    rope_cos: torch.Tensor,
    rope_sin: torch.Tensor,
    heads: int,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """qkv: T [B, S, >= 3*H*D] -> (q, k, v) T [B, H, S, D]; see ``qk_norm_rope_reference``."""
    return qk_norm_rope_reference(qkv, q_weight, k_weight, rope_cos, rope_sin, heads, eps)


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
    text first; see ``qk_norm_rope_joint_reference``."""
    return qk_norm_rope_joint_reference(
        qkv_txt, qkv_img, q_weight_txt, k_weight_txt, q_weight_img, k_weight_img, rope_cos, rope_sin, heads, eps
    )


def w4a16_gemv(x: torch.Tensor, layer: torch.nn.Module) -> torch.Tensor:
    """x: T [..., K] (at most 8 rows for the kernel), layer: ``SVDQLinear`` W4A16 INT4 g64 -> T [..., N];
    see ``w4a16_gemv_reference``. Sets ``layer.last_path``."""
    return w4a16_gemv_reference(x, layer)


# ----------------------------------------------------------------------------------------------------
# Shape checks shared by references and kernels
# ----------------------------------------------------------------------------------------------------


def _check_modulation(x: torch.Tensor, *mods: torch.Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"x must be [B, S, C], got {tuple(x.shape)}")
    b, _, c = x.shape
    for m in mods:
        if tuple(m.shape) != (b, c):
            raise ValueError(f"modulation must be [B, C] = {(b, c)}, got {tuple(m.shape)}")


def _check_gate(residual: torch.Tensor, gate: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None) -> None:
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
    if tuple(cos.shape) != (s, d) or tuple(sin.shape) != (s, d):
        raise ValueError(f"rope cos/sin must be [S, D] = {(s, d)}, got {tuple(cos.shape)}, {tuple(sin.shape)}")
