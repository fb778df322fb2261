"""The host launch code mirrors constants of the Hopper FP8 kernel (stage count, tile, block sizes, rank windows)
and of the INT4 prologue (rank columns per block): the dynamic shared memory it asks for, the grids it launches
and the kernel it picks follow from them. A kernel change that the host
misses would under-allocate shared memory (the ring overruns the tile region) or launch the wrong block size,
so the mirrors are read back from the kernel source here (the bundle ships no sources to read at run time)."""

from __future__ import annotations

import re
from pathlib import Path

from gpu.kernels import launch, rank_limits

KERNELS = Path(__file__).resolve().parent.parent / "kernels_cu"
SOURCE = (KERNELS / "svdq_w4a8_wgmma.cu").read_text()


def _int(pattern: str, source: str = SOURCE) -> int:
    m = re.search(pattern, source)
    assert m is not None, f"{pattern!r} not found in the kernel source"
    return int(m.group(1))


def test_fp8_gemm_pipeline_constants_match_the_kernel():
    stages = _int(r"#define W4A8F_STAGES (\d+)")
    bm, bn = _int(r"constexpr int BM = (\d+);"), _int(r"constexpr int BN = (\d+);")
    consumer_warps = _int(r"constexpr int CONSUMER_WARPS = (\d+);")
    pitch_pad = _int(r"constexpr int OUT_PITCH = BM \+ (\d+);")
    assert launch._W4A8F_STAGES == stages
    assert launch._W4A8F_TILE == bm == bn
    assert launch._W4A8F_THREADS == consumer_warps * 32 + 128  # + the producer warpgroup
    # the kernel's ring: STAGES x (activations + weights + 16-bit scales), then 2*STAGES + 2 mbarriers
    stage_bytes = bn * 64 + bm * 64 // 2 + bm * 2
    bar_bytes = (2 * stages * 8 + 16 + 127) // 128 * 128
    assert launch._W4A8F_PIPE_BYTES == stages * stage_bytes + bar_bytes
    assert launch._W4A8F_OUT_STAGE_BYTES == bn * (bm + pitch_pad) * 2


def test_fp8_prologue_launch_constants_match_the_kernel():
    assert launch._W4A8F_Q_THREADS == _int(r"constexpr int Q_THREADS = (\d+),")
    assert launch._W4A8F_Q_BLOCKS_PER_SM == _int(r"Q_BLOCKS_PER_SM = (\d+);")
    assert launch._W4A8F_Q_LONG_THREADS == _int(r"constexpr int Q_LONG_THREADS = (\d+),")
    # long rows: one block of Q_LONG_THREADS threads x Q_LONG_MAX_CHUNKS chunks of 8 columns holds the row
    assert launch.W4A8F_MAX_K == launch._W4A8F_Q_LONG_THREADS * _int(r"Q_LONG_MAX_CHUNKS = (\d+);") * 8
    # short rows: Q_THREADS x Q_MAX_CHUNKS chunks of 8 columns
    assert launch._W4A8F_Q_STREAM_MAX_K == launch._W4A8F_Q_THREADS * _int(r"Q_MAX_CHUNKS = (\d+),") * 8


def test_rank_window_limits_match_the_kernels():
    """The FP8 GEMM's widest window (shared memory, the wide kernel's two switches) and the plain kernel's (its
    switch's last case), and the INT4 prologue's rank columns per block (the grid's y extent)."""
    assert rank_limits.W4A8F_MAX_WINDOW == _int(r"constexpr int MAX_WINDOW = (\d+);")
    plain_cases = [int(c) for c in re.findall(r"case (\d+): lowrank_up<T, \1>", SOURCE)]  # 16 columns per step
    assert rank_limits.W4A8F_NARROW_WINDOW == 16 * max(plain_cases)
    common = (KERNELS / "svdq_common.cuh").read_text()
    assert launch._RANK_CHUNK == _int(r"constexpr int kRankChunk = (\d+);", common)
