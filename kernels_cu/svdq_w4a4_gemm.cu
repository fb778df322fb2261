// svdq_w4a4_gemm.cu: Kernel B, the W4A4 GEMM with the low-rank up projection fused in its epilogue:
//   y[m, n] = sum_g (sum_{k in g} qa[m, k] * qw[n, k]) * (sa[m, g] * sw[n, g])      (fp32)
//           + sum_j lact[m, j] * lora_up[n, j]                                     (fp32)
//           + bias[n]          [-> tanh-GELU for n >= gelu_from]                   -> 16-bit, one write
// (paper section 4.3: "Up Projection" fused with "4-Bit Compute", so the output is written once).
//
// Tiling: 128 threads = 4 warps in a 2x2 grid over a 64x64 output tile; each warp owns 32x32 =
// 2 (m16) x 4 (n8) mma.sync.m16n8k64.s4 tiles (sm_80+). The `_k32` entry points are the same kernel
// for Turing (sm_75), whose only 4-bit MMA is m8n8k32: each m16n8k64 runs as four m8n8k32 on the same
// fragment registers (svdq::mma_s4_16x8x64_by_8x8x32), with the same integer sums, so their outputs are
// bit-identical. The K loop walks one quantization group (64) per step:
// 8 integer MMAs into fresh s32 registers, then each group's exact integer sum is scaled by sa*sw and
// added to the fp32 accumulators, as acc = acc + float(dot) * (sa * sw) with separate IEEE-rounded
// ops, the reference's exact order, so the integer part matches it bit for bit. No fp16/bf16 partials.
// Operands come straight from global memory into registers in fragment order (activation: one 16-byte
// load per lane per 16x64 tile; weight: one 8-byte load per lane per 8x64 tile; each warp-wide load is a
// contiguous 512/256-byte run); the 4 warps of a block share their tiles through L1.
//
// Epilogue: the block stages lact[64 rows, 32 ranks] and lora_up[64 channels, 32 ranks] in shared
// memory (fp32) per 32-rank chunk and each thread adds the fp32 dot products for its 32 outputs;
// then bias, GELU on the columns n >= gelu_from, conversion to 16 bits, and guarded 4-byte stores of
// column pairs. Only the block's rank window is walked (lr_window: per 64-channel block, the columns
// outside which its lora_up rows are zero; a merged Q/K/V layer's up projection is block-diagonal, so
// a block of Q channels needs only Q's columns). The skipped terms are exact zeros: same bits as the
// full depth. Any rank works (the chunks are staged one after another).
// No atomics anywhere: every output is produced by one thread in a fixed order (deterministic).
//
// Layouts (written by gpu/kernels/repack.py and Kernel A; see kernels_cu/DESIGN.md):
//   act     uint32 [M_pad/16, K/64, 32, 4]   wgt    uint32 [N_pad/8, K/64, 32, 2]
//   ascale  T      [K/64, M_pad]             wscale T      [K/64, N_pad]
//   lact    fp32   [M_pad, r]                lora_up T     [N_pad, r]     bias T [N_pad] (or null)
//   lr_window int32 [N_pad/64, 2] (first rank column, count: any values) or null: all r columns
//   out     T      [M, N] row-major (ldo = N)
#include "svdq_common.cuh"

