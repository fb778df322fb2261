"""A queue of jobs on the real window and engine: Cancel stops the running job only, Cancel all every job."""

from __future__ import annotations

import re
import shutil
import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.engine_worker import quantize_runs
from app.generation_state import STEPS_MAX
from app.job_queue import QUANTIZE_WAIT
from app.widgets.quantize_wizard import GENERATION_WAIT
from gpu.paths import resources_dir
from tests.app.gui import TEST_SIZE, TEST_STEPS


def _queue_behind_a_long_job(qtbot, controller, queued: int) -> list[str]:
    """A job of many steps, running, and ``queued`` short jobs behind it -> the status lines shown from then on."""
    statuses: list[str] = []
    controller.prompt.prompt, controller.prompt.steps = "a green square", STEPS_MAX
    with qtbot.waitSignal(controller.job.step_changed, timeout=120000, check_params_cb=lambda s: s >= 1):
        controller.generate()
    controller.job.status_changed.connect(statuses.append)
    controller.prompt.steps = TEST_STEPS
    for _ in range(queued):
        controller.generate()
    return statuses


def test_cancel_stops_the_running_job_and_the_queue_goes_on(qtbot, window):
    """Esc stops the running job only; each job the queue starts shows no preview until its own first one (the
    last job's finished image stayed while the next job's steps counted up, read as that job's image)."""
    controller = window.controller
    statuses = _queue_behind_a_long_job(qtbot, controller, 2)
    previews_at_start: list[bool] = []  # whether the preview area was empty as each job started
    controller.job.status_changed.connect(
        lambda line: line.startswith("Starting…") and previews_at_start.append(controller.job.preview is None))
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert controller.job.status == "Cancelling…; 2 queued jobs go on (Shift+Esc cancels them too)"
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
    # Was: Cancel stopped every queued job too; now the two behind the cancelled one run.
    assert controller.gallery.rowCount() == 2
    assert "Cancelled; 2 queued jobs go on" in statuses
    assert controller.job.status == "Done: 1 image"
    assert previews_at_start == [True, True] and controller.job.preview is not None


def test_cancel_all_stops_the_running_job_and_the_queued_ones(qtbot, window):
    """Shift+Esc stops every job; a Generate right after is queued behind the job being cancelled, which the status
    line then said was running still ("step 1/150, ETA 0:32; 1 more queued": its step when Cancel all was pressed)."""
    controller = window.controller
    statuses = _queue_behind_a_long_job(qtbot, controller, 2)
    menu = next(action.menu() for action in window.menuBar().actions() if action.text() == "&Generate")
    assert window.cancel_all_action in menu.actions()
    qtbot.keyClick(window, Qt.Key.Key_Escape, Qt.KeyboardModifier.ShiftModifier)
    assert controller.job.status == "Cancelling all 3 jobs…"
    controller.generate()
    assert controller.job.status == "Cancelling…; 1 more queued"
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
    # The three end cancelled, said as such, and the new job runs.
    assert "Cancelled; 1 queued job goes on" in statuses
    assert controller.gallery.rowCount() == 1 and controller.job.status == "Done: 1 image"


def test_the_status_keeps_the_running_jobs_progress_and_says_loading_only_when_the_model_loads(qtbot, window):
    controller = window.controller
    statuses: list[str] = []
    controller.job.status_changed.connect(statuses.append)
    _queue_behind_a_long_job(qtbot, controller, 0)
    assert "Loading demo…" in statuses  # the first job loads the model
    controller.generate()
    # Was: "Queued (2)" in place of the running job's step and ETA, until its next step.
    assert re.fullmatch(rf"step \d+/{STEPS_MAX}, ETA \d+:\d\d; 1 more queued", controller.job.status)
    statuses.clear()
    controller.cancel()
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
    assert controller.job.status == "Done: 1 image"
    # Was: "Loading demo…" at the start of every job, the model loaded or not.
    assert "Starting…" in statuses and not [s for s in statuses if s.startswith("Loading")]


def test_cancel_stops_the_job_the_engine_runs_when_the_last_ones_end_is_not_yet_told(qtbot, window):
    """The engine tells the window of a job's end by a queued signal, which arrives after it has started the next
    job. Esc in between cancelled the job that had ended, and the one running went on to its last step."""
    controller = window.controller
    controller.prompt.prompt, controller.prompt.steps = "a short job", 1
    first = controller.generate()
    controller.prompt.steps = STEPS_MAX
    second = controller.generate()
    worker = controller._engine.worker
    deadline = time.monotonic() + 120
    while worker.ended_through < first.id and time.monotonic() < deadline:
        time.sleep(0.01)  # no events handled: the window has not heard of the first job's end
    assert worker.ended_through == first.id and first.id in controller.queue._jobs
    controller.cancel()
    assert second.cancel.is_set()
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
    assert controller.gallery.rowCount() == 1 and controller.job.status == "Cancelled"  # the short job's image


