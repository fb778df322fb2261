"""How wide a low-rank branch the fused kernels run, per kernel family, and the one check both the dispatch
and the fusion of FLUX's Q/K/V(+MLP) groups use.

The branch of an ``SVDQLinear`` is its own rank (e.g. 32) plus every LoRA applied to it (gpu.lora.apply appends
them); a merged layer (gpu.models.flux_fused) concatenates its members' branches, with a block-diagonal up
projection. Both GEMM families multiply, per channel tile, only the rank columns that tile's rows use (its
*window*, ``gpu.kernels.repack.rank_windows``), so what bounds a merged layer is its widest window, not its
summed rank:

* INT4 W4A4 (sm_75-sm_89): the prologue computes the down projection 128 rank columns per block (grid.y walks
  more), and the GEMM's epilogue walks a window of any width in 32-column chunks. Only the total is bounded.
* Hopper FP8 (sm_90): the GEMM stages a tile's whole window in shared memory beside its stage ring, so it fuses
  a window of at most 240 columns (``kernels_cu/svdq_w4a8_wgmma.cu``, MAX_WINDOW). A layer with a wider window
  (a rank-256 LoRA) still runs on the FP8 GEMM, with its up projection as a cuBLAS matmul beside it
  (``gpu.kernels.launch.w4a8f_gemm_split_low_rank``): dispatch takes any window, but the fusion of Q/K/V groups
  keeps to the fused limit, so that merging never moves a branch out of the epilogue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gpu.kernels.repack import W4A8F_TILE, largest_rank_window

MAX_TOTAL_RANK = 1024  # row stride of lact and lora_up; bounds the prologue's work (8 blocks of 128 per row)
W4A8F_MAX_WINDOW = 240  # kernels_cu/svdq_w4a8_wgmma.cu MAX_WINDOW: two 128 x 240 16-bit operands beside the ring
W4A8F_NARROW_WINDOW = 128  # what svdq_w4a8f_gemm_* take (8 wgmma k16 steps); wider windows need the _wide kernels


@dataclass(frozen=True)
class RankLimits:
    """The low-rank branch one kernel family runs: ``max_window`` columns per ``tile`` channels (None: any) and
    ``max_total`` columns in all."""

    max_window: int | None
    max_total: int = MAX_TOTAL_RANK
    tile: int = W4A8F_TILE

    def describe(self) -> str:
        per_tile = f"{self.max_window} per {self.tile}-channel tile, " if self.max_window is not None else ""
        return f"{per_tile}{self.max_total} in all"

    def window_excess(self, window: int) -> str | None:
        """Why a tile window of ``window`` rank columns is too wide for these limits, or None."""
        if self.max_window is not None and window > self.max_window:
            return f"{window} rank columns in one {self.tile}-channel tile > {self.max_window}"
        return None


ANY_WINDOW = RankLimits(max_window=None)  # what dispatch takes on both families
INT4_LIMITS = ANY_WINDOW  # what the INT4 kernels fuse
W4A8F_LIMITS = RankLimits(max_window=W4A8F_MAX_WINDOW)  # what the FP8 GEMM fuses in its epilogue


def low_rank_refusal(members: Sequence[tuple[int, int]], limits: RankLimits) -> str | None:
    """members: (out_features, rank) of one layer, or of the layers of a merge in output order -> why a kernel
    with ``limits`` cannot run their (concatenated, block-diagonal) branch, or None."""
    total = sum(r for _, r in members)
    ranks = f"ranks {'+'.join(str(r) for _, r in members)}: " if len(members) > 1 else ""
    if total > limits.max_total:
        return f"{ranks}rank {total} > {limits.max_total}"
    if limits.max_window is not None:
        excess = limits.window_excess(largest_rank_window(list(members), limits.tile))
        if excess:
            return f"{ranks}{excess}"
    return None
