"""Small-shape runs of every kernel (INT4 W4A4; W4A8 with both prologues on Hopper), for compute-sanitizer
(memcheck / racecheck / initcheck)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernel_cases import random_layer, random_x  # noqa: E402

from gpu.kernels.launch import quantize_act_int8, svdq_linear_forward, svdq_linear_forward_w4a8, w4a8_gemm  # noqa: E402
from gpu.kernels.repack import packed_for  # noqa: E402

gen = torch.Generator().manual_seed(1)
for m, k, n, rank, dtype in [(1, 64, 8, 16, torch.bfloat16), (7, 192, 136, 32, torch.float16),
                             (70, 320, 200, 128, torch.bfloat16), (65, 128, 64, 0, torch.bfloat16)]:
    layer = random_layer(k, n, rank, dtype, gen, bias=rank != 0)
    y = svdq_linear_forward(random_x(m, k, dtype, gen), packed_for(layer))
    for epi in ("gelu",):
        svdq_linear_forward(random_x(m, k, dtype, gen), packed_for(layer), epilogue=epi)
    if torch.cuda.get_device_capability()[0] == 9:  # the W4A8 path serves Hopper only
        w = packed_for(layer)
        svdq_linear_forward_w4a8(random_x(m, k, dtype, gen), w, epilogue="gelu")
        qa = quantize_act_int8(random_x(m, k, dtype, gen), w.smooth, w.lora_down, kernel="kernel_a")
        w4a8_gemm(qa, w, dtype)
torch.cuda.synchronize()
print("sanitize_small: ok")
