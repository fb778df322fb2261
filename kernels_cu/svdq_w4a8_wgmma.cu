// svdq_w4a8_wgmma.cu: the Hopper (sm_90a) SVDQuant linear, W4A8 with FP8 activations on wgmma.
//
//   y[m, n] = sa[m] * sum_g sw[n, g] * (sum_{k in g} qa[m, k] * qw[n, k])      (qa: FP8 E4M3, qw: int4)
//           + sum_j lact[m, j] * lora_up[n, j]                                 (16-bit operands, fp32)
//           + bias[n]          [-> tanh-GELU for n >= gelu_from]                 -> 16-bit, one write
//
// Why FP8 per token, not INT8 per 64-group: an INT8 group scale on *both* operands costs a multiply per
// output element per group on top of the dequantizing FFMA (and an I2F or a magic-number add); at 64-wide
// groups that CUDA-core work exceeds the tensor-core time of the group on Hopper. With one activation
// scale per token, applied once in the epilogue, each 64-group costs exactly one FFMA per output:
// acc = fma(dot_g, sw[n, g], acc). FP8 E4M3 keeps a per-element exponent, which per-token INT8 would not.
//
// Weights: the checkpoint's int4 codes (|c| <= 7) are exact in FP8 E4M3 as *subnormals*: byte (s, 0000,
// mmm) is (-1)^s * mmm * 2^-9. The repack (gpu/kernels/repack.py, ``repack_w4a8_fp8``) stores sign and
// magnitude nibbles so that one AND gives four FP8 bytes and a rotate + AND the next four:
//   word byte j = mag(lo_j) | sign(hi_{j-1 mod 4}) << 3 | mag(hi_j) << 4 | sign(lo_j) << 7
//   lo = w & 0x87878787,  hi = rotr(w, 4) & 0x87878787
// and 2^9 is folded into the per-token scale of the epilogue (exact: a power of two commutes with every
// rounding of the fold, so the result is the one with sw * 512 in the fold). The weights are the wgmma's A operand, read
// from registers, so the output tile is D[channel][token]: per-channel weight scales are per *row* of the
// accumulator fragment (2 scalars per thread per group) and the per-token activation scale is per column.
//
// Tiling: persistent, one block of 384 threads = 3 warpgroups (warp-specialised) per SM walks the 128-channel x
// 128-token tiles (channel tile fastest, tile = blockIdx.x + i * gridDim.x):
//   - warpgroups 0 and 1 consume: each owns 64 channels (wgmma m64n128k32, two per 64-group) and gets 232
//     registers (setmaxnreg); no block-wide barrier in the K loop;
//   - warpgroup 2 produces (40 registers): one thread streams each group's stage with three cp.async.bulk
//     copies (activations 8 KB FP8, weights 4 KB int4, scales 256 B 16-bit: contiguous in global memory by
//     construction, so no tensor maps) into an 8-stage ring guarded by full/empty mbarriers, running on into
//     the next tile while the consumers finish the current one (the next tile's stages are in shared memory
//     when its K loop starts, so the pipeline fill no longer idles the tensor core between tiles; the epilogue
//     still does: H200, 4608-token FLUX shapes +3.7-10%); warps 1-3 stage
//     each tile's low-rank operands with cp.async into the tile region once the consumers release it
//     (lr_full / lr_empty barriers). The region then holds the tile's staged output.
// Each group's dot goes to a fresh accumulator set (tmp0/tmp1 alternate), and while the tensor core works on
// group g the warpgroup folds group g-1 into the fp32 accumulator (wgmma.wait_group 1), so CUDA-core and
// tensor-core work overlap. A-fragment registers are fenced until the wait that covers their wgmma, so the
// allocator cannot reuse them while the tensor core may still read them.
//
// Low-rank up projection: after the K loop, lora_up (A, 64 channels x r) and lact (B, 128 tokens x r), both
// staged in shared memory at the start by producer warps 1-3, go through r/16 bf16/fp16 wgmma m64n128k16 into a fresh
// accumulator set: the branch runs on tensor cores, not on CUDA-core FMAs. A window of up to MAX_WINDOW = 240
// columns fits (2 x 128 x 240 x 2 bytes beside the 8-stage ring: 218 KiB of the 227 KiB), so a rank-32 layer
// carrying a rank-128 LoRA, or a merged layer with such LoRAs, still runs here. Only the block's rank window is
// staged and multiplied (lr_window: per 128-channel tile, the columns outside which its lora_up rows are
// zero; a merged QKV(+MLP) layer's up projection is block-diagonal, so a tile of Q channels needs only Q's
// r columns of the concatenated rank, and the skipped terms are exact zeros). Then
//   y = fma(acc, sa[token] * 512, lowrank) + bias [-> GELU for channels >= gelu_from], rounded once to 16 bits,
// staged in shared memory and written with 16-byte stores. No atomics: deterministic.
//
// Layouts (B = 128):
//   act      uint8 [M_pad/B, K/64, 8192]  per (token tile, group): k-half h (4 KB each) of core matrices
//            (kb, tb) at (kb * 16 + tb) * 128, kb = (k%32)/16, tb = token/8; row token%8, byte k%16
//   ascale   fp32  [M_pad]                per-token scale sa (0 for all-zero and padding rows)
//   wgt      uint8 [N_pad/B, K/64, 4096]  [warpgroup 2][warp 4][lane 32][k-half 2][word 2] x 4 bytes
//   wscale   S     [N_pad/B, K/64, B]     sw in the checkpoint's 16-bit type S (bf16 or fp16; S may differ from T)
//   lact     T     [M, r]                 x @ (lora_down / smooth) (cuBLAS, by the host), r % 16 == 0
//   lora_up  T [N_pad, r], bias T [N_pad] (or null), out T [M, N] row-major, N % 8 == 0
//   lr_window int32 [N_pad/B, 2]          per channel tile (first rank column, count), multiples of 16
#include <type_traits>

