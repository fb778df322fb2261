"""All host-side launch code of the fused kernels: shape checks, buffers, grids, streams.

Three paths share the loader, the weight canonical form and the streams:
- INT4 W4A4 (sm_75+): Kernel A ``svdq_quant_lora_int4_*`` then Kernel B ``svdq_w4a4_gemm_*`` (on Turing,
  sm_75, its ``svdq_w4a4_gemm_k32_*`` form: the same kernel on m8n8k32 MMAs, bit-identical; see
  ``gpu.kernels.mma_forms``);
- Hopper W4A8 (sm_90, which has no 4-bit tensor cores): the K-split INT8 prologue
  ``svdq_w4a8_prologue_*`` (or Kernel A at QMAX = 127, ``svdq_quant_lora_int8_*``; same codes, latency
  bound) then ``svdq_w4a8_gemm_*``, which widens the checkpoint's unchanged int4 codes to s8 in registers.
  Numerics: ``SVDQLinear.forward_reference(x, act_format="int8_g64")``. Kept as the measured
  alternative (``main.py bench kernels``); dispatch uses the FP8 path below.
- Hopper W4A8 with FP8 activations (sm_90a, what dispatch runs on sm_90): the per-token E4M3 prologue
  ``svdq_w4a8f_quant_*``, the down projection on cuBLAS, then ``svdq_w4a8f_gemm_*`` (wgmma). Numerics:
  ``SVDQLinear.forward_reference(x, act_format="fp8_e4m3_row")``.

Streams: launches must land on PyTorch's *current* stream (ordering with torch ops, CUDA-graph
capture). pycuda launches only on its own ``Stream`` objects and cannot wrap torch's handle, so:
- if torch's current stream *is* one of the package's pycuda streams (the benchmarks in ``gpu.bench`` run
  inside ``launch_stream(device)``; FLUX's double blocks run their text stream on ``side_stream(device)``,
  the second lane), kernels launch on it directly;
- otherwise (generation's image stream: torch's own current stream) the launch forks onto the pycuda stream
  and joins back with events (``wait_stream`` both ways), which CUDA-graph capture records as an ordinary
  fork/join, so capture works too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from gpu.kernels import context, mma_forms
from gpu.kernels.loader import load_module
from gpu.kernels.rank_limits import MAX_TOTAL_RANK, W4A8F_LIMITS, W4A8F_MAX_WINDOW, W4A8F_NARROW_WINDOW
from gpu.kernels.repack import GROUP, PAD_M, PAD_N, PackedW4A8F, PackedWeights, round_up
from gpu.modules.reference import check_gelu_from, gelu_columns_
from gpu.system_info import cuda_index

if TYPE_CHECKING:
    from pycuda.driver import Function

MAX_RANK = 128  # the INT8 W4A8 prologues (kernel A with qmax 127, the K-split one) hold the branch on chip
_RANK_CHUNK = 128  # INT4 kernel A: rank columns per block; grid.y walks wider branches
_SUFFIX = {torch.bfloat16: "bf16", torch.float16: "fp16"}
_QUANT_THREADS, _QUANT_ROWS = 256, 32
_GEMM_THREADS, _GEMM_BM, _GEMM_BN = 128, 64, 64
_PRO_THREADS, _PRO_ROWS, _PRO_GROUPS = 128, 16, 8  # W4A8 K-split prologue
_W4A8_THREADS, _W4A8_BM, _W4A8_BN = 256, 128, 128
# Hopper FP8 wgmma path (kernels_cu/svdq_w4a8_wgmma.cu): block tile, prologue block, pipeline bytes
_W4A8F_THREADS, _W4A8F_TILE = 384, 128  # 2 consumer warpgroups + 1 producer warpgroup; 128x128 tiles
_W4A8F_STAGES = 8
# Prologue: up to this K, persistent 256-thread blocks, 6 per SM, walking the rows; longer rows, a 512-thread block
# per row (kernels_cu/svdq_w4a8_wgmma.cu).
_W4A8F_Q_STREAM_MAX_K, _W4A8F_Q_THREADS, _W4A8F_Q_BLOCKS_PER_SM = 4096, 256, 6
_W4A8F_Q_LONG_THREADS = 512
W4A8F_MAX_K = 16384  # longer rows: a 512-thread block per row, held in registers (4 chunks of 8 per thread)
# STAGES * (FP8 activations + int4 weights + 16-bit scales) + the full/empty/low-rank mbarriers
_W4A8F_PIPE_BYTES = _W4A8F_STAGES * (8192 + 4096 + 256) + -(-(2 * _W4A8F_STAGES * 8 + 16) // 128) * 128
_W4A8F_OUT_STAGE_BYTES = _W4A8F_TILE * (_W4A8F_TILE + 8) * 2  # a tile's 16-bit output, staged (padded rows)


def _w4a8f_smem(rank: int) -> int:
    """Dynamic shared memory of the FP8 GEMM: the stage ring and barriers, then the tile region, which holds a
    tile's low-rank operands (lora_up and lact, 128 rows x rank 16-bit each) and then its staged output."""
    return _W4A8F_PIPE_BYTES + max(2 * _W4A8F_TILE * rank * 2, _W4A8F_OUT_STAGE_BYTES)


_sm_counts: dict[int, int] = {}


def _sm_count(device: torch.device) -> int:
    idx = cuda_index(device)
    if idx not in _sm_counts:
        _sm_counts[idx] = torch.cuda.get_device_properties(idx).multi_processor_count
    return _sm_counts[idx]


def device_arch(device: torch.device) -> str:
    major, minor = torch.cuda.get_device_capability(device)
    return f"{major}{minor}"


def gelu_from_arg(gelu_from: int | None, n: int) -> int:
    """The GEMM kernels' ``gelu_from`` argument: tanh-GELU on output columns >= it (None: no GELU, so N)."""
    check_gelu_from(gelu_from, n)
    return n if gelu_from is None else int(gelu_from)


