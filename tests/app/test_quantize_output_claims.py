"""The wizard's output name is claimed as it is chosen (``app.quantize_outputs.claim_output_path``, the engine's
``gpu.output_lock.claim_first``) and held by its run until the run ends: two wizards, or a wizard and a
``main.py quantize`` run still recording its samples (no parts folder yet), chose one free name, and both runs
wrote one output and one parts folder. Each case is two claims in this process, one after the other (a lock per
open file: they exclude each other as two processes' do): no thread, no timing."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from app.quantize_outputs import claim_output_path, free_output_path, resume_key
from app.quantize_worker import QuantizeJob, QuantizeWorker, release_claim
from gpu.output_lock import output_lock
from gpu.paths import resources_dir
from gpu.quantizer import QuantizeConfig
from tests.app.gui import demo_run_to_resume

DEMO = resources_dir() / "models" / "demo"


def _cfg() -> QuantizeConfig:
    return QuantizeConfig(calib_prompts=2, calib_steps=2, max_tokens_per_layer=256, refine_iters=1, alpha_points=3,
                          rank=8)  # fmt: skip


def test_a_name_a_command_line_run_holds_is_not_offered(data_root, tmp_path):
    """A ``main.py quantize --out models/m.safetensors`` run holds its output's lock from its start, and makes its
    parts folder only once its samples are recorded (minutes): the wizard offered that name meanwhile, and its run
    was refused, or, the other run finished first, replaced its model."""
    models = tmp_path / "models"
    with output_lock(models / "m.safetensors", "quantize run"):
        assert free_output_path(models, "m", "demo", _cfg()) == models / "m-2.safetensors"
    assert free_output_path(models, "m", "demo", _cfg()) == models / "m.safetensors"


def test_a_name_another_run_holds_is_said_where_the_run_passes_it_over(data_root, tmp_path):
    """A ``main.py quantize`` of the same model and settings working on the wizard's name: the wizard's run took the
    next name without a word, and two runs of one model worked at once (on a laptop, on one GPU) while the log said
    nothing of why this one's file was "-2". The name passed over is said, with the run that holds it, once, also
    where that run's stopped parts folder is the one these settings resume."""
    models = tmp_path / "models"
    holder = f"is being written by another quantize run (process {os.getpid()}): this run writes a name of its own"
    notes: list[str] = []
    with output_lock(models / "m.safetensors", "quantize run"):
        assert free_output_path(models, "m", "demo", _cfg(), notes) == models / "m-2.safetensors"
    assert notes == [f"{models / 'm.safetensors'} {holder}."]
    key = resume_key("demo", _cfg())
    assert key is not None
    parts = models / "m.safetensors.parts"  # its samples recorded: the folder these settings resume
    parts.mkdir(parents=True)
    (parts / "manifest.json").write_text(json.dumps({"key": key.key, "settings": key.settings, "done": {}}))
    notes.clear()
    with output_lock(models / "m.safetensors", "quantize run"):
        assert free_output_path(models, "m", "demo", _cfg(), notes) == models / "m-2.safetensors"
    assert notes == [f"{models / 'm.safetensors'} {holder}."]
    notes.clear()
    assert free_output_path(models, "m", "demo", _cfg(), notes) == models / "m.safetensors" and notes == []


def test_two_choosers_at_once_get_a_name_each(data_root, tmp_path):
    """A chooser's claim is skipped by the next chooser who does not wait for its run: another app's wizard, or a
    ``main.py quantize`` run, whose run may work for hours (one wizard of this app waits for the run of the one it
    replaced instead: ``test_a_wizard_opened_again_resumes_...``). A free name, and a stopped run's name both
    would resume, go to one."""
    models = tmp_path / "models"
    with claim_output_path(models, "m", "demo", _cfg()) as first:
        with claim_output_path(models, "m", "demo", _cfg()) as second:
            assert (first.target, second.target) == (models / "m.safetensors", models / "m-2.safetensors")
    key = resume_key("demo", _cfg())
    assert key is not None
    parts = models / "m-3.safetensors.parts"  # a stopped run both resume: it is one run's to resume
    parts.mkdir(parents=True)
    (parts / "manifest.json").write_text(json.dumps({"key": key.key, "settings": key.settings, "done": {}}))
    with claim_output_path(models, "m", "demo", _cfg()) as first:
        with claim_output_path(models, "m", "demo", _cfg()) as second:
            assert (first.target, second.target) == (models / "m-3.safetensors", models / "m.safetensors")
    assert free_output_path(models, "m", "demo", _cfg()) == models / "m-3.safetensors"  # let go of: resumed again


