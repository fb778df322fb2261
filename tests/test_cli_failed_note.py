"""A command-line quantize run that fails after writing parts (a source file gone or damaged mid-run) says what it
kept for the next run, in the words of its Ctrl-C note and of the wizard's note after a failure
(``gpu.streaming.stopped.stopped_note``): it said only the error, and the user did not know hours of blocks were
kept, nor that the same command resumes them.

The runs are ``main.main`` in this process (a process each cost its start-up), as test_cli's Ctrl-C run is; the
failure is a real one, the source's transformer file removed or overwritten once the first block is under way
(the first layer's line is printed), so the next block's read fails."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import main as cli

RUN = ("--calib-prompts", "2", "--calib-steps", "1", "--alpha-points", "3")


def _source_copy(tiny_flux: Path, folder: Path) -> tuple[Path, Path]:
    """A copy of the tiny pipeline (the shared one is never changed), and its transformer's weight file."""
    source = folder / "source"
    shutil.copytree(tiny_flux, source)
    (weights,) = (source / "transformer").glob("*.safetensors")
    return source, weights


def _at_the_first_layer(monkeypatch: pytest.MonkeyPatch, damage: Callable[[], None]) -> None:
    """``damage`` runs once the run prints its first layer's line: block 0 is loaded, block 1 not yet."""
    said = cli.say

    def say(text: str) -> None:
        said(text)
        if "[1/" in text:
            damage()

    monkeypatch.setattr(cli, "say", say)


def test_a_run_failing_on_a_missing_source_file_says_what_it_kept(tiny_flux, tmp_path, monkeypatch, capsys):
    source, weights = _source_copy(tiny_flux, tmp_path)
    out = tmp_path / "cut.safetensors"
    _at_the_first_layer(monkeypatch, weights.unlink)  # an unplugged drive, a file deleted meanwhile
    assert cli.main(["--data-dir", str(tmp_path / "data"), "quantize", str(source), "--out", str(out), *RUN]) == 2
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {weights} is gone since the run started (put the model's files back as they were, or copy or "
        "download the model again)",
        f"the calibration samples and 1 finished block are kept in {out}.parts: run the same command again to "
        "resume"]  # fmt: skip
    assert (Path(f"{out}.parts") / "block-0000.safetensors").is_file() and not out.exists()


def test_a_run_crashing_on_a_damaged_source_file_says_what_it_kept(tiny_flux, tmp_path, monkeypatch, capsys):
    source, weights = _source_copy(tiny_flux, tmp_path)
    out = tmp_path / "crash.safetensors"

    def damage() -> None:  # replaced whole, as a copy would: a file mapped by a reader is never cut short
        broken = weights.with_name("broken")
        broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage")
        os.replace(broken, weights)

    _at_the_first_layer(monkeypatch, damage)
    # A user error naming the file (it was a safetensors traceback naming none), then the note
    assert cli.main(["--data-dir", str(tmp_path / "data"), "quantize", str(source), "--out", str(out),
                     "--no-resume", *RUN]) == 2  # fmt: skip
    # --no-resume given: the same command starts over again, and is said how to resume instead
    assert capsys.readouterr().err.splitlines()[-2:] == [
        f"error: {weights} can no longer be read (Error while deserializing header: invalid header length): it "
        "changed since the run started, or its disk fails (put the model's files back as they were, or copy or "
        "download the model again)",
        f"the calibration samples and 1 finished block are kept in {out}.parts: run the same command again without "
        "--no-resume to resume"]  # fmt: skip


def test_a_run_failing_on_a_full_disk_says_what_it_kept_once(tiny_flux, tmp_path, monkeypatch, capsys):
    """The disk's error says what the run kept (``gpu.streaming.disk_space.disk_full_said``), and the failure's note
    said it again on the next line: the same blocks twice, with two ways to resume. Said once, by the error."""
    import errno

    import safetensors.torch

    from gpu.atomic import scratch_prefix

    source, _weights = _source_copy(tiny_flux, tmp_path)
    out = tmp_path / "full.safetensors"
    parts = Path(f"{out}.parts")
    serialize = safetensors.torch.serialize_file  # the write itself; the engine's atomic writes run as ever

    def serialize_file(tensors, filename, *args, **kwargs):  # the second block's file: the disk is full
        if Path(filename).parent.name.startswith(scratch_prefix(parts / "block-0001.safetensors")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return serialize(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "serialize_file", serialize_file)
    assert cli.main(["--data-dir", str(tmp_path / "data"), "quantize", str(source), "--out", str(out), *RUN]) == 2
    err = capsys.readouterr().err
    last = err.splitlines()[-1]
    assert last.startswith(f"error: the disk holding {tmp_path} is full (") and last.endswith(
        f"; the calibration samples and 1 finished block are kept in {parts}, and a run with the same settings "
        "resumes from them (free some space on that disk, then run again: the run resumes from what is kept)"), err
    assert err.count(f"kept in {parts}") == 1, err  # no note after it saying the same
    assert (parts / "block-0000.safetensors").is_file() and not out.exists()
