// svdq_quant_lora.cu: Kernel A, the SVDQuant prologue. One pass over the activation X does
//   xs   = float32(x) * __frcp_rn(float32(smooth))                  (smoothing, x / lambda)
//   per token, per group of 64: s = to16(absmax(xs) / qmax) (IEEE), q = clamp(rint(xs / float(s)))
//   lact = xs @ lora_down                                            (low-rank down projection, fp32)
// so X is read once for both branches (paper section 4.3, "Down Projection" fused with "Quantize").
//
// Tiling: one block of 256 threads owns ROWS_A = 32 tokens (two 16-row MMA tiles) and walks the whole
// K dimension one 64-wide group at a time. Owning all of K keeps the down projection a plain
// sequential fp32 sum per (token, rank): no atomics, no cross-block reduction, so results are
// bit-identical run to run. A branch wider than the 128 rank columns a block holds on chip (a LoRA
// appended to the layer's own branch, or a merged Q/K/V with LoRAs) is split over grid.y: block
// (x, y) computes rank columns [128 y, 128 y + 128) of its tokens, and only y = 0 writes the codes and
// scales. The y > 0 blocks re-read X (smoothing is cheap) rather than hold more accumulators, so one
// instantiation serves every rank.
//
// Outputs (layouts are shared with the GEMMs, see kernels_cu/DESIGN.md):
//   act    uint32 [M_pad/16, K/64, 32 lanes, 4 words]  4-bit codes already in the m16n8k64 A-fragment
//          order: lane (gid = lane/4, t = lane%4) word w holds row gid + 8*(w&1), columns
//          t*8 + 32*(w>>1) .. +7 of the 16x64 tile, element j in bits 4j..4j+3 (two's complement).
//   ascale T      [K/64, M_pad]                        16-bit group scales, group-major.
//   lact   fp32   [M_pad, r]                           X_smoothed @ lora_down, rows >= M are zero.
// Rows M..M_pad-1 are written as zero codes, zero scales and zero lact, so the GEMM needs no row guard
// on its loads. QMAX is a template parameter so the Hopper W4A8 path can reuse the structure.
#include "svdq_common.cuh"

namespace {

constexpr int ROWS_A = 32;
constexpr int THREADS_A = 256;
constexpr int ACC_A = ROWS_A * svdq::kRankChunk / THREADS_A;  // low-rank outputs per thread (16)

template <typename T, int QMAX>
__device__ void quant_lora_body(const T* __restrict__ x, const T* __restrict__ smooth,
                                const T* __restrict__ lora_down, uint32_t* __restrict__ act,
                                T* __restrict__ ascale, float* __restrict__ lact, int M, int K,
                                int rank, int M_pad) {
  __shared__ float xs[ROWS_A][svdq::kGroup + 1];           // smoothed tile; +1 pad: row reads
  __shared__ float l1[svdq::kGroup][svdq::kRankChunk];     // fp32 copy of this group's lora_down rows
  __shared__ float gscale[ROWS_A];                         // rounded scale of each row's group, fp32

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int row0 = blockIdx.x * ROWS_A;
  const int n_groups = K / svdq::kGroup;
  // This block's rank columns [rc0, rc0 + rc) (rank stays the row stride of lora_down and lact).
  const int rc0 = blockIdx.y * svdq::kRankChunk;
  const int rc = max(0, min(svdq::kRankChunk, rank - rc0));
  const bool quantize = blockIdx.y == 0;  // block-uniform

  float acc[ACC_A];
#pragma unroll
  for (int i = 0; i < ACC_A; ++i) acc[i] = 0.f;

  for (int g = 0; g < n_groups; ++g) {
    const int k0 = g * svdq::kGroup;
    // 1. Load and smooth the 32x64 tile (coalesced: consecutive threads, consecutive columns).
#pragma unroll
    for (int i = 0; i < ROWS_A * svdq::kGroup / THREADS_A; ++i) {
      const int e = tid + i * THREADS_A, r = e / svdq::kGroup, c = e % svdq::kGroup;
      const int row = row0 + r;
      float v = 0.f;
      if (row < M) {
        v = svdq::to_f32(x[static_cast<size_t>(row) * K + k0 + c]);
        if (smooth != nullptr) v = __fmul_rn(v, __frcp_rn(svdq::to_f32(smooth[k0 + c])));
      }
      xs[r][c] = v;
    }
    // Stage this group's lora_down rows [64, rank] as fp32 (one contiguous slab of lora_down).
    for (int e = tid; e < svdq::kGroup * rc; e += THREADS_A) {
      const int c = e / rc, j = e % rc;
      l1[c][j] = svdq::to_f32(lora_down[static_cast<size_t>(k0 + c) * rank + rc0 + j]);
    }
    __syncthreads();

    // 2. Per-row absmax -> rounded 16-bit scale. Each warp reduces 4 rows (2 columns per lane).
#pragma unroll
    for (int rr = 0; quantize && rr < ROWS_A / (THREADS_A / 32); ++rr) {
      const int r = warp * (ROWS_A / (THREADS_A / 32)) + rr;
      float m = fmaxf(fabsf(xs[r][lane]), fabsf(xs[r][lane + 32]));
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));
      if (lane == 0) {
        const T s16 = svdq::from_f32<T>(__fdiv_rn(m, static_cast<float>(QMAX)));
        ascale[static_cast<size_t>(g) * M_pad + row0 + r] = s16;
        gscale[r] = svdq::to_f32(s16);
      }
    }
    __syncthreads();