#include "svdq_common.cuh"
#include "svdq_wgmma.cuh"

namespace {

constexpr int BM = 128;                               // output channels per block
constexpr int BN = 128;                               // tokens per block (the wgmma N)
constexpr int CONSUMER_WARPS = 8;                     // two warpgroups of wgmma consumers
constexpr int CONSUMER_THREADS = CONSUMER_WARPS * 32;
constexpr int THREADS = CONSUMER_THREADS + 128;       // + one producer warpgroup (one thread issues copies)
constexpr int PRODUCER_REGS = 40, CONSUMER_REGS = 232;  // setmaxnreg split of the 64K-register file
constexpr int LR_THREADS = 96;                        // producer warps 1-3 stage the low-rank operands
// 8 stages ran x1.01-1.04 faster than 12 at the FLUX shapes (H200, same-process A/B, bit-identical; a power of two
// also makes the ring position a mask); 4 stages lost ~10% against 12 (kernels_cu/gemm-stages-ab-h200-2026-11-21.txt).
#ifndef W4A8F_STAGES
#define W4A8F_STAGES 8
#endif
constexpr int STAGES = W4A8F_STAGES;
constexpr int ACT_BYTES = BN * svdq::kGroup;          // 8192
constexpr int WGT_BYTES = BM * svdq::kGroup / 2;      // 4096
constexpr int SW_BYTES = BM * 2;                      // 256: 16-bit scales
constexpr int STAGE_BYTES = ACT_BYTES + WGT_BYTES + SW_BYTES;
constexpr int PIPE_BYTES = STAGES * STAGE_BYTES;
constexpr int BAR_BYTES = (2 * STAGES * 8 + 16 + 127) / 128 * 128;  // full[], empty[], lr_full, lr_empty, padded
constexpr int OUT_PITCH = BM + 8;                     // staged output row, in 16-bit elements
constexpr int MAX_WINDOW = 240;                       // rank columns of one tile's low-rank operands (host: W4A8F_MAX_WINDOW)
static_assert(PIPE_BYTES + BAR_BYTES + 2 * BM * MAX_WINDOW * 2 <= 227 * 1024, "the widest window must fit beside the ring");
static_assert(MAX_WINDOW / 16 == 8 + 7, "the epilogue's two switches cover 8 + 7 steps of 16 columns");
constexpr uint32_t kFp8Mask = 0x87878787u;
constexpr float kFp8SubnormalUnit = 512.f;            // E4M3 byte (s, 0000, mmm) is (-1)^s * mmm / 512
static_assert(STAGE_BYTES % 128 == 0, "stages must keep 128-byte alignment");

// Four 32-bit weight words of one k-half pair -> the two A fragments (k-half 0 and 1) of one group.
__device__ __forceinline__ void widen_weights(const uint4& w, uint32_t (&a)[2][4]) {
  const uint32_t src[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
  for (int h = 0; h < 2; ++h) {
#pragma unroll
    for (int p = 0; p < 2; ++p) {
      const uint32_t v = src[2 * h + p];
      a[h][2 * p] = v & kFp8Mask;
      a[h][2 * p + 1] = __funnelshift_r(v, v, 4) & kFp8Mask;
    }
  }
  // Both halves are complete before the caller's wgmma fence: widening sunk between the two wgmmas of a
  // group made ptxas inject a warpgroup.arrive (C7519) to let the second one read its registers.
  svdq::fence_operands(a);
}

// Issue the two wgmmas of one group into `tmp` (fresh: scale_d = 0 on the first).
__device__ __forceinline__ void issue_group(float (&tmp)[64], const uint32_t (&a)[2][4], const uint8_t* act_stage) {
  svdq::fence_operands(tmp);
  svdq::wgmma_fence();
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const uint64_t desc = svdq::smem_desc(act_stage + h * (ACT_BYTES / 2), BN * 16, 128);
    svdq::wgmma_e4m3_m64n128k32_rs(tmp, a[h], desc, h);
  }
  svdq::wgmma_commit();
}

// acc[row][*] += tmp[row][*] * sw[row]: rows gid (s_lo) and gid + 8 (s_hi) of the warp's 16.
__device__ __forceinline__ void fold_group(float (&acc)[64], float (&tmp)[64], float s_lo, float s_hi) {
  svdq::fence_operands(tmp);
#pragma unroll
  for (int j = 0; j < 16; ++j) {
    acc[4 * j + 0] = fmaf(tmp[4 * j + 0], s_lo, acc[4 * j + 0]);
    acc[4 * j + 1] = fmaf(tmp[4 * j + 1], s_lo, acc[4 * j + 1]);
    acc[4 * j + 2] = fmaf(tmp[4 * j + 2], s_hi, acc[4 * j + 2]);
    acc[4 * j + 3] = fmaf(tmp[4 * j + 3], s_hi, acc[4 * j + 3]);
  }
}

// d = lora_up tile (64 channels of warpgroup wg x 16*STEPS ranks) @ lact tile^T (128 tokens), on bf16/fp16
// wgmma m64n128k16, both operands in shared memory as K-block-major core matrices (see gemm_body).
// ACCUMULATE: add to d (a second run over the columns past the first 128), else overwrite it.
template <typename T, int STEPS, bool ACCUMULATE = false>
__device__ __forceinline__ void lowrank_up(float (&d)[64], const uint8_t* lr_up, const uint8_t* lr_act, int wg) {
  svdq::fence_operands(d);
  svdq::wgmma_fence();
#pragma unroll
  for (int s = 0; s < STEPS; ++s) {
    const uint64_t da = svdq::smem_desc(lr_up + (2 * s * (BM / 8) + wg * 8) * 128, BM * 16, 128);
    const uint64_t db = svdq::smem_desc(lr_act + 2 * s * (BN / 8) * 128, BN * 16, 128);
    svdq::wgmma_m64n128k16_ss<T>(d, da, db, ACCUMULATE || s > 0);
  }
  svdq::wgmma_commit();
  svdq::wgmma_wait<0>();
  svdq::fence_operands(d);
}

// WIDE: windows past 128 rank columns (up to MAX_WINDOW), multiplied in a second run; a separate instantiation
// because the extra epilogue code cost the common case ~1% (H200, same-process A/B over the FLUX shapes).
template <typename T, typename S, bool WIDE>
__device__ void gemm_body(const uint8_t* __restrict__ act, const float* __restrict__ ascale,
                          const uint8_t* __restrict__ wgt, const S* __restrict__ wscale,
                          const T* __restrict__ lact, const T* __restrict__ lora_up,
                          const int* __restrict__ lr_window, const T* __restrict__ bias, T* __restrict__ out,
                          int M, int N, int K, int rank, int gelu_from) {
  extern __shared__ __align__(128) uint8_t smem[];
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + PIPE_BYTES);  // stage landed (tx bytes)
  uint64_t* empty = full + STAGES;                                     // stage released by every consumer thread
  uint64_t* lr_full = empty + STAGES;                                  // a tile's low-rank operands staged
  uint64_t* lr_empty = lr_full + 1;                                    // the tile region is free again
  // The tile region holds the low-rank operands of a tile, then (once they are consumed) its output staging.
  uint8_t* region = smem + PIPE_BYTES + BAR_BYTES;
  const int tid = threadIdx.x, warp_id = tid >> 5, lane = tid & 31;
  const int n_groups = K / svdq::kGroup;
  // Tiles in launch order, channel tile fastest (computed after each role's setmaxnreg: values live across it
  // are spilled).
  auto tile_counts = [&](int& tiles_n, int& n_tiles) {
    tiles_n = (N + BM - 1) / BM;
    n_tiles = tiles_n * ((M + BN - 1) / BN);
  };
  // This tile's rank window [r0, r0 + rw) of the rank columns (row stride of lact and lora_up: rank).
  auto window = [&](int tile_n, int& r0, int& rw) {
    r0 = rank > 0 ? lr_window[2 * tile_n] : 0;
    rw = rank > 0 ? lr_window[2 * tile_n + 1] : 0;
  };
  if (tid == 0) {
    for (int s = 0; s < STAGES; ++s) {
      svdq::mbar_init(&full[s], 1);
      svdq::mbar_init(&empty[s], CONSUMER_THREADS);
    }
    svdq::mbar_init(lr_full, LR_THREADS);
    svdq::mbar_init(lr_empty, CONSUMER_THREADS);
    svdq::mbar_init_fence();
  }
  __syncthreads();

