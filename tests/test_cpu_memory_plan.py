"""Without a CUDA GPU the whole pipeline runs in system memory at 32 bits: the memory plan weighs it against the
RAM the machine has, and says in numbers when it does not fit (a full-size FLUX.1-dev needed 85 GiB there, T5-XXL
alone 17.7 GiB), where it said "Slow but works" for any model. It warns; nothing is refused."""

from __future__ import annotations

import pytest
import torch
from flux_dev_sized import FLUX_DEV_PARAMS, flux_dev_sized

from gpu.generation.memory import pipeline_sizes, predicted_sizes
from gpu.generation.pipeline_loader import load_pipeline
from gpu.generation.service import GenerationService
from gpu.library import ModelLibrary
from gpu.runtime.memory_policy import GiB, choose_policy

# Working memory a pixel on the CPU: FLUX.1's (twice the decode measured on the GPU: 32 bits, not 16), and the demo
# model's, whose VAE decoder is 4 times narrower (32 channels at full resolution, FLUX.1's 128)
FLUX_WORK_BYTES_PER_PIXEL, DEMO_WORK_BYTES_PER_PIXEL = 2 * 2432, 2 * 2432 // 4
# The peak RSS of a 1-step 2048x2048 ``main.py generate`` on the demo model, on the CPU (2026-11-24)
DEMO_2048_PEAK_BYTES = 4646 * 2**20


@pytest.fixture
def ram_32gib(monkeypatch) -> int:
    import gpu.system_info

    monkeypatch.setattr(gpu.system_info, "installed_ram_bytes", lambda *args, **kwargs: 32 * GiB)
    return 32 * GiB


def test_a_flux_dev_pipeline_on_a_32_gib_cpu_machine_is_warned_with_numbers(tmp_path, ram_32gib):
    model = flux_dev_sized(tmp_path / "FLUX.1-dev")
    info = GenerationService(ModelLibrary(tmp_path / "data"), device=torch.device("cpu")).describe(str(model))
    policy = info.memory_policy
    weights = 4 * sum(FLUX_DEV_PARAMS.values())  # 32 bits on the CPU
    need = weights + FLUX_WORK_BYTES_PER_PIXEL * 1024 * 1024  # FLUX.1's configs: its measured working memory
    assert (policy.name, policy.fits, policy.peak_estimate_bytes, policy.total_ram_bytes) == ("cpu", False, need,
                                                                                             ram_32gib)  # fmt: skip
    text = policy.description
    assert text.startswith("No CUDA GPU: the whole pipeline (text encoders, transformer, VAE) runs on the CPU")
    assert f"needs about {need / GiB:.1f} GiB ({weights / GiB:.1f} GiB of 32-bit weights" in text, text
    assert "more than this machine's 32.0 GiB of RAM" in text and "a 4-bit (SVDQ) model of it" in text, text
    # the Models panel's estimate is this need, not a GPU figure
    assert (info.est_ram_bytes, info.est_vram_bytes) == (need, None)


def test_a_model_that_fits_says_what_it_takes_of_the_ram(tmp_path, ram_32gib):
    info = GenerationService(ModelLibrary(tmp_path), device=torch.device("cpu")).describe("demo-int4")
    policy = info.memory_policy
    assert policy.fits and policy.peak_estimate_bytes == info.est_ram_bytes < GiB
    assert "of this machine's 32.0 GiB" in policy.description and "128x128 images" in policy.description
    assert policy.description.endswith("Slow but works.")
    unknown = choose_policy(None, predicted_sizes(ModelLibrary(tmp_path).resolve("demo").facts, None, 4), None)
    assert unknown.fits and "this machine's RAM is unknown" in unknown.description


def test_the_cpu_sizes_from_headers_are_those_of_the_loaded_pipeline(tmp_path):
    """At 32 bits: an SVDQ file's quantized layers stay as stored, its other weights are cast (the estimate read
    only its header)."""
    library = ModelLibrary(tmp_path)
    base = library.resolve("demo").path
    for name in ("demo-int4", "demo"):
        entry = library.resolve(name)
        predicted = predicted_sizes(entry.facts, base, value_bytes=4)
        loaded = pipeline_sizes(load_pipeline(entry, library, torch.device("cpu")).pipe, torch.device("cpu"))
        assert (predicted.transformer, predicted.vae, predicted.weight_bits) == (
            loaded.transformer, loaded.vae, loaded.weight_bits,
        ), name  # fmt: skip
    assert predicted_sizes(library.resolve("demo-int4").facts, base, 4).weight_bits == 4