# (family, kernel name without the dtype suffix, pycuda argument signature)
_KERNELS = {
    "quant_int4": ("svdq_quant_lora", "svdq_quant_lora_int4", "PPPPPPiiii"),
    "gemm_w4a4": ("svdq_w4a4_gemm", "svdq_w4a4_gemm", "PPPPPPPPPiiiiiii"),
    "gemm_w4a4_k32": ("svdq_w4a4_gemm", "svdq_w4a4_gemm_k32", "PPPPPPPPPiiiiiii"),  # Turing's m8n8k32 form
    "quant_int8": ("svdq_quant_lora", "svdq_quant_lora_int8", "PPPPPPiiii"),
    "prologue_int8": ("svdq_w4a8_gemm", "svdq_w4a8_prologue", "PPPPPPiiii"),
    "gemm_w4a8": ("svdq_w4a8_gemm", "svdq_w4a8_gemm", "PPPPPPPPiiiiiiii"),
    "quant_fp8": ("svdq_w4a8_wgmma", "svdq_w4a8f_quant", "PPPPiii"),
    "quant_fp8_long": ("svdq_w4a8_wgmma", "svdq_w4a8f_quant_long", "PPPPiii"),
    "gemm_w4a8f": ("svdq_w4a8_wgmma", "svdq_w4a8f_gemm", "PPPPPPPPPiiiii"),  # scales of the output's type
    "gemm_w4a8f_xs": ("svdq_w4a8_wgmma", "svdq_w4a8f_gemm_xs", "PPPPPPPPPiiiii"),  # of the other 16-bit type
    # the same for rank windows past 128 columns (up to W4A8F_MAX_WINDOW)
    "gemm_w4a8f_wide": ("svdq_w4a8_wgmma", "svdq_w4a8f_gemm_wide", "PPPPPPPPPiiiii"),
    "gemm_w4a8f_wide_xs": ("svdq_w4a8_wgmma", "svdq_w4a8f_gemm_wide_xs", "PPPPPPPPPiiiii"),
    # FLUX block ops and the W4A16 GEMV (section at the end of this module)
    "layernorm_modulate": ("svdq_fused_norm", "svdq_layernorm_modulate", "PPPPiiif"),
    "gate_residual": ("svdq_fused_norm", "svdq_gate_residual", "PPPPiii"),
    "qk_norm_rope": ("svdq_fused_norm", "svdq_qk_norm_rope", "PPPPPPPPPPPiiiqiqif"),
    "w4a16_gemv": ("svdq_w4a16_gemv", "svdq_w4a16_gemv", "PPPPPiii"),
    "w4a16_gemv_grouped": ("svdq_w4a16_gemv", "svdq_w4a16_gemv_grouped", "PPPiii"),
    # Turing's fp16 m16n8k8 form (there is no bf16 one)
    "w4a16_gemv_k8": ("svdq_w4a16_gemv", "svdq_w4a16_gemv_k8", "PPPPPiii"),
    "w4a16_gemv_grouped_k8": ("svdq_w4a16_gemv", "svdq_w4a16_gemv_grouped_k8", "PPPiii"),
}
_fns: dict[tuple[str, int, torch.dtype], Function] = {}


def _function(name: str, device: torch.device, dtype: torch.dtype) -> Function:
    """The prepared pycuda function ``name`` (a key of _KERNELS) for ``device`` and 16-bit ``dtype``."""
    idx = cuda_index(device)
    key = (name, idx, dtype)
    if key not in _fns:
        family, kernel, signature = _KERNELS[name]
        module = load_module(family, idx, device_arch(torch.device("cuda", idx))).module
        fn = module.get_function(f"{kernel}_{_SUFFIX[dtype]}")
        fn.prepare(signature)
        _fns[key] = fn
    return _fns[key]


@contextlib.contextmanager
def launch_stream(device: torch.device) -> Iterator[None]:
    """Run torch on the package's pycuda stream for the block: kernels then launch with no fork/join."""
    idx = cuda_index(device)
    with torch.cuda.stream(context.torch_stream_for_kernels(idx)):
        yield


def side_stream(device: torch.device) -> torch.cuda.Stream:
    """A second stream for work that may overlap the current stream's (callers order it with
    ``wait_stream``): the package's lane-1 pycuda stream, so that kernels launched while it is current run on
    it directly instead of joining lane 0's queue; a plain torch stream when pycuda is not installed."""
    idx = cuda_index(device)
    if idx not in _side:
        try:
            _side[idx] = context.torch_stream_for_kernels(idx, lane=1)
        except Exception:  # noqa: BLE001 - no usable pycuda (the kernels are refused then too): a torch stream
            _side[idx] = torch.cuda.Stream(torch.device("cuda", idx))
    return _side[idx]


_side: dict[int, torch.cuda.Stream] = {}


@contextlib.contextmanager
def _on_kernel_stream(device: torch.device) -> Iterator[object]:
    """Yields the pycuda stream to launch on, ordered after and before torch's current stream."""
    idx = cuda_index(device)
    pstream = context.pycuda_stream(idx)
    current = torch.cuda.current_stream(device)
    own = pstream if current.cuda_stream == pstream.handle else context.package_stream(idx, current.cuda_stream)
    if own is not None:  # torch runs on one of the package's streams (launch_stream, side_stream)
        with context.active(idx):
            yield own
        return
    kstream = _ext_stream(idx)
    kstream.wait_stream(current)
    with context.active(idx):
        yield pstream
    current.wait_stream(kstream)


_ext: dict[int, torch.cuda.ExternalStream] = {}


def _ext_stream(idx: int) -> torch.cuda.ExternalStream:
    if idx not in _ext:
        _ext[idx] = context.torch_stream_for_kernels(idx)
    return _ext[idx]


