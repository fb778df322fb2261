"""``main.py quantize``'s rank and the options a method does not use (review R65): the advice given is one the run
takes, and an option said to be ignored is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gpu.errors import BadRequestError
from gpu.quantizer import QuantizeConfig

ROOT = Path(__file__).resolve().parents[1]


def test_a_negative_rank_of_a_low_rank_method_is_not_told_to_use_rank_0() -> None:
    with pytest.raises(BadRequestError) as refused:
        QuantizeConfig(method="svdquant", rank=-1).validate()
    text = refused.value.text
    # the advice given must be one the run takes: rank 0 is refused for svdquant ("has no low-rank branch")
    with pytest.raises(BadRequestError, match="rank 0 has no low-rank branch"):
        QuantizeConfig(method="svdquant", rank=0).validate()
    assert "use 0 to" not in text, text


def test_an_option_said_to_be_ignored_does_not_stop_the_run(tmp_path: Path) -> None:
    out = tmp_path / "m.safetensors"
    out.write_bytes(b"earlier")  # refused without --overwrite before any work: the run stops fast either way
    done = subprocess.run(
        [sys.executable, "main.py", "quantize", "demo", "--out", str(out), "--method", "naive", "--rank", "-5",
         "--calib-prompts", "1", "--calib-steps", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert "does not use --rank: ignored" in said  # the note the command prints
    assert "rank -5 is not possible" not in said, said
