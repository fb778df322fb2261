"""Paired judge comparison: discordant counts, the exact McNemar p-value, agreement with the reference."""

from __future__ import annotations

import pytest

from gpu.demo.judge import accuracy
from gpu.demo.paired import attribute_flags, mcnemar_p, paired_comparison


def test_flags_are_the_attributes_accuracy_counts():
    scores = [
        {"colour": [True, False], "shape": [True], "size": [], "position": [False], "background": [True],
         "count": [False]},
        {"colour": [False], "shape": [True, True], "size": [True], "position": [], "background": [False],
         "count": [True]},
    ]  # fmt: skip
    flags = attribute_flags(scores)
    acc = accuracy(scores)
    assert len(flags) == acc["n_attributes"] == 10  # "count" is not an attribute
    assert sum(flags) / len(flags) == pytest.approx(acc["attribute_accuracy"])
    assert flags[:5] == [True, False, True, False, True]  # caption 1: colour x2, shape, position, background


def test_mcnemar_exact_values():
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(3, 3) == 1.0
    assert mcnemar_p(0, 5) == pytest.approx(2 / 32)  # 2 * P(X <= 0), X ~ Bin(5, 1/2)
    assert mcnemar_p(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert mcnemar_p(2, 10) == mcnemar_p(10, 2)


def test_paired_comparison_counts_and_agreement():
    a = [True, True, False, False, True]
    b = [True, False, True, False, False]
    ref = [True, True, True, False, False]
    res = paired_comparison(a, b, ref)
    assert (res["a_only"], res["b_only"]) == (2, 1)
    assert res["a_accuracy"] == pytest.approx(3 / 5) and res["b_accuracy"] == pytest.approx(2 / 5)
    assert res["a_agreement_with_reference"] == pytest.approx(3 / 5)  # differs at 3 and 5
    assert res["b_agreement_with_reference"] == pytest.approx(4 / 5)  # differs at 2
    assert res["mcnemar_p"] == pytest.approx(mcnemar_p(2, 1))
    with pytest.raises(ValueError, match="differ in length"):
        paired_comparison(a, b[:4], ref)
