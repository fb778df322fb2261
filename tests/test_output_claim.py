"""An output's name claimed as it is chosen (``gpu.output_lock.claim_first_free``): the engine's lock on it, taken in
the same step as the choice and held by the run (``quantize_model(claim=...)``). Chosen first and locked only once
the run started, two choosers took one free name, and two runs wrote one output and one parts folder.

Claims in one process exclude each other as those of two processes do (a lock per open file), so each case here
is two claims in this process, one after the other: no thread, no timing."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from gpu.errors import OutputBusy
from gpu.output_lock import claim_first_free, claim_output, lock_path, output_lock
from gpu.quantizer import QuantizeConfig, quantize_model


def _busy(path: Path) -> str:
    """The start of the refusal of a second claim on ``path`` while this process holds it."""
    return f"^{re.escape(str(path))} is being written by another quantize run \\(process {os.getpid()}\\)"


def test_a_claimed_name_is_skipped_by_the_next_chooser_and_refused_to_a_second_claim(tmp_path):
    out = tmp_path / "models" / "m.safetensors"
    first = claim_first_free(out, Path.exists, "quantize run")
    assert first.target == out and first.held and lock_path(out).is_file()
    second = claim_first_free(out, Path.exists, "quantize run")  # another wizard, before either run made a file
    assert second.target == tmp_path / "models" / "m-2.safetensors"
    with pytest.raises(OutputBusy, match=_busy(out)) as refused:  # a run given that name (main.py quantize --out)
        claim_output(out, "quantize run")
    assert refused.value.hint == "wait for it to finish, or choose another output file"
    first.release()
    first.release()  # once only: the second does nothing (the worker's, after the wizard's cancel)
    assert not first.held and not lock_path(out).exists()
    with claim_first_free(out, Path.exists, "quantize run") as again:  # free again
        assert again.target == out
    second.release()
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == []


def test_a_name_written_while_the_chooser_took_its_lock_is_not_taken(tmp_path):
    """A run that held the name until just after the chooser looked (its model written, its lock let go): the name
    is looked at again once held, and the next one taken."""
    out = tmp_path / "m.safetensors"
    looked: list[Path] = []

    def taken(path: Path) -> bool:
        looked.append(path)
        if looked == [out]:  # free as looked at; the other run's model lands before the claim
            out.write_bytes(b"the other run's model")
            return False
        return path.exists()

    with claim_first_free(out, taken, "quantize run") as claim:
        assert claim.target == tmp_path / "m-2.safetensors"
        assert looked == [out, out, claim.target, claim.target]
        with claim_output(out, "quantize run"):  # the first name's lock was let go of
            pass


def test_a_run_holds_its_chooser_s_claim_and_a_run_without_it_is_refused_first(tmp_path):
    """The run given the claim works under it (and leaves it held, for its caller to release); a run on the same
    output without it is refused before it reads anything."""
    out = tmp_path / "m.safetensors"
    missing = tmp_path / "no-such-model"
    with claim_first_free(out, Path.exists, "quantize run") as claim:
        with pytest.raises(OutputBusy, match=_busy(out)):
            quantize_model(missing, out, QuantizeConfig())
        with pytest.raises(Exception) as past_the_lock:
            quantize_model(missing, out, QuantizeConfig(), claim=claim)
        assert not isinstance(past_the_lock.value, OutputBusy) and "no-such-model" in str(past_the_lock.value)
        assert claim.held
        with pytest.raises(ValueError, match="is no lock on"), output_lock(tmp_path / "other.safetensors",
                                                                          claim=claim):  # fmt: skip
            pass
    with pytest.raises(ValueError, match=r"\(released\) is no lock on"), output_lock(out, claim=claim):
        pass