def test_the_cpu_plan_is_for_the_size_asked_for_not_the_models_own(tmp_path):
    """``generate --width 1024 --height 1024`` on the demo model (128x128 its own) said "working memory for 128x128
    images": a plan about 64 times too small for the job, so the RAM it was about to run out of went unwarned. The
    line is planned for the job's size, a side not given being the model's; the loaded pipeline's plan at that size
    is the same, so no second "as loaded" line follows."""
    service = GenerationService(ModelLibrary(tmp_path / "lib"), device=torch.device("cpu"))
    own, asked = service.describe("demo").memory_policy, service.describe("demo", None, 1024, 1024).memory_policy
    assert "working memory for 128x128 images" in own.description, own.description
    assert "working memory for 1024x1024 images" in asked.description, asked.description
    assert asked.peak_estimate_bytes - own.peak_estimate_bytes == DEMO_WORK_BYTES_PER_PIXEL * (1024**2 - 128**2)
    assert "for 1024x128 images" in service.describe("demo", width=1024).memory_policy.description
    service.load("demo")  # loaded: the same plan for the job's size
    assert service.describe("demo", None, 1024, 1024).memory_policy.description == asked.description
    assert service.describe("demo").memory_policy.description == own.description


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU's plan: a GPU's is made at load for the model's size")
def test_generate_says_the_plan_for_the_size_asked_for(tmp_path, capsys, monkeypatch):
    """The plan line of ``generate --width 96 --height 64`` said the demo model's own 128x128; once, for the job."""
    from main import main

    monkeypatch.chdir(tmp_path)
    code = main(["--data-dir", str(tmp_path / "data"), "generate", "a red star", "--width", "96", "--height", "64",
                 "--steps", "1", "--out", str(tmp_path / "star.png")])
    out = capsys.readouterr()
    assert code == 0, out.err
    plans = [line for line in out.out.splitlines() if "Memory plan" in line]
    assert len(plans) == 1 and "working memory for 96x64 images" in plans[0], out.out


def test_the_cpu_plan_of_a_small_model_at_a_large_size_is_its_own_and_advises_a_smaller_size(tmp_path, monkeypatch):
    """The working memory a pixel was FLUX.1's for any model: the demo model at 2048x2048 was planned 19.1 GiB,
    "more than this machine's 16.0 GiB", advising a 4-bit model of it, where the job takes 4.5 GiB. It is scaled to
    the model's transformer and VAE (their configs: the loaded pipeline's plan is the same), and where the working
    memory is most of the need, the advice is a smaller image."""
    import gpu.system_info

    ram = 16 * GiB
    monkeypatch.setattr(gpu.system_info, "installed_ram_bytes", lambda *args, **kwargs: ram)
    service = GenerationService(ModelLibrary(tmp_path / "lib"), device=torch.device("cpu"))
    for name in ("demo", "demo-int4"):  # a folder's configs, and the config an SVDQ file records
        policy = service.describe(name, None, 2048, 2048).memory_policy
        work = policy.peak_estimate_bytes - policy.details["weights_gib"] * GiB
        assert round(work) == DEMO_WORK_BYTES_PER_PIXEL * 2048 * 2048, name  # was: 4,864 bytes a pixel, FLUX.1's
        assert DEMO_2048_PEAK_BYTES / 2 < policy.peak_estimate_bytes < DEMO_2048_PEAK_BYTES * 2, policy.description
        assert policy.fits and "of this machine's 16.0 GiB" in policy.description, policy.description
    ram = 2 * GiB  # too little for it: the working memory is what a smaller image saves
    text = service.describe("demo", None, 2048, 2048).memory_policy.description
    assert "more than this machine's 2.0 GiB of RAM" in text and "(try a smaller image size, close" in text, text
    assert "4-bit" not in text
    service.load("demo")  # loaded: the same plan, from the pipeline's configs
    assert service.describe("demo", None, 2048, 2048).memory_policy.description == text