  if (warp_id >= CONSUMER_WARPS) {  // producer warpgroup
    svdq::setmaxnreg_dec<PRODUCER_REGS>();
    int tiles_n, n_tiles;
    tile_counts(tiles_n, n_tiles);
    if (warp_id > CONSUMER_WARPS) {
      // The other three producer warps stage each tile's low-rank operands (cp.async) once the consumers have
      // released the region, so the consumers never have cp.async in flight: with consumer-issued copies pending
      // through the main loop, a stage was refilled under a pending read about once per 10^5 tile-groups (H200).
      const int ptid = tid - CONSUMER_THREADS - 32;
      int i = 0;
      for (int tile = blockIdx.x; tile < n_tiles; tile += gridDim.x, ++i) {
        const int ch0 = (tile % tiles_n) * BM, tok0 = (tile / tiles_n) * BN;
        int r0, rw;
        window(tile % tiles_n, r0, rw);
        svdq::mbar_wait(lr_empty, (i & 1) ^ 1);
        if (rw > 0) {
          uint8_t* lr_up = region;              // [rw/8][BM/8] core matrices of lora_up
          uint8_t* lr_act = region + BM * rw * 2;  // [rw/8][BN/8] core matrices of lact
          const int kchunks = rw / 8;           // 16-byte chunks per row
          for (int c = ptid; c < (BM + BN) * kchunks; c += LR_THREADS) {
            const bool is_up = c < BM * kchunks;
            const int cc = is_up ? c : c - BM * kchunks;
            const int row = cc / kchunks, kb = cc % kchunks;
            uint8_t* dst = (is_up ? lr_up : lr_act) + ((kb * (BM / 8) + row / 8) * 8 + row % 8) * 16;
            const bool valid = is_up || tok0 + row < M;
            const T* src = is_up ? lora_up + static_cast<size_t>(ch0 + row) * rank + r0 + kb * 8
                                 : lact + static_cast<size_t>(valid ? tok0 + row : 0) * rank + r0 + kb * 8;
            svdq::cp_async16(dst, src, valid);
          }
          svdq::cp_async_commit();
          svdq::cp_async_wait<0>();
          svdq::fence_proxy_async_smem();  // generic-proxy writes, read next by wgmma (async proxy)
        }
        svdq::mbar_arrive(lr_full);
      }
      return;
    }
    if (lane == 0) {  // one thread streams every group's stage of every tile through the ring
      int gg = 0;     // stage counter, running on across tiles
      for (int tile = blockIdx.x; tile < n_tiles; tile += gridDim.x) {
        const uint8_t* act_src = act + static_cast<size_t>(tile / tiles_n) * n_groups * ACT_BYTES;
        const uint8_t* wgt_src = wgt + static_cast<size_t>(tile % tiles_n) * n_groups * WGT_BYTES;
        const S* sw_src = wscale + static_cast<size_t>(tile % tiles_n) * n_groups * BM;
#pragma unroll 1
        for (int g = 0; g < n_groups; ++g, ++gg) {
          const int s = gg % STAGES;
          svdq::mbar_wait(&empty[s], ((gg / STAGES) & 1) ^ 1);
          uint8_t* st = smem + s * STAGE_BYTES;
          svdq::mbar_arrive_expect_tx(&full[s], STAGE_BYTES);
          svdq::bulk_copy_g2s(st, act_src + static_cast<size_t>(g) * ACT_BYTES, ACT_BYTES, &full[s]);
          svdq::bulk_copy_g2s(st + ACT_BYTES, wgt_src + static_cast<size_t>(g) * WGT_BYTES, WGT_BYTES, &full[s]);
          svdq::bulk_copy_g2s(st + ACT_BYTES + WGT_BYTES, sw_src + static_cast<size_t>(g) * BM, SW_BYTES, &full[s]);
        }
      }
    }
    return;
  }

