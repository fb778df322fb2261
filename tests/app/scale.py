"""Helpers of the scale tests: what an action costs is counted (calls into Python), not timed, so that a slow
machine cannot fail them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any


def calls_into(functions: list[Any], action: Callable[[], object]) -> int:
    """How many times Qt or Python called ``functions`` while ``action`` ran."""
    codes = {f.__code__ for f in functions}
    calls = 0

    def count(frame: FrameType, event: str, _: Any) -> None:
        nonlocal calls
        calls += event == "call" and frame.f_code in codes

    sys.setprofile(count)
    try:
        action()
    finally:
        sys.setprofile(None)
    return calls


def methods(cls: type) -> list[Any]:
    """The functions ``cls`` defines itself (those Qt may call into)."""
    return [f for f in vars(cls).values() if hasattr(f, "__code__")]
