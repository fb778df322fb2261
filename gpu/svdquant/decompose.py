"""Quantize one linear layer with SVDQuant or one of the paper's baselines.

With weight W [N, K] (torch's y = x W^T), smoothing vector lambda [K] and rank r:

    svdquant     x/lambda, W*lambda = L_up L_down^T + R, quantize R      (alpha searched, refined)
    smoothquant  x/lambda, quantize W*lambda                             (alpha searched)
    svd          W = L_up L_down^T + R, quantize R                       (no smoothing)
    lorc         quantize W, then L_up L_down^T = SVD_r(W - Q(W))        (low-rank error compensation)
    naive        quantize W and x round-to-nearest
    nf4 / rtn    weight-only (16-bit activations)

The objective for every search is the relative output error on the calibration tokens,
||Y_q - X W^T||^2 / ||X W^T||^2, computed with the very reference forward that inference runs.

``decompose_group``: linears that read the same input (FLUX's Q/K/V) get one smoothing vector, from the
input's channel maxima and the *group's* weight maxima, with alpha searched on the members' mean error; each
member then gets its own low-rank branch and residual. Their activation codes are then identical, which is
what lets the runtime merge them into one GEMM (``gpu.models.flux_fused``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch

from gpu.modules.layer_spec import LayerSpec
from gpu.modules.reference import reference_linear
from gpu.quant import QuantizedTensor, dequantize, get_format, pack_codes, quantize
from gpu.quant.fp4 import tensor_global_scale
from gpu.svdquant.calibration import LayerCalibration
from gpu.svdquant.lowrank import low_rank_factors
from gpu.svdquant.smoothing import DEFAULT_ALPHA_GRID, smoothing_factors

OBJECTIVE_TOKENS = 512


@dataclass(frozen=True)
class DecomposeConfig:
    alpha_grid: tuple[float, ...] = DEFAULT_ALPHA_GRID
    refine_iters: int = 2  # L_k = SVD_r(W^ - Q(W^ - L_{k-1})), best kept
    seed: int = 0
    dtype: torch.dtype = torch.bfloat16  # storage dtype of scales, smoothing, low-rank, bias


@dataclass
class DecomposedLayer:
    """The tensors of one ``SVDQLinear`` (buffer name -> tensor, storage dtypes) and how they were chosen."""

    spec: LayerSpec
    tensors: dict[str, torch.Tensor]
    alpha: float | None = None
    error: float | None = None  # relative output error on calibration tokens (None: not measured)
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class _Candidate:
    qw: QuantizedTensor
    smooth: torch.Tensor | None  # storage dtype [K]
    down: torch.Tensor | None  # storage dtype [K, r]
    up: torch.Tensor | None  # storage dtype [N, r]
    act_global: torch.Tensor | None
    error: float = float("inf")


def _quantize_weight(w: torch.Tensor, spec: LayerSpec, dtype: torch.dtype) -> QuantizedTensor:
    """w: fp32 [N, K] -> its QuantizedTensor in ``spec.weight_format`` along K (codes [N, K], 16-bit scales of
    ``dtype`` where the format has them)."""
    return quantize(w, spec.weight_format, dtype)


def _act_global_scale(
    spec: LayerSpec, calib: LayerCalibration | None, smooth: torch.Tensor | None
) -> torch.Tensor | None:
    """Static NVFP4 activation scale from calibration: max|x / lambda| / (6 * 448), fp32 scalar [] (None: the
    activation format has no global scale)."""
    if spec.act_format is None or not get_format(spec.act_format).global_scale:
        return None
    if calib is None:
        return torch.ones((), dtype=torch.float32)
    amax = calib.x_absmax.float()
    if smooth is not None:  # calibration statistics stay on the CPU while the streaming quantizer runs on the GPU
        amax = amax.to(smooth.device) / smooth.float()
    return tensor_global_scale(amax)  # amax >= 0 (smooth > 0): its abs is itself


def _objective(c: _Candidate, spec: LayerSpec, x: torch.Tensor, y_ref: torch.Tensor, dtype: torch.dtype) -> float:
    """Relative output error of ``c`` on tokens x [T, K] against y_ref = x W^T [T, N], both fp32."""
    y = reference_linear(x, c.qw, spec.act_format, c.smooth, c.down, c.up, None, dtype, c.act_global)
    return float(((y - y_ref) ** 2).sum() / (y_ref**2).sum().clamp(min=1e-30))


def _build(
    w: torch.Tensor,
    spec: LayerSpec,
    lam: torch.Tensor | None,
    calib: LayerCalibration | None,
    cfg: DecomposeConfig,
    refine: int,
    x: torch.Tensor | None,
    y_ref: torch.Tensor | None,
    first: _Candidate | None = None,
) -> _Candidate:
    """The best of ``refine`` + 1 candidates for weight ``w`` smoothed by ``lam``, each one's low-rank branch
    refit to what quantizing the previous one's residual left out. ``first``: the first of them as an earlier
    call with the same arguments and ``refine=0`` made it (the alpha search's), so it is not made again."""
    dtype = cfg.dtype
    smooth = lam.to(dtype) if lam is not None else None
    w_hat = w * smooth.float() if smooth is not None else w
    if first is None:
        first = _first_candidate(w_hat, spec, smooth, _act_global_scale(spec, calib, smooth), cfg, x, y_ref)
    if spec.rank == 0 or spec.method == "lorc" or x is None:
        return first  # nothing to refine, or no objective to choose a refined candidate by (the first is kept)
    best = cand = first
    for _ in range(refine):
        # Refit the branch to what quantization actually left out of the weight.
        up, down = low_rank_factors(w_hat - dequantize(cand.qw), spec.rank, cfg.seed)
        cand = _with_branch(w_hat, up, down, spec, smooth, first.act_global, cfg, x, y_ref)
        if cand.error < best.error:
            best = cand
    return best


def _first_candidate(w_hat: torch.Tensor, spec: LayerSpec, smooth: torch.Tensor | None,
                     act_global: torch.Tensor | None, cfg: DecomposeConfig, x: torch.Tensor | None,
                     y_ref: torch.Tensor | None) -> _Candidate:  # fmt: skip
    """The unrefined candidate for smoothed weight w_hat (fp32 [N, K]): its branch from the SVD of w_hat itself
    (lorc: of the quantization error), scored on x [T, K] / y_ref [T, N] when given."""
    dtype = cfg.dtype
    if spec.rank == 0:
        return _score(
            _Candidate(_quantize_weight(w_hat, spec, dtype), smooth, None, None, act_global), spec, x, y_ref, dtype
        )
    if spec.method == "lorc":
        qw = _quantize_weight(w_hat, spec, dtype)
        up, down = low_rank_factors(w_hat - dequantize(qw), spec.rank, cfg.seed)
        return _score(_Candidate(qw, smooth, down.to(dtype), up.to(dtype), act_global), spec, x, y_ref, dtype)
    up, down = low_rank_factors(w_hat, spec.rank, cfg.seed)
    return _with_branch(w_hat, up, down, spec, smooth, act_global, cfg, x, y_ref)


def _with_branch(w_hat: torch.Tensor, up: torch.Tensor, down: torch.Tensor, spec: LayerSpec,
                 smooth: torch.Tensor | None, act_global: torch.Tensor | None, cfg: DecomposeConfig,
                 x: torch.Tensor | None, y_ref: torch.Tensor | None) -> _Candidate:  # fmt: skip
    """The candidate with low-rank branch up [N, r] / down [K, r] in storage precision and the rest of ``w_hat``
    (fp32 [N, K]) quantized."""
    dtype = cfg.dtype
    up16, down16 = up.to(dtype), down.to(dtype)
    residual = w_hat - up16.float() @ down16.float().T
    qw = _quantize_weight(residual, spec, dtype)
    return _score(_Candidate(qw, smooth, down16, up16, act_global), spec, x, y_ref, dtype)


def _score(
    c: _Candidate, spec: LayerSpec, x: torch.Tensor | None, y_ref: torch.Tensor | None, dtype: torch.dtype
) -> _Candidate:
    """``c`` with its ``error`` set to the objective on tokens x fp32 [T, K] against y_ref fp32 [T, N]; left as it
    is (unscored: inf) when x is None."""
    if x is not None:
        c.error = _objective(c, spec, x, y_ref, dtype)
    return c


# Below this many weight elements, CPU linear algebra is faster on one thread: LAPACK's thread start-up
# and spin-waiting cost more than the work, and 10-100x more when other processes hold the cores.
SINGLE_THREAD_MAX_ELEMENTS = 1 << 20


@contextlib.contextmanager
def _cpu_threads_for(numel: int, device: torch.device) -> Iterator[None]:
    if device.type != "cpu" or numel > SINGLE_THREAD_MAX_ELEMENTS or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def decompose_linear(
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    spec: LayerSpec,
    calib: LayerCalibration | None,
    cfg: DecomposeConfig = DecomposeConfig(),
) -> DecomposedLayer:
    """weight: [N, K], bias: [N] or None (any float dtype/device) -> DecomposedLayer.

    Layers with quantized activations need ``calib`` (their objective and smoothing use it)."""
    return decompose_group([weight], [bias], spec, calib, cfg)[0]


def decompose_group(
    weights: Sequence[torch.Tensor],
    biases: Sequence[torch.Tensor | None],
    spec: LayerSpec,
    calib: LayerCalibration | None,
    cfg: DecomposeConfig = DecomposeConfig(),
) -> list[DecomposedLayer]:
    """Linears reading one input: weights [N_i, K], biases [N_i] or None -> one DecomposedLayer each, all with
    the same ``smooth`` [K] when ``spec.smooth``; without smoothing each is what ``decompose_linear`` makes of it.
    ``calib`` is the shared input's calibration."""
    with _cpu_threads_for(max(w.numel() for w in weights), weights[0].device):
        return _decompose_members(weights, biases, spec, calib, cfg)


def _decompose_members(weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor | None], spec: LayerSpec,
                       calib: LayerCalibration | None, cfg: DecomposeConfig) -> list[DecomposedLayer]:  # fmt: skip
    ws = [w.detach().float() for w in weights]
    x = None
    y_refs: list[torch.Tensor | None] = [None] * len(ws)
    if calib is not None:
        x = calib.x_sample[:OBJECTIVE_TOKENS].to(ws[0].device).float()
        y_refs = [x @ w.T for w in ws]
    elif spec.smooth or spec.act_format is not None and get_format(spec.act_format).global_scale:
        raise ValueError(f"method {spec.method} needs calibration activations")
    alpha = None
    lam = None
    firsts: list[_Candidate | None] = [None] * len(ws)  # the alpha search's candidates for the alpha it chose
    if spec.smooth:
        assert calib is not None
        w_absmax = torch.stack([w.abs().amax(dim=0) for w in ws]).amax(dim=0)
        x_absmax = calib.x_absmax.to(ws[0].device)
        best = float("inf")
        for a in cfg.alpha_grid:
            lam_a = smoothing_factors(x_absmax, w_absmax, a)
            cands = [_build(w, spec, lam_a, calib, cfg, 0, x, y) for w, y in zip(ws, y_refs, strict=True)]
            mean_error = sum(c.error for c in cands) / len(cands)
            if mean_error < best:
                best, alpha, lam, firsts = mean_error, a, lam_a, cands
        if alpha is None:  # every error NaN: non-finite weights or activations
            raise ValueError(f"no smoothing strength of {cfg.alpha_grid} gave a finite error")
    out = []
    for w, b, y_ref, first in zip(ws, biases, y_refs, firsts, strict=True):
        chosen = _build(w, spec, lam, calib, cfg, cfg.refine_iters, x, y_ref, first)
        out.append(DecomposedLayer(spec=spec, tensors=_tensors_of(chosen, b, cfg.dtype), alpha=alpha,
                                   error=None if x is None else chosen.error))  # fmt: skip
    return out


def _tensors_of(c: _Candidate, bias: torch.Tensor | None, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    t: dict[str, torch.Tensor] = {"qweight": pack_codes(c.qw).cpu(), "wscales": c.qw.scales.cpu()}
    if c.qw.global_scale is not None:
        t["wscale_global"] = c.qw.global_scale.float().reshape(()).cpu()
    if c.act_global is not None:
        t["ascale_global"] = c.act_global.float().reshape(()).cpu()
    if c.smooth is not None:
        t["smooth"] = c.smooth.cpu()
    if c.down is not None:
        t["lora_down"] = c.down.contiguous().cpu()
        t["lora_up"] = c.up.contiguous().cpu()
    if bias is not None:
        t["bias"] = bias.detach().to(dtype).cpu()
    return t