  // Consumers: two warpgroups, 64 channels each of every tile.
  svdq::setmaxnreg_inc<CONSUMER_REGS>();
  int tiles_n, n_tiles;
  tile_counts(tiles_n, n_tiles);
  const int wg = tid >> 7, warp = warp_id & 3;
  const int gid = lane >> 2, tig = lane & 3;
  float acc[64], tmp0[64], tmp1[64];
  uint32_t a0[2][4] = {}, a1[2][4] = {};
  const int wrow = wg * 64 + warp * 16 + gid;  // this thread's accumulator rows: wrow, wrow + 8
  const int wgt_off = ACT_BYTES + ((wg * 4 + warp) * 32 + lane) * 16;
  int g0 = 0;  // the ring position of the tile's first group (the producer's running counter)
  auto stage_of = [&](int g) -> const uint8_t* { return smem + ((g0 + g) % STAGES) * STAGE_BYTES; };
  auto acquire = [&](int g) -> const uint8_t* {
    svdq::mbar_wait(&full[(g0 + g) % STAGES], ((g0 + g) / STAGES) & 1);
    return stage_of(g);
  };
  // Group g's wgmma has completed and its scales are folded: hand its stage back to the producer. Every
  // consumer thread arrives for its own reads (count CONSUMER_THREADS), after a fence.proxy.async: the
  // refill is an async-proxy write, and without the fence a refill overtook this stage's reads about once
  // per 10^5 tile-groups on the H200 (seen at N=21504, rank 64; a fence per group cost ~4%, so stages are
  // released in pairs behind one fence).
  auto release = [&](int g) {
    if (g >= 0) svdq::mbar_arrive(&empty[(g0 + g) % STAGES]);
  };
  auto scales = [&](int g) -> const S* {  // g may be -1 (value unused): keep the stage index in range
    return reinterpret_cast<const S*>(smem + ((g0 + g + STAGES) % STAGES) * STAGE_BYTES + ACT_BYTES + WGT_BYTES);
  };
  auto scale = [&](const S* sp, int row) { return svdq::to_f32(sp[row]); };
  auto weights = [&](const uint8_t* st) { return *reinterpret_cast<const uint4*>(st + wgt_off); };

