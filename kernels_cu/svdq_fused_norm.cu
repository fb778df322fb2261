// svdq_fused_norm.cu: the elementwise / normalization work of FLUX.1's transformer blocks, fused so that
// every tensor is read once and written once (reference numerics: gpu/modules/fused_ops.py).
//
// 1. layernorm_modulate   y = LayerNorm_noaffine(x) * (1 + scale[b]) + shift[b]
//    (AdaLayerNormZero / AdaLayerNormZeroSingle's norm + modulation, and the double blocks' norm2 + MLP
//    modulation). x, y: T [B, S, C] row-major; shift, scale: T [B, C] rows `mod_stride` elements apart, so
//    the caller passes chunks of the modulation GEMV's output [B, 6C] without copying them.
//    Tiling: one block per token row; each thread holds up to LN_VECS 8-element (16-byte) vectors of the
//    row in registers (blockDim = C/8/LN_VECS rounded up to a warp, at most 1024: C <= 16384). Mean and
//    biased variance are two fp32 block reductions (warp butterflies, then the per-warp partials summed in
//    warp order by every thread): two-pass from registers, so x is read once and the result is
//    deterministic. Modulation in fp32, one rounding to T.
//
// 2. gate_residual        out = residual + gate[b] * y      (fp32: product, then sum, each IEEE-rounded)
//    residual, y, out: T [B, S, C] row-major, gate: T [B, C] rows `gate_stride` apart. `out` may be
//    `residual` (in place): each thread reads its 8 elements before writing them. fp16 results saturate at
//    +-65504 (FLUX's clip) with NaN kept. grid (ceil(S*C/8 / 256), B), one 16-byte vector per thread.
//
// 3. qk_norm_rope         the attention prologue of FluxAttnProcessor, for head dim D = 128:
//    qkv rows (T, [.., >= 3*H*D] with row/batch strides, so a slice of a wider projection works) ->
//    q, k: RMSNorm per head (fp32 sum of squares, * rsqrt(mean + eps), * weight), then the RoPE rotation
//    of diffusers' apply_rotary_emb(use_real=True, use_real_unbind_dim=-1):
//        out[2i] = x[2i] cos[2i] - x[2i+1] sin[2i],  out[2i+1] = x[2i+1] cos[2i+1] + x[2i] sin[2i+1]
//    (each product and the sum IEEE-rounded, the reference's order); v copied unless its pointer is null.
//    Outputs q, k, v: T [B, S, H, D] contiguous (token-major). The host hands them to
//    scaled_dot_product_attention as [B, H, S, D] views, so attention writes its output token-major too and
//    the output projection reads it with no transpose copy. Two input streams: rows
//    s < S_a come from qkv_a (with norm weights *_a), rows s >= S_a from qkv_b (weights *_b); that is
//    FLUX's double blocks (text stream first) writing the concatenated sequence with no torch.cat, and the
//    single blocks with S_b = 0. cos/sin: fp32 [S_a + S_b, D].
//    Tiling: one block (8 warps) per token; a warp handles one head vector of 128 values at a time, 4 per
//    lane (8-byte loads and stores: each warp access is one contiguous 256-byte run); the lane's cos/sin and
//    norm weights are loaded once per token. The RMS sum is a warp butterfly (deterministic).
//
// No atomics, no shared-memory races: every output element is produced by one thread in a fixed order.
// All kernels are plain fp32 CUDA-core code and run on every architecture CI builds (sm_75+).
#include "svdq_common.cuh"

namespace {

constexpr int LN_VECS = 2;          // 8-element vectors per thread in layernorm_modulate
constexpr int LN_MAX_THREADS = 1024;
constexpr int GR_THREADS = 256;     // gate_residual
constexpr int QK_THREADS = 256;     // qk_norm_rope: 8 warps per token
constexpr int QK_HEAD_DIM = 128;
constexpr int QK_PER_LANE = QK_HEAD_DIM / 32;

// fp16 saturates at its largest finite value (NaN stays NaN: comparisons with NaN are false); bf16 has
// fp32's range and is left alone.
template <typename T> __device__ __forceinline__ float saturate(float v) { return v; }
template <> __device__ __forceinline__ float saturate<__half>(float v) {
  return v > 65504.f ? 65504.f : (v < -65504.f ? -65504.f : v);
}

// Sum of `v` over the block, the same value in every thread. `red` holds one partial per warp; the
// partials are added in warp order, so the result does not depend on scheduling.
__device__ __forceinline__ float block_sum(float v, float* red) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = (blockDim.x + 31) >> 5;
  v = svdq::warp_sum(v);
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < n_warps; ++w) total += red[w];
  return total;
}

