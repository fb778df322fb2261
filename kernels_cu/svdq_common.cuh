// svdq_common.cuh: device helpers shared by the SVDQuant kernel families.
//
// Everything numeric here follows the contract in gpu/quant/integer.py: IEEE round-to-nearest-even
// fp32 operations written as explicit intrinsics (__fmul_rn, __fdiv_rn, __fadd_rn), which nvcc never
// contracts into FMAs, so the kernels reproduce the PyTorch reference bit for bit where the contract
// asks for it.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

namespace svdq {

// Fragment geometry shared by the prologue (writer) and the GEMMs (readers).
constexpr int kGroup = 64;       // quantization group along K = K extent of one m16n8k64 MMA
constexpr int kTileM = 16;       // rows of one activation fragment tile (MMA M)
constexpr int kTileN = 8;        // rows (output channels) of one weight fragment tile (MMA N)
constexpr int kActWords = 4;     // 32-bit words per lane of an A fragment (16x64 s4)
constexpr int kWgtWords = 2;     // 32-bit words per lane of a B fragment (64x8 s4)
constexpr int kRankChunk = 128;  // rank columns of the down projection one prologue block holds on chip
constexpr int kPadM = 64;        // activation buffers are padded to this many rows (GEMM block M)
constexpr int kPadN = 64;        // repacked weights are padded to this many channels (GEMM block N)

// 16-bit <-> fp32 conversions, overloaded on the storage type.
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

// Two 16-bit values packed into one 32-bit word (low half = first), for 4-byte output stores.
template <typename T> __device__ __forceinline__ uint32_t pack2(float a, float b) {
  T lo = from_f32<T>(a), hi = from_f32<T>(b);
  uint16_t ulo = *reinterpret_cast<uint16_t*>(&lo), uhi = *reinterpret_cast<uint16_t*>(&hi);
  return static_cast<uint32_t>(ulo) | (static_cast<uint32_t>(uhi) << 16);
}

// Inverse of pack2: a 32-bit word holding two 16-bit values (low half first) -> two fp32 values (exact).
template <typename T> __device__ __forceinline__ void unpack2(uint32_t w, float& lo, float& hi);
template <> __device__ __forceinline__ void unpack2<__nv_bfloat16>(uint32_t w, float& lo, float& hi) {
  lo = __uint_as_float(w << 16);  // bf16 is the top half of an fp32: widening is a shift
  hi = __uint_as_float(w & 0xffff0000u);
}
template <> __device__ __forceinline__ void unpack2<__half>(uint32_t w, float& lo, float& hi) {
  lo = __half2float(__ushort_as_half(static_cast<unsigned short>(w & 0xffffu)));
  hi = __half2float(__ushort_as_half(static_cast<unsigned short>(w >> 16)));
}

// N = 4 or 8 consecutive 16-bit values <-> fp32, as one 8- or 16-byte access (the pointer must be aligned
// to N * 2 bytes). Memory-bound kernels use these so each thread moves whole vectors.
template <int N> struct VecWords;
template <> struct VecWords<4> { using type = uint2; };
template <> struct VecWords<8> { using type = uint4; };

template <int N, typename T> __device__ __forceinline__ void load_vec(const T* p, float (&v)[N]) {
  const typename VecWords<N>::type raw = *reinterpret_cast<const typename VecWords<N>::type*>(p);
  const uint32_t* w = reinterpret_cast<const uint32_t*>(&raw);
#pragma unroll
  for (int i = 0; i < N / 2; ++i) unpack2<T>(w[i], v[2 * i], v[2 * i + 1]);
}

template <int N, typename T> __device__ __forceinline__ void store_vec(T* p, const float (&v)[N]) {
  typename VecWords<N>::type raw;
  uint32_t* w = reinterpret_cast<uint32_t*>(&raw);
#pragma unroll
  for (int i = 0; i < N / 2; ++i) w[i] = pack2<T>(v[2 * i], v[2 * i + 1]);
  *reinterpret_cast<typename VecWords<N>::type*>(p) = raw;
}

// Sum over the 32 lanes of a warp by butterfly shuffles: every lane ends with the same value, and the
// order of additions is fixed, so the result is deterministic.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// The contract's symmetric quantizer for one element, given the group's *rounded* scale as fp32.
// q = clamp(rint(x / s), -qmax, qmax) if s > 0 else 0; __fdiv_rn is IEEE division (not x * (1/s)).
__device__ __forceinline__ int quantize_one(float x, float s, int qmax) {
  if (!(s > 0.f)) return 0;
  int q = __float2int_rn(__fdiv_rn(x, s));
  return max(-qmax, min(qmax, q));
}

// tanh-approximated GELU (diffusers' FLUX feed-forward uses approximate="tanh"), in fp32, through the identity
// 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)), u = k0 (x + k1 x^3): one ex2 and one reciprocal on the SFU instead
// of tanhf's ~30 instructions, which made the GEMM epilogue slower than a separate GELU pass. Relative error
// ~1e-6 (no cancellation for negative x, unlike 1 + tanh.approx); large |u| gives x or -0 exactly.
__device__ __forceinline__ float gelu_tanh(float x) {
  const float k0 = 0.7978845608028654f, k1 = 0.044715f;
  const float u = k0 * fmaf(k1 * x, x * x, x);
  return __fdividef(x, 1.f + __expf(-2.f * u));
}

// D = A(16x64 s4, row) * B(64x8 s4, col) + D, s32 accumulators. sm_80+ only (Turing's form is below); on
// sm_75 the body is a trap and launch code picks the m8n8k32 entry points there.
__device__ __forceinline__ void mma_s4_16x8x64(int (&d)[4], const uint4& a, const uint2& b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k64.row.col.s32.s4.s4.s32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])
      : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b.x), "r"(b.y));
