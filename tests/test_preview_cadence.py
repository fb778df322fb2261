"""The live preview's cadence is the app's "preview every N steps" (settings.json ``preview_every``, 2): the engine
made one every 4 steps whatever the app asked, and the app kept those at multiples of its own N, so a job of 4
steps or fewer (FLUX.1-schnell's) never showed a preview and N = 2 meant every 4th step."""

from __future__ import annotations

from gpu.generation.request import GenerationRequest, ProgressEvent
from gpu.generation.service import GenerationService


def _previews(service: GenerationService, steps: int, **every: int) -> list[tuple[int, tuple[int, int]]]:
    """(step, preview size) of each progress event that carried a preview."""
    events: list[ProgressEvent] = []
    request = GenerationRequest("a red star", model="demo", seed=3, steps=steps, width=64, height=64)
    service.generate(request, on_progress=events.append, **every)
    assert [e.step for e in events] == list(range(1, steps + 1))
    return [(e.step, e.preview.size) for e in events if e.preview is not None]


def test_a_preview_every_n_steps_as_asked_none_at_the_last(cpu_service):
    service = cpu_service
    assert [step for step, _ in _previews(service, 4, preview_every=2)] == [2]
    assert [step for step, _ in _previews(service, 7, preview_every=3)] == [3, 6]
    assert [step for step, _ in _previews(service, 4, preview_every=1)] == [1, 2, 3]
    assert _previews(service, 4, preview_every=0) == []
    assert [step for step, _ in _previews(service, 8)] == [4]  # the engine's own cadence for other callers
    assert {size for _, size in _previews(service, 3, preview_every=1)} == {(8, 8)}  # latents: 64 / 8


def test_the_apps_worker_asks_for_its_setting(qtbot, tmp_path):
    from app.data_dir import DataDir
    from app.engine_worker import EngineWorker, Job

    worker = EngineWorker(DataDir(tmp_path / "data").create())
    worker.preview_every = 2
    steps: list[int] = []
    worker.progress.connect(lambda p: p.preview is not None and steps.append(p.step))
    worker._run(Job(GenerationRequest("a red star", model="demo", seed=3, steps=4, width=64, height=64)))
    assert steps == [2]
