"""What the Quantize wizard says of a run's parts folder where the user sees it, as the engine said it (the command
line's Ctrl-C note, ``gpu.streaming.stopped``): an earlier run's folder the run was to replace, left as it was when
stopped before then, and the user's files kept in a folder the run replaced."""

from __future__ import annotations

import errno
import json
from dataclasses import replace
from pathlib import Path

import pytest
import safetensors.torch

import gpu.quantizer  # noqa: F401 - before gpu.streaming's modules, which imported first are a circular import
from app.quantize_outputs import resume_key, stopped_note
from app.quantize_worker import QuantizeWorker
from gpu.atomic import scratch_prefix
from gpu.quantizer.config import PartsToReplace
from gpu.streaming.parts_folder import parts_dir
from gpu.streaming.stopped import QuantizeTold
from tests.app.gui import accept_dialog_later, answer_stop, hold_run_at, small_run

PLAN = PartsToReplace("alpha points 5 -> 3", {"alpha_points": 5})  # an earlier run's folder, of 5 alpha points


def _earlier_run_written_at_the_name(folders: list[Path]) -> staticmethod:
    """``QuantizeWorker._check_output`` that first writes, at the name the wizard chose, the parts folder of an
    earlier run of 5 alpha search points with one block finished (another wizard's run, or the command line's,
    written after the choice), and notes it in ``folders``."""
    check = QuantizeWorker._check_output

    def written_meanwhile(job) -> None:
        key = resume_key(job.source, replace(job.config, alpha_points=5))
        parts = parts_dir(job.out_path)
        parts.mkdir(parents=True)
        manifest = {"key": key.key, "settings": key.settings, "done": {"transformer_blocks.0": {}}}
        (parts / "manifest.json").write_text(json.dumps(manifest))
        folders.append(parts)
        check(job)

    return staticmethod(written_meanwhile)


def test_a_run_on_an_earlier_runs_folder_says_what_it_left_there_on_the_run_page(qtbot, window, monkeypatch):
    """A run that began on an earlier run's folder of other settings (written at its name after the wizard chose
    it: another wizard's run, or the command line's) and was cancelled before it replaced it said "The finished
    blocks … are kept …, and a run with the same settings resumes from them": a run with its settings replaces
    them, and the wizard's writes a name of its own. It says what the engine said: left as it was, and the settings
    that resume it. A file the user saved in the folder as the run replaced it stays, with the folder; the engine
    said so ("… is kept: it holds files the quantizer did not write …") in the log only."""
    folders: list[Path] = []
    monkeypatch.setattr(QuantizeWorker, "_check_output", _earlier_run_written_at_the_name(folders))
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    small_run(wizard)
    page = wizard.run_page
    first, release = hold_run_at(wizard, "stage", str(wizard.models_folder()))  # its first word: what it replaces
    with qtbot.waitSignal(wizard.run_state.run_ended, timeout=120000):
        wizard.next()  # starts quantizing
        qtbot.waitUntil(first.is_set, timeout=60000)
        wizard.cancel()
        release.set()
    [parts] = folders
    note = (f"{parts} is left as it was: this run stopped before it replaced it (made with other settings: alpha "
            "points 5 -> 3); run again with 5 alpha search points to resume it.")  # fmt: skip
    assert f"Stopped. Nothing was added. {note}" in page.log.toPlainText()
    assert page.note.text() == note and not page.note.isHidden()
    assert json.loads((parts / "manifest.json").read_text())["done"] == {"transformer_blocks.0": {}}

    wizard.back()  # and again: that name is taken (``free_output_path``), and such a folder written at the next
    with qtbot.waitSignal(wizard.run_state.run_ended, timeout=120000):
        wizard.next()
        qtbot.waitUntil(lambda: len(folders) == 2, timeout=60000)
        parts = folders[1]
        replacing, release = hold_run_at(wizard, "stage", f"{parts.name} was made with other settings")
        qtbot.waitUntil(replacing.is_set, timeout=60000)
        (parts / "notes.txt").write_text("the user's")  # saved as the run starts deleting the folder
        kept, release_kept = hold_run_at(wizard, "stage", f"{parts} is kept")
        release.set()
        qtbot.waitUntil(kept.is_set, timeout=60000)
        wizard.cancel()
        release_kept.set()
    # Not "run again with the same settings to resume" alone: a run refuses the folder while notes.txt is in it.
    said = (f"The calibration samples are kept in {parts}: move notes.txt elsewhere, then run again with the same "
            f"settings to resume. {parts} is kept: it holds files the quantizer did not write (notes.txt), which are "
            f"not deleted; its own files there are. Move them elsewhere: a run into "
            f"{wizard.run_state.out_path.name} refuses the folder while they are in it.")  # fmt: skip
    assert page.note.text() == said and (parts / "notes.txt").read_text() == "the user's"


def test_a_folder_left_as_it_was_holding_a_file_of_the_users_is_said_to_need_it_moved_first(tmp_path):
    """A run that failed at the check just before it replaced an earlier run's folder (a file of the user's saved
    there meanwhile) was told "run again with 5 alpha search points to resume it": that run refuses the folder
    while the file is in it ("holds files the quantizer did not write (notes.txt)"). It says to move it out first."""
    out = tmp_path / "m.safetensors"
    parts = parts_dir(out)
    parts.mkdir()
    (parts / "manifest.json").write_text(json.dumps({"done": {"transformer_blocks.0": {}}}))
    (parts / "notes.txt").write_text("the user's")
    assert stopped_note(out, QuantizeTold(True, PLAN)) == (
        f"{parts} is left as it was: this run stopped before it replaced it (made with other settings: alpha points "
        "5 -> 3); move notes.txt elsewhere, then run again with 5 alpha search points to resume it")  # fmt: skip