  // One induction variable across tiles (tile, ring position and barrier parity derive from it): with three
  // carried through the K loop, ptxas spilled (acc, tmp0, tmp1 and the A fragments hold 208 of 232 registers).
#pragma unroll 1
  for (int i = 0;; ++i) {
    const int tile = blockIdx.x + i * gridDim.x;
    if (tile >= n_tiles) break;
    g0 = i * n_groups;
#pragma unroll
    for (int j = 0; j < 64; ++j) acc[j] = tmp1[j] = 0.f;
    // Pin the initialisation here: moves sunk between a wgmma and its wait would serialise the pipeline.
    svdq::fence_operands(acc);
    svdq::fence_operands(tmp1);

    // Steady state, branch-free so ptxas keeps the wgmmas asynchronous: issue group g into one accumulator
    // set, wait for group g-1 (wait_group 1) and fold the other set while the tensor core runs. Every wgmma
    // is issued inside the loop (none is in flight on loop entry); the first fold adds tmp1 = 0 with scale 0.
    // Shared-memory reads run one step ahead of their use: group g-1's scales and group g+1's weight words
    // are loaded right after group g's wgmmas are issued, before the wait, so their latency hides behind the
    // tensor core instead of sitting between the wait and the fold (raw words only: widening them into a1
    // before the wait would rewrite registers group g-1's wgmma may still read). H200: +1.5-3.2% per shape.
    int g = 0;
    const uint8_t* st = acquire(0);
    uint4 w_next = weights(st);
#pragma unroll 1
    for (; g + 1 < n_groups; g += 2) {
      widen_weights(w_next, a0);
      issue_group(tmp0, a0, st);
      const S* sp = scales(g - 1);
      const float s1_lo = g > 0 ? scale(sp, wrow) : 0.f, s1_hi = g > 0 ? scale(sp, wrow + 8) : 0.f;
      const uint8_t* st1 = acquire(g + 1);
      w_next = weights(st1);
      svdq::wgmma_wait<1>();
      svdq::fence_operands(a1);  // group g-1 (A = a1) is done: only now may a1's registers be rewritten
      fold_group(acc, tmp1, s1_lo, s1_hi);
      widen_weights(w_next, a1);
      issue_group(tmp1, a1, st1);
      const float s0_lo = scale(scales(g), wrow), s0_hi = scale(scales(g), wrow + 8);
      // The next pair's first stage (clamped at the tile's last group: acquiring a group twice re-reads it).
      st = acquire(min(g + 2, n_groups - 1));
      w_next = weights(st);
      svdq::wgmma_wait<1>();
      svdq::fence_operands(a0);  // group g (A = a0) is done
      fold_group(acc, tmp0, s0_lo, s0_hi);
      svdq::fence_proxy_async_smem();  // one fence per pair of groups (see release)
      release(g - 1);
      release(g);
    }
    // The tile's last one or two groups; every stage is released, since the ring runs on into the next tile.
    if (g < n_groups) {  // odd number of groups: the last one goes through tmp0
      widen_weights(w_next, a0);
      issue_group(tmp0, a0, st);
      const S* sp = scales(g - 1);
      const float s1_lo = g > 0 ? scale(sp, wrow) : 0.f, s1_hi = g > 0 ? scale(sp, wrow + 8) : 0.f;
      svdq::wgmma_wait<1>();
      svdq::fence_operands(a1);
      fold_group(acc, tmp1, s1_lo, s1_hi);
      const float s0_lo = scale(scales(g), wrow), s0_hi = scale(scales(g), wrow + 8);
      svdq::wgmma_wait<0>();
      svdq::fence_operands(a0);
      fold_group(acc, tmp0, s0_lo, s0_hi);
      svdq::fence_proxy_async_smem();
      release(g - 1);
      release(g);
    } else {
      const float s1_lo = scale(scales(g - 1), wrow), s1_hi = scale(scales(g - 1), wrow + 8);
      svdq::wgmma_wait<0>();
      svdq::fence_operands(a1);
      fold_group(acc, tmp1, s1_lo, s1_hi);
      svdq::fence_proxy_async_smem();
      release(g - 1);
    }

    // Low-rank up projection on tensor cores into tmp0 (zero when the window is empty). One straight-line
    // wgmma sequence per window depth (a switch, not a loop with an early exit) keeps ptxas from serialising it.
    // Tile coordinates only now, for the same reason.
    const int ch0 = (tile % tiles_n) * BM, tok0 = (tile / tiles_n) * BN;
    int r0, rw;
    window(tile % tiles_n, r0, rw);
    svdq::mbar_wait(lr_full, i & 1);  // the tile's low-rank operands are in shared memory
    const uint8_t* lr_up = region;
    const uint8_t* lr_act = region + BM * rw * 2;
    switch (rw / 16) {
      case 1: lowrank_up<T, 1>(tmp0, lr_up, lr_act, wg); break;
      case 2: lowrank_up<T, 2>(tmp0, lr_up, lr_act, wg); break;
      case 3: lowrank_up<T, 3>(tmp0, lr_up, lr_act, wg); break;
      case 4: lowrank_up<T, 4>(tmp0, lr_up, lr_act, wg); break;
      case 5: lowrank_up<T, 5>(tmp0, lr_up, lr_act, wg); break;
      case 6: lowrank_up<T, 6>(tmp0, lr_up, lr_act, wg); break;
      case 7: lowrank_up<T, 7>(tmp0, lr_up, lr_act, wg); break;
      case 8: lowrank_up<T, 8>(tmp0, lr_up, lr_act, wg); break;
      default:
        if (WIDE && rw > 0) {  // wider than 128 columns: the first 128, then the rest below
          lowrank_up<T, 8>(tmp0, lr_up, lr_act, wg);
          break;
        }
#pragma unroll
        for (int j = 0; j < 64; ++j) tmp0[j] = 0.f;
    }
    if (WIDE && rw > 128) {  // the columns past the first 128 (8 steps of k16) of a window up to MAX_WINDOW
      const uint8_t* up8 = lr_up + 2 * 8 * (BM / 8) * 128;
      const uint8_t* act8 = lr_act + 2 * 8 * (BN / 8) * 128;
      switch (rw / 16 - 8) {
        case 1: lowrank_up<T, 1, true>(tmp0, up8, act8, wg); break;
        case 2: lowrank_up<T, 2, true>(tmp0, up8, act8, wg); break;
        case 3: lowrank_up<T, 3, true>(tmp0, up8, act8, wg); break;
        case 4: lowrank_up<T, 4, true>(tmp0, up8, act8, wg); break;
        case 5: lowrank_up<T, 5, true>(tmp0, up8, act8, wg); break;
        case 6: lowrank_up<T, 6, true>(tmp0, up8, act8, wg); break;
        default: lowrank_up<T, 7, true>(tmp0, up8, act8, wg);
      }
    }

    // y = fma(acc, sa * 512, lowrank) + bias [-> GELU], staged as [token][channel] 16-bit in the tile region
    // (while the producer already streams the next tile's stages), then 16-byte stores.
    svdq::named_barrier(1, CONSUMER_THREADS);  // both warpgroups are done reading the low-rank operands
    T* stage_out = reinterpret_cast<T*>(region);
    const float b_lo = bias != nullptr ? svdq::to_f32(bias[ch0 + wrow]) : 0.f;
    const float b_hi = bias != nullptr ? svdq::to_f32(bias[ch0 + wrow + 8]) : 0.f;
    // GELU mode per warp (its 16 channels), so the branch is warp-uniform: a per-element test made the
    // compiler predicate the GELU into every output (+3% on K=3072 layers without GELU, H200).
    auto stage_tile = [&](auto gelu_mode) {  // 0: none, 1: all, 2: rows >= gelu_from
      constexpr int MODE = decltype(gelu_mode)::value;
      const bool gelu_lo = MODE == 1 || (MODE == 2 && ch0 + wrow >= gelu_from);
      const bool gelu_hi = MODE == 1 || (MODE == 2 && ch0 + wrow + 8 >= gelu_from);
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        const int t = 8 * j + 2 * tig;
        float2 sa = *reinterpret_cast<const float2*>(ascale + tok0 + t);
        sa.x *= kFp8SubnormalUnit;  // exact
        sa.y *= kFp8SubnormalUnit;
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const int h = q >> 1, c = q & 1;
          float y = fmaf(acc[4 * j + q], c ? sa.y : sa.x, tmp0[4 * j + q]) + (h ? b_hi : b_lo);
          if constexpr (MODE == 1) {
            y = svdq::gelu_tanh(y);
          } else if constexpr (MODE == 2) {
            if (h ? gelu_hi : gelu_lo) y = svdq::gelu_tanh(y);
          }
          stage_out[(t + c) * OUT_PITCH + wrow + 8 * h] = svdq::from_f32<T>(y);
        }
      }
    };
    const int warp_ch0 = ch0 + wrow - gid;
    if (gelu_from >= warp_ch0 + 16) {
      stage_tile(std::integral_constant<int, 0>{});
    } else if (gelu_from <= warp_ch0) {
      stage_tile(std::integral_constant<int, 1>{});
    } else {
      stage_tile(std::integral_constant<int, 2>{});
    }
    svdq::named_barrier(1, CONSUMER_THREADS);
    constexpr int CHUNKS_PER_ROW = BM * 2 / 16;  // 16
    // The store offsets are recomputed per tile: hoisted out of the tile loop they were spilled.
    int store_tid = tid;
    asm volatile("" : "+r"(store_tid));
