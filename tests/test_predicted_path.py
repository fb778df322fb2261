""""Runs on" before loading is predicted from the model's own layers (their formats, read from the SVDQ file's
header metadata): it probed an INT4 W4A4 layer whatever the model held, so an NVFP4, FP4, INT8 or NF4 model was
promised the fused kernels, and the reference path ran once it loaded."""

from __future__ import annotations

import pytest
import torch
from tiny_flux import QUICK_CALIBRATION

from gpu.generation.service import GenerationService
from gpu.library import ModelLibrary
from gpu.quantizer import QuantizeConfig, quantize_model


@pytest.mark.parametrize(("method", "precision"), [("naive", "nvfp4"), ("nf4", "int4")])
def test_the_path_predicted_before_loading_is_the_one_that_runs(tiny_flux, tmp_path, method, precision):
    library = ModelLibrary(tmp_path / "data")
    settings = {**QUICK_CALIBRATION, "calib_prompts": 1, "calib_steps": 1, "alpha_points": 2}
    model = quantize_model(tiny_flux, tmp_path / f"tiny-{precision}.safetensors",
                           QuantizeConfig(method=method, precision=precision, **settings), library=library)  # fmt: skip
    service = GenerationService(library, device=torch.device("cpu"))
    predicted = service.describe(str(model))
    service.load(str(model))
    loaded = service.describe(str(model))
    assert predicted.execution_path == loaded.execution_path
    assert predicted.execution_summary == loaded.execution_summary
    assert "the kernels serve INT4 W4A4 only" in predicted.execution_path or method == "nf4"