def _ptr(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def _check(t: torch.Tensor | None, name: str, shape: tuple, dtype: torch.dtype, device: torch.device) -> None:
    """t: ``dtype`` ``shape`` on ``device``, contiguous, or None (an absent optional operand); ValueError naming
    ``name`` otherwise."""
    if t is None:
        return
    if tuple(t.shape) != shape or t.dtype != dtype or t.device != device or not t.is_contiguous():
        raise ValueError(
            f"{name}: expected contiguous {dtype} {shape} on {device}, got "
            f"{'' if t.is_contiguous() else 'non-contiguous '}{t.dtype} {tuple(t.shape)} on {t.device}"
        )


def _check_padding(n: int, n_pad: int, n_step: int, m: int, m_pad: int, m_step: int) -> None:
    """The GEMMs' grids cover w.n_pad channels and qa.m_pad tokens in whole tiles: a padded extent that is no
    multiple of its step, or shorter than the real one, would leave outputs unwritten or read past the operands."""
    if n_pad % n_step or not 0 <= n <= n_pad:
        raise ValueError(f"w.n_pad={n_pad}: must be a multiple of {n_step} and at least w.n={n}")
    if m_pad % m_step or not 0 <= m <= m_pad:
        raise ValueError(f"qa.m_pad={m_pad}: must be a multiple of {m_step} and at least qa.m={m}")


@dataclass
class QuantizedAct:
    """Kernel A's outputs for M tokens (M_pad = M rounded up to 64)."""

    act: torch.Tensor  # int32 [M_pad/16, K/64, 32, 4] fragment-ordered INT4 codes
    ascale: torch.Tensor  # T [K/64, M_pad] 16-bit group scales
    lact: torch.Tensor  # fp32 [M_pad, r] smoothed x @ lora_down (empty [M_pad, 0] when r = 0)
    m: int
    m_pad: int


def _prologue_inputs(
    x: torch.Tensor,
    smooth: torch.Tensor | None,
    lora_down: torch.Tensor | None,
    row_stride_ok: bool = False,
    max_rank: int = MAX_RANK,
) -> tuple[torch.Tensor, int, int, int, int]:
    """Shape checks shared by the prologues -> (x, M, K, rank, M_pad). x comes back contiguous, or, with
    ``row_stride_ok``, as it is when only its rows are spaced out (a column slice of a wider tensor) and
    16-byte vector loads still hold: unit column stride, row stride a multiple of 8, 16-byte aligned."""
    if x.dim() != 2 or x.dtype not in _SUFFIX:
        raise ValueError(f"x must be a 2-D bf16/fp16 tensor, got {x.dtype} {tuple(x.shape)}")
    strided_rows_ok = row_stride_ok and x.stride(1) == 1 and x.stride(0) % 8 == 0 and x.data_ptr() % 16 == 0
    if not strided_rows_ok:
        x = x.contiguous()
    m, k = x.shape
    if k % GROUP:
        raise ValueError(f"K={k} is not a multiple of the group size {GROUP}")
    if lora_down is not None and lora_down.dim() != 2:
        raise ValueError(f"lora_down: expected a 2-D [K, r] tensor, got {tuple(lora_down.shape)}")
    rank = 0 if lora_down is None else int(lora_down.shape[1])
    if rank > max_rank:
        raise ValueError(f"rank {rank} > {max_rank}")
    _check(smooth, "smooth", (k,), x.dtype, x.device)
    _check(lora_down, "lora_down", (k, rank), x.dtype, x.device)
    return x, m, k, rank, round_up(max(m, 1), PAD_M)


def quantize_act(
    x: torch.Tensor, smooth: torch.Tensor | None, lora_down: torch.Tensor | None
) -> QuantizedAct:
    """Kernel A. x: T [M, K] (T bf16/fp16, contiguous), smooth: T [K] or None, lora_down: T [K, r] or
    None (r <= MAX_TOTAL_RANK; 128 rank columns per block, more in further blocks along grid.y) -> QuantizedAct."""
    x, m, k, rank, m_pad = _prologue_inputs(x, smooth, lora_down, max_rank=MAX_TOTAL_RANK)
    act = torch.empty((m_pad // 16, k // GROUP, 32, 4), dtype=torch.int32, device=x.device)
    ascale = torch.empty((k // GROUP, m_pad), dtype=x.dtype, device=x.device)
    lact = torch.empty((m_pad, rank), dtype=torch.float32, device=x.device)
    if m == 0:
        return QuantizedAct(act, ascale, lact, m, m_pad)
    fn = _function("quant_int4", x.device, x.dtype)
    with _on_kernel_stream(x.device) as stream:
        fn.prepared_async_call(
            (m_pad // _QUANT_ROWS, max(1, -(-rank // _RANK_CHUNK)), 1), (_QUANT_THREADS, 1, 1), stream,
            x.data_ptr(), _ptr(smooth), _ptr(lora_down if rank else None),
            act.data_ptr(), ascale.data_ptr(), lact.data_ptr(), m, k, rank, m_pad,
        )  # fmt: skip
    return QuantizedAct(act, ascale, lact, m, m_pad)


def quantize_act_int8(
    x: torch.Tensor, smooth: torch.Tensor | None, lora_down: torch.Tensor | None, kernel: str = "split"
) -> QuantizedAct:
    """The W4A8 prologue. x: T [M, K] -> QuantizedAct with act int32 [M_pad/16, K/64, 2, 32, 4] (s8
    m16n8k32 fragment order) and lact fp32 [S, M_pad, r]: S partial sums over K (S = ceil(K/512) for
    ``kernel="split"``, 1 for ``kernel="kernel_a"``), which the GEMM adds in order."""
    if kernel not in ("split", "kernel_a"):
        raise ValueError(f"unknown prologue {kernel!r}")
    x, m, k, rank, m_pad = _prologue_inputs(x, smooth, lora_down)
    if x.data_ptr() % 16:
        x = x.clone()  # the split prologue reads 16-byte vectors
    act = torch.empty((m_pad // 16, k // GROUP, 2, 32, 4), dtype=torch.int32, device=x.device)
    ascale = torch.empty((k // GROUP, m_pad), dtype=x.dtype, device=x.device)
    splits = -(-(k // GROUP) // _PRO_GROUPS) if kernel == "split" else 1
    lact = torch.empty((splits, m_pad, rank), dtype=torch.float32, device=x.device)
    if m == 0:
        return QuantizedAct(act, ascale, lact, m, m_pad)
    if kernel == "split":
        fn, grid, block = _function("prologue_int8", x.device, x.dtype), (m_pad // _PRO_ROWS, splits, 1), _PRO_THREADS
    else:
        fn, grid, block = _function("quant_int8", x.device, x.dtype), (m_pad // _QUANT_ROWS, 1, 1), _QUANT_THREADS
    with _on_kernel_stream(x.device) as stream:
        fn.prepared_async_call(
            grid, (block, 1, 1), stream,
            x.data_ptr(), _ptr(smooth), _ptr(lora_down if rank else None),
            act.data_ptr(), ascale.data_ptr(), lact.data_ptr(), m, k, rank, m_pad,
        )  # fmt: skip
    return QuantizedAct(act, ascale, lact, m, m_pad)


def w4a4_gemm(
    qa: QuantizedAct,
    w: PackedWeights,
    out_dtype: torch.dtype,
    gelu_from: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Kernel B. qa from ``quantize_act`` (same K, same rank), w from ``gpu.kernels.repack`` ->
    out T [M, N] = grouped INT4 GEMM + lact @ lora_up^T + bias [-> GELU on columns >= gelu_from], T = out_dtype.
    ``out`` (T [M, N], contiguous) is written in place when given. lr_window's values are trusted (checking them
    would take a device sync): each (begin, count) must hold 0 <= begin, begin + count <= rank, as
    ``repack.rank_windows`` writes them; the kernel does not clamp."""
    gelu_col = gelu_from_arg(gelu_from, w.n)
    _check_padding(w.n, w.n_pad, PAD_N, qa.m, qa.m_pad, PAD_M)
    out = _gemm_output(qa, w, out_dtype, out, (qa.m_pad // 16, w.k // GROUP, 32, 4))
    _check(qa.lact, "lact", (qa.m_pad, w.rank), torch.float32, out.device)
    _check(w.lr_window, "lr_window", (w.n_pad // _GEMM_BN, 2), torch.int32, out.device)
    if qa.m == 0:
        return out
    device, n, k, rank = out.device, w.n, w.k, w.rank
    grid = (w.n_pad // _GEMM_BN, qa.m_pad // _GEMM_BM, 1)
    name = "gemm_w4a4_k32" if mma_forms.uses_turing_mma(device) else "gemm_w4a4"
    with _on_kernel_stream(device) as stream:
        _function(name, device, out_dtype).prepared_async_call(
            grid, (_GEMM_THREADS, 1, 1), stream,
            qa.act.data_ptr(), qa.ascale.data_ptr(), w.wgt.data_ptr(), w.wscale.data_ptr(),
            qa.lact.data_ptr(), _ptr(w.lora_up if rank else None), _ptr(w.lr_window if rank else None),
            _ptr(w.bias), out.data_ptr(), qa.m, n, k, rank, qa.m_pad, w.n_pad, gelu_col,
        )  # fmt: skip
    return out


def _gemm_output(
    qa: QuantizedAct,
    w: PackedWeights,
    out_dtype: torch.dtype,
    out: torch.Tensor | None,
    act_shape: tuple[int, ...],
) -> torch.Tensor:
    """Shape checks shared by both GEMMs; returns the (checked or new) output T [M, N]."""
    device, k, n, rank = qa.act.device, w.k, w.n, w.rank
    if out_dtype not in _SUFFIX:
        raise ValueError(f"output dtype must be bf16/fp16, got {out_dtype}")
    if n % 2:
        raise ValueError(f"N={n} must be even (the kernel stores column pairs)")
    _check(qa.act, "act", act_shape, torch.int32, device)
    _check(qa.ascale, "ascale", (k // GROUP, qa.m_pad), out_dtype, device)
    _check(w.wgt, "wgt", (w.n_pad // 8, k // GROUP, 32, 2), torch.int32, device)
    _check(w.wscale, "wscale", (k // GROUP, w.n_pad), out_dtype, device)
    _check(w.lora_up, "lora_up", (w.n_pad, rank), out_dtype, device)
    _check(w.bias, "bias", (w.n_pad,), out_dtype, device)
    if out is None:
        out = torch.empty((qa.m, n), dtype=out_dtype, device=device)
    _check(out, "out", (qa.m, n), out_dtype, device)
    return out


def w4a8_gemm(
    qa: QuantizedAct,
    w: PackedWeights,
    out_dtype: torch.dtype,
    gelu_from: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Kernel B (W4A8). qa from ``quantize_act_int8``, w from ``gpu.kernels.repack`` -> T [M, N]
    = grouped s8 GEMM on int4 weights widened in registers + sum_s lact[s] @ lora_up^T + bias
    [-> GELU on columns >= gelu_from]."""
    gelu_col = gelu_from_arg(gelu_from, w.n)
    _check_padding(w.n, w.n_pad, PAD_N, qa.m, qa.m_pad, PAD_M)
    out = _gemm_output(qa, w, out_dtype, out, (qa.m_pad // 16, w.k // GROUP, 2, 32, 4))
    if qa.lact.dim() != 3:
        raise ValueError("lact must be [S, M_pad, r] (K-split partials of the W4A8 prologue)")
    _check(qa.lact, "lact", (qa.lact.shape[0], qa.m_pad, w.rank), torch.float32, out.device)
    if qa.m == 0:
        return out
    device, n, k, rank = out.device, w.n, w.k, w.rank
    grid = (round_up(w.n_pad, _W4A8_BN) // _W4A8_BN, round_up(qa.m_pad, _W4A8_BM) // _W4A8_BM, 1)
    with _on_kernel_stream(device) as stream:
        _function("gemm_w4a8", device, out_dtype).prepared_async_call(
            grid, (_W4A8_THREADS, 1, 1), stream,
            qa.act.data_ptr(), qa.ascale.data_ptr(), w.wgt.data_ptr(), w.wscale.data_ptr(),
            qa.lact.data_ptr(), _ptr(w.lora_up if rank else None), _ptr(w.bias), out.data_ptr(),
            qa.m, n, k, rank, qa.m_pad, w.n_pad, gelu_col, qa.lact.shape[0],
        )  # fmt: skip
    return out


def svdq_linear_forward(x: torch.Tensor, w: PackedWeights, gelu_from: int | None = None) -> torch.Tensor:
    """x: T [..., K] -> T [..., N] through Kernel A then Kernel B (INT4 W4A4)."""
    return _prologue_then_gemm(x, w, gelu_from, quantize_act, w4a4_gemm)


def svdq_linear_forward_w4a8(x: torch.Tensor, w: PackedWeights, gelu_from: int | None = None) -> torch.Tensor:
    """x: T [..., K] -> T [..., N] through the INT8 prologue then the W4A8 GEMM (Hopper)."""
    return _prologue_then_gemm(x, w, gelu_from, quantize_act_int8, w4a8_gemm)


def _prologue_then_gemm(
    x: torch.Tensor,
    w: PackedWeights,
    gelu_from: int | None,
    prologue: Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor | None], QuantizedAct],
    gemm: Callable[[QuantizedAct, PackedWeights, torch.dtype, int | None], torch.Tensor],
) -> torch.Tensor:
    """x: T [..., K] -> T [..., N]: ``prologue`` on x's rows (T [M, K]) with w's smoothing and down projection,
    then ``gemm`` into T [M, N], reshaped back to x's leading dims."""
    lead = x.shape[:-1]
    qa = prologue(x.reshape(-1, w.k), w.smooth, w.lora_down)
    return gemm(qa, w, x.dtype, gelu_from).reshape(*lead, w.n)


@dataclass
class Fp8Act:
    """The FP8 prologue's outputs for M tokens (M_pad = M rounded up to 128)."""

    act: torch.Tensor  # uint8 [M_pad/128, K/64, 8192] E4M3 codes in wgmma core-matrix order
    ascale: torch.Tensor  # fp32 [M_pad] per-token scale (0 for padding and all-zero rows)
    m: int
    m_pad: int


def quantize_act_fp8(x: torch.Tensor, inv_smooth: torch.Tensor) -> Fp8Act:
    """Hopper FP8 prologue. x: T [M, K] (bf16/fp16; rows may be spaced out, as in a column slice), inv_smooth:
    fp32 [K] -> Fp8Act (per-token E4M3 codes of x * inv_smooth; numerics of
    ``gpu.modules.reference.quantize_fp8_row``)."""
    x, m, k, _, _ = _prologue_inputs(x, None, None, row_stride_ok=True)
    if k > W4A8F_MAX_K:
        raise ValueError(f"K={k} > {W4A8F_MAX_K} (the FP8 prologue keeps a long token row in registers)")
    _check(inv_smooth, "inv_smooth", (k,), torch.float32, x.device)
    if x.data_ptr() % 16:
        x = x.clone()  # 16-byte vector loads
    ldx = x.stride(0) if m > 1 else k
    m_pad = round_up(max(m, 1), _W4A8F_TILE)
    act = torch.empty((m_pad // _W4A8F_TILE, k // GROUP, _W4A8F_TILE * GROUP), dtype=torch.uint8, device=x.device)
    ascale = torch.empty((m_pad,), dtype=torch.float32, device=x.device)
    if m == 0:
        return Fp8Act(act, ascale, m, m_pad)
    if k <= _W4A8F_Q_STREAM_MAX_K:
        grid = min(m_pad, _W4A8F_Q_BLOCKS_PER_SM * _sm_count(x.device))
        fn, block = _function("quant_fp8", x.device, x.dtype), _W4A8F_Q_THREADS
    else:
        fn, grid, block = _function("quant_fp8_long", x.device, x.dtype), m_pad, _W4A8F_Q_LONG_THREADS
    with _on_kernel_stream(x.device) as stream:
        fn.prepared_async_call(
            (grid, 1, 1), (block, 1, 1), stream,
            x.data_ptr(), inv_smooth.data_ptr(), act.data_ptr(), ascale.data_ptr(), m, k, ldx,
        )  # fmt: skip
    return Fp8Act(act, ascale, m, m_pad)


_smem_opt_in: set[tuple[int, torch.dtype, str]] = set()


def w4a8f_gemm(
    qa: Fp8Act,
    lact: torch.Tensor | None,
    w: PackedW4A8F,
    out_dtype: torch.dtype,
    gelu_from: int | None = None,
    out: torch.Tensor | None = None,
    blocks: int | None = None,
) -> torch.Tensor:
    """Hopper FP8 wgmma GEMM. qa from ``quantize_act_fp8``, lact: T [M, r] = x @ (lora_down / smooth) (None
    when r = 0), w from ``gpu.kernels.repack.packed_w4a8f_for`` -> out T [M, N] = sa * sum_g sw * dot_g
    + lact @ lora_up^T + bias [-> GELU on columns >= gelu_from]. ``out`` (T [M, N], contiguous) is written in
    place when given. ``blocks``: persistent blocks to launch (default one per SM; fewer make each block walk
    more tiles, which the tests use to exercise the tile loop on small shapes)."""
    device, n, k, rank = qa.act.device, w.n, w.k, w.rank
    if out_dtype not in _SUFFIX:
        raise ValueError(f"output dtype must be bf16/fp16, got {out_dtype}")
    gelu_col = gelu_from_arg(gelu_from, n)
    _check_padding(n, w.n_pad, _W4A8F_TILE, qa.m, qa.m_pad, _W4A8F_TILE)
    if n % 8 or rank % 16 or rank > MAX_TOTAL_RANK:
        raise ValueError(f"N={n} must be a multiple of 8 and rank={rank} a multiple of 16 up to {MAX_TOTAL_RANK}")
    excess = W4A8F_LIMITS.window_excess(w.max_window)
    if excess:
        raise ValueError(f"{excess}: the kernel stages at most {W4A8F_MAX_WINDOW} (w4a8f_gemm_split_low_rank runs it)")
    tiles = w.n_pad // _W4A8F_TILE
    _check(qa.act, "act", (qa.m_pad // _W4A8F_TILE, k // GROUP, _W4A8F_TILE * GROUP), torch.uint8, device)
    _check(qa.ascale, "ascale", (qa.m_pad,), torch.float32, device)
    _check(w.wgt, "wgt", (tiles, k // GROUP, 4096), torch.uint8, device)
    if w.wscale.dtype not in _SUFFIX:
        raise ValueError(f"wscale must be bf16/fp16, got {w.wscale.dtype}")
    _check(w.wscale, "wscale", (tiles, k // GROUP, _W4A8F_TILE), w.wscale.dtype, device)
    _check(w.lora_up, "lora_up", (w.n_pad, rank), out_dtype, device)
    _check(w.bias, "bias", (w.n_pad,), out_dtype, device)
    if rank:
        if w.lr_window is None:
            raise ValueError(f"lr_window [{tiles}, 2] (repack.rank_windows) is required for rank {rank}")
        _check(w.lr_window, "lr_window", (tiles, 2), torch.int32, device)
        if lact is None:
            raise ValueError(f"lact [M, {rank}] is required for rank {rank}")
        _check(lact, "lact", (qa.m, rank), out_dtype, device)
    if out is None:
        out = torch.empty((qa.m, n), dtype=out_dtype, device=device)
    _check(out, "out", (qa.m, n), out_dtype, device)
    if qa.m == 0:
        return out
    # max_window is the repack's word for lr_window (checking it here would take a device sync): it picks the
    # instantiation, and the shared memory is sized by the rank, which bounds every window whatever lr_window holds
    # (one block per SM runs either way).
    wide = w.max_window > W4A8F_NARROW_WINDOW
    name = ("gemm_w4a8f_wide" if wide else "gemm_w4a8f") + ("" if w.wscale.dtype == out_dtype else "_xs")
    fn = _function(name, device, out_dtype)
    smem = _w4a8f_smem(min(rank, W4A8F_MAX_WINDOW if wide else W4A8F_NARROW_WINDOW))
    # Persistent: one block per SM walks the tiles (channel tile fastest), so its producer streams the next
    # tile's stages while the consumers finish the current one.
    n_tiles = tiles * (qa.m_pad // _W4A8F_TILE)
    with _on_kernel_stream(device) as stream:
        key = (cuda_index(device), out_dtype, name)
        if key not in _smem_opt_in:  # more than 48 KiB of dynamic shared memory needs an opt-in
            import pycuda.driver as drv

            max_smem = _w4a8f_smem(W4A8F_MAX_WINDOW)
            fn.set_attribute(drv.function_attribute.MAX_DYNAMIC_SHARED_SIZE_BYTES, max_smem)
            _smem_opt_in.add(key)
        fn.prepared_async_call(
            (min(n_tiles, blocks or _sm_count(device)), 1, 1), (_W4A8F_THREADS, 1, 1), stream,
            qa.act.data_ptr(), qa.ascale.data_ptr(), w.wgt.data_ptr(), w.wscale.data_ptr(),
            _ptr(lact if rank else None), _ptr(w.lora_up if rank else None), _ptr(w.lr_window if rank else None),
            _ptr(w.bias), out.data_ptr(),
            qa.m, n, k, rank, gelu_col, shared_size=smem,
        )  # fmt: skip
    return out


def svdq_linear_forward_w4a8f(x: torch.Tensor, w: PackedW4A8F, gelu_from: int | None = None) -> torch.Tensor:
    """x: T [..., K] -> T [..., N] on Hopper: FP8 prologue, the low-rank down projection x @ (L1 / lambda)
    on cuBLAS (16-bit, [M, r]), then the FP8 wgmma GEMM with the up projection fused (or beside it, for rank
    windows wider than the GEMM stages: ``w4a8f_gemm_split_low_rank``)."""
    lead = x.shape[:-1]
    x2 = x.reshape(-1, w.k)
    qa = quantize_act_fp8(x2, w.inv_smooth)
    lact = x2 @ w.lora_down if w.rank else None
    if W4A8F_LIMITS.window_excess(w.max_window):  # the rule backend's path note reports
        return w4a8f_gemm_split_low_rank(qa, lact, w, x.dtype, gelu_from).reshape(*lead, w.n)
    return w4a8f_gemm(qa, lact, w, x.dtype, gelu_from).reshape(*lead, w.n)


def w4a8f_gemm_split_low_rank(
    qa: Fp8Act, lact: torch.Tensor | None, w: PackedW4A8F, out_dtype: torch.dtype, gelu_from: int | None = None
) -> torch.Tensor:
    """``w4a8f_gemm`` for a branch wider than the GEMM's shared memory holds (a tile window over
    W4A8F_MAX_WINDOW columns, e.g. a rank-256 LoRA): the GEMM runs without the branch (scales and bias only),
    then cuBLAS adds lact T [M, r] @ lora_up[:N]^T in place, and the GELU follows on the sum. One more 16-bit
    rounding than the fused epilogue (the GEMM's output is rounded before the branch is added); the cost is
    what ``main.py bench kernels`` column (d) measures, far below the emulated INT4 kernels' on sm_90."""
    check_gelu_from(gelu_from, w.n)
    if lact is None or w.lora_up is None:
        raise ValueError(f"lact [M, {w.rank}] and lora_up [N_pad, {w.rank}] are required for rank {w.rank}")
    _check(lact, "lact", (qa.m, w.rank), out_dtype, qa.act.device)
    _check(w.lora_up, "lora_up", (w.n_pad, w.rank), out_dtype, qa.act.device)
    body = replace(w, rank=0, lora_up=None, lora_down=None, lr_window=None, max_window=0)
    out = w4a8f_gemm(qa, None, body, out_dtype)
    out.addmm_(lact, w.lora_up[: w.n].T)
    return gelu_columns_(out, gelu_from)


def act_fp8_to_values(act: torch.Tensor, m: int, k: int) -> torch.Tensor:
    """Inverse of the FP8 prologue's layout, for tests: uint8 [M_pad/128, K/64, 8192] -> float32 [m, K]."""
    tiles = act.shape[0]
    # dims: tile, group, h, kb, tb, r8, k16 -> token = 128 tile + 8 tb + r8, k = 64 group + 32 h + 16 kb + k16
    v = act.view(torch.float8_e4m3fn).float().view(tiles, k // GROUP, 2, 2, 16, 8, 16)
    return v.permute(0, 4, 5, 1, 2, 3, 6).reshape(tiles * _W4A8F_TILE, k)[:m]


def act8_fragments_to_codes(act: torch.Tensor, m: int, k: int) -> torch.Tensor:
    """Inverse of the INT8 code layout, for tests: int32 [M_pad/16, K/64, 2, 32, 4] -> int8 [m, K]."""
    m_pad = act.shape[0] * 16
    b = act.contiguous().view(torch.int8).view(m_pad // 16, k // GROUP, 2, 8, 4, 2, 2, 4)
    # dims: tile, group, h, gid, tig, parity (w>>1), rowhalf (w&1), j
    # row = 16*tile + gid + 8*rowhalf; col = 64*group + 32*h + 8*tig + 2*j + parity
    b = b.permute(0, 6, 3, 1, 2, 4, 7, 5).reshape(m_pad, k)
    return b[:m]


# --- fused FLUX block elementwise ops and W4A16 GEMV ---
# Kernels: kernels_cu/svdq_fused_norm.cu (layernorm_modulate, gate_residual, qk_norm_rope) and
# kernels_cu/svdq_w4a16_gemv.cu. Numerics and the dispatching entry points (reference fallback, input
# layout fixes): gpu/modules/fused_ops.py. The functions here take exactly the layouts the kernels read
# and raise ValueError otherwise.

_LN_VECS, _LN_MAX_THREADS = 2, 1024  # 8-element vectors per thread, block size cap (svdq_fused_norm.cu)
LN_MAX_C = _LN_VECS * 8 * _LN_MAX_THREADS  # 16384: a row must fit in one block's registers
_GR_THREADS = 256
_QK_THREADS = 256
QK_HEAD_DIM = 128  # the qk_norm_rope kernel holds a head as 4 values per lane
_GEMV_THREADS, _GEMV_CHANNELS = 256, 32
GEMV_MAX_ROWS = 8  # the mma N extent
GEMV_MAX_K = 16384  # the block's weight scales [32, K/64] are staged in shared memory
_INT32_MAX = 2**31 - 1


def _check_aligned(t: torch.Tensor, name: str, nbytes: int) -> None:
    """t: any dtype and shape whose data_ptr is ``nbytes``-aligned (the kernel's vector loads); ValueError naming
    ``name`` otherwise."""
    if t.data_ptr() % nbytes:
        raise ValueError(f"{name}: the kernel reads {nbytes}-byte vectors; data_ptr is not {nbytes}-byte aligned")


def _check_rows(t: torch.Tensor, name: str, shape: tuple[int, int], dtype: torch.dtype, device: torch.device) -> int:
    """A [R, C] operand whose rows may be strided (a chunk of a wider tensor), read as 16-byte vectors
    -> its row stride in elements."""
    if tuple(t.shape) != shape or t.dtype != dtype or t.device != device:
        raise ValueError(f"{name}: expected {dtype} {shape} on {device}, got {t.dtype} {tuple(t.shape)} on {t.device}")
    stride = t.stride(0) if shape[0] > 1 else shape[1]
    if t.stride(1) != 1 or stride % 8:
        raise ValueError(f"{name}: needs unit column stride and a row stride multiple of 8, got {t.stride()}")
    _check_aligned(t, name, 16)
    return stride


def layernorm_modulate(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6, out: torch.Tensor | None = None
) -> torch.Tensor:
    """x: T [B, S, C] contiguous (C % 8 == 0, C <= 16384), shift/scale: T [B, C] with unit column stride and
    one common row stride (e.g. chunks of the modulation output [B, 6C]) -> out T [B, S, C] =
    LayerNorm_noaffine(x) * (1 + scale[:, None]) + shift[:, None]."""
    if x.dim() != 3 or x.dtype not in _SUFFIX:
        raise ValueError(f"x must be a [B, S, C] bf16/fp16 tensor, got {x.dtype} {tuple(x.shape)}")
    b, s, c = x.shape
    if c % 8 or c > LN_MAX_C:
        raise ValueError(f"C={c} must be a multiple of 8 and at most {LN_MAX_C}")
    _check(x, "x", (b, s, c), x.dtype, x.device)
    _check_aligned(x, "x", 16)
    mod_stride = _check_rows(shift, "shift", (b, c), x.dtype, x.device)
    if _check_rows(scale, "scale", (b, c), x.dtype, x.device) != mod_stride:
        raise ValueError("shift and scale must have the same row stride")
    if out is None:
        out = torch.empty_like(x)
    _check(out, "out", (b, s, c), x.dtype, x.device)
    _check_aligned(out, "out", 16)
    if b * s == 0:
        return out
    threads = min(_LN_MAX_THREADS, round_up(-(-c // (8 * _LN_VECS)), 32))
    with _on_kernel_stream(x.device) as stream:
        _function("layernorm_modulate", x.device, x.dtype).prepared_async_call(
            (b * s, 1, 1), (threads, 1, 1), stream,
            x.data_ptr(), shift.data_ptr(), scale.data_ptr(), out.data_ptr(), s, c, mod_stride, float(eps),
        )  # fmt: skip
    return out


def gate_residual(
    residual: torch.Tensor, gate: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None = None
) -> torch.Tensor:
    """residual, y: T [B, S, C] contiguous (C % 8 == 0), gate: T [B, C] (unit column stride, row stride a
    multiple of 8) -> out T [B, S, C] = residual + gate[:, None] * y. ``out`` may be ``residual``."""
    if residual.dim() != 3 or residual.dtype not in _SUFFIX:
        raise ValueError(f"residual must be a [B, S, C] bf16/fp16 tensor, got {residual.dtype} {tuple(residual.shape)}")
    b, s, c = residual.shape
    if c % 8:
        raise ValueError(f"C={c} must be a multiple of 8")
    dtype, device = residual.dtype, residual.device
    _check(residual, "residual", (b, s, c), dtype, device)
    _check(y, "y", (b, s, c), dtype, device)
    gate_stride = _check_rows(gate, "gate", (b, c), dtype, device)
    if out is None:
        out = torch.empty_like(residual)
    _check(out, "out", (b, s, c), dtype, device)
    for t, name in ((residual, "residual"), (y, "y"), (out, "out")):
        _check_aligned(t, name, 16)
    vec_per_batch = s * c // 8
    if vec_per_batch > _INT32_MAX or b > 65535:
        raise ValueError(f"shape {(b, s, c)} too large for the kernel's grid")
    if vec_per_batch * b == 0:
        return out
    grid = (-(-vec_per_batch // _GR_THREADS), b, 1)
    with _on_kernel_stream(device) as stream:
        _function("gate_residual", device, dtype).prepared_async_call(
            grid, (_GR_THREADS, 1, 1), stream,
            residual.data_ptr(), gate.data_ptr(), y.data_ptr(), out.data_ptr(), vec_per_batch, c, gate_stride,
        )  # fmt: skip
    return out


def _qkv_strides(
    qkv: torch.Tensor, name: str, heads: int, dtype: torch.dtype, device: torch.device
) -> tuple[int, int]:
    """A [B, S, F >= 3*H*128] QKV operand, rows possibly strided -> (batch stride, row stride) in elements."""
    if qkv.dim() != 3 or qkv.dtype != dtype or qkv.device != device or qkv.shape[-1] < 3 * heads * QK_HEAD_DIM:
        raise ValueError(
            f"{name}: expected {dtype} [B, S, >= {3 * heads * QK_HEAD_DIM}] on {device}, "
            f"got {qkv.dtype} {tuple(qkv.shape)} on {qkv.device}"
        )
    b, s, _ = qkv.shape
    batch_stride = qkv.stride(0) if b > 1 else 0
    row_stride = qkv.stride(1) if s > 1 else 0
    if qkv.stride(2) != 1 or batch_stride % 4 or row_stride % 4:
        raise ValueError(f"{name}: needs unit feature stride and batch/row strides multiple of 4, got {qkv.stride()}")
    _check_aligned(qkv, name, 8)
    return batch_stride, row_stride


def qk_norm_rope(
    qkv_a: torch.Tensor,
    qkv_b: torch.Tensor | None,
    q_weight_a: torch.Tensor,
    k_weight_a: torch.Tensor,
    q_weight_b: torch.Tensor | None,
    k_weight_b: torch.Tensor | None,
    rope_cos: torch.Tensor,
    rope_sin: torch.Tensor,
    heads: int,
    eps: float = 1e-6,
    copy_v: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """qkv_a: T [B, S_a, F_a], qkv_b: T [B, S_b, F_b] or None (F >= 3*H*128, unit feature stride, batch/row
    strides multiple of 4); norm weights T [128] (``*_b`` used for the rows of qkv_b); rope_cos/sin: fp32
    [S_a + S_b, 128] contiguous -> (q, k, v), each T [B, H, S_a + S_b, 128]: views (transposed) of token-major
    [B, S, H, 128] storage; rows of qkv_a first. q and k are RMS-normalized per head and rotated; v is copied,
    or with ``copy_v=False`` (one stream only) returned as a view of qkv_a's v features."""
    dtype, device = qkv_a.dtype, qkv_a.device
    if dtype not in _SUFFIX:
        raise ValueError(f"qkv must be bf16/fp16, got {dtype}")
    bs_a, rs_a = _qkv_strides(qkv_a, "qkv_a", heads, dtype, device)
    b, s_a, _ = qkv_a.shape
    if qkv_b is None:
        qkv_b, q_weight_b, k_weight_b, s_b, bs_b, rs_b = qkv_a, q_weight_a, k_weight_a, 0, 0, 0
    elif not copy_v:
        raise ValueError("copy_v=False needs one stream (qkv_b None): two streams' v must be concatenated")
    else:
        bs_b, rs_b = _qkv_strides(qkv_b, "qkv_b", heads, dtype, device)
        if qkv_b.shape[0] != b:
            raise ValueError(f"qkv_b batch {qkv_b.shape[0]} differs from qkv_a's {b}")
        s_b = qkv_b.shape[1]
    for t, name in ((q_weight_a, "q_weight_a"), (k_weight_a, "k_weight_a"), (q_weight_b, "q_weight_b"),
                    (k_weight_b, "k_weight_b")):  # fmt: skip
        _check(t, name, (QK_HEAD_DIM,), dtype, device)
        _check_aligned(t, name, 8)
    s = s_a + s_b
    for t, name in ((rope_cos, "rope_cos"), (rope_sin, "rope_sin")):
        _check(t, name, (s, QK_HEAD_DIM), torch.float32, device)
        _check_aligned(t, name, 16)
    if b * s > _INT32_MAX or max(rs_a, rs_b) > _INT32_MAX:  # grid.x and the int row strides
        raise ValueError("qkv too large for the kernel's indexing")
    q, k = (torch.empty((b, s, heads, QK_HEAD_DIM), dtype=dtype, device=device) for _ in range(2))
    if copy_v:
        v = torch.empty((b, s, heads, QK_HEAD_DIM), dtype=dtype, device=device)
    else:
        v = qkv_a[..., 2 * heads * QK_HEAD_DIM : 3 * heads * QK_HEAD_DIM].unflatten(-1, (heads, QK_HEAD_DIM))
    heads_first = tuple(t.transpose(1, 2) for t in (q, k, v))
    if b * s == 0 or heads == 0:
        return heads_first
    with _on_kernel_stream(device) as stream:
        _function("qk_norm_rope", device, dtype).prepared_async_call(
            (b * s, 1, 1), (_QK_THREADS, 1, 1), stream,
            qkv_a.data_ptr(), qkv_b.data_ptr(), q_weight_a.data_ptr(), k_weight_a.data_ptr(),
            q_weight_b.data_ptr(), k_weight_b.data_ptr(), rope_cos.data_ptr(), rope_sin.data_ptr(),
            q.data_ptr(), k.data_ptr(), v.data_ptr() if copy_v else 0, heads, s_a, s_b, bs_a, rs_a, bs_b, rs_b,
            float(eps),
        )  # fmt: skip
    return heads_first


def _gemv_kernel(name: str, device: torch.device, dtype: torch.dtype) -> str:
    """The GEMV entry ``name`` or its Turing form on ``device``. ValueError, in the dispatcher's words, for a dtype
    that form has no MMA for (``mma_forms.gemv_dtype_refusal``: the dispatcher keeps such layers on the
    reference, so only a direct launch gets here)."""
    if why := mma_forms.gemv_dtype_refusal(device, dtype):
        raise ValueError(why)
    return f"{name}_k8" if mma_forms.uses_turing_mma(device) else name


def _check_gemv_weights(
    qweight: torch.Tensor, wscales: torch.Tensor, bias: torch.Tensor | None, k: int, dtype: torch.dtype,
    device: torch.device, tag: str = "",
) -> None:
    """The GEMV's weight operands of one layer: qweight uint8 [N, K/2] 8-byte aligned, wscales [N, K/64] and
    bias [N] (or None) of ``dtype``, all on ``device``; ``tag`` names the layer in errors (e.g. "[3]")."""
    n = qweight.shape[0]
    _check(qweight, f"qweight{tag}", (n, k // 2), torch.uint8, device)
    _check_aligned(qweight, f"qweight{tag}", 8)
    _check(wscales, f"wscales{tag}", (n, k // GROUP), dtype, device)
    _check(bias, f"bias{tag}", (n,), dtype, device)


def w4a16_gemv(
    x: torch.Tensor,
    qweight: torch.Tensor,
    wscales: torch.Tensor,
    bias: torch.Tensor | None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """x: T [M, K] contiguous (M <= 8, K % 64 == 0, K <= 16384), qweight: uint8 [N, K/2] (canonical INT4
    packing, read as is), wscales: T [N, K/64], bias: T [N] or None -> out T [M, N] =
    x @ dequantize(qweight, wscales)^T + bias with fp32 accumulation."""
    if x.dim() != 2 or x.dtype not in _SUFFIX:
        raise ValueError(f"x must be a 2-D bf16/fp16 tensor, got {x.dtype} {tuple(x.shape)}")
    m, k = x.shape
    n = qweight.shape[0]
    if m > GEMV_MAX_ROWS or k % GROUP or k > GEMV_MAX_K:
        raise ValueError(f"x [{m}, {k}]: needs M <= {GEMV_MAX_ROWS}, K a multiple of {GROUP} and K <= {GEMV_MAX_K}")
    _check(x, "x", (m, k), x.dtype, x.device)
    _check_aligned(x, "x", 16)
    _check_gemv_weights(qweight, wscales, bias, k, x.dtype, x.device)
    if out is None:
        out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    _check(out, "out", (m, n), x.dtype, x.device)
    if m * n == 0:
        return out
    with _on_kernel_stream(x.device) as stream:
        _function(_gemv_kernel("w4a16_gemv", x.device, x.dtype), x.device, x.dtype).prepared_async_call(
            (-(-n // _GEMV_CHANNELS), 1, 1), (_GEMV_THREADS, 1, 1), stream,
            x.data_ptr(), qweight.data_ptr(), wscales.data_ptr(), _ptr(bias), out.data_ptr(), m, n, k,
        )  # fmt: skip
    return out


@dataclass
class GemvGroup:
    """W4A16 layers of one K and dtype that one ``svdq_w4a16_gemv_grouped_*`` launch computes: the kernel's
    per-layer table, built once (an upload, so never during CUDA-graph capture) and valid while the layers
    keep these weight tensors."""

    table: torch.Tensor  # int64 [L, 6]: qweight, wscales, bias (or 0) addresses, N, first column, first block
    ns: list[int]
    blocks: int
    k: int
    dtype: torch.dtype
    weights: tuple  # the tensors the table points at, kept alive with it


def gemv_group(layers: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]) -> GemvGroup:
    """layers: (qweight uint8 [N_i, K/2], wscales T [N_i, K/64], bias T [N_i] or None), one K and dtype on one
    device (the layouts of ``w4a16_gemv``) -> their GemvGroup."""
    if not layers:
        raise ValueError("no layers to group")
    qweight0, wscales0, _ = layers[0]
    k, dtype, device = qweight0.shape[1] * 2, wscales0.dtype, qweight0.device
    if dtype not in _SUFFIX or k % GROUP or k > GEMV_MAX_K:
        raise ValueError(f"layers need bf16/fp16 scales and K a multiple of {GROUP} up to {GEMV_MAX_K}")
    rows, col, block = [], 0, 0
    for i, (qweight, wscales, bias) in enumerate(layers):
        n = qweight.shape[0]
        _check_gemv_weights(qweight, wscales, bias, k, dtype, device, f"[{i}]")
        rows.append([qweight.data_ptr(), wscales.data_ptr(), _ptr(bias), n, col, block])
        col += n
        block += -(-n // _GEMV_CHANNELS)
    if block > _INT32_MAX or col * GEMV_MAX_ROWS > _INT32_MAX:
        raise ValueError("too many channels for one grouped launch")
    table = torch.tensor(rows, dtype=torch.int64).to(device)
    weights = tuple(t for layer in layers for t in layer if t is not None)
    return GemvGroup(table, [r[3] for r in rows], block, k, dtype, weights)


def w4a16_gemv_grouped(x: torch.Tensor, group: GemvGroup) -> list[torch.Tensor]:
    """x: T [M, K] contiguous (M <= 8) -> one T [M, N_i] per layer of ``group`` (views of one buffer), each
    ``w4a16_gemv(x, *layer_i)`` bit for bit (the same per-block work)."""
    if x.dim() != 2 or x.dtype != group.dtype or x.shape[1] != group.k or x.shape[0] > GEMV_MAX_ROWS:
        raise ValueError(f"x must be {group.dtype} [<= {GEMV_MAX_ROWS}, {group.k}], got {x.dtype} {tuple(x.shape)}")
    m = x.shape[0]
    _check(x, "x", (m, group.k), x.dtype, group.table.device)
    _check_aligned(x, "x", 16)
    flat = torch.empty(m * sum(group.ns), dtype=x.dtype, device=x.device)
    if m:
        with _on_kernel_stream(x.device) as stream:
            _function(_gemv_kernel("w4a16_gemv_grouped", x.device, x.dtype), x.device, x.dtype).prepared_async_call(
                (group.blocks, 1, 1), (_GEMV_THREADS, 1, 1), stream,
                x.data_ptr(), flat.data_ptr(), group.table.data_ptr(), len(group.ns), m, group.k,
            )  # fmt: skip
    outs, start = [], 0
    for n in group.ns:
        outs.append(flat[start : start + m * n].view(m, n))
        start += m * n
    return outs