#pragma unroll
    for (int q = 0; q < BN * CHUNKS_PER_ROW / CONSUMER_THREADS; ++q) {
      const int c = store_tid + q * CONSUMER_THREADS;
      const int row = c / CHUNKS_PER_ROW, col = (c % CHUNKS_PER_ROW) * 8;
      const int m = tok0 + row, n = ch0 + col;
      if (m < M && n < N) {
        *reinterpret_cast<uint4*>(out + static_cast<size_t>(m) * N + n) =
            *reinterpret_cast<const uint4*>(stage_out + row * OUT_PITCH + col);
      }
    }
    svdq::mbar_arrive(lr_empty);  // this thread's reads of the region are done: the next tile may restage it
  }
}

// ---------------------------------------------------------------------------------------------------
// Prologue: smoothing + per-token FP8 E4M3 quantization, written in the GEMM's core-matrix order.
//   xs = x * inv_smooth (fp32), amax = max |xs|, r = 448 / amax, sa = amax / 448 (IEEE divisions),
//   q  = e4m3(xs * r) (round to nearest even, saturating at +-448); rows past M and all-zero rows get
//   q = 0 and sa = 0. The reference is gpu.modules.reference.quantize_fp8_row.
// x rows are ldx elements apart (a column slice of a wider tensor needs no copy); ldx % 8 == 0, x 16-byte aligned.
// A block of ROW_THREADS threads owns one token row at a time, held in registers between the two passes (amax,
// then quantize): thread t holds the 8-column chunks c = t + ROW_THREADS * i, i < MAX_CHUNKS, and writes each
// chunk's 8 codes into its core-matrix row.
//   K <= 4096 (quant_rows_streamed): persistent, 256 threads x 2 chunks, 6 blocks per SM; block b walks rows b,
//     b + gridDim.x, ... and issues its next row's loads before reducing and storing the current one, so the SM
//     keeps reads in flight during the stores. 4608 x 3072: 21.6 us vs 27.8 us for the earlier kernel (a warp per
//     row, two passes with an L2 re-read, 8 rows' codes staged for whole-line stores), 512 x 3072: 6.2 vs 7.8 us,
//     bit-identical (H200, 2026-11-21). The same pipelining did not pay for long rows: the second buffer doubles
//     the registers of a row that is already 24-30 KB (512 x 4 chunks at 2 blocks/SM: x1.12 at K=12288, x0.79 at
//     K=15360; 1024 x 2 at 1 block/SM: x0.78-0.83).
//   K > 4096 (quant_row_block_body): one row per 512-thread block, 4 chunks (K <= 16384); measured against
//     256 x 8 at 4608 rows: 84.7 vs 87.6 us (K=12288), 103.5 vs 114.7 us (K=15360); 1024 x 2 and 128 x 16 were
//     not better, nor were two rows per block with whole 32-byte sectors per warp store (x0.92-1.03; H200,
//     2026-11-21). These run at ~2 TB/s of the ~4.8 available: each block's load, reduction and store phases
//     follow one another.
constexpr int Q_THREADS = 256, Q_MAX_CHUNKS = 2, Q_BLOCKS_PER_SM = 6;  // the host's _W4A8F_Q_* (K <= 4096)
constexpr int Q_LONG_THREADS = 512, Q_LONG_MAX_CHUNKS = 4;

__device__ __forceinline__ uint32_t cvt_e4m3x4(float a, float b, float c, float d) {
  uint16_t lo, hi;
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\n" : "=h"(lo) : "f"(b), "f"(a));
  asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;\n" : "=h"(hi) : "f"(d), "f"(c));
  return static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16);
}

