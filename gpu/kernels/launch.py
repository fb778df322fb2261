"""All host-side launch code of the fused kernels: shape checks, buffers, grids, streams.

Streams: launches must land on PyTorch's *current* stream (ordering with torch ops, CUDA-graph
capture). pycuda launches only on its own ``Stream`` objects and cannot wrap torch's handle, so:
- if torch's current stream *is* the package's pycuda stream (the app runs generation inside
  ``launch_stream(device)``), kernels launch on it directly;
- otherwise the launch forks onto the pycuda stream and joins back with events (``wait_stream`` both
  ways), which CUDA-graph capture records as an ordinary fork/join, so capture works too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from gpu.kernels import context
from gpu.kernels.loader import load_module
from gpu.kernels.repack import GROUP, PAD_M, PackedWeights, round_up

MAX_RANK = 128
EPILOGUES = {"none": 0, "gelu": 1}
_SUFFIX = {torch.bfloat16: "bf16", torch.float16: "fp16"}
_QUANT_THREADS, _QUANT_ROWS = 256, 32
_GEMM_THREADS, _GEMM_BM, _GEMM_BN = 128, 64, 64


def device_arch(device: torch.device) -> str:
    major, minor = torch.cuda.get_device_capability(device)
    return f"{major}{minor}"


@dataclass
class _Fns:
    quant: object
    gemm: object


_fns: dict[tuple[int, torch.dtype], _Fns] = {}


def _functions(device: torch.device, dtype: torch.dtype) -> _Fns:
    idx = device.index if device.index is not None else torch.cuda.current_device()
    key = (idx, dtype)
    if key not in _fns:
        arch = device_arch(torch.device("cuda", idx))
        sfx = _SUFFIX[dtype]
        quant = load_module("svdq_quant_lora", idx, arch).module.get_function(f"svdq_quant_lora_int4_{sfx}")
        quant.prepare("PPPPPPiiii")
        gemm = load_module("svdq_w4a4_gemm", idx, arch).module.get_function(f"svdq_w4a4_gemm_{sfx}")
        gemm.prepare("PPPPPPPPiiiiiii")
        _fns[key] = _Fns(quant, gemm)
    return _fns[key]


@contextlib.contextmanager
def launch_stream(device: torch.device) -> Iterator[None]:
    """Run torch on the package's pycuda stream for the block: kernels then launch with no fork/join."""
    idx = device.index if device.index is not None else torch.cuda.current_device()
    with torch.cuda.stream(context.torch_stream_for_kernels(idx)):
        yield


@contextlib.contextmanager
def _on_kernel_stream(device: torch.device) -> Iterator[object]:
    """Yields the pycuda stream to launch on, ordered after and before torch's current stream."""
    idx = device.index if device.index is not None else torch.cuda.current_device()
    pstream = context.pycuda_stream(idx)
    current = torch.cuda.current_stream(device)
    if current.cuda_stream == pstream.handle:
        with context.active(idx):
            yield pstream
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
    if t is None:
        return
    if tuple(t.shape) != shape or t.dtype != dtype or t.device != device or not t.is_contiguous():
        raise ValueError(
            f"{name}: expected contiguous {dtype} {shape} on {device}, got "
            f"{'' if t.is_contiguous() else 'non-contiguous '}{t.dtype} {tuple(t.shape)} on {t.device}"
        )


@dataclass
class QuantizedAct:
    """Kernel A's outputs for M tokens (M_pad = M rounded up to 64)."""

    act: torch.Tensor  # int32 [M_pad/16, K/64, 32, 4] fragment-ordered INT4 codes
    ascale: torch.Tensor  # T [K/64, M_pad] 16-bit group scales
    lact: torch.Tensor  # fp32 [M_pad, r] smoothed x @ lora_down (empty [M_pad, 0] when r = 0)
    m: int
    m_pad: int


