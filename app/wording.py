"""Small pieces of English the app's messages share."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural when ``n`` is not 1: "1 file", "3 files", "2 other images"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