// xs = x * inv_smooth for the 8 columns of chunk c, already loaded.
template <typename T>
__device__ __forceinline__ void smooth8_raw(const uint4& raw, const float* __restrict__ inv_smooth, int c,
                                            float (&f)[8]) {
  const T* v = reinterpret_cast<const T*>(&raw);
  const float4 s0 = __ldg(reinterpret_cast<const float4*>(inv_smooth) + 2 * c);
  const float4 s1 = __ldg(reinterpret_cast<const float4*>(inv_smooth) + 2 * c + 1);
  const float s[8] = {s0.x, s0.y, s0.z, s0.w, s1.x, s1.y, s1.z, s1.w};
#pragma unroll
  for (int j = 0; j < 8; ++j) f[j] = __fmul_rn(svdq::to_f32(v[j]), s[j]);
}

// Byte offset of (row, k) with k % 16 == 0 in the activation layout: the start of a 16-byte core-matrix row.
__device__ __forceinline__ size_t act_offset(int row, int k, int n_groups) {
  const int tile = row / BN, tb = (row % BN) / 8, r8 = row % 8;
  const int g = k / svdq::kGroup, h = (k % 64) / 32, kb = (k % 32) / 16;
  return (static_cast<size_t>(tile) * n_groups + g) * ACT_BYTES + h * (ACT_BYTES / 2) + (kb * (BN / 8) + tb) * 128 +
         r8 * 16;
}

// One token row: thread t loads chunks c = t + ROW_THREADS * i (zeros past the row and for rows >= M).
template <typename T, int ROW_THREADS, int MAX_CHUNKS>
__device__ __forceinline__ void load_row_chunks(const T* __restrict__ x, int row, int M, int chunks, int ldx,
                                                uint4 (&raw)[MAX_CHUNKS]) {
  const bool live = row < M;
  const uint4* src = reinterpret_cast<const uint4*>(x + static_cast<size_t>(live ? row : 0) * ldx);
#pragma unroll
  for (int i = 0; i < MAX_CHUNKS; ++i) {
    const int c = threadIdx.x + i * ROW_THREADS;
    raw[i] = c < chunks && live ? __ldg(src + c) : make_uint4(0u, 0u, 0u, 0u);
  }
}

// amax of the row over the block (one __syncthreads, through s_max [ROW_THREADS / 32]), then its scale and codes.
template <typename T, int ROW_THREADS, int MAX_CHUNKS>
__device__ __forceinline__ void quantize_row_chunks(const uint4 (&raw)[MAX_CHUNKS],
                                                    const float* __restrict__ inv_smooth, uint8_t* __restrict__ act,
                                                    float* __restrict__ ascale, float* s_max, int row, int M,
                                                    int chunks, int n_groups) {
  const int t = threadIdx.x;
  const bool live = row < M;
  float amax = 0.f;
#pragma unroll
  for (int i = 0; i < MAX_CHUNKS; ++i) {
    const int c = t + i * ROW_THREADS;
    if (c < chunks && live) {
      float f[8];
      smooth8_raw<T>(raw[i], inv_smooth, c, f);
#pragma unroll
      for (int j = 0; j < 8; ++j) amax = fmaxf(amax, fabsf(f[j]));
    }
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, off));
  if ((t & 31) == 0) s_max[t >> 5] = amax;
  __syncthreads();
#pragma unroll
  for (int w = 0; w < ROW_THREADS / 32; ++w) amax = fmaxf(amax, s_max[w]);
  const bool nonzero = amax > 0.f;
  const float r = nonzero ? __fdiv_rn(448.f, amax) : 0.f;
  if (t == 0) ascale[row] = nonzero ? __fdiv_rn(amax, 448.f) : 0.f;
#pragma unroll
  for (int i = 0; i < MAX_CHUNKS; ++i) {
    const int c = t + i * ROW_THREADS;
    if (c >= chunks) continue;
    uint2 q = make_uint2(0u, 0u);
    if (live && nonzero) {
      float f[8];
      smooth8_raw<T>(raw[i], inv_smooth, c, f);
#pragma unroll
      for (int j = 0; j < 8; ++j) f[j] = __fmul_rn(f[j], r);
      q.x = cvt_e4m3x4(f[0], f[1], f[2], f[3]);
      q.y = cvt_e4m3x4(f[4], f[5], f[6], f[7]);
    }
    const int k = 8 * c;
    *reinterpret_cast<uint2*>(act + act_offset(row, k - k % 16, n_groups) + k % 16) = q;
  }
}

// Row blockIdx.x (grid = M_pad).
template <typename T, int ROW_THREADS, int MAX_CHUNKS>
__device__ void quant_row_block_body(const T* __restrict__ x, const float* __restrict__ inv_smooth,
                                     uint8_t* __restrict__ act, float* __restrict__ ascale, int M, int K, int ldx) {
  __shared__ float s_max[ROW_THREADS / 32];
  uint4 raw[MAX_CHUNKS];
  load_row_chunks<T, ROW_THREADS, MAX_CHUNKS>(x, blockIdx.x, M, K / 8, ldx, raw);
  quantize_row_chunks<T, ROW_THREADS, MAX_CHUNKS>(raw, inv_smooth, act, ascale, s_max, blockIdx.x, M, K / 8,
                                                  K / svdq::kGroup);
}

