"""Quantize runs and generation jobs taking turns (app.engine_worker.QuantizeRuns): what a run that ends early
leaves of the generation model, and what a run is told of the job it waits behind."""

from __future__ import annotations

import shutil

from PySide6.QtCore import Qt

from app.data_dir import resolve_data_dir
from app.engine_worker import EngineWorker, Job, quantize_runs
from gpu.generation.request import GenerationRequest
from tests.app.gui import accept_dialog_later
from tests.app.test_job_queue import _queue_behind_a_long_job


def test_a_cpu_run_that_fails_while_a_job_runs_leaves_its_model_loaded(qtbot, window, monkeypatch):
    """A run asks the engine to unload the generation model, and the request waits behind the running job. A run
    that failed meanwhile (here its disk filled up after the run's first look, which found room) had the model
    unloaded anyway, after the job: the next Generate loaded it again for nothing (a minute for a 12B model)."""
    controller = window.controller
    _queue_behind_a_long_job(qtbot, controller, 0)  # the model loaded, a job running
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.next()
    wizard.next()
    usage = shutil.disk_usage(controller.data.quantized.parent)
    asked: list[object] = []  # the disk has room until the run has asked for the unload (the operating system's)
    wizard._thread.worker.unload_asked.connect(lambda *args: asked.append(args), Qt.ConnectionType.DirectConnection)
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage._replace(free=0) if asked else usage)
    accept_dialog_later(seen := [])
    with qtbot.waitSignal(wizard.run_page.completeChanged, timeout=60000):
        wizard.next()  # a run on the CPU: it asks for the unload and starts at once
    log = wizard.run_page.log.toPlainText()
    assert f"Failed: not enough free disk space in {wizard.run_state.out_path.parent}" in log and controller.job.busy
    qtbot.waitUntil(lambda: len(seen) == 1)
    assert "free some space on its disk" in seen[0]  # the wizard's remedy for a full disk, not a folder's
    wizard.close()
    statuses: list[str] = []
    controller.job.status_changed.connect(statuses.append)
    controller.cancel()  # the job ends: the engine gets to the unload queued behind it
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
    with qtbot.waitSignal(controller.job_finished, timeout=60000):
        controller.generate()
    assert "Starting…" in statuses and "Loading demo…" not in statuses  # was: loaded again


def test_a_run_without_the_disk_space_it_needs_is_refused_before_the_generation_model_is_unloaded(
        qtbot, window, monkeypatch):  # fmt: skip
    """The disk space check was the run's, made after the run had asked for the generation model's unload (and,
    on a GPU, waited for the job before it): refused at once, it had cost the model, loaded again at the next
    Generate. It is one of the quick refusals now, made before the run asks for anything."""
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    asked: list[object] = []
    wizard._thread.worker.unload_asked.connect(lambda *args: asked.append(args), Qt.ConnectionType.DirectConnection)
    wizard.next()
    wizard.next()
    usage = shutil.disk_usage(window.controller.data.quantized.parent)
    monkeypatch.setattr(shutil, "disk_usage", lambda _path: usage._replace(free=2**20))
    accept_dialog_later(seen := [])
    with qtbot.waitSignal(wizard.run_page.completeChanged, timeout=60000):
        wizard.next()
    said = f"Failed: not enough free disk space in {wizard.run_state.out_path.parent}"
    assert said in wizard.run_page.log.toPlainText()
    assert asked == []  # was: the unload asked for, before the refusal
    qtbot.waitUntil(lambda: len(seen) == 1)
    wizard.close()


def test_a_run_taking_the_gpu_as_a_job_starts_is_told_it_waits_behind_that_job(qapp, data_root):
    """The engine marked its job running only after letting it through (no run held the GPU then): a run taking
    the GPU in between was told no job ran, and its page did not say it waited, though its unload then waited
    behind the job. A job's turn and a run's hold are now taken under one lock. The worker's slots run here, on
    the test thread; the run takes its hold at the job's first signal, inside that window."""
    worker = EngineWorker(resolve_data_dir(data_root))
    behind: list[bool] = []

    def run_starts(busy: bool) -> None:
        if busy:
            with quantize_runs.holding("cuda") as hold:
                behind.append(hold.behind_job)

    worker.busy_changed.connect(run_starts)
    failed: list[int] = []
    worker.failed.connect(lambda job_id, _error: failed.append(job_id))
    job = Job(GenerationRequest(prompt="a red circle", model="no-such-model"))  # fails at once, after the window
    worker.generate(job)
    assert failed == [job.id]  # it ran
    with quantize_runs.holding("cuda") as hold:
        assert not hold.behind_job  # it ended
        held = Job(GenerationRequest(prompt="a red circle", model="no-such-model"))
        worker.generate(held)
        assert failed == [job.id] and worker._waiting == [held]  # held back by the run, not let through
    assert failed == [job.id, held.id]  # started by itself as the run ended
    assert behind == [True, True]  # was: False for both
