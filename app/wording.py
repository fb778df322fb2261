"""Small pieces of English the app's messages share."""

from __future__ import annotations


def counted(n: int, noun: str) -> str:
    """``n`` and ``noun``, plural when ``n`` is not 1: "1 file", "3 files", "2 other images"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def were(n: int) -> str:
    """"was" for one, "were" for any other count: "1 image was moved", "3 images were moved"."""
    return "was" if n == 1 else "were"
