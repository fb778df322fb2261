// svdq_w4a16_gemv.cu: the W4A16 GEMV of FLUX's adaLN modulation linears (27% of the model's bytes):
//   y[m, n] = sum_g s[n, g] * (sum_{k in g} x[m, k] * code[n, k]) + bias[n]     (fp32) -> 16-bit, one write
// for M <= 8 rows of x (T bf16/fp16 [M, K]), weights INT4 group 64 in the canonical SVDQ layout
// (qweight uint8 [N, K/2], element 2j in the low nibble of byte j; wscales T [N, K/64]; bias T [N]).
// Reference numerics: SVDQLinear.forward_reference (x @ dequantize(W)^T + bias, fp32 accumulation); the
// kernel sums in a different (fixed) order, so it agrees within fp32 rounding before the final rounding.
//
// Memory bound: the packed weights (K*N/2 bytes, 28 MiB for K=3072, N=18432) are read exactly once, in
// the canonical layout (no repack): each warp load takes 32 contiguous bytes (one DRAM sector, fully used)
// from each of 16 rows, and the 8 warps of a block walk neighbouring groups of the same rows.
//
// Compute on tensor cores, so that dequantization, not FMAs, is the per-byte work: mma.sync m16n8k16
// (bf16 or fp16 in, fp32 accumulate) with A = 16 weight channels x 16 k (codes widened to 16 bits, exact),
// B = x^T (16 k x 8 rows; rows >= M are zero), D = 16 channels x 8 rows. Within a group the 64 k are
// assigned to (mma i, fragment position p) by a permutation that both operands follow, so every load is a
// plain vector and no shuffles are needed:
//   lane (gid, tig) loads codes 16 tig .. 16 tig + 15 of the group for channels gid and gid + 8 (two 8-byte
//   words per channel: word h = codes 16 tig + 8h .. +7); mma i (0..3) takes from word h the nibbles i and
//   i + 4 as the bf16x2/half2 register for fragment positions 2 tig + 8h (low half) and +1 (high half), i.e.
//   position p = 2 tig + e + 8h  <->  group-relative k = 16 tig + 8h + 4e + i;
//   the x fragment of row gid uses the same map: register (i, h) = (x[16 tig + 8h + i], x[16 tig + 8h + 4 + i]),
//   built from two 16-byte loads with __byte_perm.
// Code -> 16-bit value: u = nibble ^ 8 (= code + 8) is OR-ed into the mantissa of 128.0 (bf16, 0x4300) or
// 1024.0 (fp16, 0x6400), where one unit in the last place is 1, giving exactly 128 + u / 1024 + u; one
// packed fma (v * 1 - 136 / - 1032) leaves the code exactly. Each group's 4 MMAs accumulate into fresh fp32
// registers (products of a code and x are exact in fp32), which are then scaled by the group's weight scale
// and added to the fp32 accumulators: acc = fma(dot_g, s[n, g], acc).
//
// Tiling: a block of 256 threads (8 warps) owns 32 output channels (two m16 tiles) and all M <= 8 rows; the
// warps split the K groups (warp w takes groups w, w + 8, ...), and their fp32 partials are added in warp
// order through shared memory by one thread per output (deterministic; no atomics). The block's weight
// scales ([32, K/64], K <= 16384) are staged in shared memory with one coalesced pass.
// svdq_w4a16_gemv_grouped_*: the same per-block work for many layers (same x, same K) in one grid, from a
// table of per-layer addresses (see w4a16_gemv_grouped_body).
// sm_80+ (bf16/fp16 mma.sync m16n8k16). The `_k8` entry points (fp16 only) are the same kernel for Turing
// (sm_75), which has fp16 m16n8k8 but neither bf16 MMA nor m16n8k16: each m16n8k16 runs as two m16n8k8 on the
// same registers (A words 0-1 and B word 0 hold k 0-7 of the fragment, words 2-3 and 1 k 8-15), chained on
// the group's fresh fp32 accumulators. The products are exact in fp32, but the tensor core's addition order
// within a group may differ between the two forms, so they agree within fp32 rounding, not bit for bit.
#include "svdq_common.cuh"