    // 3. Quantize and pack straight into A-fragment order.
    if (!quantize) {
      // rank columns >= 128 only: the codes and scales come from the y = 0 block
    } else if constexpr (QMAX <= 7) {
      // INT4 (m16n8k64 s4): 2 tiles x 32 lanes x 4 words = 256 words, one per thread, consecutive
      // threads writing consecutive words (coalesced 16-byte lanes).
      {
        const int tile = tid >> 7, frag_lane = (tid >> 2) & 31, w = tid & 3;
        const int r = tile * svdq::kTileM + (frag_lane >> 2) + 8 * (w & 1);
        const int c0 = (frag_lane & 3) * 8 + 32 * (w >> 1);
        const float s = gscale[r];
        uint32_t word = 0;
#pragma unroll
        for (int j = 0; j < 8; ++j) {
          const int q = svdq::quantize_one(xs[r][c0 + j], s, QMAX);
          word |= (static_cast<uint32_t>(q) & 0xFu) << (4 * j);
        }
        const size_t m_tile = static_cast<size_t>(row0 / svdq::kTileM + tile);
        act[((m_tile * n_groups + g) * 32 + frag_lane) * svdq::kActWords + w] = word;
      }
    } else {
      // INT8 for the Hopper W4A8 GEMM (two m16n8k32 s8 MMAs per 64-group): per 16x64 tile and lane
      // (gid, tig), half h (k 32h..32h+31) holds 4 words: w=0 row gid, w=1 row gid+8 at
      // k 32h + 8tig + {0,2,4,6}; w=2, w=3 the same rows at k 32h + 8tig + {1,3,5,7} (byte j = k + 2j).
      // This k permutation matches the int4 weight words widened in registers (even nibbles -> b0,
      // odd nibbles -> b1), so the GEMM needs no shuffles. Layout int32 [M_pad/16, K/64, 2, 32, 4].
      // 2 tiles x 2 halves x 32 lanes x 4 words = 512 words, two per thread.
#pragma unroll
      for (int p = 0; p < 2; ++p) {
        const int e = tid + p * THREADS_A;
        const int tile = e >> 8, h = (e >> 7) & 1, frag_lane = (e >> 2) & 31, w = e & 3;
        const int r = tile * svdq::kTileM + (frag_lane >> 2) + 8 * (w & 1);
        const int c0 = 32 * h + (frag_lane & 3) * 8 + (w >> 1);
        const float s = gscale[r];
        uint32_t word = 0;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int q = svdq::quantize_one(xs[r][c0 + 2 * j], s, QMAX);
          word |= (static_cast<uint32_t>(q) & 0xFFu) << (8 * j);
        }
        const size_t m_tile = static_cast<size_t>(row0 / svdq::kTileM + tile);
        act[(m_tile * n_groups + g) * 256 + (e & 255)] = word;
      }
    }

    // 4. Low-rank down projection: output o = tid + i*256 is (row o / rank, rank column o % rank);
    //    within a warp the rank column varies (conflict-free l1 reads) and the row is broadcast.
    if (rc > 0) {
#pragma unroll
      for (int i = 0; i < ACC_A; ++i) {
        const int o = tid + i * THREADS_A;
        if (o < ROWS_A * rc) {
          const int r = o / rc, j = o % rc;
          float a = acc[i];
#pragma unroll 8
          for (int c = 0; c < svdq::kGroup; ++c) a = fmaf(xs[r][c], l1[c][j], a);
          acc[i] = a;
        }
      }
    }
    __syncthreads();  // xs / l1 / gscale are overwritten by the next group
  }

  if (rc > 0) {
#pragma unroll
    for (int i = 0; i < ACC_A; ++i) {
      const int o = tid + i * THREADS_A;
      if (o < ROWS_A * rc) lact[static_cast<size_t>(row0 + o / rc) * rank + rc0 + o % rc] = acc[i];
    }
  }
}

}  // namespace

