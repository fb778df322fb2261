"""Host side of the Hopper W4A8 path: an INT4 W4A4 checkpoint run with 8-bit activations on sm_90.

The prologue quantizes activations to INT8 per 64-group (16-bit scales) in the m16n8k32 s8 fragment
order and computes the low-rank down projection. Two implementations with identical codes and scales:
``svdq_w4a8_prologue_*`` (default; K split over blocks, partial ``lact`` per split, summed in order by
the GEMM) and Kernel A itself instantiated with QMAX = 127 (``svdq_quant_lora_int8_*``; one block walks
all of K, latency bound). Kernel B is ``svdq_w4a8_gemm_*``, which widens the checkpoint's unchanged int4
codes (the INT4 repack, ``gpu.kernels.repack``) to s8 in registers.
Numerics: ``SVDQLinear.forward_reference(x, act_format="int8_g64")`` (see DESIGN.md).
Streams and the primary context are handled exactly as in ``gpu.kernels.launch``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from gpu.kernels.launch import (
    _SUFFIX,
    EPILOGUES,
    MAX_RANK,
    QuantizedAct,
    _check,
    _on_kernel_stream,
    _ptr,
    device_arch,
)
from gpu.kernels.loader import load_module
from gpu.kernels.repack import GROUP, PAD_M, PackedWeights, round_up

_QUANT_THREADS, _QUANT_ROWS = 256, 32
_PRO_THREADS, _PRO_ROWS, _PRO_GROUPS = 128, 16, 8
_GEMM_THREADS, _GEMM_BM, _GEMM_BN = 256, 128, 128
ACT_FORMAT = "int8_g64"  # the activation format of the reference numerics this path reproduces


@dataclass
class _Fns:
    quant: object
    gemm: object
    prologue: object


_fns: dict[tuple[int, torch.dtype], _Fns] = {}


def _functions(device: torch.device, dtype: torch.dtype) -> _Fns:
    idx = device.index if device.index is not None else torch.cuda.current_device()
    key = (idx, dtype)
    if key not in _fns:
        arch = device_arch(torch.device("cuda", idx))
        sfx = _SUFFIX[dtype]
        quant = load_module("svdq_quant_lora", idx, arch).module.get_function(f"svdq_quant_lora_int8_{sfx}")
        quant.prepare("PPPPPPiiii")
        gemm = load_module("svdq_w4a8_gemm", idx, arch).module.get_function(f"svdq_w4a8_gemm_{sfx}")
        gemm.prepare("PPPPPPPPiiiiiiii")
        module = load_module("svdq_w4a8_gemm", idx, arch).module
        prologue = module.get_function(f"svdq_w4a8_prologue_{sfx}")
        prologue.prepare("PPPPPPiiii")
        _fns[key] = _Fns(quant, gemm, prologue)
    return _fns[key]


def quantize_act_int8(
    x: torch.Tensor, smooth: torch.Tensor | None, lora_down: torch.Tensor | None, kernel: str = "split"
) -> QuantizedAct:
    """The W4A8 prologue. x: T [M, K] -> QuantizedAct with act int32 [M_pad/16, K/64, 2, 32, 4] and
    lact fp32 [S, M_pad, r]: S partial sums over K (S = ceil(K/512) for ``kernel="split"``, 1 for
    ``kernel="kernel_a"``), which the GEMM adds in order."""
    if x.dim() != 2 or x.dtype not in _SUFFIX:
        raise ValueError(f"x must be a 2-D bf16/fp16 tensor, got {x.dtype} {tuple(x.shape)}")
    if kernel not in ("split", "kernel_a"):
        raise ValueError(f"unknown prologue {kernel!r}")
    x = x.contiguous()
    if x.data_ptr() % 16:
        x = x.clone()  # the split prologue reads 16-byte vectors
    m, k = x.shape
    if k % GROUP:
        raise ValueError(f"K={k} is not a multiple of the group size {GROUP}")
    rank = 0 if lora_down is None else int(lora_down.shape[1])
    if rank > MAX_RANK:
        raise ValueError(f"rank {rank} > {MAX_RANK}")
    _check(smooth, "smooth", (k,), x.dtype, x.device)
    _check(lora_down, "lora_down", (k, rank), x.dtype, x.device)
    m_pad = round_up(max(m, 1), PAD_M)
    act = torch.empty((m_pad // 16, k // GROUP, 2, 32, 4), dtype=torch.int32, device=x.device)
    ascale = torch.empty((k // GROUP, m_pad), dtype=x.dtype, device=x.device)
    n_groups = k // GROUP
    splits = -(-n_groups // _PRO_GROUPS) if kernel == "split" else 1
    lact = torch.empty((splits, m_pad, rank), dtype=torch.float32, device=x.device)
    if m == 0:
        return QuantizedAct(act, ascale, lact, m, m_pad)
    fns = _functions(x.device, x.dtype)
    with _on_kernel_stream(x.device) as stream:
        if kernel == "split":
            fns.prologue.prepared_async_call(
                (m_pad // _PRO_ROWS, splits, 1), (_PRO_THREADS, 1, 1), stream,
                x.data_ptr(), _ptr(smooth), _ptr(lora_down if rank else None),
                act.data_ptr(), ascale.data_ptr(), lact.data_ptr(), m, k, rank, m_pad,
            )  # fmt: skip
            return QuantizedAct(act, ascale, lact, m, m_pad)
        fns.quant.prepared_async_call(
            (m_pad // _QUANT_ROWS, 1, 1), (_QUANT_THREADS, 1, 1), stream,
            x.data_ptr(), _ptr(smooth), _ptr(lora_down if rank else None),
            act.data_ptr(), ascale.data_ptr(), lact.data_ptr(), m, k, rank, m_pad,
        )  # fmt: skip
    return QuantizedAct(act, ascale, lact, m, m_pad)


def w4a8_gemm(
    qa: QuantizedAct,
    w: PackedWeights,
    out_dtype: torch.dtype,
    epilogue: str = "none",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Kernel B (W4A8). qa from ``quantize_act_int8``, w from ``gpu.kernels.repack`` -> T [M, N]."""
    device = qa.act.device
    k, n, rank = w.k, w.n, w.rank
    if out_dtype not in _SUFFIX:
        raise ValueError(f"output dtype must be bf16/fp16, got {out_dtype}")
    if epilogue not in EPILOGUES:
        raise ValueError(f"unknown epilogue {epilogue!r} (known: {', '.join(EPILOGUES)})")
    if n % 2:
        raise ValueError(f"N={n} must be even (the kernel stores column pairs)")
    _check(qa.act, "act", (qa.m_pad // 16, k // GROUP, 2, 32, 4), torch.int32, device)
    _check(qa.ascale, "ascale", (k // GROUP, qa.m_pad), out_dtype, device)
    if qa.lact.dim() != 3:
        raise ValueError("lact must be [S, M_pad, r] (K-split partials of the W4A8 prologue)")
    _check(qa.lact, "lact", (qa.lact.shape[0], qa.m_pad, rank), torch.float32, device)
    _check(w.wgt, "wgt", (w.n_pad // 8, k // GROUP, 32, 2), torch.int32, device)
    _check(w.wscale, "wscale", (k // GROUP, w.n_pad), out_dtype, device)
    _check(w.lora_up, "lora_up", (w.n_pad, rank), out_dtype, device)
    _check(w.bias, "bias", (w.n_pad,), out_dtype, device)
    if out is None:
        out = torch.empty((qa.m, n), dtype=out_dtype, device=device)
    _check(out, "out", (qa.m, n), out_dtype, device)
    if qa.m == 0:
        return out
    fns = _functions(device, out_dtype)
    grid = (round_up(w.n_pad, _GEMM_BN) // _GEMM_BN, round_up(qa.m_pad, _GEMM_BM) // _GEMM_BM, 1)
    with _on_kernel_stream(device) as stream:
        fns.gemm.prepared_async_call(
            grid, (_GEMM_THREADS, 1, 1), stream,
            qa.act.data_ptr(), qa.ascale.data_ptr(), w.wgt.data_ptr(), w.wscale.data_ptr(),
            qa.lact.data_ptr(), _ptr(w.lora_up if rank else None), _ptr(w.bias), out.data_ptr(),
            qa.m, n, k, rank, qa.m_pad, w.n_pad, EPILOGUES[epilogue], qa.lact.shape[0],
        )  # fmt: skip
    return out


def svdq_linear_forward_w4a8(x: torch.Tensor, w: PackedWeights, epilogue: str = "none") -> torch.Tensor:
    """x: T [..., K] -> T [..., N] through Kernel A (INT8) then the W4A8 GEMM."""
    lead = x.shape[:-1]
    x2 = x.reshape(-1, w.k)
    qa = quantize_act_int8(x2, w.smooth, w.lora_down)
    return w4a8_gemm(qa, w, x.dtype, epilogue).reshape(*lead, w.n)


def act8_fragments_to_codes(act: torch.Tensor, m: int, k: int) -> torch.Tensor:
    """Inverse of the INT8 code layout, for tests: int32 [M_pad/16, K/64, 2, 32, 4] -> int8 [m, K]."""
    m_pad = act.shape[0] * 16
    b = act.contiguous().view(torch.int8).view(m_pad // 16, k // GROUP, 2, 8, 4, 2, 2, 4)
    # dims: tile, group, h, gid, tig, parity (w>>1), rowhalf (w&1), j
    # row = 16*tile + gid + 8*rowhalf; col = 64*group + 32*h + 8*tig + 2*j + parity
    b = b.permute(0, 6, 3, 1, 2, 4, 7, 5).reshape(m_pad, k)
    return b[:m]
