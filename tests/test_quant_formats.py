"""Quantizers: exact pack/unpack round trips and the numerical contract of each format."""

from __future__ import annotations

import pytest
import torch

from gpu.quant import FORMATS, code_values, dequantize, get_format, pack_codes, quantize, unpack_codes
from gpu.quant.fp4 import E2M1_VALUES, round_to_e2m1
from gpu.quant.packing import pack_int4, unpack_int4


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_pack_unpack_is_exact_for_every_format(name):
    torch.manual_seed(1)
    x = torch.randn(7, 256) * torch.logspace(-2, 2, 256)  # wide dynamic range across channels
    q = quantize(x, name, torch.bfloat16)
    stored = pack_codes(q)
    assert torch.equal(unpack_codes(stored, q.fmt), q.codes)
    fmt = get_format(name)
    assert stored.dtype == (torch.uint8 if fmt.bits == 4 else torch.int8)
    assert stored.shape[-1] == (128 if fmt.bits == 4 else 256)


def test_int4_nibble_layout_is_low_then_high():
    codes = torch.tensor([[1, -2, 7, -7]], dtype=torch.int8)
    packed = pack_int4(codes)
    assert packed.tolist() == [[0x1 | (0xE << 4), 0x7 | (0x9 << 4)]]
    assert unpack_int4(packed, signed=True).tolist() == codes.tolist()


@pytest.mark.parametrize("name", ["int4", "int8", "int8_g64"])
def test_integer_contract(name):
    """codes = clamp(rint(x / s16), +-qmax) with the rounded 16-bit scale s16 = to16(absmax/qmax)."""
    torch.manual_seed(2)
    x = torch.randn(5, 192) * 3
    x[0, :64] = 0  # an all-zero group must give scale 0 and codes 0
    fmt = get_format(name)
    q = quantize(x, fmt, torch.float16)
    g = fmt.group_of(192)
    groups = x.reshape(5, -1, g)
    s16 = (groups.abs().amax(-1) / fmt.qmax).to(torch.float16)
    assert torch.equal(q.scales, s16)
    s = s16.float().unsqueeze(-1)
    expect = torch.where(s > 0, torch.round(groups / torch.where(s > 0, s, 1)).clamp(-fmt.qmax, fmt.qmax), 0)
    assert torch.equal(q.codes.float(), expect.reshape(5, 192))
    assert q.codes.abs().max() <= fmt.qmax
    err = (dequantize(q) - x).reshape(5, -1, g).abs()
    assert torch.all(err <= s * 0.5 * (1 + 1e-2) + 1e-6)  # half a step (plus 16-bit scale rounding)


def test_e2m1_rounds_to_nearest_even_and_saturates():
    y = torch.tensor([0.24, 0.25, 0.26, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 5.1, 100.0, -0.75, -0.1])
    values = torch.tensor(E2M1_VALUES + tuple(-v for v in E2M1_VALUES))[round_to_e2m1(y).long()]
    assert values.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0, 2.0, 2.0, 4.0, 4.0, 6.0, 6.0, -1.0, 0.0]
    assert round_to_e2m1(torch.tensor([-0.1])).item() == 0  # no negative zero code


@pytest.mark.parametrize("name,group", [("nvfp4", 16), ("fp4", 32)])
def test_fp4_scales_are_e4m3_and_values_on_grid(name, group):
    torch.manual_seed(3)
    x = torch.randn(4, 128) * 10
    q = quantize(x, name)
    assert q.scales.dtype == torch.float8_e4m3fn and q.scales.shape == (4, 128 // group)
    assert set(code_values(q).abs().unique().tolist()) <= set(E2M1_VALUES)
    assert (q.global_scale is not None) == (name == "nvfp4")
    rel = (dequantize(q) - x).norm() / x.norm()
    assert rel < 0.15


def test_nvfp4_global_scale_keeps_tiny_tensors_representable():
    """Without the fp32 global scale a tensor of ~1e-4 values would underflow E4M3 block scales."""
    x = torch.randn(2, 64) * 1e-4
    assert (dequantize(quantize(x, "nvfp4")) - x).norm() / x.norm() < 0.2
    assert (dequantize(quantize(x, "fp4")) - x).norm() / x.norm() > 0.5


def test_nf4_codes_index_the_table():
    torch.manual_seed(4)
    x = torch.randn(3, 128)
    q = quantize(x, "nf4", torch.bfloat16)
    assert q.codes.min() >= 0 and q.codes.max() <= 15
    assert (dequantize(q) - x).norm() / x.norm() < 0.12


def test_group_size_must_divide_row():
    with pytest.raises(ValueError, match="multiple of the group size 64"):
        quantize(torch.randn(2, 100), "int4")