template <typename T>
__device__ void layernorm_modulate_body(const T* __restrict__ x, const T* __restrict__ shift,
                                        const T* __restrict__ scale, T* __restrict__ y, int S, int C,
                                        int mod_stride, float eps) {
  __shared__ float red_mean[LN_MAX_THREADS / 32], red_var[LN_MAX_THREADS / 32];  // separate: no 2nd sync
  const int row = blockIdx.x, b = row / S, n_vec = C / 8;
  const T* xr = x + static_cast<size_t>(row) * C;

  float v[LN_VECS][8];
  float sum = 0.f;
#pragma unroll
  for (int i = 0; i < LN_VECS; ++i) {
    const int vec = threadIdx.x + i * blockDim.x;
    if (vec < n_vec) {
      svdq::load_vec<8>(xr + vec * 8, v[i]);
#pragma unroll
      for (int j = 0; j < 8; ++j) sum += v[i][j];
    }
  }
  const float mean = __fdiv_rn(block_sum(sum, red_mean), static_cast<float>(C));
  float sq = 0.f;
#pragma unroll
  for (int i = 0; i < LN_VECS; ++i) {
    if (threadIdx.x + i * blockDim.x < n_vec) {
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const float d = v[i][j] - mean;
        sq = fmaf(d, d, sq);
      }
    }
  }
  const float var = __fdiv_rn(block_sum(sq, red_var), static_cast<float>(C));
  const float rstd = rsqrtf(var + eps);

  const T* sh = shift + static_cast<size_t>(b) * mod_stride;
  const T* sc = scale + static_cast<size_t>(b) * mod_stride;
  T* yr = y + static_cast<size_t>(row) * C;
#pragma unroll
  for (int i = 0; i < LN_VECS; ++i) {
    const int vec = threadIdx.x + i * blockDim.x;
    if (vec < n_vec) {
      float fs[8], fc[8], o[8];
      svdq::load_vec<8>(sh + vec * 8, fs);
      svdq::load_vec<8>(sc + vec * 8, fc);
#pragma unroll
      for (int j = 0; j < 8; ++j) o[j] = (v[i][j] - mean) * rstd * (1.f + fc[j]) + fs[j];
      svdq::store_vec<8>(yr + vec * 8, o);
    }
  }
}

// residual and out may alias (in-place update), so neither is __restrict__.
template <typename T>
__device__ void gate_residual_body(const T* residual, const T* __restrict__ gate, const T* __restrict__ y,
                                   T* out, int vec_per_batch, int C, int gate_stride) {
  const int vec = blockIdx.x * blockDim.x + threadIdx.x;
  if (vec >= vec_per_batch) return;
  const int b = blockIdx.y;
  const size_t e = (static_cast<size_t>(b) * vec_per_batch + vec) * 8;
  const int c = (vec % (C / 8)) * 8;
  float r[8], g[8], v[8], o[8];
  svdq::load_vec<8>(residual + e, r);
  svdq::load_vec<8>(y + e, v);
  svdq::load_vec<8>(gate + static_cast<size_t>(b) * gate_stride + c, g);
#pragma unroll
  for (int j = 0; j < 8; ++j) o[j] = saturate<T>(__fadd_rn(r[j], __fmul_rn(g[j], v[j])));
  svdq::store_vec<8>(out + e, o);
}

// One 128-wide head vector held 4 values per lane: RMSNorm (weights w) then the rotation (cos c, sin s),
// in the reference's order: (x * rstd) * w, then x * cos + rot(x) * sin.
__device__ __forceinline__ void rms_rope(float (&x)[QK_PER_LANE], const float (&w)[QK_PER_LANE],
                                         const float (&c)[QK_PER_LANE], const float (&s)[QK_PER_LANE],
                                         float eps) {
  float ss = 0.f;
#pragma unroll
  for (int j = 0; j < QK_PER_LANE; ++j) ss = fmaf(x[j], x[j], ss);
  const float rstd = rsqrtf(__fmul_rn(svdq::warp_sum(ss), 1.f / QK_HEAD_DIM) + eps);  // mean: exact /128
  float n[QK_PER_LANE];
#pragma unroll
  for (int j = 0; j < QK_PER_LANE; ++j) n[j] = __fmul_rn(__fmul_rn(x[j], rstd), w[j]);
#pragma unroll
  for (int j = 0; j < QK_PER_LANE; j += 2) {  // pairs (2i, 2i+1) lie inside one lane
    x[j] = __fadd_rn(__fmul_rn(n[j], c[j]), __fmul_rn(-n[j + 1], s[j]));
    x[j + 1] = __fadd_rn(__fmul_rn(n[j + 1], c[j + 1]), __fmul_rn(n[j], s[j + 1]));
  }
}