// grid: (M_pad / 32, max(1, ceil(rank / 128))), block: 256. M_pad must be a multiple of 64 (svdq::kPadM),
// K of 64.
extern "C" __global__ void __launch_bounds__(THREADS_A, 1)
svdq_quant_lora_int4_bf16(const __nv_bfloat16* x, const __nv_bfloat16* smooth,
                          const __nv_bfloat16* lora_down, uint32_t* act, __nv_bfloat16* ascale,
                          float* lact, int M, int K, int rank, int M_pad) {
  quant_lora_body<__nv_bfloat16, 7>(x, smooth, lora_down, act, ascale, lact, M, K, rank, M_pad);
}

extern "C" __global__ void __launch_bounds__(THREADS_A, 1)
svdq_quant_lora_int4_fp16(const __half* x, const __half* smooth, const __half* lora_down, uint32_t* act,
                          __half* ascale, float* lact, int M, int K, int rank, int M_pad) {
  quant_lora_body<__half, 7>(x, smooth, lora_down, act, ascale, lact, M, K, rank, M_pad);
}

// Hopper W4A8: the same prologue with 8-bit codes (qmax 127) in the m16n8k32 s8 fragment layout
// (act int32 [M_pad/16, K/64, 2, 32, 4]; see the INT8 branch of step 3 and kernels_cu/DESIGN.md).
extern "C" __global__ void __launch_bounds__(THREADS_A, 1)
svdq_quant_lora_int8_bf16(const __nv_bfloat16* x, const __nv_bfloat16* smooth,
                          const __nv_bfloat16* lora_down, uint32_t* act, __nv_bfloat16* ascale,
                          float* lact, int M, int K, int rank, int M_pad) {
  quant_lora_body<__nv_bfloat16, 127>(x, smooth, lora_down, act, ascale, lact, M, K, rank, M_pad);
}

extern "C" __global__ void __launch_bounds__(THREADS_A, 1)
svdq_quant_lora_int8_fp16(const __half* x, const __half* smooth, const __half* lora_down, uint32_t* act,
                          __half* ascale, float* lact, int M, int K, int rank, int M_pad) {
  quant_lora_body<__half, 127>(x, smooth, lora_down, act, ascale, lact, M, K, rank, M_pad);
}
