"""Registers the fused-kernel backends with ``gpu.runtime.dispatch`` on import.

Two backends serve the same INT4 W4A4 checkpoint layers, asked in this order:
- "fused W4A8 FP8 kernels for Hopper": sm_90 only. Hopper has no 4-bit tensor cores (its s4 MMA is emulated,
  ~25x slower than s8), so activations are quantized per token to FP8 E4M3 and the int4 weights widened to
  E4M3 subnormals in registers (exact), on wgmma; numerics ``SVDQLinear.forward_reference(x,
  act_format="fp8_e4m3_row")``. (The older INT8-g64 ``mma.sync`` W4A8 kernels stay in ``gpu.kernels.launch``
  as the measured alternative of ``main.py bench kernels``; dispatch does not use them.)
- "fused INT4 W4A4 kernels": sm_75+ (``mma.sync.m16n8k64`` s4 on sm_80+; on Turing, which has only m8n8k32,
  the same kernel issues four m8n8k32 per m16n8k64, bit-identical: ``gpu.kernels.mma_forms``).

Importing this module must work without pycuda, without CUDA and without nvcc: every check that needs
them runs inside ``refuses`` and turns a failure into a reason the GUI can show. The device checks and the
load-failure memo are ``gpu.kernels.availability``'s, shared with the FLUX block ops.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from gpu.kernels import mma_forms
from gpu.kernels.availability import binary_refusal, gpu_refusal, remember_load_failure
from gpu.kernels.rank_limits import ANY_WINDOW, INT4_LIMITS, W4A8F_LIMITS, RankLimits, low_rank_refusal
from gpu.kernels.repack import PackedW4A8F
from gpu.modules.reference import gelu_columns_
from gpu.runtime.dispatch import Backend, register_backend
from gpu.system_info import cuda_index

NAME = "fused INT4 W4A4 kernels (pycuda)"
W4A8_NAME = "fused W4A8 FP8 kernels for Hopper (pycuda)"
MIN_ARCH = mma_forms.TURING


def layer_refusal(layer: torch.nn.Module) -> str | None:
    """Reasons the kernels cannot serve this layer on any GPU (format, dtype, shape)."""
    spec = getattr(layer, "spec", None)
    if spec is None or not hasattr(layer, "qweight"):
        return "not an SVDQLinear layer"
    if spec.weight_format != "int4" or spec.act_format != "int4":
        return f"layer is {spec.kind} {spec.weight_format}/{spec.act_format}; the kernels serve INT4 W4A4 only"
    if layer.compute_dtype not in (torch.bfloat16, torch.float16):
        return f"layer dtype {layer.compute_dtype} (kernels take bf16/fp16)"
    if layer.in_features % 64:
        return f"in_features {layer.in_features} is not a multiple of 64"
    if layer.out_features % 2:
        return f"out_features {layer.out_features} is odd"
    return None


def low_rank_members(layer: torch.nn.Module) -> list[tuple[int, int]]:
    """(out_features, rank) of the layers whose low-rank branches ``layer`` carries: its members' for a merged
    layer (``merged_from``), else its own."""
    members = getattr(layer, "merged_from", None)
    if members:
        return [(n, r) for n, r, _ in members]
    return [(layer.out_features, layer.spec.rank)]


def _low_rank_refusal(layer: torch.nn.Module, limits: RankLimits) -> str | None:
    """``rank_limits.low_rank_refusal`` for ``layer`` (``refuses`` runs on every forward: a merged layer's window is
    computed from its members' sizes once per distinct set of sizes)."""
    return _cached_low_rank_refusal(tuple(low_rank_members(layer)), limits)


@functools.lru_cache(maxsize=1024)
def _cached_low_rank_refusal(members: tuple[tuple[int, int], ...], limits: RankLimits) -> str | None:
    return low_rank_refusal(members, limits)


def _int4_shape_refusal(layer: torch.nn.Module) -> str | None:
    return _low_rank_refusal(layer, INT4_LIMITS)


def _int4_arch_refusal(major: int, minor: int) -> str | None:
    if (major, minor) < MIN_ARCH:
        return f"GPU sm_{major}{minor} lacks 4-bit tensor-core MMA (needs sm_75 or newer)"
    return None


def _w4a8_arch_refusal(major: int, minor: int) -> str | None:
    if major < 9:
        return f"GPU sm_{major}{minor} has 4-bit tensor cores; W4A8 is for Hopper (sm_90)"
    if major != 9:
        return f"GPU sm_{major}{minor}: W4A8 is built and verified for Hopper (sm_90) only"
    return None


@dataclass
class FusedPath:
    """One fused execution path: which GPUs it serves, its forward, and the reference it reproduces."""

    name: str
    arch_refusal: Callable[[int, int], str | None]
    forward_name: str  # function in gpu.kernels.launch: (x, PackedWeights) -> y
    act_format: str | None  # reference numerics: SVDQLinear.forward_reference(x, act_format=...)
    label: str  # how the fallback names the reference it runs
    pack_name: str = "packed_for"  # function in gpu.kernels.repack: layer -> the kernels' packed weights
    held_name: str = "held_bytes_w4a4"  # function in gpu.kernels.repack: layer -> bytes the packing adds
    shape_refusal: Callable[[torch.nn.Module], str | None] | None = None  # this path's own limits
    # the packed weights ``pack_name`` made -> how this layer ran, when not in this path's usual way
    path_note: Callable[[Any], str | None] | None = None
    layer_note: Callable[[torch.nn.Module], str | None] | None = None  # the same predicted from the layer
    load_errors: dict[tuple[int, torch.dtype], str] = field(default_factory=dict)

    def refuses(self, layer: torch.nn.Module, device: torch.device) -> str | None:
        """None when this path can run ``layer`` on ``device``, else the human reason."""
        why = layer_refusal(layer) or (self.shape_refusal(layer) if self.shape_refusal else None)
        return why or self._device_refusal(layer, device)

    def refuses_device(self, layer: torch.nn.Module, device: torch.device) -> str | None:
        """The checks of ``refuses`` that do not depend on the layer's shape or rank: whether this path runs
        ``layer``'s kind and dtype on ``device`` at all (GPU, pycuda, architecture, kernel binary)."""
        return layer_refusal(layer) or self._device_refusal(layer, device)

    def _device_refusal(self, layer: torch.nn.Module, device: torch.device) -> str | None:
        why = gpu_refusal(device, self.arch_refusal)
        if why:
            return why
        idx = cuda_index(device)
        if (idx, layer.compute_dtype) in self.load_errors:
            return self.load_errors[(idx, layer.compute_dtype)]
        return binary_refusal(device)

    def held_bytes(self, layer: torch.nn.Module) -> int:
        """GPU bytes this path's packed copy of ``layer`` adds to the layer's own (for the memory plan)."""
        from gpu.kernels import repack

        return getattr(repack, self.held_name)(layer)

    def run(self, layer: torch.nn.Module, x: torch.Tensor, gelu_from: int | None = None) -> torch.Tensor:
        """x: T [..., K] on the GPU -> T [..., N] (tanh-GELU on columns >= gelu_from, in the GEMM epilogue);
        falls back to the matching reference (and says why) when x's dtype is not the layer's or the
        kernels fail to load."""
        if x.dtype != layer.compute_dtype:
            layer.last_path = (
                f"{self.label} (input dtype {x.dtype} differs from the layer's {layer.compute_dtype})"
            )
            return gelu_columns_(layer.forward_reference(x, act_format=self.act_format), gelu_from)
        from gpu.kernels import launch, repack

        try:
            packed = getattr(repack, self.pack_name)(layer, x.device)
            y = getattr(launch, self.forward_name)(x, packed, gelu_from)
        except Exception as err:  # noqa: BLE001 - a build/load failure must not kill generation
            reason = remember_load_failure(self.load_errors, (cuda_index(x.device), layer.compute_dtype), err)
            if reason is None:
                raise
            layer.last_path = f"{self.label} ({reason})"
            return gelu_columns_(layer.forward_reference(x, act_format=self.act_format), gelu_from)
        note = self.path_note(packed) if self.path_note else None
        if note and not layer.last_path.endswith(f"({note})"):  # idempotent when two threads run one layer
            layer.last_path = f"{layer.last_path} ({note})"
        return y


def _w4a8f_shape_refusal(layer: torch.nn.Module) -> str | None:
    from gpu.kernels.launch import W4A8F_MAX_K

    if layer.in_features > W4A8F_MAX_K:
        return f"in_features {layer.in_features} > {W4A8F_MAX_K}"
    if layer.out_features % 8:
        return f"out_features {layer.out_features} is not a multiple of 8 (FP8 kernel stores 16-byte rows)"
    # Windows past W4A8F_MAX_WINDOW run their up projection beside the GEMM (``w4a8f_gemm_split_low_rank``).
    return _low_rank_refusal(layer, ANY_WINDOW)


SPLIT_LOW_RANK = "low-rank up projection on cuBLAS beside the GEMM"


def _w4a8f_path_note(packed: PackedW4A8F) -> str | None:
    """How the FP8 path ran a packed layer, when its widest rank window took the up projection out of the GEMM."""
    excess = W4A8F_LIMITS.window_excess(packed.max_window)
    return f"{SPLIT_LOW_RANK}: {excess}" if excess else None


def _w4a8f_layer_note(layer: torch.nn.Module) -> str | None:
    """The same from the layer's branch sizes (before packing; zeros in the up projection can only make the packed
    windows narrower)."""
    why = _low_rank_refusal(layer, W4A8F_LIMITS)
    return f"{SPLIT_LOW_RANK}: {why}" if why else None


W4A8 = FusedPath(
    W4A8_NAME, _w4a8_arch_refusal, "svdq_linear_forward_w4a8f", "fp8_e4m3_row", "PyTorch reference, W4A8 FP8",
    pack_name="packed_w4a8f_for", held_name="held_bytes_w4a8f", shape_refusal=_w4a8f_shape_refusal,
    path_note=_w4a8f_path_note, layer_note=_w4a8f_layer_note,
)
INT4 = FusedPath(
    NAME, _int4_arch_refusal, "svdq_linear_forward", None, "PyTorch reference", shape_refusal=_int4_shape_refusal
)
# The INT4 path's checks and forward under the module's name: used by tests (the dispatcher asks the Backend objects).
refuses = INT4.refuses
run = INT4.run

GEMV_NAME = "fused W4A16 GEMV (pycuda)"


def _gemv_refuses(layer: torch.nn.Module, device: torch.device) -> str | None:
    """The adaLN modulation layers (W4A16 INT4, no smoothing, no low rank) on the GEMV kernel (sm_75+; fp16 only
    on Turing): ``fused_ops.gemv_refusal``, imported when asked, as launch is (importing the backend loads
    neither)."""
    from gpu.modules.fused_ops import gemv_refusal

    return gemv_refusal(layer, device)


def _gemv_run(layer: torch.nn.Module, x: torch.Tensor, gelu_from: int | None = None) -> torch.Tensor:
    """x: T [..., K] -> T [..., N]; ``fused_ops.w4a16_gemv`` runs the reference itself (and says why in
    ``last_path``) for more than 8 rows or a dtype mismatch. The GEMV has no GELU epilogue."""
    from gpu.modules.fused_ops import w4a16_gemv

    return gelu_columns_(w4a16_gemv(x, layer), gelu_from)


# Hopper W4A8 first: on sm_90 it serves INT4 W4A4 layers; elsewhere it refuses and INT4 serves them. The GEMV
# serves the W4A16 layers both refuse.
for _path in (W4A8, INT4):
    register_backend(Backend(_path.name, _path.refuses, _path.run, _path.layer_note, _path.held_bytes))
register_backend(Backend(GEMV_NAME, _gemv_refuses, _gemv_run))
