// svdq_wgmma.cuh: Hopper (sm_90a) warpgroup MMA helpers: shared-memory matrix descriptors, the wgmma
// fences, and the two wgmma shapes the W4A8 FP8 kernel uses. Compiled to a trap on every other target
// (the dispatcher only runs these kernels on sm_90; CI compiles the family for sm_90a).
//
// Shared-memory operands use the no-swizzle ("interleaved") K-major canonical layout: a core matrix is 8
// rows x 16 bytes stored as 128 contiguous bytes; LBO is the byte distance between core matrices adjacent
// along K, SBO between core matrices adjacent along M/N. Writers in this repository lay data out so that
// one wgmma operand is a dense array of core matrices, K-block-major: offset = (kb * ROWS/8 + rb) * 128,
// i.e. LBO = ROWS * 16 and SBO = 128.
//
// Accumulator fragment of an m64nN f32 wgmma (thread t of the warpgroup, warp w = t/32, lane l):
//   d[4j + 2h + c] = D[16w + l/4 + 8h][8j + 2(l%4) + c]
// Register fragment of an 8-bit A (m64k32): a[2q + h] holds the 4 bytes
//   A[16w + l/4 + 8h][16q + 4(l%4) + 0..3]   (byte i = element i)
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#include <type_traits>

namespace svdq {

// 64-bit wgmma matrix descriptor: start address, LBO and SBO in 16-byte units, no swizzle.
__device__ __forceinline__ uint64_t smem_desc(const void* p, uint32_t lbo, uint32_t sbo) {
  const uint64_t addr = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  return ((addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>((lbo & 0x3FFFF) >> 4) << 16) |
         (static_cast<uint64_t>((sbo & 0x3FFFF) >> 4) << 32);
}

__device__ __forceinline__ void wgmma_fence() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void wgmma_wait() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
// Generic-proxy shared-memory writes (cp.async, st.shared) must be fenced before wgmma (async proxy)
// reads them.
__device__ __forceinline__ void fence_proxy_async_smem() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}
// mbarrier-based producer/consumer pipeline (shared::cta addresses as 32-bit integers).
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(count) : "memory");
#endif
}
// Makes barrier initialisation visible to the async proxy (the bulk-copy unit that completes transactions
// on them); without it a copy can signal a barrier whose init it has not seen.
__device__ __forceinline__ void mbar_init_fence() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(smem_addr(bar)) : "memory");
#endif
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint64_t* bar, uint32_t bytes) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(smem_addr(bar)), "r"(bytes)
               : "memory");
#endif
}
// Blocks until the barrier's phase with this parity has completed (a fresh barrier passes parity 1).
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(smem_addr(bar)), "r"(parity)
        : "memory");
  } while (!done);
#endif
}
// Bulk (non-tensor) async copy global -> shared of `bytes` (multiple of 16, 16-byte aligned), completing
// as transaction bytes on `bar`.
__device__ __forceinline__ void bulk_copy_g2s(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
          smem_addr(dst)),
      "l"(src), "r"(bytes), "r"(smem_addr(bar))
      : "memory");
#endif
}
// Per-warpgroup register budget (all threads of the warpgroup execute it): producers give registers
// back, consumers take them.
template <int N> __device__ __forceinline__ void setmaxnreg_dec() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}
template <int N> __device__ __forceinline__ void setmaxnreg_inc() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}
// Named barrier over `threads` threads (a multiple of 32), id 1..15 (0 is __syncthreads).
__device__ __forceinline__ void named_barrier(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Keeps the compiler from moving reads/writes of accumulator registers across wgmma fences and waits.
template <int N> __device__ __forceinline__ void fence_operands(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
// The same for the A fragment of a register-sourced wgmma: the tensor core may read A after issue, so the
// registers must stay allocated (not reused for the next fragment) until a wait covers that wgmma. Call it
// after that wait.
template <int H, int N> __device__ __forceinline__ void fence_operands(uint32_t (&a)[H][N]) {
#pragma unroll
  for (int h = 0; h < H; ++h)
#pragma unroll
    for (int i = 0; i < N; ++i) asm volatile("" : "+r"(a[h][i])::"memory");
}

// The 64 fp32 accumulator registers of an m64n128 wgmma, as asm operands %0..%63 (outputs, read and written).
#define SVDQ_ACC64_REGS                                                                  \
  "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                       \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                 \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                 \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
#define SVDQ_ACC64_OUTS(d)                                                                                   \
  "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), \
  "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), \
  "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), \
  "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), \
  "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), \
  "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), \
  "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), \
  "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])

// D[64x128] (+)= A[64x32 e4m3, registers] * B[32x128 e4m3, smem desc]; scale_d = 0 overwrites D.
__device__ __forceinline__ void wgmma_e4m3_m64n128k32_rs(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b,
                                                          int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
               "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3 " SVDQ_ACC64_REGS
               "{%64, %65, %66, %67}, %68, p, 1, 1;\n}\n"
               : SVDQ_ACC64_OUTS(d)
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
#else
  __trap();
#endif
}

// D[64x128] (+)= A[64x16 T, smem desc] * B[16x128 T, smem desc], both K-major; T = __nv_bfloat16 or __half.
template <typename T>
__device__ __forceinline__ void wgmma_m64n128k16_ss(float (&d)[64], uint64_t desc_a, uint64_t desc_b, int scale_d) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  if constexpr (std::is_same<T, __nv_bfloat16>::value) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 " SVDQ_ACC64_REGS
                 "%64, %65, p, 1, 1, 0, 0;\n}\n"
                 : SVDQ_ACC64_OUTS(d)
                 : "l"(desc_a), "l"(desc_b), "r"(scale_d));
  } else {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 " SVDQ_ACC64_REGS
                 "%64, %65, p, 1, 1, 0, 0;\n}\n"
                 : SVDQ_ACC64_OUTS(d)
                 : "l"(desc_a), "l"(desc_b), "r"(scale_d));
  }
#else
  __trap();
#endif
}

}  // namespace svdq
