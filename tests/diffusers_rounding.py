"""``DiffusersRoundingOps``: the ``gpu.modules.fused_ops`` API computed as diffusers' unfused FLUX modules compute it
(16-bit rounding after every op), for ``gpu.models.flux_fused.use_ops``. With these ops a fused model reproduces the
unfused one bit for bit on the reference path, which isolates the merging of linears from the (deliberately
different) rounding of the fused ops. A test oracle, not an execution path of the app.

Shapes: x/residual/y T [B, S, D]; shift/scale/gate T [B, D]; qkv T [B, S, >= 3*H*hd]; rope_cos/rope_sin float32
[S, hd] (FluxPosEmbed's layout: each frequency repeated twice); T bf16 or fp16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# the references' own head split and RoPE rotation (fp32 in, fp32 out): diffusers' apply_rotary_emb is the same
# fp32 formula on the upcast 16-bit input, rounded once at its end
from gpu.modules.fused_ops import FP16_MAX, _rope_f32, _split_heads


class DiffusersRoundingOps:
    """The op set (static methods, as ``gpu.modules.fused_ops``' functions) rounding like diffusers' modules."""

    @staticmethod
    def layernorm_modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor:
        """T [B, S, D] -> T [B, S, D]: LayerNorm (no affine) in T, then the modulation in T."""
        return F.layer_norm(x, (x.shape[-1],), eps=eps) * (1 + scale[:, None]) + shift[:, None]

    @staticmethod
    def gate_residual(
        residual: torch.Tensor, gate: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """T [B, S, D]: residual + gate[:, None] * y in T, fp16 clipped to +-65504 as FLUX's blocks do; written into
        ``out`` when given."""
        r = residual + gate[:, None] * y
        if r.dtype == torch.float16:
            r = r.clip(-FP16_MAX, FP16_MAX)
        return r if out is None else out.copy_(r)

    @staticmethod
    def qk_norm_rope(
        qkv: torch.Tensor,
        q_weight: torch.Tensor,
        k_weight: torch.Tensor,
        rope_cos: torch.Tensor,
        rope_sin: torch.Tensor,
        heads: int,
        eps: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """qkv T [B, S, >= 3*H*hd] -> (q, k, v) T [B, H, S, hd]: RMSNorm in T, then RoPE rounded to T."""
        hd = q_weight.numel()
        q, k, v = _split_heads(qkv, heads, hd)  # [B, S, H, hd]
        q = _rope(F.rms_norm(q, (hd,), q_weight, eps), rope_cos, rope_sin)
        k = _rope(F.rms_norm(k, (hd,), k_weight, eps), rope_cos, rope_sin)
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    @staticmethod
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
        eps: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Text T [B, St, F] and image T [B, Si, F] -> (q, k, v) T [B, H, St + Si, hd], text first."""
        st = qkv_txt.shape[1]
        cos_t, cos_i, sin_t, sin_i = rope_cos[:st], rope_cos[st:], rope_sin[:st], rope_sin[st:]
        txt = DiffusersRoundingOps.qk_norm_rope(qkv_txt, q_weight_txt, k_weight_txt, cos_t, sin_t, heads, eps)
        img = DiffusersRoundingOps.qk_norm_rope(qkv_img, q_weight_img, k_weight_img, cos_i, sin_i, heads, eps)
        q, k, v = (torch.cat([t, i], dim=2) for t, i in zip(txt, img, strict=True))
        return q, k, v

    @staticmethod
    def w4a16_gemv(x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
        """The layer's own forward: x T [B, K] -> T [B, N]."""
        return layer(x)

    @staticmethod
    def w4a16_gemv_many(x: torch.Tensor, layers: list[nn.Module], cache: dict | None = None) -> list[torch.Tensor]:
        """Each layer's own forward on x T [B, K] (``cache``, the kernels' launch table, is not used)."""
        return [layer(x) for layer in layers]


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """diffusers' ``apply_rotary_emb`` (use_real, unbind dim -1): x T [B, S, H, hd], cos/sin [S, hd] -> T."""
    return _rope_f32(x.float(), cos, sin).to(x.dtype)