namespace {

constexpr int GV_THREADS = 256;
constexpr int GV_WARPS = GV_THREADS / 32;
constexpr int GV_TILES = 2;                   // m16 channel tiles per block
constexpr int GV_CHANNELS = 16 * GV_TILES;    // output channels per block
constexpr int GV_MAX_ROWS = 8;                // rows of x (the mma N extent)
constexpr int GV_MAX_GROUPS = 256;            // K <= 16384
constexpr int GV_UNROLL = 2;                  // groups per warp whose weight loads are in flight together

// Bit patterns of the dequantization (outside the anonymous namespace: only inline asm reads them, and
// nvcc would otherwise warn that they are unused in the host pass).
}  // namespace
namespace svdq_gemv {
template <typename T> struct Dequant;
template <> struct Dequant<__nv_bfloat16> {
  static constexpr uint32_t kMagic = 0x43004300u;    // bf16x2 (128, 128)
  static constexpr uint32_t kOne = 0x3F803F80u;      // bf16x2 (1, 1)
  static constexpr uint32_t kNegBias = 0xC308C308u;  // bf16x2 (-136, -136)
};
template <> struct Dequant<__half> {
  static constexpr uint32_t kMagic = 0x64006400u;    // half2 (1024, 1024)
  static constexpr uint32_t kOne = 0x3C003C00u;      // half2 (1, 1)
  static constexpr uint32_t kNegBias = 0xE408E408u;  // half2 (-1032, -1032)
};
}  // namespace svdq_gemv
namespace {
using svdq_gemv::Dequant;

// Nibbles i and i + 4 of `biased` (= word ^ 0x88888888) as exact 16-bit code values, low half first.
template <typename T> __device__ __forceinline__ uint32_t code_pair(uint32_t biased, int i) {
  const uint32_t v = ((biased >> (4 * i)) & 0x000F000Fu) | Dequant<T>::kMagic;
  uint32_t r = v;
  // v * 1 - bias (exact): packed fma, since sm_80 has no bf16x2 sub (sm_90 does); f16x2 fma exists from sm_53.
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("fma.rn.bf16x2 %0, %1, %2, %3;\n" : "=r"(r) : "r"(v), "r"(Dequant<T>::kOne), "r"(Dequant<T>::kNegBias));
#endif
  } else {
    asm("fma.rn.f16x2 %0, %1, %2, %3;\n" : "=r"(r) : "r"(v), "r"(Dequant<T>::kOne), "r"(Dequant<T>::kNegBias));
  }
  return r;
}

// D = A(16x16, row) * B(16x8, col) + C, fp32 accumulators; K8: as two fp16 m16n8k8 (Turing, see the header).
template <typename T, bool K8>
__device__ __forceinline__ void mma_16x8x16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (K8) {
    static_assert(std::is_same_v<T, __half>, "Turing has no bf16 MMA");
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(b0));
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[2]), "r"(a[3]), "r"(b1));
#else
    __trap();
