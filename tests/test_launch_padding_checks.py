"""The GEMM launchers derive their grids from the padded extents of their public dataclasses (``PackedWeights.n_pad``,
``QuantizedAct.m_pad``, ``PackedW4A8F.n_pad``, ``Fp8Act.m_pad``): an extent that is no whole number of tiles, or
shorter than the real one, left outputs unwritten. They are refused now, naming the field, before any GPU is asked
(CPU tensors here; with M = 0 a valid call returns its empty output without launching). So is a 1-D ``lora_down``,
which raised IndexError."""

from __future__ import annotations

import pytest
import torch

from gpu.kernels import launch
from gpu.kernels.repack import PackedW4A8F, PackedWeights

BF = torch.bfloat16
K = 128


def _int4_operands(n: int, n_pad: int, m_pad: int, act_words: tuple[int, ...] = (32, 4)) -> tuple:
    """A QuantizedAct of M = 0 rows and PackedWeights of n channels (rank 0), shaped for the given paddings."""
    qa = launch.QuantizedAct(
        act=torch.zeros((m_pad // 16, K // 64, *act_words), dtype=torch.int32),
        ascale=torch.zeros((K // 64, m_pad), dtype=BF),
        lact=torch.zeros((m_pad, 0), dtype=torch.float32),
        m=0,
        m_pad=m_pad,
    )
    w = PackedWeights(
        wgt=torch.zeros((n_pad // 8, K // 64, 32, 2), dtype=torch.int32),
        wscale=torch.zeros((K // 64, n_pad), dtype=BF),
        lora_down=None, lora_up=None, bias=None, smooth=None, n=n, k=K, rank=0, n_pad=n_pad, key=(),
    )  # fmt: skip
    return qa, w


def test_w4a4_gemm_refuses_padding_that_is_not_whole_tiles():
    assert launch.w4a4_gemm(*_int4_operands(64, 64, 64), BF).shape == (0, 64)  # valid: nothing to launch
    with pytest.raises(ValueError, match=r"w\.n_pad=72"):
        launch.w4a4_gemm(*_int4_operands(72, 72, 64), BF)
    with pytest.raises(ValueError, match=r"w\.n_pad=64.*w\.n=66"):
        launch.w4a4_gemm(*_int4_operands(66, 64, 64), BF)
    with pytest.raises(ValueError, match=r"qa\.m_pad=80"):
        launch.w4a4_gemm(*_int4_operands(64, 64, 80), BF)


def test_w4a8_gemm_refuses_padding_that_is_not_whole_tiles():
    qa, w = _int4_operands(64, 64, 64, act_words=(2, 32, 4))
    qa.lact = torch.zeros((1, 64, 0))
    assert launch.w4a8_gemm(qa, w, BF).shape == (0, 64)
    qa, w = _int4_operands(72, 72, 64, act_words=(2, 32, 4))
    with pytest.raises(ValueError, match=r"w\.n_pad=72"):
        launch.w4a8_gemm(qa, w, BF)
    qa, w = _int4_operands(64, 64, 48, act_words=(2, 32, 4))
    with pytest.raises(ValueError, match=r"qa\.m_pad=48"):
        launch.w4a8_gemm(qa, w, BF)


def _fp8_operands(n: int, n_pad: int, m_pad: int) -> tuple[launch.Fp8Act, PackedW4A8F]:
    qa = launch.Fp8Act(torch.zeros((m_pad // 128, K // 64, 8192), dtype=torch.uint8), torch.zeros(m_pad), 0, m_pad)
    w = PackedW4A8F(
        wgt=torch.zeros((n_pad // 128, K // 64, 4096), dtype=torch.uint8),
        wscale=torch.zeros((n_pad // 128, K // 64, 128), dtype=BF),
        inv_smooth=torch.ones(K), lora_down=None, lora_up=None, bias=None, n=n, k=K, rank=0, n_pad=n_pad, key=(),
    )  # fmt: skip
    return qa, w


def test_w4a8f_gemm_refuses_padding_that_is_not_whole_tiles():
    qa, w = _fp8_operands(128, 128, 128)
    assert launch.w4a8f_gemm(qa, None, w, BF).shape == (0, 128)
    qa, w = _fp8_operands(192, 192, 128)
    with pytest.raises(ValueError, match=r"w\.n_pad=192"):
        launch.w4a8f_gemm(qa, None, w, BF)
    qa, w = _fp8_operands(136, 128, 128)
    with pytest.raises(ValueError, match=r"w\.n_pad=128.*w\.n=136"):
        launch.w4a8f_gemm(qa, None, w, BF)
    qa, w = _fp8_operands(128, 128, 64)
    with pytest.raises(ValueError, match=r"qa\.m_pad=64"):
        launch.w4a8f_gemm(qa, None, w, BF)


def test_a_one_dimensional_lora_down_is_named_not_an_index_error():
    with pytest.raises(ValueError, match="lora_down"):
        launch.quantize_act(torch.zeros(0, K, dtype=BF), None, torch.zeros(K, dtype=BF))
    qa = launch.quantize_act(torch.zeros(0, K, dtype=BF), None, torch.zeros(K, 16, dtype=BF))  # valid, M = 0
    assert qa.lact.shape == (64, 16)