def test_the_run_works_under_its_wizards_claim_and_lets_it_go_before_it_says_it_ended(data_root, tmp_path, qapp):
    """The worker's checks take the lock the wizard holds (taken again, it was refused as another run's), and the
    claim is let go of before the end is sent: the wizard told of it may choose the name again at once."""
    models = tmp_path / "models"
    claim = claim_output_path(models, "m", str(DEMO), _cfg())
    job = QuantizeJob(str(DEMO), claim.target, _cfg(), claim=claim)
    QuantizeWorker._check_output(job)
    assert claim.held
    worker = QuantizeWorker()
    held_at_the_end: list[bool] = []
    worker.cancelled.connect(lambda: held_at_the_end.append(claim.held))
    job.cancel.set()  # its wizard closed while the run waited behind a file check
    worker.run(job)
    assert held_at_the_end == [False]
    assert free_output_path(models, "m", str(DEMO), _cfg()) == Path(claim.target)


def test_a_run_whose_claim_fails_to_let_go_still_says_it_ended(data_root, tmp_path, qapp):
    """Letting go of the claim may fail (closing its lock file: EIO on a network mount): raised out of the worker's
    slot, the run's end was never sent, and its wizard stayed "running" (a wizard opened next waited for ever)."""

    class Unclosable:
        target = tmp_path / "m.safetensors"

        def release(self) -> None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

    job = QuantizeJob("demo", Unclosable.target, _cfg(), claim=Unclosable())
    worker = QuantizeWorker()
    ended: list[str] = []
    worker.cancelled.connect(lambda: ended.append("cancelled"))
    job.cancel.set()
    worker.run(job)
    assert ended == ["cancelled"]


def test_a_wizard_opened_again_resumes_the_run_of_the_one_closed_once_that_run_stopped(qtbot, bare_window,
                                                                                       monkeypatch):  # fmt: skip
    """A run closed with its wizard holds its name until it stops; the wizard opened to go on with it chose its
    name at once, skipped the stopping run's name as another's, and, once that run stopped, started over under
    the next free one, its parts folder unsaid. It chooses once the closed wizard's run stopped, and resumes it."""
    panel = bare_window.quantize_panel
    panel.open_wizard()
    first = panel.wizard
    first.run_state.running = True  # its run is stopping: it holds its name, the one the next wizard resumes
    first.close()
    panel.open_wizard()
    second = panel.wizard
    assert second is not first
    out = demo_run_to_resume(second)
    stopping = claim_output_path(out.parent, "demo-svdquant-int4-r32", str(DEMO), second.config())
    assert stopping.target == out
    handed: list[QuantizeJob] = []
    monkeypatch.setattr(second.turns, "_hand_over", lambda: handed.append(second.run_state.job))
    second.next()  # Quantize
    qtbot.waitUntil(lambda: second.turns._naming is None)  # not named yet (named at once, it took the next free name)
    assert "Waiting for the quantize run of the wizard you closed to stop" in second.run_page.log.toPlainText()
    stopping.release()  # the closed wizard's run stopped: its worker let go of its name, then said so
    first.run_state.set_running(False)
    qtbot.waitUntil(lambda: bool(handed))
    try:
        assert second.run_state.out_path == out and handed[0].claim.target == out
    finally:
        release_claim(handed[0].claim)
        second.run_state.set_running(False)


def test_a_run_cancelled_while_it_waits_to_be_named_is_never_named(qtbot, bare_window):
    """Cancelled (or its wizard closed) while it waits for the closed wizard's run, before its name is chosen: it
    ends at once, and that run's end names nothing."""
    panel = bare_window.quantize_panel
    panel.open_wizard()
    first = panel.wizard
    first.run_state.running = True
    first.close()
    panel.open_wizard()
    second = panel.wizard
    second.source_page.use_path(str(DEMO))
    second.next()
    second.next()
    second.next()  # Quantize: waits, unnamed
    assert second.run_state.running and second.turns._naming is None and second.run_state.job is None
    second.cancel()
    assert not second.run_state.running and "Stopped. Nothing was added." in second.run_page.log.toPlainText()
    first.run_state.set_running(False)
    assert second.turns._naming is None and second.run_state.job is None and not second.run_state.running
    assert "choosing the output's name" not in second.run_page.log.toPlainText()