#else
  __trap();
#endif
}

// D = A(8x32 s4, row) * B(32x8 s4, col) + D: the only 4-bit MMA shape of Turing (sm_75). Lane (gid, tig)
// holds A row gid, k 8 tig .. 8 tig + 7 (one word), B k 8 tig .. +7 of column gid, D row gid, columns
// 2 tig, 2 tig + 1.
__device__ __forceinline__ void mma_s4_8x8x32(int& d0, int& d1, uint32_t a, uint32_t b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 750
  asm volatile("mma.sync.aligned.m8n8k32.row.col.s32.s4.s4.s32 {%0, %1}, {%2}, {%3}, {%0, %1};\n"
               : "+r"(d0), "+r"(d1)
               : "r"(a), "r"(b));
#else
  __trap();
#endif
}

// mma_s4_16x8x64 from the same fragment registers as four m8n8k32 (any arch from sm_75): the m16n8k64 A
// fragment's words are (row gid, k 0-31), (row gid + 8, k 0-31), (row gid, k 32-63), (row gid + 8, k 32-63),
// each laid out as one m8n8k32 A word, and B's are (k 0-31), (k 32-63); D rows gid / gid + 8 are the two
// m8n8 halves. Integer sums are exact, so D is bit-identical to the m16n8k64 instruction's.
__device__ __forceinline__ void mma_s4_16x8x64_by_8x8x32(int (&d)[4], const uint4& a, const uint2& b) {
  mma_s4_8x8x32(d[0], d[1], a.x, b.x);
  mma_s4_8x8x32(d[0], d[1], a.z, b.y);
  mma_s4_8x8x32(d[2], d[3], a.y, b.x);
  mma_s4_8x8x32(d[2], d[3], a.w, b.y);
}

