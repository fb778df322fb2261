"""The engine worker with the real engine: a job on a model whose file was replaced since it was loaded loads it
again, says so as it starts (the status line's "Loading <model>…") and tells the Models panel. The worker took the
model for loaded because its name was the one loaded last."""

from __future__ import annotations

import os
import shutil

from app.data_dir import resolve_data_dir
from app.engine_worker import EngineWorker, Job
from gpu.generation.request import GenerationRequest
from gpu.paths import resources_dir


def test_a_job_after_the_model_file_was_replaced_loads_it_again(qapp, data_root, tmp_path):
    model = tmp_path / "mine.safetensors"
    shutil.copy(resources_dir() / "models" / "demo-int4.safetensors", model)
    worker = EngineWorker(resolve_data_dir(data_root))
    worker.initialize()
    worker.add_model(str(model))
    started, loaded, failed = [], [], []
    worker.started.connect(lambda job_id, count, loading: started.append(loading))
    worker.model_loaded.connect(loaded.append)
    worker.failed.connect(lambda job_id, error: failed.append(error))

    def job() -> None:
        assert worker._generate(Job(GenerationRequest("a red star", model="mine", seed=3, steps=2, width=64,
                                                      height=64)))  # fmt: skip

    job()
    job()
    assert (started, len(loaded)) == ([True, False], 1)  # loaded once; the second job found it loaded

    incoming = tmp_path / "incoming.safetensors"
    shutil.copy(model, incoming)  # a new file where the model was (a quantize run writes its output this way)
    os.replace(incoming, model)
    job()
    assert not failed, failed
    assert (started, len(loaded)) == ([True, False, True], 2)
