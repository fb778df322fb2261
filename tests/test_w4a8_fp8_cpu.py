"""CPU checks of the Hopper FP8 path's host side: the weight repack decodes, through the kernel's own bit
operations, to the checkpoint's int4 codes; and the FP8 reference numerics stay close to the 16-bit layer."""

from __future__ import annotations

import pytest
import torch

from gpu.kernels.repack import repack_layer_w4a8f, repack_qweight_w4a8f
from gpu.modules.layer_spec import LayerSpec
from gpu.modules.reference import FP8_ROW, quantize_fp8_row, reference_linear
from gpu.modules.svdq_linear import SVDQLinear
from gpu.quant.packing import pack_int4

MASK = 0x87878787


def _rotr4(w: torch.Tensor) -> torch.Tensor:
    return ((w >> 4) | (w << 28)) & 0xFFFFFFFF


def decode_like_kernel(packed: torch.Tensor, n_pad: int, k: int) -> torch.Tensor:
    """uint8 [N_pad/128, K/64, 4096] -> float32 [N_pad, K] code values, the way svdq_w4a8_wgmma.cu widens
    them (AND / rotate+AND to E4M3 subnormal bytes, times 512) and places them (A-fragment layout)."""
    words = packed.view(torch.int32).long() & 0xFFFFFFFF
    words = words.view(n_pad // 128, k // 64, 2, 4, 8, 4, 2, 2)  # tile, group, wg, warp, gid, tig, h, p
    out = torch.empty(n_pad // 128, 2, 4, 2, 8, k // 64, 2, 2, 4, 4)  # tile, wg, warp, rowhalf, gid, g, h, p, tig, j
    for rowhalf, reg in ((0, words & MASK), (1, _rotr4(words) & MASK)):
        b = torch.stack([(reg >> (8 * j)) & 0xFF for j in range(4)], dim=-1).to(torch.uint8)
        vals = b.view(torch.float8_e4m3fn).float() * 512  # [tile, g, wg, warp, gid, tig, h, p, j]
        out[:, :, :, rowhalf] = vals.permute(0, 2, 3, 4, 1, 6, 7, 5, 8)
    return out.reshape(n_pad, k)


@pytest.mark.parametrize("n,k", [(256, 192), (136, 64), (8, 320)])
def test_repack_decodes_to_codes(n, k):
    gen = torch.Generator().manual_seed(n + k)
    codes = torch.randint(-7, 8, (n, k), generator=gen, dtype=torch.int8)
    n_pad = -(-n // 128) * 128
    packed = repack_qweight_w4a8f(pack_int4(codes), n_pad)
    assert packed.shape == (n_pad // 128, k // 64, 4096)
    decoded = decode_like_kernel(packed, n_pad, k)
    assert torch.equal(decoded[:n], codes.float())
    assert not decoded[n:].any()


def test_repack_refuses_minus_eight():
    codes = torch.zeros(128, 64, dtype=torch.int8)
    codes[3, 5] = -8
    with pytest.raises(ValueError, match="-8"):
        repack_qweight_w4a8f(pack_int4(codes), 128)


def test_fp8_row_quantizer_contract():
    xs = torch.tensor([[0.0, 1.0, -3.0, 0.5], [0.0, 0.0, 0.0, 0.0], [1e-3, -2e-3, 4e-3, 8e-3]])
    q, sa = quantize_fp8_row(xs)
    assert sa[1] == 0 and not q[1].any()
    assert q[0].abs().max() == 448 and q[2].abs().max() == 448  # the row max maps to the FP8 max
    assert torch.equal(q, q.to(torch.float8_e4m3fn).float())  # values on the E4M3 grid
    rel = ((q * sa[:, None] - xs).abs() / xs.abs().amax(-1, keepdim=True).clamp_min(1e-30)).amax()
    assert rel < 2**-4  # 3 mantissa bits


def test_fp8_reference_close_to_16bit_layer():
    gen = torch.Generator().manual_seed(0)
    k, n, rank = 256, 96, 16
    layer = SVDQLinear(k, n, LayerSpec("svdquant", "int4", "int4", rank, True), dtype=torch.bfloat16)
    with torch.no_grad():
        layer.qweight.copy_(pack_int4(torch.randint(-7, 8, (n, k), generator=gen, dtype=torch.int8)))
        layer.wscales.copy_((torch.rand(n, k // 64, generator=gen) * 0.02 + 0.002).bfloat16())
        layer.smooth.copy_((torch.rand(k, generator=gen) + 0.5).bfloat16())
        layer.lora_down.copy_((torch.randn(k, rank, generator=gen) / k**0.5).bfloat16())
        layer.lora_up.copy_((torch.randn(n, rank, generator=gen) * 0.5).bfloat16())
        layer.bias.copy_((torch.randn(n, generator=gen) * 0.1).bfloat16())
    x = torch.randn(33, k, generator=gen).bfloat16()
    # W4A16: 16-bit activations, same weights and low-rank branch
    w16 = reference_linear(x, layer.quantized_weight(), None, layer.smooth, layer.lora_down, layer.lora_up,
                           layer.bias, torch.bfloat16)  # fmt: skip
    fp8 = layer.forward_reference(x, act_format=FP8_ROW)
    int4 = layer.forward_reference(x)  # W4A4
    err = lambda y: ((y.float() - w16.float()).norm() / w16.float().norm()).item()  # noqa: E731
    # E4M3 keeps 3 mantissa bits per element (~3% rms on Gaussian rows); INT4 g64 activations are far coarser
    assert err(fp8) < 0.08
    assert err(fp8) < 0.5 * err(int4)
    packed = repack_layer_w4a8f(layer)
    assert packed.lora_down.shape == (k, rank) and packed.wscale.shape == (1, k // 64, 128)
    # the kernel reads the checkpoint's 16-bit scales as they are (2^9 is folded into the epilogue)
    assert packed.wscale.dtype == torch.bfloat16
    assert torch.equal(packed.wscale[0, :, :n].T, layer.wscales) and not packed.wscale[0, :, n:].any()


def test_group_scales_for_the_kernel_stay_exact():
    from gpu.kernels.repack import scales_16bit

    fp16 = torch.tensor([[0.001, 3.5]], dtype=torch.float16)
    assert scales_16bit(fp16, torch.bfloat16) is fp16  # own 16-bit type kept (the xs kernels read it)
    exact = torch.tensor([[0.25, 1.5]], dtype=torch.float32)
    assert scales_16bit(exact, torch.bfloat16).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="not exact"):
        scales_16bit(torch.tensor([[0.1]], dtype=torch.float32), torch.bfloat16)