def quantize_act(
    x: torch.Tensor, smooth: torch.Tensor | None, lora_down: torch.Tensor | None
) -> QuantizedAct:
    """Kernel A. x: T [M, K] (T bf16/fp16, contiguous), smooth: T [K] or None, lora_down: T [K, r] or
    None (r <= 128) -> QuantizedAct."""
    if x.dim() != 2 or x.dtype not in _SUFFIX:
        raise ValueError(f"x must be a 2-D bf16/fp16 tensor, got {x.dtype} {tuple(x.shape)}")
    x = x.contiguous()
    m, k = x.shape
    if k % GROUP:
        raise ValueError(f"K={k} is not a multiple of the group size {GROUP}")
    rank = 0 if lora_down is None else int(lora_down.shape[1])
    if rank > MAX_RANK:
        raise ValueError(f"rank {rank} > {MAX_RANK}")
    _check(smooth, "smooth", (k,), x.dtype, x.device)
    _check(lora_down, "lora_down", (k, rank), x.dtype, x.device)
    m_pad = round_up(max(m, 1), PAD_M)
    act = torch.empty((m_pad // 16, k // GROUP, 32, 4), dtype=torch.int32, device=x.device)
    ascale = torch.empty((k // GROUP, m_pad), dtype=x.dtype, device=x.device)
    lact = torch.empty((m_pad, rank), dtype=torch.float32, device=x.device)
    if m == 0:
        return QuantizedAct(act, ascale, lact, m, m_pad)
    fns = _functions(x.device, x.dtype)
    with _on_kernel_stream(x.device) as stream:
        fns.quant.prepared_async_call(
            (m_pad // _QUANT_ROWS, 1, 1), (_QUANT_THREADS, 1, 1), stream,
            x.data_ptr(), _ptr(smooth), _ptr(lora_down if rank else None),
            act.data_ptr(), ascale.data_ptr(), lact.data_ptr(), m, k, rank, m_pad,
        )  # fmt: skip
    return QuantizedAct(act, ascale, lact, m, m_pad)


def w4a4_gemm(
    qa: QuantizedAct,
    w: PackedWeights,
    out_dtype: torch.dtype,
    epilogue: str = "none",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Kernel B. qa from ``quantize_act`` (same K, same rank), w from ``gpu.kernels.repack`` ->
    out T [M, N] = grouped INT4 GEMM + lact @ lora_up^T + bias [-> GELU], T = out_dtype.
    ``out`` (T [M, N], contiguous) is written in place when given."""
    device = qa.act.device
    k, n, rank = w.k, w.n, w.rank
    if out_dtype not in _SUFFIX:
        raise ValueError(f"output dtype must be bf16/fp16, got {out_dtype}")
    if epilogue not in EPILOGUES:
        raise ValueError(f"unknown epilogue {epilogue!r} (known: {', '.join(EPILOGUES)})")
    if n % 2:
        raise ValueError(f"N={n} must be even (the kernel stores column pairs)")
    _check(qa.act, "act", (qa.m_pad // 16, k // GROUP, 32, 4), torch.int32, device)
    _check(qa.ascale, "ascale", (k // GROUP, qa.m_pad), out_dtype, device)
    _check(qa.lact, "lact", (qa.m_pad, rank), torch.float32, device)
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
    grid = (w.n_pad // _GEMM_BN, qa.m_pad // _GEMM_BM, 1)
    with _on_kernel_stream(device) as stream:
        fns.gemm.prepared_async_call(
            grid, (_GEMM_THREADS, 1, 1), stream,
            qa.act.data_ptr(), qa.ascale.data_ptr(), w.wgt.data_ptr(), w.wscale.data_ptr(),
            qa.lact.data_ptr(), _ptr(w.lora_up if rank else None), _ptr(w.bias), out.data_ptr(),
            qa.m, n, k, rank, qa.m_pad, w.n_pad, EPILOGUES[epilogue],
        )  # fmt: skip
    return out


def svdq_linear_forward(x: torch.Tensor, w: PackedWeights, epilogue: str = "none") -> torch.Tensor:
    """x: T [..., K] -> T [..., N] through Kernel A then Kernel B."""
    lead = x.shape[:-1]
    x2 = x.reshape(-1, w.k)
    qa = quantize_act(x2, w.smooth, w.lora_down)
    return w4a4_gemm(qa, w, x.dtype, epilogue).reshape(*lead, w.n)