namespace {

constexpr int BM = 64, BN = 64, THREADS_B = 128;
constexpr int WM_TILES = 2, WN_TILES = 4;  // per warp: 2 x m16, 4 x n8
constexpr int RCHUNK = 32;                 // ranks staged per epilogue step


template <typename T, bool M8N8K32>
__device__ void gemm_body(const uint4* __restrict__ act, const T* __restrict__ ascale,
                          const uint2* __restrict__ wgt, const T* __restrict__ wscale,
                          const float* __restrict__ lact, const T* __restrict__ lora_up,
                          const int* __restrict__ lr_window, const T* __restrict__ bias, T* __restrict__ out,
                          int M, int N, int K, int rank, int M_pad, int N_pad, int gelu_from) {
  __shared__ float s_lact[BM][RCHUNK + 1];  // +1: rows read by 8 groupIDs land in distinct banks
  __shared__ float s_lup[BN][RCHUNK + 1];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int gid = lane >> 2, tig = lane & 3;
  const int wm = warp >> 1, wn = warp & 1;
  const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
  const int m_tile0 = (m0 + wm * 32) / svdq::kTileM;  // first 16-row fragment tile of this warp
  const int n_tile0 = (n0 + wn * 32) / svdq::kTileN;  // first 8-channel fragment tile of this warp
  const int n_groups = K / svdq::kGroup;

  float acc[WM_TILES][WN_TILES][4];
#pragma unroll
  for (int i = 0; i < WM_TILES; ++i)
#pragma unroll
    for (int j = 0; j < WN_TILES; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) acc[i][j][c] = 0.f;

  for (int g = 0; g < n_groups; ++g) {
    uint4 a[WM_TILES];
    uint2 b[WN_TILES];
    float sa[WM_TILES][2], sw[WN_TILES][2];
#pragma unroll
    for (int i = 0; i < WM_TILES; ++i) {
      a[i] = act[(static_cast<size_t>(m_tile0 + i) * n_groups + g) * 32 + lane];
      const T* sp = ascale + static_cast<size_t>(g) * M_pad + (m_tile0 + i) * svdq::kTileM + gid;
      sa[i][0] = svdq::to_f32(sp[0]);
      sa[i][1] = svdq::to_f32(sp[8]);
    }
#pragma unroll
    for (int j = 0; j < WN_TILES; ++j) {
      b[j] = wgt[(static_cast<size_t>(n_tile0 + j) * n_groups + g) * 32 + lane];
      const T* sp = wscale + static_cast<size_t>(g) * N_pad + (n_tile0 + j) * svdq::kTileN + 2 * tig;
      sw[j][0] = svdq::to_f32(sp[0]);
      sw[j][1] = svdq::to_f32(sp[1]);
    }
#pragma unroll
    for (int i = 0; i < WM_TILES; ++i) {
#pragma unroll
      for (int j = 0; j < WN_TILES; ++j) {
        int d[4] = {0, 0, 0, 0};
        if constexpr (M8N8K32) {
          svdq::mma_s4_16x8x64_by_8x8x32(d, a[i], b[j]);
        } else {
          svdq::mma_s4_16x8x64(d, a[i], b[j]);
        }
        // c0,c1: row gid, channels 2*tig, 2*tig+1; c2,c3: row gid+8 (m16n8 accumulator layout).
#pragma unroll
        for (int c = 0; c < 4; ++c) {
          const float s = __fmul_rn(sa[i][c >> 1], sw[j][c & 1]);
          acc[i][j][c] = __fadd_rn(acc[i][j][c], __fmul_rn(static_cast<float>(d[c]), s));
        }
      }
    }
  }

  // Low-rank up projection, fp32, accumulated separately and added once (as the reference does).
  float lr[WM_TILES][WN_TILES][4];
#pragma unroll
  for (int i = 0; i < WM_TILES; ++i)
#pragma unroll
    for (int j = 0; j < WN_TILES; ++j)
#pragma unroll
      for (int c = 0; c < 4; ++c) lr[i][j][c] = 0.f;

  int r_begin = 0, r_end = rank;
  if (lr_window != nullptr && rank > 0) {
    r_begin = lr_window[2 * blockIdx.x];
    r_end = r_begin + lr_window[2 * blockIdx.x + 1];
  }
  for (int r0 = r_begin; r0 < r_end; r0 += RCHUNK) {
    const int rc = min(RCHUNK, r_end - r0);
    for (int e = tid; e < BM * RCHUNK; e += THREADS_B) {
      const int r = e / RCHUNK, j = e % RCHUNK;
      s_lact[r][j] = j < rc ? lact[static_cast<size_t>(m0 + r) * rank + r0 + j] : 0.f;
      s_lup[r][j] = j < rc ? svdq::to_f32(lora_up[static_cast<size_t>(n0 + r) * rank + r0 + j]) : 0.f;
    }
    __syncthreads();
    svdq::lowrank_chunk_fma<WM_TILES, WN_TILES, RCHUNK, 4>(lr, s_lact, s_lup, wm * 32, wn * 32, gid, tig);
    __syncthreads();
  }

  // Bias, activation, one 16-bit write per output (column pairs as 4-byte stores).
  svdq::store_output_tile<T, true>(out, acc, lr, bias, gelu_from, m0 + wm * 32, n0 + wn * 32, M, N, gid, tig);
}

}  // namespace

// grid: (N_pad / 64, M_pad / 64), block: 128. N must be even (pairs are stored); K % 64 == 0.
// svdq_w4a4_gemm_{bf16,fp16}: m16n8k64 (sm_80+); svdq_w4a4_gemm_k32_{bf16,fp16}: m8n8k32 (sm_75+).
#define SVDQ_W4A4_GEMM(NAME, T, M8N8K32)                                                                     \
  extern "C" __global__ void __launch_bounds__(THREADS_B)                                                 \
      NAME(const uint4* act, const T* ascale, const uint2* wgt, const T* wscale, const float* lact,       \
           const T* lora_up, const int* lr_window, const T* bias, T* out, int M, int N, int K, int rank,   \
           int M_pad, int N_pad, int gelu_from) {                                                         \
    gemm_body<T, M8N8K32>(act, ascale, wgt, wscale, lact, lora_up, lr_window, bias, out, M, N, K, rank,  \
                          M_pad, N_pad, gelu_from);                                                       \
  }
SVDQ_W4A4_GEMM(svdq_w4a4_gemm_bf16, __nv_bfloat16, false)
SVDQ_W4A4_GEMM(svdq_w4a4_gemm_fp16, __half, false)
SVDQ_W4A4_GEMM(svdq_w4a4_gemm_k32_bf16, __nv_bfloat16, true)
SVDQ_W4A4_GEMM(svdq_w4a4_gemm_k32_fp16, __half, true)
