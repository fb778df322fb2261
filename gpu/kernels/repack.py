"""Weight repacking from the canonical SVDQ layout into the GEMM's fragment layout, on the GPU.

Canonical (``SVDQLinear`` buffers):   qweight uint8 [N, K/2] (element 2j low nibble of byte j),
                                      wscales T [N, K/64], lora_up T [N, r], bias T [N].
Fragment layout (``kernels_cu/svdq_w4a4_gemm.cu``), N padded to a multiple of 64 with zeros:
    wgt     int32 [N_pad/8, K/64, 32 lanes, 2]  lane = 4*gid + tig holds channel 8*tile + gid,
            word 0 = k 8*tig..8*tig+7 and word 1 = k 32+8*tig..+7 of the group (the m16n8k64 B
            fragment). Eight consecutive canonical codes of a row are already one little-endian
            32-bit word with element j in bits 4j..4j+3, so repacking only permutes whole words.
    wscale  T [K/64, N_pad]   group-major so one group's scales for a tile are contiguous.
    lora_up T [N_pad, r], bias T [N_pad] (zero padded), lora_down T [K, r], smooth T [K] (contiguous).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GROUP = 64
PAD_M = 64  # activation rows are padded to the GEMM block M
PAD_N = 64  # weight channels are padded to the GEMM block N


def round_up(v: int, m: int) -> int:
    return (v + m - 1) // m * m


@dataclass
class PackedWeights:
    """A layer's tensors in kernel layout (all on the layer's device)."""

    wgt: torch.Tensor  # int32 [N_pad/8, K/64, 32, 2]
    wscale: torch.Tensor  # T [K/64, N_pad]
    lora_down: torch.Tensor | None  # T [K, r]
    lora_up: torch.Tensor | None  # T [N_pad, r]
    bias: torch.Tensor | None  # T [N_pad]
    smooth: torch.Tensor | None  # T [K]
    n: int
    k: int
    rank: int
    n_pad: int
    key: tuple  # identity + version of the source buffers, to notice in-place weight updates


def _pad_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    """t: [R, ...] -> [rows, ...] zero padded, contiguous."""
    if t.shape[0] == rows:
        return t.contiguous()
    out = torch.zeros((rows, *t.shape[1:]), dtype=t.dtype, device=t.device)
    out[: t.shape[0]] = t
    return out


def repack_qweight(qweight: torch.Tensor, n_pad: int) -> torch.Tensor:
    """qweight: uint8 [N, K/2] canonical -> int32 [N_pad/8, K/64, 32, 2] B-fragment order."""
    n, half_k = qweight.shape
    k = half_k * 2
    if k % GROUP:
        raise ValueError(f"K={k} is not a multiple of {GROUP}")
    words = _pad_rows(qweight, n_pad).view(torch.int32)  # [N_pad, K/8]; word w = codes 8w..8w+7
    # [tile, gid, group, reg(2), tig(4)] -> [tile, group, gid, tig, reg]
    w = words.view(n_pad // 8, 8, k // GROUP, 2, 4).permute(0, 2, 1, 4, 3)
    return w.contiguous().view(n_pad // 8, k // GROUP, 32, 2)


def repack_layer(layer: torch.nn.Module) -> PackedWeights:
    """``SVDQLinear`` (INT4 W4A4) -> PackedWeights; runs on the layer's device."""
    qweight = layer.qweight
    n, k = layer.out_features, layer.in_features
    n_pad = round_up(n, PAD_N)
    dtype = layer.compute_dtype
    lora_down = getattr(layer, "lora_down", None)
    lora_up = getattr(layer, "lora_up", None)
    rank = int(lora_down.shape[1]) if lora_down is not None else 0
    smooth = getattr(layer, "smooth", None)
    bias = layer.bias
    wscale = _pad_rows(layer.wscales.to(dtype), n_pad).t().contiguous()
    return PackedWeights(
        wgt=repack_qweight(qweight, n_pad),
        wscale=wscale,
        lora_down=lora_down.to(dtype).contiguous() if rank else None,
        lora_up=_pad_rows(lora_up.to(dtype), n_pad) if rank else None,
        bias=_pad_rows(bias.to(dtype), n_pad) if bias is not None else None,
        smooth=smooth.to(dtype).contiguous() if smooth is not None else None,
        n=n,
        k=k,
        rank=rank,
        n_pad=n_pad,
        key=source_key(layer),
    )


def source_key(layer: torch.nn.Module) -> tuple:
    """(data_ptr, _version) of every source buffer: changes when weights are loaded or edited."""
    names = ("qweight", "wscales", "lora_down", "lora_up", "bias", "smooth")
    return tuple(
        (t.data_ptr(), t._version) if (t := getattr(layer, name, None)) is not None else None for name in names
    )


def packed_for(layer: torch.nn.Module) -> PackedWeights:
    """The layer's packed weights, repacked when its buffers changed since the last call."""
    cached = getattr(layer, "_svdq_packed", None)
    if cached is None or cached.key != source_key(layer):
        cached = repack_layer(layer)
        layer._svdq_packed = cached
    return cached


def act_fragments_to_codes(act: torch.Tensor, m: int, k: int) -> torch.Tensor:
    """Inverse of Kernel A's code layout, for tests and debugging.

    act: int32 [M_pad/16, K/64, 32, 4] -> int8 codes [m, K]."""
    m_pad = act.shape[0] * 16
    words = act.view(m_pad // 16, k // GROUP, 8, 4, 2, 2)  # [tile, group, gid, tig, khalf, rowhalf]
    # row = 16*tile + gid + 8*rowhalf, col = 64*group + 32*khalf + 8*tig + j
    words = words.permute(0, 5, 2, 1, 4, 3).reshape(m_pad, k // 8)
    shifts = torch.arange(0, 32, 4, device=act.device, dtype=torch.int32)
    nib = (words.unsqueeze(-1) >> shifts) & 0xF
    codes = torch.where(nib >= 8, nib - 16, nib).to(torch.int8).reshape(m_pad, k)
    return codes[:m]