// Low-rank up projection of one staged chunk of ranks into a warp's m16n8 accumulator fragments:
// acc[i][jn][c] += sum_j lact[row][j] * lup[col][j] with row = row0 + 16 i + gid (+8 for c >= 2) and
// col = col0 + 8 jn + 2 tig (+1 for odd c): the mma C-fragment layout. fp32 FMAs in a fixed order, so the
// result is deterministic. Both GEMM families stage lact/lup the same way ([rows][RCHUNK + 1] fp32).
template <int WM_TILES, int WN_TILES, int RCHUNK, int UNROLL>
__device__ __forceinline__ void lowrank_chunk_fma(float (&acc)[WM_TILES][WN_TILES][4],
                                                  const float (*s_lact)[RCHUNK + 1],
                                                  const float (*s_lup)[RCHUNK + 1], int row0, int col0, int gid,
                                                  int tig) {
#pragma unroll UNROLL
  for (int j = 0; j < RCHUNK; ++j) {
    float av[WM_TILES][2], bv[WN_TILES][2];
#pragma unroll
    for (int i = 0; i < WM_TILES; ++i) {
      av[i][0] = s_lact[row0 + i * 16 + gid][j];
      av[i][1] = s_lact[row0 + i * 16 + gid + 8][j];
    }
#pragma unroll
    for (int jn = 0; jn < WN_TILES; ++jn) {
      bv[jn][0] = s_lup[col0 + jn * 8 + 2 * tig][j];
      bv[jn][1] = s_lup[col0 + jn * 8 + 2 * tig + 1][j];
    }
#pragma unroll
    for (int i = 0; i < WM_TILES; ++i)
#pragma unroll
      for (int jn = 0; jn < WN_TILES; ++jn)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[i][jn][c] = fmaf(av[i][c >> 1], bv[jn][c & 1], acc[i][jn][c]);
  }
}

// cp.async 16-byte copy global -> shared (zero fill when !valid), and its group bookkeeping. sm_80+.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, bool valid) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int n = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(n));
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::);
#endif
}
template <int N> __device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
#endif
}

// The GEMMs' single write of a warp's output fragments: y = acc (+ lr when ADD_LR) + bias, tanh-GELU on the
// columns n >= gelu_from (0: all of them, >= N: none; FLUX's merged QKV+MLP layer GELUs only its MLP part),
// rounded once to 16 bits, stored as column pairs (4-byte stores). Rows row0 + 16 i + gid (+8), columns
// col0 + 8 jn + 2 tig (+1): the mma C-fragment layout. The separate __fadd_rn keep the reference's order.
// GELU = 0: none, 1: all, 2: per column.
template <int GELU, typename T, bool ADD_LR, int WM_TILES, int WN_TILES>
__device__ __forceinline__ void store_output_pairs(T* out, const float (&acc)[WM_TILES][WN_TILES][4],
                                                   const float (&lr)[WM_TILES][WN_TILES][4], const T* bias,
                                                   int gelu_from, int row0, int col0, int M, int N, int gid,
                                                   int tig) {
#pragma unroll
  for (int i = 0; i < WM_TILES; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int m = row0 + i * 16 + gid + 8 * h;
      if (m >= M) continue;
#pragma unroll
      for (int jn = 0; jn < WN_TILES; ++jn) {
        const int n = col0 + jn * 8 + 2 * tig;
        if (n >= N) continue;
        float v[2];
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          float y = acc[i][jn][2 * h + c];
          if (ADD_LR) y = __fadd_rn(y, lr[i][jn][2 * h + c]);
          if (bias != nullptr) y = __fadd_rn(y, to_f32(bias[n + c]));
          if (GELU == 1 || (GELU == 2 && n + c >= gelu_from)) y = gelu_tanh(y);
          v[c] = y;
        }
        *reinterpret_cast<uint32_t*>(out + static_cast<size_t>(m) * N + n) = pack2<T>(v[0], v[1]);
      }
    }
  }
}

template <typename T, bool ADD_LR, int WM_TILES, int WN_TILES>
__device__ __forceinline__ void store_output_tile(T* out, const float (&acc)[WM_TILES][WN_TILES][4],
                                                  const float (&lr)[WM_TILES][WN_TILES][4], const T* bias,
                                                  int gelu_from, int row0, int col0, int M, int N, int gid,
                                                  int tig) {
  // Warp-uniform choice (col0 is the warp's first column), so no per-output test where none is needed.
  if (gelu_from >= col0 + WN_TILES * 8) {
    store_output_pairs<0, T, ADD_LR>(out, acc, lr, bias, gelu_from, row0, col0, M, N, gid, tig);
  } else if (gelu_from <= col0) {
    store_output_pairs<1, T, ADD_LR>(out, acc, lr, bias, gelu_from, row0, col0, M, N, gid, tig);
  } else {
    store_output_pairs<2, T, ADD_LR>(out, acc, lr, bias, gelu_from, row0, col0, M, N, gid, tig);
  }
}

}  // namespace svdq
