"""``main.py quantize --no-resume``: a fresh run on an output whose unfinished run would otherwise be resumed (the
CLI had no way to ask for one). In this process: the runs are stopped by a Ctrl-C at a chosen line, which only a
``say`` patched here can give (``tests/cli_runs.py`` runs command lines in a process of their own)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import main as cli
from gpu.quantizer import QuantizeConfig  # noqa: F401 - before the engine, which imported first is circular
from gpu.quantizer.config import PartsToReplace
from gpu.streaming.parts_folder import parts_dir
from gpu.streaming.resume import ANOTHER_VERSION
from gpu.streaming.stopped import QuantizeTold


def _quantize(tiny_flux: Path, out: Path, data: Path, stop_at: str, *flags: str) -> tuple[int, list[str]]:
    """``main.py quantize`` of ``tiny_flux`` into ``out`` with ``flags``, Ctrl-C'd at the first line printed that
    holds ``stop_at`` -> (exit code, the lines printed before it)."""
    printed: list[str] = []

    def say(text: str) -> None:
        if stop_at in text:
            raise KeyboardInterrupt
        printed.append(text)

    args = ["--data-dir", str(data), "quantize", str(tiny_flux), "--out", str(out), "--calib-prompts", "2",
            "--calib-steps", "1", "--alpha-points", "3", *flags]  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli, "say", say)
        return cli.main(args), printed


def test_no_resume_starts_over_and_says_what_it_deletes_and_when(tiny_flux, tmp_path, capsys):
    out, data = tmp_path / "cut.safetensors", tmp_path / "data"
    parts = parts_dir(out)
    manifest = parts / "manifest.json"
    code, _ = _quantize(tiny_flux, out, data, "block 2/")  # the first block finished, then Ctrl-C
    assert code == 130 and len(json.loads(manifest.read_text())["done"]) == 1
    kept = manifest.read_bytes()
    capsys.readouterr()

    # Stopped before it has its samples: the folder is as it was, and the note does not send the user to resume
    # from the blocks they asked to discard.
    told = (f"starting over, as asked: {parts} is deleted once the calibration samples are recorded, and with it the "
            "finished block a run with these settings resumes from; a run stopped before then leaves it as it is")
    code, printed = _quantize(tiny_flux, out, data, told, "--no-resume")
    assert code == 130 and manifest.read_bytes() == kept
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: cancelled; {parts} is left as it was: this run stopped before it started over; run the same "
        "command again to start over, or without --no-resume to resume it")  # fmt: skip

    code, printed = _quantize(tiny_flux, out, data, "[1/", "--no-resume")  # the first block's first layer
    assert code == 130 and any(line.endswith(told) for line in printed)
    assert any(line.endswith("deleting cut.safetensors.parts: starting over, as asked") for line in printed)
    assert not any("resuming" in line for line in printed)
    assert json.loads(manifest.read_text())["done"] == {} and not out.exists()
    # The same command again would start over again: the note says how to resume this run's work instead.
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: cancelled; the calibration samples are kept in {parts}: run the same command again without "
        "--no-resume to resume")  # fmt: skip


def test_a_run_stopped_while_it_replaces_the_folder_says_nothing_in_it_resumes(tiny_flux, tmp_path, capsys):
    """The note was chosen by the manifest's bytes: stopped while the old folder was deleted (its manifest goes
    first) or before the new manifest was written, the bytes differed, and it said "the blocks finished so far are
    kept …: run the same command again without --no-resume to resume", where nothing resumes. The engine says
    when the deletion begins (``QuantizeEvent.replacing_parts``), and the note says what the folder is then."""
    import gpu.streaming.engine as engine
    from gpu.streaming.parts_folder import blocks_kept, has_manifest

    out, data = tmp_path / "cut.safetensors", tmp_path / "data"
    parts = parts_dir(out)
    code, _ = _quantize(tiny_flux, out, data, "block 2/")  # the first block finished, then Ctrl-C
    assert code == 130 and blocks_kept(parts) == 1
    capsys.readouterr()
    being_replaced = (f"error: cancelled; {parts} was being replaced when this run stopped: nothing in it resumes; "
                      "run the same command again to start over")  # fmt: skip

    delete = engine.delete_parts

    def cut_short(folder: Path) -> None:  # Ctrl-C part-way through the deletion: the samples gone, a block not
        if folder == parts:
            (parts / "manifest.json").unlink()  # first, as the deletion does
            (parts / "samples.safetensors").unlink()
            raise KeyboardInterrupt
        delete(folder)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "delete_parts", cut_short)
        code, printed = _quantize(tiny_flux, out, data, "never printed", "--no-resume")
    assert code == 130 and printed[-1].endswith("deleting cut.safetensors.parts: starting over, as asked")
    assert capsys.readouterr().err.splitlines()[-1] == being_replaced
    assert sorted(p.name for p in parts.iterdir()) == ["block-0000.safetensors"] and not has_manifest(parts)

    def stopped(*_args) -> None:  # the old folder deleted, the new samples written, its manifest not yet
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "write_manifest", stopped)
        code, printed = _quantize(tiny_flux, out, data, "never printed", "--no-resume")
    assert code == 130 and "as asked" in printed[0] and "what an earlier run left there" in printed[0]
    assert capsys.readouterr().err.splitlines()[-1] == being_replaced
    assert sorted(p.name for p in parts.iterdir()) == ["samples.safetensors"] and not has_manifest(parts)


def test_a_folder_replaced_by_one_of_the_same_bytes_is_not_said_to_be_left_as_it_was(tiny_flux, tmp_path, capsys):
    """A folder holding only the samples, replaced by a run asked to start over with the same settings, has the
    same manifest bytes again (the same samples, the same digest): the note said it was "left as it was: this run
    stopped before it started over", though it was deleted and recorded anew."""
    out, data = tmp_path / "cut.safetensors", tmp_path / "data"
    parts = parts_dir(out)
    code, _ = _quantize(tiny_flux, out, data, "[1/")  # the samples recorded, no block finished
    assert code == 130 and json.loads((parts / "manifest.json").read_text())["done"] == {}
    capsys.readouterr()

    code, printed = _quantize(tiny_flux, out, data, "[1/", "--no-resume")
    assert code == 130 and any(line.endswith("deleting cut.safetensors.parts: starting over, as asked")
                               for line in printed)  # fmt: skip
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: cancelled; the calibration samples are kept in {parts}: run the same command again without "
        "--no-resume to resume")  # fmt: skip


