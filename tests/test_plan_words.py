"""The memory plan in the model's own terms: its estimate for the model's default image size on a GPU as on the
CPU (the 26 MB demo, which makes 128x128 images, showed "Estimated VRAM 3.3 GiB", a 1024x1024 decode), sizes under
1 GiB in MiB ("0.0 GiB of weights" before), and an SVDQ file whose base pipeline is missing or does not fit planned
with a word of it (FLUX.1-dev's 9 GiB of encoders were printed as the model's own). A base that is there but does
not fit is said so, not "not found"."""

from __future__ import annotations

import shutil

import pytest
import torch
from test_base_fit import misfit_base, with_recorded_base, without_builtins

import gpu.runtime.memory_policy as memory_policy
from gpu.errors import ModelLoadError
from gpu.generation.pipeline_loader import resolve_base
from gpu.generation.service import GenerationService
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from gpu.runtime.memory_policy import DECODE_BYTES_PER_PIXEL, DENOISE_BYTES_PER_PIXEL, GiB

MODELS = resources_dir() / "models"


@pytest.fixture
def gpu_16gib(monkeypatch) -> None:
    monkeypatch.setattr(memory_policy, "detect_total_vram", lambda device=None: 16 * GiB)


def test_a_gpu_plan_is_for_the_models_own_size_in_mib_below_a_gib(tmp_path, gpu_16gib):
    info = GenerationService(ModelLibrary(tmp_path), device=torch.device("cpu")).describe("demo")
    policy = info.memory_policy
    work = (DENOISE_BYTES_PER_PIXEL + DECODE_BYTES_PER_PIXEL) * 128 * 128  # the demo makes 128x128 images
    assert policy.name == "gpu-resident" and info.est_vram_bytes == policy.peak_estimate_bytes
    assert work < policy.peak_estimate_bytes < work + GiB // 4, policy.description
    assert "0.0 GiB" not in policy.description and " MiB of weights)" in policy.description, policy.description
    assert "Planned peak " in policy.description and " MiB of 16.0 GiB." in policy.description, policy.description


def test_an_svdq_file_without_its_base_is_planned_with_a_word_of_it(tmp_path, gpu_16gib, monkeypatch):
    without_builtins(monkeypatch, tmp_path)  # no library pipeline to stand in for the base (the demo's fits it)
    library = ModelLibrary(tmp_path / "data")
    service = GenerationService(library, device=torch.device("cpu"))
    nowhere = {"path": "/nowhere/FLUX.1-dev", "name": "", "relative_path": ""}
    alone = with_recorded_base(tmp_path / "alone" / "flux-int4.safetensors", nowhere)
    text = service.describe(str(alone)).memory_policy.description
    assert text.endswith(" Its base pipeline (text encoders, VAE) was not found: FLUX.1-dev's are counted in their "
                         "place."), text  # fmt: skip

    shutil.move(misfit_base(tmp_path / "misfit"), tmp_path / "beside" / "FLUX.1-dev")
    beside_it = {**nowhere, "relative_path": "FLUX.1-dev"}
    model = with_recorded_base(tmp_path / "beside" / "flux-int4.safetensors", beside_it)
    assert service.describe(str(model)).memory_policy.description.endswith(
        " Its base pipeline (text encoders, VAE) does not fit it: FLUX.1-dev's are counted in their place.")
    with pytest.raises(ModelLoadError) as raised:  # loading says the same
        resolve_base(library.resolve(str(model)).facts, library, None)
    assert str(raised.value).startswith("flux-int4.safetensors: its base pipeline (text encoders, VAE) does not fit it "
                                        f"(tried: /nowhere/FLUX.1-dev, {tmp_path / 'beside' / 'FLUX.1-dev'}, which "
                                        "does not fit (joint_attention_dim 128 vs 256")  # fmt: skip