#endif
  } else {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    if constexpr (std::is_same_v<T, __nv_bfloat16>) {
      asm volatile(
          "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
          "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
          : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    } else {
      asm volatile(
          "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
          "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
          : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
          : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    }
#else
    __trap();
#endif
  }
}

// The 32 output channels from n0 of one layer.
template <typename T, bool K8>
__device__ void w4a16_gemv_body(const T* __restrict__ x, const uint8_t* __restrict__ qweight,
                                const T* __restrict__ wscales, const T* __restrict__ bias, T* __restrict__ y,
                                int M, int N, int K, int n0) {
  __shared__ T s_scale[GV_CHANNELS][GV_MAX_GROUPS];
  __shared__ float s_red[GV_WARPS][GV_TILES][4][32];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int gid = lane >> 2, tig = lane & 3;
  const int G = K / svdq::kGroup;
  const size_t row_bytes = static_cast<size_t>(K) / 2;

  // Scales of this block's channels: [32, G] is one contiguous run of wscales (rows past N read as 0).
  for (int e = tid; e < GV_CHANNELS * G; e += GV_THREADS) {
    const int r = e / G;
    s_scale[r][e - r * G] = n0 + r < N ? wscales[static_cast<size_t>(n0) * G + e] : svdq::from_f32<T>(0.f);
  }
  __syncthreads();

  float acc[GV_TILES][4];
#pragma unroll
  for (int t = 0; t < GV_TILES; ++t)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[t][c] = 0.f;

  const bool x_row = gid < M;  // lanes whose fragment column is a real row of x
  const T* x_lane = x + static_cast<size_t>(gid) * K + 16 * tig;
  // This lane's A-fragment rows are channels n0 + gid + 8 j, j = 2 t + r (tile t, row gid or gid + 8): one
  // base pointer and a stride, to keep registers free for loads in flight.
  const uint8_t* w_row0 = qweight + static_cast<size_t>(n0 + gid) * row_bytes + 8 * tig;
  const size_t w_stride8 = 8 * row_bytes;
  const int rows_left = N - n0 - gid;  // row j exists when 8 j < rows_left

  for (int g0 = warp; g0 < G; g0 += GV_WARPS * GV_UNROLL) {
    // Issue the weight loads of GV_UNROLL groups first: they stream from DRAM and are what must be in
    // flight. x (an L1/L2 hit) is loaded per group below, so only one group's x occupies registers.
    uint2 wv[GV_UNROLL][GV_TILES][2];
#pragma unroll
    for (int u = 0; u < GV_UNROLL; ++u) {
      const int g = g0 + u * GV_WARPS;
#pragma unroll
      for (int t = 0; t < GV_TILES; ++t)
#pragma unroll
        for (int r = 0; r < 2; ++r)
          wv[u][t][r] = g < G && 8 * (2 * t + r) < rows_left
                            ? __ldg(reinterpret_cast<const uint2*>(w_row0 + (2 * t + r) * w_stride8 + g * 32))
                            : make_uint2(0u, 0u);  // nibble 0 = code 0
    }
#pragma unroll
    for (int u = 0; u < GV_UNROLL; ++u) {
      const int g = g0 + u * GV_WARPS;
      if (g >= G) break;
      // x fragment registers: xb[h][i] = (x[16 tig + 8h + i], x[16 tig + 8h + 4 + i]).
      uint32_t xb[2][4];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const uint4 xv = x_row ? __ldg(reinterpret_cast<const uint4*>(x_lane + g * svdq::kGroup + 8 * h))
                               : make_uint4(0, 0, 0, 0);
        xb[h][0] = __byte_perm(xv.x, xv.z, 0x5410);
        xb[h][1] = __byte_perm(xv.x, xv.z, 0x7632);
        xb[h][2] = __byte_perm(xv.y, xv.w, 0x5410);
        xb[h][3] = __byte_perm(xv.y, xv.w, 0x7632);
      }
#pragma unroll
      for (int t = 0; t < GV_TILES; ++t) {
        // biased[r][h]: word h of channel row r (gid, gid + 8), nibbles turned into code + 8.
        const uint32_t b00 = wv[u][t][0].x ^ 0x88888888u, b01 = wv[u][t][0].y ^ 0x88888888u;
        const uint32_t b10 = wv[u][t][1].x ^ 0x88888888u, b11 = wv[u][t][1].y ^ 0x88888888u;
        float d[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          // A registers: (row gid, pos 2tig..), (row gid+8, pos 2tig..), (row gid, pos +8), (row gid+8, pos +8)
          const uint32_t a[4] = {code_pair<T>(b00, i), code_pair<T>(b10, i), code_pair<T>(b01, i),
                                 code_pair<T>(b11, i)};
          mma_16x8x16<T, K8>(d, a, xb[0][i], xb[1][i]);
        }
        // d: (channel gid, rows 2tig, 2tig+1), (channel gid + 8, rows 2tig, 2tig+1)
        const float s_lo = svdq::to_f32(s_scale[16 * t + gid][g]);
        const float s_hi = svdq::to_f32(s_scale[16 * t + gid + 8][g]);
        acc[t][0] = fmaf(d[0], s_lo, acc[t][0]);
        acc[t][1] = fmaf(d[1], s_lo, acc[t][1]);
        acc[t][2] = fmaf(d[2], s_hi, acc[t][2]);
        acc[t][3] = fmaf(d[3], s_hi, acc[t][3]);
      }
    }
  }

#pragma unroll
  for (int t = 0; t < GV_TILES; ++t)
#pragma unroll
    for (int c = 0; c < 4; ++c) s_red[warp][t][c][lane] = acc[t][c];
  __syncthreads();

  // One thread per output (channel ch, row m): consecutive threads write consecutive channels.
  const int ch = tid % GV_CHANNELS, m = tid / GV_CHANNELS, n = n0 + ch;
  if (m < M && n < N) {
    const int t = ch / 16, r = ch % 16;
    const int c = 2 * (r / 8) + (m & 1), src_lane = 4 * (r % 8) + (m >> 1);
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < GV_WARPS; ++w) sum += s_red[w][t][c][src_lane];
    if (bias != nullptr) sum = __fadd_rn(sum, svdq::to_f32(bias[n]));
    y[static_cast<size_t>(m) * N + n] = svdq::from_f32<T>(sum);
  }
}

