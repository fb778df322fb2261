"""The memory plan's words at the edges, and one estimate: the Models panel's "Estimated VRAM" is the plan's peak.

A 12B INT4 model on an 8 GiB GPU read "need about 7.9 GiB, more than this GPU has … (try a 4-bit model …) …
Planned peak 7.9 GiB of 8.0 GiB": the peak is weighed against the plan's budget (the card less a reserve), and
the model was 4-bit already. The panel showed the weights times 1.3 beside the plan's own peak, two numbers."""

from __future__ import annotations

from dataclasses import replace

import torch

import gpu.runtime.memory_policy as memory_policy
from gpu.generation.service import GenerationService
from gpu.library import ModelLibrary
from gpu.runtime.memory_policy import FLUX_DEV_INT4, RESERVE_BYTES, GiB, choose_policy


def test_over_budget_names_the_budget_and_the_card_and_advises_4_bits_only_to_others():
    int4 = choose_policy(8 * GiB)  # FLUX.1-dev INT4, 12B
    assert not int4.fits and int4.peak_estimate_bytes < 8 * GiB
    budget = (8 * GiB - RESERVE_BYTES) / GiB
    assert f"more than the {budget:.1f} GiB this plan may use of this GPU's 8.0 GiB" in int4.description
    assert "more than this GPU has" not in int4.description
    assert "4-bit" not in int4.description and "close other programs that use the GPU" in int4.description
    bf16 = choose_policy(12 * GiB, replace(FLUX_DEV_INT4, transformer=22 * GiB, weight_bits=16))
    assert not bf16.fits and "try a 4-bit model or a smaller size" in bf16.description
    int8 = choose_policy(8 * GiB, replace(FLUX_DEV_INT4, weight_bits=8))
    assert "try a 4-bit model" in int8.description


def test_the_estimated_vram_is_the_plans_peak(tmp_path, monkeypatch):
    """On a (detected) 8 GiB GPU: the number the panel shows is the plan's, for a 4-bit file and a 16-bit folder."""
    monkeypatch.setattr(memory_policy, "detect_total_vram", lambda device=None: 8 * GiB)
    service = GenerationService(ModelLibrary(tmp_path), device=torch.device("cpu"))
    for name in ("demo-int4", "demo"):
        info = service.describe(name)
        assert info.memory_policy.device == "cuda"
        assert info.est_vram_bytes == info.memory_policy.peak_estimate_bytes and info.est_ram_bytes is None, name


def test_a_size_just_under_a_gib_is_never_1024_mib():
    """Rounded to whole MiB, 2**30 - 2**19 bytes read "1024 MiB": sizes the rounding takes to 1024 MiB are said in
    GiB, like the GiB they round to, and every size just below stays in MiB."""
    from gpu.runtime.memory_policy import amount

    mib = 2**20
    assert amount(GiB - mib // 2) == "1.0 GiB"  # 1023.5 MiB: rounds to 1024
    assert amount(GiB - mib // 2 - 1) == "1023 MiB"
    assert amount(GiB - 1) == "1.0 GiB" and amount(GiB) == "1.0 GiB"
    assert amount(50 * mib) == "50 MiB" and amount(int(7.94 * GiB)) == "7.9 GiB"
    assert all("1024 MiB" not in amount(n) for n in range(GiB - mib, GiB + mib, 4096))
