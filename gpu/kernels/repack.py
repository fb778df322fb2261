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
    lr_window int32 [N_pad/64, 2]: per 64-channel block, the rank columns its lora_up rows use (rank_windows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

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
    lr_window: torch.Tensor | None = None  # int32 [N_pad/64, 2] (rank_windows, step 1), None for rank 0


def _zero_pad(t: torch.Tensor, rows: int, cols: int | None = None) -> torch.Tensor:
    """t: [R, ...] -> [rows, ...] (with ``cols``, a 2-D t: [rows, cols]) zero padded, contiguous."""
    shape = (rows, *t.shape[1:]) if cols is None else (rows, cols)
    if tuple(t.shape) == shape:
        return t.contiguous()
    out = torch.zeros(shape, dtype=t.dtype, device=t.device)
    out[tuple(slice(0, d) for d in t.shape)] = t
    return out


def repack_qweight(qweight: torch.Tensor, n_pad: int) -> torch.Tensor:
    """qweight: uint8 [N, K/2] canonical -> int32 [N_pad/8, K/64, 32, 2] B-fragment order."""
    n, half_k = qweight.shape
    k = half_k * 2
    if k % GROUP:
        raise ValueError(f"K={k} is not a multiple of {GROUP}")
    words = _zero_pad(qweight, n_pad).view(torch.int32)  # [N_pad, K/8]; word w = codes 8w..8w+7
    # [tile, gid, group, reg(2), tig(4)] -> [tile, group, gid, tig, reg]
    w = words.view(n_pad // 8, 8, k // GROUP, 2, 4).permute(0, 2, 1, 4, 3)
    return w.contiguous().view(n_pad // 8, k // GROUP, 32, 2)


_Opt = torch.Tensor | None


def _low_rank_parts(layer: torch.nn.Module) -> tuple[_Opt, _Opt, int, _Opt]:
    """(lora_down [K, r], lora_up [N, r], r, smooth [K]) of an ``SVDQLinear``; None (and r = 0) where absent."""
    lora_down = getattr(layer, "lora_down", None)
    rank = int(lora_down.shape[1]) if lora_down is not None else 0
    return lora_down, getattr(layer, "lora_up", None), rank, getattr(layer, "smooth", None)


def repack_layer(layer: torch.nn.Module, device: torch.device | None = None) -> PackedWeights:
    """``SVDQLinear`` (INT4 W4A4) -> PackedWeights on ``device`` (default: the layer's compute device)."""
    device = device or layer.compute_device
    qweight = layer.qweight.to(device)
    n, k = layer.out_features, layer.in_features
    n_pad = round_up(n, PAD_N)
    dtype = layer.compute_dtype
    lora_down, lora_up, rank, smooth = _low_rank_parts(layer)
    bias = layer.bias
    wscale = _zero_pad(layer.wscales.to(device=device, dtype=dtype), n_pad).t().contiguous()
    up = _zero_pad(lora_up.to(device=device, dtype=dtype), n_pad) if rank else None
    return PackedWeights(
        wgt=repack_qweight(qweight, n_pad),
        wscale=wscale,
        lora_down=lora_down.to(dtype).contiguous() if rank else None,
        lora_up=up,
        lr_window=rank_windows(up, PAD_N, step=1) if rank else None,
        bias=_zero_pad(bias.to(dtype), n_pad) if bias is not None else None,
        smooth=smooth.to(dtype).contiguous() if smooth is not None else None,
        n=n,
        k=k,
        rank=rank,
        n_pad=n_pad,
        key=source_key(layer),
    )


def source_key(layer: torch.nn.Module) -> tuple:
    """(data_ptr, _version) of every source buffer: changes when weights are loaded or edited. Buffers made
    under ``torch.inference_mode`` (e.g. layers merged there) have no version counter: only a swap of such a
    tensor is seen, not an in-place edit of it."""
    names = ("qweight", "wscales", "lora_down", "lora_up", "bias", "smooth")
    return tuple(
        (t.data_ptr(), None if t.is_inference() else t._version) if (t := getattr(layer, name, None)) is not None
        else None
        for name in names
    )


OFFLOAD_ATTR = "offload_canonical_after_repack"


def enable_canonical_offload(model: torch.nn.Module) -> None:
    """Mark every SVDQ layer of ``model``: once the fused kernels have their packed copy, keep the canonical
    4-bit codes and scales in host memory instead of a second copy on the GPU (4.3 GiB for FLUX.1-dev). Set by
    the pipeline loader; a bare layer (tests, benches) keeps both."""
    for m in model.modules():
        if hasattr(m, "qweight") and hasattr(m, "spec"):
            setattr(m, OFFLOAD_ATTR, True)


def carry_offload_mark(sources: Iterable[torch.nn.Module], target: torch.nn.Module) -> None:
    """``target`` replaces ``sources`` (a merge or an unmerge of layers): it inherits their mark."""
    if any(getattr(m, OFFLOAD_ATTR, False) for m in sources):
        setattr(target, OFFLOAD_ATTR, True)


def offload_canonical(layer: torch.nn.Module) -> None:
    """Move a marked layer's canonical codes and scales to host memory. The reference fallback, LoRA and
    checkpoint code read them from there (``SVDQLinear.quantized_weight(device)``, ``compute_device``)."""
    if not getattr(layer, OFFLOAD_ATTR, False):
        return
    with torch.inference_mode(False):  # plain tensors: inference tensors have no version counter (source_key)
        for name in ("qweight", "wscales"):
            t = layer._buffers.get(name)
            if t is not None and t.device.type == "cuda":
                layer._buffers[name] = t.to("cpu")


_Packed = TypeVar("_Packed", "PackedWeights", "PackedW4A8F")


def _cached_pack(
    layer: torch.nn.Module,
    attr: str,
    repack: Callable[[torch.nn.Module, torch.device | None], _Packed],
    device: torch.device | None,
) -> _Packed:
    """``repack(layer, device)`` cached on the layer as ``attr``, redone when a source buffer changed; then the
    canonical buffers may move to host memory (``offload_canonical``), so the key is taken after that."""
    cached = getattr(layer, attr, None)
    if cached is None or cached.key != source_key(layer):
        cached = repack(layer, device)
        offload_canonical(layer)
        cached.key = source_key(layer)
        setattr(layer, attr, cached)
    return cached


def packed_for(layer: torch.nn.Module, device: torch.device | None = None) -> PackedWeights:
    """The layer's packed W4A4 weights, repacked when its buffers changed since the last call."""
    return _cached_pack(layer, "_svdq_packed", repack_layer, device)


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


# --- Hopper W4A8 with FP8 activations (kernels_cu/svdq_w4a8_wgmma.cu) --------------------------------
W4A8F_TILE = 128  # channels (and tokens) per GEMM block


@dataclass
class PackedW4A8F:
    """A layer's tensors in the FP8 wgmma kernel's layout (all on the layer's device)."""

    wgt: torch.Tensor  # uint8 [N_pad/128, K/64, 4096] sign/magnitude nibbles in A-fragment order
    wscale: torch.Tensor  # S [N_pad/128, K/64, 128] = sw exactly, S = bf16 or fp16 (the kernel folds in 2^9)
    inv_smooth: torch.Tensor  # fp32 [K] = 1 / lambda (ones without smoothing)
    lora_down: torch.Tensor | None  # T [K, r] = L1 / lambda (the down projection on the raw x); r: rank up to x16
    lora_up: torch.Tensor | None  # T [N_pad, r]
    bias: torch.Tensor | None  # T [N_pad]
    n: int
    k: int
    rank: int
    n_pad: int
    key: tuple
    lr_window: torch.Tensor | None = None  # int32 [N_pad/128, 2] (rank_windows), None for rank 0
    max_window: int = 0  # the widest of lr_window's column counts


def rank_windows(lora_up: torch.Tensor, tile: int, step: int = 16) -> torch.Tensor:
    """lora_up: [N_pad, r] (N_pad % tile == 0, r % step == 0) -> int32 [N_pad/tile, 2]: per tile of ``tile``
    channels, (first rank column, column count), multiples of ``step``, outside which the tile's rows of
    lora_up are all zero; (0, 0) for an all-zero tile. A merged layer's up projection is block-diagonal
    (gpu.models.flux_fused.merge_svdq_linears: each member's channels use only its own r_i columns), so the
    GEMM's epilogue runs r_i-deep instead of sum(r_i)-deep on every tile; skipped terms are exact zeros."""
    n_pad, r = lora_up.shape
    nz = (lora_up != 0).view(n_pad // tile, tile, r).any(dim=1)  # [tiles, r]
    cols = torch.arange(r, device=lora_up.device)
    first = torch.where(nz, cols, r).amin(dim=1)
    last = torch.where(nz, cols, -1).amax(dim=1)
    start = first // step * step
    end = (last + step) // step * step  # (last + 1) rounded up to a multiple of step
    used = nz.any(dim=1)
    return torch.stack([torch.where(used, start, 0), torch.where(used, end - start, 0)], dim=1).to(torch.int32)


def largest_rank_window(members: list[tuple[int, int]], tile: int, step: int = 16) -> int:
    """The widest window ``rank_windows`` can give a merged layer whose members have (out_features, rank),
    in order, from the sizes alone (the up projection's zeros may only make windows narrower): per tile of
    ``tile`` channels, the span of the rank columns of every member with rows in it, rounded out to ``step``."""
    spans, row, col = [], 0, 0
    for n, r in members:
        if r and n:
            spans.append((row, row + n, col, col + r))
        row, col = row + n, col + r
    widest = 0
    for t0 in range(0, row, tile):
        cols = [(c0, c1) for r0, r1, c0, c1 in spans if r0 < t0 + tile and r1 > t0]
        if cols:
            lo = min(c for c, _ in cols) // step * step
            hi = (max(c for _, c in cols) + step - 1) // step * step
            widest = max(widest, hi - lo)
    return widest


def repack_qweight_w4a8f(qweight: torch.Tensor, n_pad: int) -> torch.Tensor:
    """qweight: uint8 [N, K/2] canonical int4 (|code| <= 7) -> uint8 [N_pad/128, K/64, 4096].

    Thread (warpgroup wg, warp w, lane 4*gid + tig) reads 16 bytes: words (k-half h, p) for h, p in {0, 1}.
    Word (h, p) carries A registers a[2p] (row gid) and a[2p+1] (row gid + 8), k = 64g + 32h + 16p + 4tig + j
    in byte j, row = 64 wg + 16 w (+ 8), as sign/magnitude nibbles:
        byte j = mag(lo_j) | sign(hi_{j-1 mod 4}) << 3 | mag(hi_j) << 4 | sign(lo_j) << 7
    so that ``w & 0x87878787`` and ``rotr(w, 4) & 0x87878787`` are the two registers' E4M3 subnormal bytes."""
    from gpu.quant import get_format, unpack_codes

    n, half_k = qweight.shape
    k = half_k * 2
    if k % GROUP:
        raise ValueError(f"K={k} is not a multiple of {GROUP}")
    codes = unpack_codes(qweight, get_format("int4"))
    if bool((codes < -7).any()):
        raise ValueError("int4 code -8 cannot be widened to an E4M3 subnormal (the checkpoint should use +-7)")
    codes = _zero_pad(codes, n_pad).to(torch.int16)
    # [tile, wg, warp, rowhalf, gid, group, h, p, tig, j]
    c = codes.view(n_pad // W4A8F_TILE, 2, 4, 2, 8, k // GROUP, 2, 2, 4, 4)
    lo, hi = c[:, :, :, 0], c[:, :, :, 1]  # [tile, wg, warp, gid, group, h, p, tig, j]
    order = (0, 4, 1, 2, 3, 7, 5, 6, 8)  # -> [tile, group, wg, warp, gid, tig, h, p, j]
    lo, hi = lo.permute(order), hi.permute(order)
    sign_hi_prev = torch.roll((hi < 0).to(torch.int16), shifts=1, dims=-1)
    byte = lo.abs() | (sign_hi_prev << 3) | (hi.abs() << 4) | ((lo < 0).to(torch.int16) << 7)
    return byte.to(torch.uint8).contiguous().view(n_pad // W4A8F_TILE, k // GROUP, 4096)


def scales_16bit(wscales: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The group scales as the kernel reads them: in their own type when that is bf16/fp16 (half the bytes of
    fp32: 0.26 GiB of FLUX.1-dev), else in ``dtype`` when that is exact; raises ValueError when neither is."""
    if wscales.dtype in (torch.bfloat16, torch.float16):
        return wscales
    as16 = wscales.to(dtype)
    if not torch.equal(as16.to(wscales.dtype), wscales):
        raise ValueError(f"{wscales.dtype} group scales are not exact in {dtype}")
    return as16


def repack_layer_w4a8f(layer: torch.nn.Module, device: torch.device | None = None) -> PackedW4A8F:
    """``SVDQLinear`` (INT4 W4A4) -> PackedW4A8F on ``device`` (default: the layer's compute device)."""
    from gpu.modules.reference import smoothed_lora_down

    device = device or layer.compute_device
    n, k = layer.out_features, layer.in_features
    n_pad = round_up(n, W4A8F_TILE)
    dtype = layer.compute_dtype
    lora_down, lora_up, rank, smooth = _low_rank_parts(layer)
    groups = k // GROUP
    sw = _zero_pad(scales_16bit(layer.wscales.to(device), dtype), n_pad)  # [N_pad, G]
    wscale = sw.view(n_pad // W4A8F_TILE, W4A8F_TILE, groups).permute(0, 2, 1).contiguous()
    if smooth is not None:
        inv_smooth = torch.reciprocal(smooth.float()).contiguous()
    else:
        inv_smooth = torch.ones(k, dtype=torch.float32, device=device)
    # The low-rank wgmma takes 16 rank columns per step: a rank that is not a multiple of 16 (a checkpoint made with
    # rank 8 or 24) gets zero columns, which add exact zeros.
    r16 = round_up(rank, 16)
    up = _zero_pad(lora_up.to(device=device, dtype=dtype), n_pad, r16) if rank else None
    windows = rank_windows(up, W4A8F_TILE) if rank else None
    down = _zero_pad(smoothed_lora_down(lora_down.to(device=device, dtype=dtype), smooth), k, r16) if rank else None
    return PackedW4A8F(
        wgt=repack_qweight_w4a8f(layer.qweight.to(device), n_pad),
        wscale=wscale,
        inv_smooth=inv_smooth,
        lora_down=down,
        lora_up=up,
        bias=_zero_pad(layer.bias.to(dtype), n_pad) if layer.bias is not None else None,
        n=n,
        k=k,
        rank=r16,
        n_pad=n_pad,
        key=source_key(layer),
        lr_window=windows,
        max_window=int(windows[:, 1].max()) if rank else 0,
    )


def _held_bytes(layer: torch.nn.Module, tile: int, rank_step: int, down_copy: bool, scale_bytes: int | None) -> int:
    """GPU bytes a layer's packed copy holds beyond the layer's own buffers, from its sizes (for the memory plan,
    before anything is packed). Codes and group scales replace the canonical ones where the loader marked the
    layer (``enable_canonical_offload``), else they are a second copy; padded ``lora_up``/bias are copies;
    ``down_copy``: the packing keeps its own down projection (the FP8 path's L1 / lambda, [K, r rounded up to
    ``rank_step``]); ``scale_bytes``: bytes per group scale in the packed copy (None: the compute dtype's)."""
    n, k = layer.out_features, layer.in_features
    n_pad = round_up(n, tile)
    rank = _low_rank_parts(layer)[2]
    r_pad = round_up(rank, rank_step)
    el = layer.compute_dtype.itemsize
    total = 0
    if not getattr(layer, OFFLOAD_ATTR, False):
        total += n_pad * k // 2 + n_pad * (k // GROUP) * (scale_bytes or el)
    if rank and (n_pad, r_pad) != (n, rank):
        total += n_pad * r_pad * el
    if rank and down_copy:
        total += k * r_pad * el
    if getattr(layer, "bias", None) is not None and n_pad != n:
        total += n_pad * el
    return total


def held_bytes_w4a4(layer: torch.nn.Module) -> int:
    """``_held_bytes`` of ``repack_layer``: the down projection and smoothing are the layer's own tensors."""
    return _held_bytes(layer, PAD_N, 1, down_copy=False, scale_bytes=None)


def held_bytes_w4a8f(layer: torch.nn.Module) -> int:
    """``_held_bytes`` of ``repack_layer_w4a8f``: plus L1 / lambda and the fp32 1 / lambda [K]."""
    return _held_bytes(layer, W4A8F_TILE, 16, down_copy=True, scale_bytes=2) + 4 * layer.in_features


def packed_w4a8f_for(layer: torch.nn.Module, device: torch.device | None = None) -> PackedW4A8F:
    """The layer's FP8-path packed weights, repacked when its buffers changed since the last call."""
    return _cached_pack(layer, "_svdq_packed_w4a8f", repack_layer_w4a8f, device)