static_assert(GV_THREADS == GV_CHANNELS * GV_MAX_ROWS, "the epilogue maps one thread to each output");

// Grouped launch: many layers of the same K applied to the same x (FLUX's adaLN linears all read
// silu(temb)), one grid. table: int64 [L, GV_TABLE] per layer (qweight, wscales, bias or 0 as addresses, N,
// first output column c, first block b); layer l writes y + M * c as its own [M, N] row-major output and owns
// blocks b .. b + ceil(N / 32) - 1. One launch streams all the layers' weights (1.6 GB for FLUX.1), where a
// launch per layer (14-28 MB) spends much of its time ramping up and draining.
constexpr int GV_TABLE = 6;

template <typename T, bool K8>
__device__ void w4a16_gemv_grouped_body(const T* __restrict__ x, T* __restrict__ y,
                                        const long long* __restrict__ table, int L, int M, int K) {
  int l = 0;  // the layer owning this block: the last one whose first block is <= blockIdx.x
  while (l + 1 < L && table[(l + 1) * GV_TABLE + 5] <= blockIdx.x) ++l;
  const long long* t = table + l * GV_TABLE;
  const int N = static_cast<int>(t[3]);
  w4a16_gemv_body<T, K8>(x, reinterpret_cast<const uint8_t*>(t[0]), reinterpret_cast<const T*>(t[1]),
                     reinterpret_cast<const T*>(t[2]), y + static_cast<size_t>(M) * t[4], M, N, K,
                     (blockIdx.x - static_cast<int>(t[5])) * GV_CHANNELS);
}

}  // namespace

// grid: ceil(N / 32), block: 256. M <= 8, K % 64 == 0, K <= 16384; x 16-byte and qweight 8-byte aligned.
// Grouped: grid = the table's total block count, block 256; the same conditions for every layer.
// _k8_fp16: the Turing form (sm_75+), fp16 only. MIN_BLOCKS 1 for it: ptxas's default register target spilled
// its grouped entry on sm_90 (where it only runs in tests); the sm_80+ entries keep the bounds they were measured with.
#define SVDQ_GEMV(SUFFIX, T, K8, ...)                                                                    \
  extern "C" __global__ void __launch_bounds__(__VA_ARGS__)                                            \
      svdq_w4a16_gemv_##SUFFIX(const T* x, const uint8_t* qweight, const T* wscales, const T* bias, T* y, \
                               int M, int N, int K) {                                                    \
    w4a16_gemv_body<T, K8>(x, qweight, wscales, bias, y, M, N, K, blockIdx.x * GV_CHANNELS);            \
  }                                                                                                      \
  extern "C" __global__ void __launch_bounds__(__VA_ARGS__)                                            \
      svdq_w4a16_gemv_grouped_##SUFFIX(const T* x, T* y, const long long* table, int L, int M, int K) {   \
    w4a16_gemv_grouped_body<T, K8>(x, y, table, L, M, K);                                                \
  }
SVDQ_GEMV(bf16, __nv_bfloat16, false, GV_THREADS)
SVDQ_GEMV(fp16, __half, false, GV_THREADS)
SVDQ_GEMV(k8_fp16, __half, true, GV_THREADS, 1)
