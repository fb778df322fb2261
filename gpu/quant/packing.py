"""Byte packing of 4-bit codes, the canonical on-disk layout of SVDQ checkpoints.

Row-major: element 2j of a row goes to the low nibble of byte j, element 2j+1 to the high nibble.
Signed INT4 codes are stored as 4-bit two's complement; FP4 and NF4 codes are already 0..15.
"""

from __future__ import annotations

import torch


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """codes: int8 [..., K] with values in -8..15 -> uint8 [..., K // 2]."""
    if codes.shape[-1] % 2:
        raise ValueError(f"cannot pack an odd row length {codes.shape[-1]} into 4-bit pairs")
    nib = (codes.to(torch.int16) & 0xF).to(torch.uint8)
    return nib[..., 0::2] | (nib[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor, signed: bool) -> torch.Tensor:
    """packed: uint8 [..., K // 2] -> int8 [..., K] (sign-extended when ``signed``)."""
    lo = (packed & 0xF).to(torch.int16)
    hi = (packed >> 4).to(torch.int16)
    codes = torch.stack([lo, hi], dim=-1).reshape(*packed.shape[:-1], packed.shape[-1] * 2)
    if signed:
        codes = torch.where(codes >= 8, codes - 16, codes)
    return codes.to(torch.int8)