// Rows blockIdx.x, blockIdx.x + gridDim.x, ... < M_pad = M rounded up to BN, each row's loads issued before the
// previous row is reduced and stored (any grid size).
template <typename T, int ROW_THREADS, int MAX_CHUNKS>
__device__ void quant_rows_streamed(const T* __restrict__ x, const float* __restrict__ inv_smooth,
                                    uint8_t* __restrict__ act, float* __restrict__ ascale, int M, int K, int ldx) {
  __shared__ float s_max[2][ROW_THREADS / 32];  // two: a row's reads of one never race the next row's writes
  const int chunks = K / 8, n_groups = K / svdq::kGroup, m_pad = (M + BN - 1) / BN * BN;
  uint4 a[MAX_CHUNKS], b[MAX_CHUNKS];
  int row = blockIdx.x;
  if (row >= m_pad) return;
  load_row_chunks<T, ROW_THREADS, MAX_CHUNKS>(x, row, M, chunks, ldx, a);
  // Two rows per trip, so the buffers swap roles without register copies.
  while (true) {
    const int row_b = row + gridDim.x;
    if (row_b < m_pad) load_row_chunks<T, ROW_THREADS, MAX_CHUNKS>(x, row_b, M, chunks, ldx, b);
    quantize_row_chunks<T, ROW_THREADS, MAX_CHUNKS>(a, inv_smooth, act, ascale, s_max[0], row, M, chunks, n_groups);
    if (row_b >= m_pad) break;
    const int row_a = row_b + gridDim.x;
    if (row_a < m_pad) load_row_chunks<T, ROW_THREADS, MAX_CHUNKS>(x, row_a, M, chunks, ldx, a);
    quantize_row_chunks<T, ROW_THREADS, MAX_CHUNKS>(b, inv_smooth, act, ascale, s_max[1], row_b, M, chunks, n_groups);
    if (row_a >= m_pad) break;
    row = row_a;
  }
}

}  // namespace

// Entry points: svdq_w4a8f_gemm_{T} reads scales of the output's type, svdq_w4a8f_gemm_xs_{T} of the other one
// (a bf16 checkpoint run in fp16, or the reverse).
// svdq_w4a8f_gemm_wide_* take windows up to MAX_WINDOW columns, the others up to 128.
#define SVDQ_W4A8F_GEMM(NAME, T, S, WIDE)                                                                        \
  extern "C" __global__ void __launch_bounds__(THREADS, 1)                                                       \
      NAME(const uint8_t* act, const float* ascale, const uint8_t* wgt, const S* wscale, const T* lact,         \
           const T* lora_up, const int* lr_window, const T* bias, T* out, int M, int N, int K, int rank,         \
           int gelu_from) {                                                                                     \
    gemm_body<T, S, WIDE>(act, ascale, wgt, wscale, lact, lora_up, lr_window, bias, out, M, N, K, rank,         \
                          gelu_from);                                                                           \
  }
SVDQ_W4A8F_GEMM(svdq_w4a8f_gemm_bf16, __nv_bfloat16, __nv_bfloat16, false)
SVDQ_W4A8F_GEMM(svdq_w4a8f_gemm_fp16, __half, __half, false)
SVDQ_W4A8F_GEMM(svdq_w4a8f_gemm_xs_bf16, __nv_bfloat16, __half, false)
SVDQ_W4A8F_GEMM(svdq_w4a8f_gemm_xs_fp16, __half, __nv_bfloat16, false)
SVDQ_W4A8F_GEMM(svdq_w4a8f_gemm_wide_bf16, __nv_bfloat16, __nv_bfloat16, true)
SVDQ_W4A8F_GEMM(svdq_w4a8f_gemm_wide_fp16, __half, __half, true)
SVDQ_W4A8F_GEMM(svdq_w4a8f_gemm_wide_xs_bf16, __nv_bfloat16, __half, true)
SVDQ_W4A8F_GEMM(svdq_w4a8f_gemm_wide_xs_fp16, __half, __nv_bfloat16, true)
extern "C" __global__ void __launch_bounds__(Q_LONG_THREADS)
svdq_w4a8f_quant_long_bf16(const __nv_bfloat16* x, const float* inv_smooth, uint8_t* act, float* ascale,
                           int M, int K, int ldx) {
  quant_row_block_body<__nv_bfloat16, Q_LONG_THREADS, Q_LONG_MAX_CHUNKS>(x, inv_smooth, act, ascale, M, K, ldx);
}
extern "C" __global__ void __launch_bounds__(Q_LONG_THREADS)
svdq_w4a8f_quant_long_fp16(const __half* x, const float* inv_smooth, uint8_t* act, float* ascale,
                           int M, int K, int ldx) {
  quant_row_block_body<__half, Q_LONG_THREADS, Q_LONG_MAX_CHUNKS>(x, inv_smooth, act, ascale, M, K, ldx);
}
extern "C" __global__ void __launch_bounds__(Q_THREADS, Q_BLOCKS_PER_SM)
svdq_w4a8f_quant_bf16(const __nv_bfloat16* x, const float* inv_smooth, uint8_t* act, float* ascale,
                      int M, int K, int ldx) {
  quant_rows_streamed<__nv_bfloat16, Q_THREADS, Q_MAX_CHUNKS>(x, inv_smooth, act, ascale, M, K, ldx);
}
extern "C" __global__ void __launch_bounds__(Q_THREADS, Q_BLOCKS_PER_SM - 1)  // 6: 4 bytes of spill in fp16
svdq_w4a8f_quant_fp16(const __half* x, const float* inv_smooth, uint8_t* act, float* ascale,
                      int M, int K, int ldx) {
  quant_rows_streamed<__half, Q_THREADS, Q_MAX_CHUNKS>(x, inv_smooth, act, ascale, M, K, ldx);
}
