"""Small-shape runs of every kernel family (INT4 W4A4; on Hopper the INT8 W4A8 and the FP8 wgmma paths with
both prologues; the FLUX block kernels and the W4A16 GEMV; the Turing forms of the INT4 GEMM and the GEMV), for
compute-sanitizer (memcheck / racecheck / initcheck / synccheck)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernel_cases import random_layer, random_x  # noqa: E402

from gpu.kernels import launch, mma_forms  # noqa: E402
from gpu.kernels.launch import quantize_act_int8, svdq_linear_forward, svdq_linear_forward_w4a8, w4a8_gemm  # noqa: E402
from gpu.kernels.repack import packed_for, packed_w4a8f_for  # noqa: E402

gen = torch.Generator().manual_seed(1)
for m, k, n, rank, dtype in [(1, 64, 8, 16, torch.bfloat16), (7, 192, 136, 32, torch.float16),
                             (70, 320, 200, 128, torch.bfloat16), (65, 128, 64, 0, torch.bfloat16),
                             (33, 192, 136, 272, torch.float16)]:  # 272: three prologue blocks per row
    layer = random_layer(k, n, rank, dtype, gen, bias=rank != 0)
    y = svdq_linear_forward(random_x(m, k, dtype, gen), packed_for(layer))
    for gelu_from in (0, n // 2):
        svdq_linear_forward(random_x(m, k, dtype, gen), packed_for(layer), gelu_from=gelu_from)
    # the INT8 W4A8 path (Hopper only) holds at most 128 rank columns
    if torch.cuda.get_device_capability()[0] == 9 and rank <= 128:
        w = packed_for(layer)
        svdq_linear_forward_w4a8(random_x(m, k, dtype, gen), w, gelu_from=0)
        qa = quantize_act_int8(random_x(m, k, dtype, gen), w.smooth, w.lora_down, kernel="kernel_a")
        w4a8_gemm(qa, w, dtype)
hopper = torch.cuda.get_device_capability()[0] == 9
# FP8 wgmma path (sm_90a): warp-row prologue (K <= 4096) and block-row prologue (K > 4096), ranks 0..240,
# a partial last token tile and a partial channel tile.
for m, k, n, rank, dtype in [(1, 64, 8, 16, torch.bfloat16), (130, 320, 200, 128, torch.float16),
                             (129, 4160, 136, 32, torch.bfloat16), (64, 128, 64, 0, torch.bfloat16),
                             (70, 192, 136, 240, torch.bfloat16)]:  # the widest window: two wgmma runs
    if not hopper:
        break
    layer = random_layer(k, n, rank, dtype, gen, bias=rank != 0)
    w = packed_w4a8f_for(layer)
    xr = random_x(m, k, dtype, gen)
    qa = launch.quantize_act_fp8(xr, w.inv_smooth)
    # lact as svdq_linear_forward_w4a8f computes it, but not on cuBLAS: initcheck does not see some cuBLAS
    # kernels' writes, and then flags every read of their output (all 4160 reads of lact by one GEMM launch, in
    # one run of three; H200, 2026-11-21)
    lact = (xr.float()[:, :, None] * w.lora_down.float()[None]).sum(1).to(dtype) if rank else None
    launch.w4a8f_gemm(qa, lact, w, dtype, gelu_from=n // 3)
    # two persistent blocks over every tile: the stage ring and the tile region (low-rank operands, then the
    # staged output) are reused from tile to tile
    launch.w4a8f_gemm(qa, lact, w, dtype, blocks=2)
# FLUX block kernels and the W4A16 GEMV
for dtype in (torch.bfloat16, torch.float16):
    b, s_txt, s_img, heads, d = 1, 5, 11, 2, 128
    x = torch.randn(b, s_img, 3 * 64, dtype=dtype, device="cuda")
    mod = torch.randn(b, 6 * 3 * 64, dtype=dtype, device="cuda")
    launch.layernorm_modulate(x, mod[:, : 3 * 64], mod[:, 3 * 64 : 6 * 64])
    launch.gate_residual(x, mod[:, : 3 * 64], torch.randn_like(x))
    width = 3 * heads * d
    qa = torch.randn(b, s_txt, width, dtype=dtype, device="cuda")
    qb = torch.randn(b, s_img, width, dtype=dtype, device="cuda")
    w = [torch.rand(d, dtype=dtype, device="cuda") + 0.5 for _ in range(4)]
    cos = torch.randn(s_txt + s_img, d, device="cuda")
    sin = torch.randn(s_txt + s_img, d, device="cuda")
    launch.qk_norm_rope(qa, qb, *w, cos, sin, heads)
    launch.qk_norm_rope(qb, None, w[2], w[3], None, None, cos[:s_img].contiguous(), sin[:s_img].contiguous(), heads)
    n, k = 72, 320
    qweight = torch.randint(0, 256, (n, k // 2), dtype=torch.uint8, device="cuda")
    wscales = (torch.rand(n, k // 64, device="cuda") * 0.01).to(dtype)
    for m in (1, 3, 8):
        launch.w4a16_gemv(torch.randn(m, k, dtype=dtype, device="cuda"), qweight, wscales,
                          torch.randn(n, dtype=dtype, device="cuda"))
# Turing's forms (m8n8k32 GEMM, fp16 m16n8k8 GEMV), on this GPU
mma_forms.uses_turing_mma = lambda device: True
for m, k, n, rank, dtype in [(7, 192, 136, 32, torch.float16), (70, 320, 200, 128, torch.bfloat16)]:
    layer = random_layer(k, n, rank, dtype, gen)
    svdq_linear_forward(random_x(m, k, dtype, gen), packed_for(layer), gelu_from=n // 2)
for m in (1, 8):
    x = torch.randn(m, qweight.shape[1] * 2, dtype=torch.float16, device="cuda")
    launch.w4a16_gemv(x, qweight, wscales.half(), None)
torch.cuda.synchronize()
print("sanitize_small: ok")
