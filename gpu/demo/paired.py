"""Paired comparison of two executions of a model by the judge's verdicts, on the same prompts and seeds.

Two executions of one checkpoint (e.g. W4A4 and W4A8 numerics) draw the same images up to their numerics, so their
judge accuracies differ by a few attributes that one gets right and the other wrong. Counting those discordant
attributes (McNemar's test) says whether a difference in accuracy is more than the noise of n prompts; the
agreement of each execution's verdicts with the 16-bit model's says which is closer to it.
"""

from __future__ import annotations

from math import comb

from gpu.demo.judge import ATTRIBUTES


def attribute_flags(scores: list[dict[str, list[bool]]]) -> list[bool]:
    """``judge_images`` output -> the correctness of every attribute, in a fixed order (caption by caption, then
    ``ATTRIBUTES``): the flags ``accuracy`` counts into ``attribute_accuracy``."""
    return [flag for s in scores for a in ATTRIBUTES for flag in s[a]]


def mcnemar_p(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value for ``a_only`` attributes right only under A and ``b_only`` right only
    under B: the probability of a split at least this uneven if either was equally likely (1.0 with none)."""
    n = a_only + b_only
    tail = sum(comb(n, i) for i in range(min(a_only, b_only) + 1))
    return min(1.0, 2 * tail / 2**n)


def paired_comparison(a: list[bool], b: list[bool], reference: list[bool]) -> dict[str, float]:
    """Flags of executions A and B and of the reference (the 16-bit model), attribute by attribute ->
    a_only / b_only (right under one only), the McNemar p-value of that split, each one's accuracy, and each one's
    agreement with the reference's verdicts (the fraction of attributes judged the same way)."""
    if not len(a) == len(b) == len(reference):
        raise ValueError(f"flag lists differ in length: {len(a)}, {len(b)}, {len(reference)}")
    n = len(a)
    a_only = sum(x and not y for x, y in zip(a, b, strict=True))
    b_only = sum(y and not x for x, y in zip(a, b, strict=True))
    return {
        "n_attributes": n,
        "a_only": a_only,
        "b_only": b_only,
        "mcnemar_p": mcnemar_p(a_only, b_only),
        "a_accuracy": sum(a) / max(1, n),
        "b_accuracy": sum(b) / max(1, n),
        "a_agreement_with_reference": sum(x == r for x, r in zip(a, reference, strict=True)) / max(1, n),
        "b_agreement_with_reference": sum(y == r for y, r in zip(b, reference, strict=True)) / max(1, n),
    }