@pytest.mark.parametrize(("plan", "replacing", "asked"), [
    (PLAN, False, "{parts} is left as it was if this run stops now, before it replaces it (made with other settings: "
                  "alpha points 5 -> 3); run again with 5 alpha search points to resume it."),
    (PLAN, True, "{parts} is being replaced: nothing in it resumes if this run stops now; run again with the same "
                 "settings to start over."),
    (None, False, "{parts} is left as it was if this run stops now, before it reads it: run again with the same "
                  "settings to resume from it if it was made with these settings."),
], ids=["left as it was", "being replaced", "not read yet"])  # fmt: skip
def test_stop_quantizing_says_what_stopping_now_would_leave(qtbot, bare_window, monkeypatch, tmp_path, plan,
                                                            replacing, asked):  # fmt: skip
    """"Stop quantizing?" is asked while the run works, and a No lets it go on; it said what the run "stopped"
    before ("this run stopped before it replaced it", "was being replaced when this run stopped"), the words of the
    note after a stop. It says what stopping it now would leave."""
    from PySide6.QtWidgets import QMessageBox

    from app.quantize_worker import QuantizeJob

    bare_window.quantize_panel.open_wizard()
    wizard = bare_window.quantize_panel.wizard
    out = tmp_path / "m.safetensors"
    parts = parts_dir(out)
    parts.mkdir()
    if not replacing:  # the earlier run's manifest is the first thing a replacement deletes
        (parts / "manifest.json").write_text(json.dumps({"done": {"transformer_blocks.0": {}}}))
    told = QuantizeTold(plan is not None, plan, replacing)
    wizard.run_state.job, wizard.run_state.out_path = QuantizeJob("demo", out, None, told=told), out
    wizard.run_state.running = True  # as the worker's run works
    seen: list[str] = []
    answer_stop(monkeypatch, QMessageBox.StandardButton.No, seen)
    try:
        assert not wizard.confirm_stop()
    finally:
        wizard.run_state.running = False
    assert seen == [f"Stop quantizing? {asked.format(parts=parts)}"]


def test_a_full_disk_says_what_is_kept_once(qtbot, window, monkeypatch):
    """The engine's full-disk error says what the run keeps for the next one (``DiskSpaceError.kept_said``); the
    wizard then added its own note saying the same parts again, in the log and under the error."""
    serialize = safetensors.torch.serialize_file
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    small_run(wizard)

    def serialize_file(tensors, filename, *args, **kwargs):  # the second block's file: the disk is full
        parts = parts_dir(wizard.run_state.job.out_path)
        if Path(filename).parent.name.startswith(scratch_prefix(parts / "block-0001.safetensors")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return serialize(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "serialize_file", serialize_file)
    seen: list[str] = []
    accept_dialog_later(seen)
    with qtbot.waitSignal(wizard.run_state.run_ended, timeout=120000):
        wizard.next()  # starts quantizing
    parts = parts_dir(wizard.run_state.job.out_path)
    log = wizard.run_page.log.toPlainText()
    assert "is full" in log and log.count(f"kept in {parts}") == 1, log
    assert (parts / "block-0000.safetensors").is_file()
    assert wizard.run_page.note.isHidden() or f"kept in {parts}" not in wizard.run_page.note.text()
    qtbot.waitUntil(lambda: len(seen) == 1)
    wizard.close()


def test_a_full_disk_after_a_replaced_folder_kept_the_users_file_still_says_so(qtbot, window, monkeypatch):
    """The full disk's error says what the run keeps, so the wizard's kept note is left out; what stays of the
    earlier run's folder it replaced (a file of the user's, which the next run refuses) is not in that error and
    is still said: the wizard dropped its whole note."""
    folders: list[Path] = []
    serialize = safetensors.torch.serialize_file

    def serialize_file(tensors, filename, *args, **kwargs):  # the second block's file: the disk is full
        if folders and Path(filename).parent.name.startswith(scratch_prefix(folders[0] / "block-0001.safetensors")):
            raise OSError(errno.ENOSPC, "No space left on device")
        return serialize(tensors, filename, *args, **kwargs)

    monkeypatch.setattr(QuantizeWorker, "_check_output", _earlier_run_written_at_the_name(folders))
    monkeypatch.setattr(safetensors.torch, "serialize_file", serialize_file)
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    small_run(wizard)
    seen: list[str] = []
    accept_dialog_later(seen)
    with qtbot.waitSignal(wizard.run_state.run_ended, timeout=120000):
        wizard.next()
        qtbot.waitUntil(lambda: len(folders) == 1, timeout=60000)
        replacing, release = hold_run_at(wizard, "stage", f"{folders[0].name} was made with other settings")
        qtbot.waitUntil(replacing.is_set, timeout=60000)
        (folders[0] / "notes.txt").write_text("the user's")  # saved as the run starts deleting the folder
        release.set()
    [parts] = folders
    log = wizard.run_page.log.toPlainText()
    assert "is full" in log and log.count(f"kept in {parts}") == 1, log
    assert f"{parts} is kept: it holds files the quantizer did not write (notes.txt)" in wizard.run_page.note.text()
    assert log.count("is kept: it holds files the quantizer did not write") == 1, log  # the engine's line only
    assert (parts / "notes.txt").read_text() == "the user's"
    qtbot.waitUntil(lambda: len(seen) == 1)
    wizard.close()