def test_a_run_stopped_before_it_replaced_a_folder_of_other_settings_says_how_to_resume_it(tiny_flux, tmp_path,
                                                                                           capsys):  # fmt: skip
    """A run without --no-resume on a parts folder made with other settings replaces it once its samples are
    recorded. It said nothing of it until then, and stopped during the calibration its note said "the blocks
    finished so far are kept …: run the same command again to resume", which deletes them. The run says so as it
    begins, and the note says the folder is as it was, that the same command replaces it, and which options resume
    it instead (those do); once replaced, what the new run keeps."""
    out, data = tmp_path / "cut.safetensors", tmp_path / "data"
    parts = parts_dir(out)
    manifest = parts / "manifest.json"
    code, _ = _quantize(tiny_flux, out, data, "block 2/", "--rank", "8")  # the first block finished, then Ctrl-C
    kept = manifest.read_bytes()
    assert code == 130 and len(json.loads(kept)["done"]) == 1
    capsys.readouterr()

    code, printed = _quantize(tiny_flux, out, data, "loading text encoders")  # Ctrl-C as the calibration begins
    assert code == 130 and manifest.read_bytes() == kept
    assert [line.split("s ", 1)[1] for line in printed] == [
        f"{parts} was made with other settings (rank 8 -> 32): it is deleted once the calibration samples are "
        "recorded, and with it the finished block; a run stopped before then leaves it as it is"]  # fmt: skip
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: cancelled; {parts} is left as it was: this run stopped before it replaced it (made with other "
        "settings: rank 8 -> 32); run the same command again to replace it, or with --rank 8 to resume it")  # fmt: skip

    code, printed = _quantize(tiny_flux, out, data, "block 2/", "--rank", "8")  # as the note says: resumed
    assert code == 130 and any("resuming: 1/" in line for line in printed)
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: cancelled; the calibration samples and 1 finished block are kept in {parts}: run the same command "
        "again to resume")  # fmt: skip

    code, printed = _quantize(tiny_flux, out, data, "[1/")  # replaced: the new run's samples are kept
    assert code == 130 and any(line.endswith("cut.safetensors.parts was made with other settings (rank 8 -> 32): "
                                             "starting over") for line in printed)  # fmt: skip
    assert json.loads(manifest.read_text())["done"] == {}
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: cancelled; the calibration samples are kept in {parts}: run the same command again to resume")


