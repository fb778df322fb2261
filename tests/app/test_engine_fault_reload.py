"""After an unexpected error inside a job (a CUDA fault, a bug mid-step), the next job runs on a pipeline loaded
anew: the engine only marked the model as not loaded, and the service's load then kept the same pipeline, with
whatever state the failure left in it, since its files had not changed."""

from __future__ import annotations


def test_the_job_after_an_unexpected_failure_runs_on_a_fresh_pipeline(qtbot, window):
    controller = window.controller
    shown: list = []
    controller.error.connect(shown.append)
    controller.prompt.prompt = "a first image"
    with qtbot.waitSignal(controller.job_finished, timeout=120000):
        controller.generate()
    service = controller._engine.worker._service
    failing = service.loaded.pipe
    transformer = failing.transformer
    real_forward = transformer.forward

    def fault(*args, **kwargs):  # once, as a CUDA error mid-step would; the state it leaves is marked
        transformer.forward = real_forward
        transformer.left_by_the_fault = True
        raise RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED when calling cublasGemmEx")

    transformer.forward = fault
    controller.prompt.prompt = "an image that fails"
    controller.generate()
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=120000)
    assert [e.kind for e in shown] == ["internal"] and controller.job.status.startswith("Failed")
    controller.prompt.prompt = "the image after it"
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as done:
        controller.generate()
    assert len(done.args[0]) == 1
    reloaded = service.loaded.pipe is not failing  # (a pipeline's repr is its whole config)
    assert reloaded
    assert not getattr(service.loaded.pipe.transformer, "left_by_the_fault", False)
