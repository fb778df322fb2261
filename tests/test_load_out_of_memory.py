"""Running out of GPU memory while a model is placed on the GPU (loading, before any image) is said in numbers: what
the model needs, what the GPU has free, what to do. It was outside the engine's out-of-memory handling: the command
line printed torch's traceback, and the app advised "a smaller size" for weights that do not fit at any size.

No test machine can run out of GPU memory on purpose: the call that moves the transformer to its device raises
torch's own error, as it does on a GPU that is full; everything else is the real engine."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch
from diffusers import FluxTransformer2DModel

from app.engine_errors import classify
from gpu.generation.service import GenerationService, OutOfMemory
from gpu.library import ModelLibrary
from gpu.runtime.memory_policy import GiB, amount


@pytest.fixture
def placed(monkeypatch) -> list[weakref.ref]:
    """Moving a FLUX transformer to a device runs out of memory; the list gets a weak reference to each one tried,
    to see that nothing holds it once the error is reported."""
    refs: list[weakref.ref] = []
    moving = torch.nn.Module.to

    def out_of_memory(module, *args, **kwargs):
        to_device = "device" in kwargs or any(isinstance(a, (torch.device, str)) for a in args)
        if isinstance(module, FluxTransformer2DModel) and to_device:
            refs.append(weakref.ref(module))
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 72.00 MiB")
        return moving(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", out_of_memory)
    return refs


def test_out_of_memory_while_loading_is_a_user_error_in_numbers_and_frees_what_was_placed(tmp_path, placed):
    service = GenerationService(ModelLibrary(tmp_path), device=torch.device("cpu"))
    plan = service.describe("demo-int4").memory_policy
    need = plan.peak_estimate_bytes
    with pytest.raises(OutOfMemory) as raised:
        service.load("demo-int4")
    message = str(raised.value)
    assert f"about {amount(need)} " in plan.description  # the error says the need as the plan said it
    assert message.startswith(f"demo-int4 needs about {amount(need)} of system memory"), message
    assert "this machine has" in message and raised.value.hint  # here the CPU's RAM; on a GPU its free memory
    assert service.loaded is None
    gc.collect()
    assert placed and placed[0]() is None  # the transformer that did not fit is freed, not kept by the error
    error = classify(raised.value)  # the app's words: out of memory, and the engine's numbers, not "a smaller size"
    assert (error.kind, error.message, error.hint) == ("oom", message, raised.value.hint)


def test_the_command_line_says_the_plan_first_then_one_error_line(tmp_path, placed, capsys):
    from main import main

    out = tmp_path / "star.png"
    code = main(["--data-dir", str(tmp_path / "data"), "generate", "a red star", "--model", "demo-int4", "--steps",
                 "1", "--width", "64", "--height", "64", "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 2 and not out.exists()
    assert printed.out.splitlines()[0].startswith("Memory plan: ")  # said before the model loads
    assert printed.err.splitlines() == [printed.err.splitlines()[-1]]
    assert printed.err.startswith("error: demo-int4 needs about ") and "Traceback" not in printed.err


def test_on_a_gpu_the_error_names_its_free_memory_and_advises_4_bits_only_to_others(monkeypatch):
    from gpu.generation.service import load_out_of_memory

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (3 * GiB, 8 * GiB))
    cuda = torch.device("cuda")
    full = load_out_of_memory("flux-dev", 25 * GiB, cuda, 16)
    assert str(full) == "flux-dev needs about 25.0 GiB on the GPU; this GPU has 3.0 GiB free of 8.0 GiB"
    assert "4-bit" in full.hint and "close other programs that use the GPU" in full.hint
    quantized = load_out_of_memory("flux-dev-int4", int(7.9 * GiB), cuda, 4)
    assert str(quantized).startswith("flux-dev-int4 needs about 7.9 GiB on the GPU; this GPU has 3.0 GiB free")
    assert "4-bit" not in quantized.hint and "close other programs that use the GPU" in quantized.hint


def test_a_need_below_a_gib_is_said_in_mib_as_the_plan_says_it():
    """The error said sizes in GiB to one decimal where the plan says MiB below 1 GiB: the demo model's plan said
    "about 102 MiB" and its error "needs about 0.1 GiB"; a need under 52 MiB was "about 0.0 GiB"."""
    from gpu.generation.service import load_out_of_memory

    small = load_out_of_memory("demo-int4", 40 * 2**20, torch.device("cpu"), 4)
    assert str(small).startswith("demo-int4 needs about 40 MiB of system memory; this machine has "), str(small)


@pytest.mark.parametrize("error", ["[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                                   "memory: you tried to allocate 9524000000 bytes. Error code 12",
                                   "CUDA error: out of memory"])  # fmt: skip
def test_memory_running_out_as_a_plain_runtime_error_while_loading_is_said_too(tmp_path, monkeypatch, capsys, error):
    """Torch's CPU allocator failing, and CUDA's own "out of memory", come as plain RuntimeErrors: said as a damaged
    pipeline before, then (9e95616) as a traceback from the command line and a job's "smaller size" in the app."""
    from main import main

    moving = torch.nn.Module.to

    def runs_out(module, *args, **kwargs):  # as ``placed``: the transformer moved to its device
        if isinstance(module, FluxTransformer2DModel) and ("device" in kwargs or any(
                isinstance(a, (torch.device, str)) for a in args)):  # fmt: skip
            raise RuntimeError(error)
        return moving(module, *args, **kwargs)

    monkeypatch.setattr(torch.nn.Module, "to", runs_out)
    code = main(["--data-dir", str(tmp_path / "data"), "generate", "a red star", "--model", "demo-int4", "--steps",
                 "1", "--width", "64", "--height", "64", "--out", str(tmp_path / "s.png")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and err.startswith("error: demo-int4 needs "), err
    # the RAM said as the RAM; CUDA's own error as the GPU's memory where there is a GPU (else the model is on the CPU)
    on_gpu = error.startswith("CUDA") and torch.cuda.is_available()
    assert ("on the GPU; this GPU has" if on_gpu else "of system memory; this machine has") in err
