"""A job and a describe read each model file once where they can. Before each job the app asks whether the model is
loaded, which inspected every model of the library (headers read) to find it again; the job then resolved it three
times (generate, load, load's describe); describing an SVDQ file read its checkpoint metadata five times (the
predicted path, the sizes, the weight bits, the base's fit, and the base's library name resolved with every model)."""

from __future__ import annotations

import torch

import gpu.checkpoint.format as checkpoint_format
import gpu.library as library_module
from gpu.generation.request import GenerationRequest
from gpu.generation.service import GenerationService
from gpu.library import ModelLibrary, builtin_models


def _counting(monkeypatch, module, name: str) -> list[str]:
    calls: list[str] = []
    real = getattr(module, name)

    def counted(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_describing_an_svdq_file_reads_its_metadata_once_besides_the_library(tmp_path, monkeypatch):
    service = GenerationService(ModelLibrary(tmp_path), device=torch.device("cpu"))
    meta = _counting(monkeypatch, checkpoint_format, "read_checkpoint_meta")
    inspected = _counting(monkeypatch, library_module, "inspect_model_path")
    service.describe("demo-int4")
    assert len(inspected) == len(builtin_models())  # the library's own look at each model, once
    assert len(meta) == 2, meta  # the library's inspection of the file, and the plan's


def test_a_job_looks_each_model_up_once_and_asking_whether_it_is_loaded_inspects_none(tmp_path, monkeypatch):
    service = GenerationService(ModelLibrary(tmp_path), device=torch.device("cpu"))
    request = GenerationRequest("a red star", model="demo-int4", seed=1, steps=1, width=64, height=64)
    service.generate(request)
    inspected = _counting(monkeypatch, library_module, "inspect_model_path")
    assert service.is_loaded("demo-int4")
    assert inspected == []
    service.generate(request)
    assert len(inspected) == len(builtin_models())  # generate's own resolve, once