template <typename T>
__device__ void qk_norm_rope_body(const T* __restrict__ qkv_a, const T* __restrict__ qkv_b,
                                  const T* __restrict__ wq_a, const T* __restrict__ wk_a,
                                  const T* __restrict__ wq_b, const T* __restrict__ wk_b,
                                  const float* __restrict__ rope_cos, const float* __restrict__ rope_sin,
                                  T* __restrict__ q, T* __restrict__ k, T* __restrict__ v, int H, int S_a,
                                  int S_b, long long batch_stride_a, int row_stride_a, long long batch_stride_b,
                                  int row_stride_b, float eps) {
  const int S = S_a + S_b;
  const int token = blockIdx.x, b = token / S, s = token % S;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, d0 = lane * QK_PER_LANE;
  const bool first = s < S_a;
  const T* src = first ? qkv_a + b * batch_stride_a + static_cast<long long>(s) * row_stride_a
                       : qkv_b + b * batch_stride_b + static_cast<long long>(s - S_a) * row_stride_b;
  float wq[QK_PER_LANE], wk[QK_PER_LANE], c[QK_PER_LANE], sn[QK_PER_LANE];
  svdq::load_vec<QK_PER_LANE>((first ? wq_a : wq_b) + d0, wq);
  svdq::load_vec<QK_PER_LANE>((first ? wk_a : wk_b) + d0, wk);
  const float4 c4 = *reinterpret_cast<const float4*>(rope_cos + static_cast<size_t>(s) * QK_HEAD_DIM + d0);
  const float4 s4 = *reinterpret_cast<const float4*>(rope_sin + static_cast<size_t>(s) * QK_HEAD_DIM + d0);
  c[0] = c4.x, c[1] = c4.y, c[2] = c4.z, c[3] = c4.w;
  sn[0] = s4.x, sn[1] = s4.y, sn[2] = s4.z, sn[3] = s4.w;

  // Head vectors of this token: 0..H-1 are q, H..2H-1 k, 2H..3H-1 v (the projection's feature order);
  // without a v output the caller reads v in place from qkv.
  const int head_vectors = (v == nullptr ? 2 : 3) * H;
  for (int hv = warp; hv < head_vectors; hv += QK_THREADS / 32) {
    const int which = hv / H, h = hv - which * H;
    float x[QK_PER_LANE];
    svdq::load_vec<QK_PER_LANE>(src + static_cast<size_t>(hv) * QK_HEAD_DIM + d0, x);
    if (which < 2) {
      float w[QK_PER_LANE];  // selected element by element: picking a whole array by pointer would put
#pragma unroll                // wq/wk in local memory
      for (int j = 0; j < QK_PER_LANE; ++j) w[j] = which == 0 ? wq[j] : wk[j];
      rms_rope(x, w, c, sn, eps);
    }
    T* dst = which == 0 ? q : (which == 1 ? k : v);
    svdq::store_vec<QK_PER_LANE>(dst + ((static_cast<size_t>(b) * S + s) * H + h) * QK_HEAD_DIM + d0, x);
  }
}

}  // namespace

// grid: (B*S), block: min(1024, round_up(ceil(C/8 / LN_VECS), 32)); C % 8 == 0, C <= 16384;
// x, y, shift, scale 16-byte aligned, mod_stride % 8 == 0.
#define SVDQ_LN(SUFFIX, T)                                                                                  \
  extern "C" __global__ void __launch_bounds__(LN_MAX_THREADS)                                              \
      svdq_layernorm_modulate_##SUFFIX(const T* x, const T* shift, const T* scale, T* y, int S, int C,      \
                                       int mod_stride, float eps) {                                         \
    layernorm_modulate_body<T>(x, shift, scale, y, S, C, mod_stride, eps);                                  \
  }
SVDQ_LN(bf16, __nv_bfloat16)
SVDQ_LN(fp16, __half)

// grid: (ceil(S*C/8 / 256), B), block: 256; C % 8 == 0; all pointers 16-byte aligned, gate_stride % 8 == 0.
#define SVDQ_GR(SUFFIX, T)                                                                                  \
  extern "C" __global__ void __launch_bounds__(GR_THREADS)                                                  \
      svdq_gate_residual_##SUFFIX(const T* residual, const T* gate, const T* y, T* out, int vec_per_batch,  \
                                  int C, int gate_stride) {                                                 \
    gate_residual_body<T>(residual, gate, y, out, vec_per_batch, C, gate_stride);                           \
  }
SVDQ_GR(bf16, __nv_bfloat16)
SVDQ_GR(fp16, __half)

// grid: (B * (S_a + S_b)), block: 256; D = 128; qkv rows 8-byte aligned; qkv_b/w*_b unused when S_b = 0;
// v may be null (v not written).
#define SVDQ_QK(SUFFIX, T)                                                                                  \
  extern "C" __global__ void __launch_bounds__(QK_THREADS)                                                  \
      svdq_qk_norm_rope_##SUFFIX(const T* qkv_a, const T* qkv_b, const T* wq_a, const T* wk_a,              \
                                 const T* wq_b, const T* wk_b, const float* rope_cos, const float* rope_sin, \
                                 T* q, T* k, T* v, int H, int S_a, int S_b, long long batch_stride_a,       \
                                 int row_stride_a, long long batch_stride_b, int row_stride_b, float eps) {  \
    qk_norm_rope_body<T>(qkv_a, qkv_b, wq_a, wk_a, wq_b, wk_b, rope_cos, rope_sin, q, k, v, H, S_a, S_b,     \
                         batch_stride_a, row_stride_a, batch_stride_b, row_stride_b, eps);                  \
  }
SVDQ_QK(bf16, __nv_bfloat16)
SVDQ_QK(fp16, __half)
