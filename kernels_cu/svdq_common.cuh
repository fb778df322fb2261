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
constexpr int kMaxRank = 128;    // largest low-rank branch the kernels hold on chip
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

// The contract's symmetric quantizer for one element, given the group's *rounded* scale as fp32.
// q = clamp(rint(x / s), -qmax, qmax) if s > 0 else 0; __fdiv_rn is IEEE division (not x * (1/s)).
__device__ __forceinline__ int quantize_one(float x, float s, int qmax) {
  if (!(s > 0.f)) return 0;
  int q = __float2int_rn(__fdiv_rn(x, s));
  return max(-qmax, min(qmax, q));
}

// tanh-approximated GELU (diffusers' FLUX feed-forward uses approximate="tanh"), in fp32.
__device__ __forceinline__ float gelu_tanh(float x) {
  const float k0 = 0.7978845608028654f, k1 = 0.044715f;
  return 0.5f * x * (1.f + tanhf(k0 * (x + k1 * x * x * x)));
}

// D = A(16x64 s4, row) * B(64x8 s4, col) + D, s32 accumulators. sm_80+ only: Turing (sm_75) has
// just m8n8k32 for 4-bit, and the dispatcher refuses sm_75, so the body there is a trap.
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

}  // namespace svdq