def test_a_model_listed_under_another_name_than_its_files_is_said_to_load_once(qtbot, window, tmp_path):
    """The window kept its own record of the model the engine held, by the name the engine described the loaded
    model with (its file's): a model listed under another name ('demo-int4-2', as 'demo-int4' was taken) was said
    to be loading at every job's start. The engine says whether a job loads its model."""
    controller = window.controller
    copy = tmp_path / "demo-int4.safetensors"
    shutil.copy(resources_dir() / "models" / "demo-int4.safetensors", copy)
    with qtbot.waitSignal(controller.add_ended, timeout=60000) as added:
        asked = controller.add_model(copy)
    assert added.args == [asked, "demo-int4-2"]
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo-int4-2", timeout=60000)
    controller.prompt.steps, controller.prompt.width, controller.prompt.height = TEST_STEPS, TEST_SIZE, TEST_SIZE
    controller.prompt.prompt = "a red circle"
    statuses: list[str] = []
    controller.job.status_changed.connect(statuses.append)
    for _ in range(2):
        with qtbot.waitSignal(controller.job_finished, timeout=60000):
            controller.generate()
    assert [s for s in statuses if s.startswith(("Loading", "Starting"))] == ["Loading demo-int4-2…", "Starting…"]


def test_jobs_wait_for_a_quantize_run_on_the_gpu_and_start_by_themselves_when_it_ends(qtbot, window):
    """The wizard's GPU budget is process-wide: a job started while a run quantized on the GPU was capped with it
    and planned its pipeline for it. Jobs now wait, saying why; Esc ends the waiting one at once; the rest start
    when the run ends. The run is held as QuantizeWorker.run holds one on a CUDA device (a CPU run holds none)."""
    controller = window.controller
    controller.prompt.prompt = "a red circle"
    with quantize_runs.holding("cpu"):
        assert not quantize_runs.active()
    with quantize_runs.holding("cuda"):
        first, second = controller.generate(), controller.generate()
        qtbot.waitUntil(lambda: controller.job.status == f"{QUANTIZE_WAIT}; 1 more queued", timeout=60000)
        controller.cancel()
        qtbot.waitUntil(lambda: first.id not in controller.queue._jobs, timeout=60000)
        qtbot.waitUntil(lambda: controller.job.status == QUANTIZE_WAIT, timeout=60000)
        assert second.id in controller.queue._jobs and controller.gallery.rowCount() == 0
        # A run started now waits for no generation: the held job does not run (was: told it did, and the wizard
        # said it waited for the image being generated).
        with quantize_runs.holding("cuda") as hold:
            assert not hold.behind_job
        asked: list[str] = []
        controller._describe.connect(lambda model, _number: asked.append(model))
    assert asked == ["demo"]  # the model panel's memory plan, predicted again without the run's budget
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
    assert controller.job.status == "Done: 1 image" and controller.gallery.rowCount() == 1


def test_a_quantize_run_on_the_gpu_waits_for_the_running_job_and_starts_when_it_ends(qtbot, window, monkeypatch):
    """The other way round: a run started while a job generated on the GPU began at once (the engine's unload was
    queued behind the job), and both worked on the GPU. The run now waits for the job to end and the model to be
    unloaded, saying so; the wizard's Cancel ends it meanwhile, and the model stays loaded for the next job (its
    unload, queued behind the job, was done anyway); Esc on the job starts it; a job asked for meanwhile waits for
    the run. The run is counted as on "cuda" (its device lookup answers so), as on a GPU machine."""
    controller, engine = window.controller, window.controller._engine.worker
    _queue_behind_a_long_job(qtbot, controller, 0)
    (running,) = controller.queue._jobs.values()
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    worker, log = wizard._thread.worker, wizard.run_page.log
    monkeypatch.setattr(worker, "_device", lambda: "cuda")
    seen: list[tuple[bool, object]] = []  # at the run's first event, on its thread: the job ended, the model held

    def note(_event) -> None:
        seen.append((engine.ended_through >= running.id, engine._loaded))

    worker.progress.connect(note, Qt.ConnectionType.DirectConnection)
    wizard.next()
    wizard.next()
    wizard.calibration_page.count.setValue(2)
    wizard.next()  # the run: it waits
    qtbot.waitUntil(lambda: GENERATION_WAIT in log.toPlainText(), timeout=60000)
    with qtbot.waitSignal(wizard.run_state.run_ended, timeout=60000):
        wizard.cancel()
    assert "Stopped. Nothing was added." in log.toPlainText() and not quantize_runs.active()
    assert seen == [] and running.id in controller.queue._jobs and not running.cancel.is_set()  # the job goes on
    statuses: list[str] = []
    controller.job.status_changed.connect(statuses.append)
    controller.prompt.steps = TEST_STEPS
    after = controller.generate()
    controller.cancel()
    qtbot.waitUntil(lambda: after.id not in controller.queue._jobs, timeout=60000)
    assert "Starting…" in statuses and "Loading demo…" not in statuses  # was: loaded again

    _queue_behind_a_long_job(qtbot, controller, 0)  # a job running again
    (running,) = controller.queue._jobs.values()
    wizard.back()
    wizard.next()  # again: it waits again
    qtbot.waitUntil(lambda: GENERATION_WAIT in log.toPlainText(), timeout=60000)
    queued = controller.generate()
    window.activateWindow()  # Esc in the main window, the wizard open beside it
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    qtbot.keyClick(window, Qt.Key.Key_Escape)  # the job cancelled: the run starts
    assert running.cancel.is_set()
    qtbot.waitUntil(lambda: bool(seen), timeout=60000)
    assert seen[0] == (True, None)  # was: (False, "demo"), the run quantizing beside the job
    qtbot.waitUntil(lambda: controller.job.status == QUANTIZE_WAIT, timeout=60000)
    with qtbot.waitSignal(wizard.run_state.run_ended, timeout=60000):
        wizard.cancel()
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
    assert controller.job.status == "Done: 1 image" and queued.id not in controller.queue._jobs
