"""What a stopped quantize run says of its parts folder (``gpu.streaming.stopped``), in each caller's words
(``RunAgain``): the command line's Ctrl-C note and the Quantize wizard's, worded by one function."""

from __future__ import annotations

import json
from pathlib import Path

import gpu.quantizer  # noqa: F401 - before gpu.streaming's modules, which imported first are a circular import
from gpu.quantizer.config import PartsToReplace
from gpu.streaming.parts_folder import parts_dir
from gpu.streaming.stopped import QuantizeTold, RunAgain, stopped_note


def _parts(tmp_path: Path) -> Path:
    """A parts folder keeping one finished block."""
    parts = parts_dir(tmp_path / "o.safetensors")
    parts.mkdir()
    (parts / "manifest.json").write_text(json.dumps({"done": {"transformer_blocks.0": {}}}))
    return parts


def _again(to_resume: str = "") -> RunAgain:
    """A caller of its own words, none of the command line's."""
    return RunAgain("start it again", lambda name, value: f"with {name} {value}", changed="", replaces=True,
                    command="this caller", to_resume=to_resume)  # fmt: skip


def test_the_words_that_resume_a_run_asked_to_start_over_are_the_callers(tmp_path):
    """``stopped_note`` wrote the command line's "without --no-resume" itself, in three places, for any caller whose
    run was asked to start over; and a caller naming none of ``RunAgain``'s defaults got the command line's words
    ("this command"). Each phrase is the caller's now: the engine layer names no option."""
    parts = _parts(tmp_path)
    again = _again(to_resume="with Resume ticked")
    assert stopped_note(parts, QuantizeTold(anything=True), again) == (
        f"1 finished block is kept in {parts}: start it again with Resume ticked to resume")
    assert stopped_note(parts, QuantizeTold(), again) == (
        f"this run stopped before it read {parts}, which is left as it was: start it again to start over, or with "
        "Resume ticked to resume from it if it was made with these settings")  # fmt: skip
    assert stopped_note(parts, QuantizeTold(True, PartsToReplace("rank 8 -> 32", {"rank": 8})), again) == (
        f"{parts} is left as it was: this run stopped before it started over; start it again to start over, or with "
        "rank 8 and with Resume ticked to resume it")  # fmt: skip
    assert stopped_note(parts, QuantizeTold(True, PartsToReplace("rank 8 -> 32", None)), _again()) == (
        f"{parts} is left as it was: this run stopped before it replaced it (made with other settings: rank 8 -> 32); "
        "start it again to replace it; no setting of this caller resumes it")  # fmt: skip