@pytest.mark.parametrize(("flags", "note"), [
    ((), "run the same command again to resume from it if it was made with these settings"),
    (("--no-resume",), "run the same command again to start over, or without --no-resume to resume from it if it "
                       "was made with these settings"),
])  # fmt: skip
def test_a_run_stopped_before_it_read_the_parts_folder_does_not_say_what_the_same_command_does_not(
        tiny_flux, tmp_path, capsys, flags, note):  # fmt: skip
    """Stopped before the engine has looked at the folder (before its first event), the run cannot know whether the
    same command resumes from it or replaces it: the note said it resumes. With --no-resume it said so too, where the
    same command deletes it to start over."""
    import gpu.streaming.engine as engine

    out, data = tmp_path / "cut.safetensors", tmp_path / "data"
    parts = parts_dir(out)
    parts.mkdir()
    (parts / "samples.safetensors").write_bytes(b"samples of some settings")
    (parts / "manifest.json").write_text(json.dumps({"key": "some settings", "done": {}, "samples": {}}))

    def stopped(*_args) -> None:  # Ctrl-C while the source is read
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine, "run_inputs", stopped)
        code, printed = _quantize(tiny_flux, out, data, "never printed", *flags)
    assert code == 130 and printed == []
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"error: cancelled; this run stopped before it read {parts}, which is left as it was: {note}")


@pytest.mark.parametrize(("plan", "note"), [
    (("other text encoders, tokenizers or scheduler (or their files changed since)", {"rank": 8}, "/m/FLUX.1-dev"),
     "made with other settings: other text encoders, tokenizers or scheduler (or their files changed since)); run "
     "the same command again to replace it, or with --base naming the pipeline it was made with (/m/FLUX.1-dev) and "
     "with --rank 8 to resume it"),
    ((ANOTHER_VERSION, None),
     "made by another version of Nibble Studio's quantizer); run the same command again to replace it; no setting of "
     "this command resumes it"),
])  # fmt: skip
def test_a_folder_of_another_base_or_version_is_said_as_such(tmp_path, plan, note):
    """A single file's folder made with another --base was said to be resumed by "no options of this command",
    which that --base does; a folder of another version was "made with other settings: another version of the
    quantizer"."""
    parts = parts_dir(tmp_path / "cut.safetensors")
    parts.mkdir()
    assert cli.quantize_cancel_note(parts, QuantizeTold(True, PartsToReplace(*plan)), False) == (
        f"{parts} is left as it was: this run stopped before it replaced it ({note}")


@pytest.mark.parametrize(("told", "no_resume", "note"), [
    (QuantizeTold(True), False, "the calibration samples and 1 finished block are kept in {parts}: move notes.txt "
                                "elsewhere, then run the same command again to resume"),
    (QuantizeTold(True), True, "the calibration samples and 1 finished block are kept in {parts}: move notes.txt "
                               "elsewhere, then run the same command again without --no-resume to resume"),
    (QuantizeTold(True, PartsToReplace("rank 8 -> 32", {"rank": 8})), False,
     "{parts} is left as it was: this run stopped before it replaced it (made with other settings: rank 8 -> 32); "
     "move notes.txt elsewhere, then run the same command again to replace it, or with --rank 8 to resume it"),
])  # fmt: skip
def test_a_folder_holding_a_file_of_the_users_is_said_to_need_it_moved_first(tmp_path, told, no_resume, note):
    """A stopped run whose parts folder holds a file of the user's (saved there during the run, kept by the
    replacement's deletion) said "run the same command again to resume", which refuses the folder ("holds files the
    quantizer did not write (notes.txt)"). It says to move the file out first."""
    from gpu.streaming.parts_folder import parts_in_the_way

    parts = parts_dir(tmp_path / "cut.safetensors")
    parts.mkdir()
    (parts / "samples.safetensors").write_bytes(b"samples")
    (parts / "manifest.json").write_text(json.dumps({"done": {"transformer_blocks.0": {}}, "samples": {}}))
    (parts / "notes.txt").write_text("the user's")
    assert "holds files the quantizer did not write (notes.txt)" in parts_in_the_way(parts)  # as the next run says
    assert cli.quantize_cancel_note(parts, told, no_resume) == note.format(parts=parts)
