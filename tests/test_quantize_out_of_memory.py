"""A quantize run that runs out of GPU memory or RAM says so in a quantize run's words: which memory, while doing
what, and the remedies a run has. It passed as torch's error: a traceback from ``main.py quantize``, and in the
wizard a generation job's advice (a smaller image size, fewer images per batch, a 4-bit model)."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
import torch

import gpu.quantizer.in_memory as in_memory
import gpu.streaming.block_loop as block_loop
import gpu.streaming.engine as engine
import gpu.streaming.memory as memory
from gpu.errors import UserError
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from gpu.quantizer import QuantizeConfig, quantize_model

DEMO = resources_dir() / "models" / "demo"
CPU = torch.device("cpu")
# What CUDA raises when T5-XXL does not fit an 8 GB card, the default budget of 14 GiB being no cap there
CUDA_OOM = ("CUDA out of memory. Tried to allocate 64.00 MiB. GPU 0 has a total capacity of 7.63 GiB of which "
            "20.00 MiB is free.")  # fmt: skip
GENERATION_WORDS = ("generating", "smaller size", "images per batch", "4-bit model")


def _cfg() -> QuantizeConfig:
    return QuantizeConfig(calib_prompts=2, calib_steps=2, max_tokens_per_layer=64, refine_iters=1, alpha_points=2)


def _gpu_oom(*_a, **_k):
    raise torch.OutOfMemoryError(CUDA_OOM)


def test_the_gpu_running_out_while_encoding_is_said_for_quantizing(tmp_path, monkeypatch):
    encoders: list[weakref.ref] = []

    def gpu_oom_holding_the_encoders(pipe, *_a, **_k):
        encoders.append(weakref.ref(pipe.text_encoder_2))
        raise torch.OutOfMemoryError(CUDA_OOM)

    monkeypatch.setattr(in_memory, "encode_prompts", gpu_oom_holding_the_encoders)
    gc.collect()
    gc.disable()  # what the failed run held is let go of as the error is said, not at some later collection
    try:
        with pytest.raises(UserError) as raised:
            quantize_model(DEMO, tmp_path / "m.safetensors", _cfg(), library=ModelLibrary(tmp_path), device=CPU)
        assert encoders[0]() is None  # the error's traceback held the run's frames: T5-XXL stayed on the GPU
    finally:
        gc.enable()
    err = raised.value
    assert str(err).startswith("the GPU ran out of memory while encoding the calibration prompts")
    assert "close other programs that use the GPU" in err.hint and "too small" in err.hint
    assert err.ram_budget_helps is False  # no setting of a run helps: the GPU itself is full
    assert not any(w in err.text for w in GENERATION_WORDS)


@pytest.mark.parametrize("budget_gib", [4.0, 40.0])
def test_a_run_over_its_gpu_budget_or_the_card_lets_go_of_what_it_held(tmp_path, monkeypatch, budget_gib):
    """Where the budget was the limit its error came from the out-of-memory one, whose traceback kept the run's
    text encoders alive while the error was said. The budget is held by the real ``gpu_memory_budget`` on a
    "cuda" device whose allocator calls are stood in for (a 24 GiB card; the run itself on the CPU)."""
    from types import SimpleNamespace

    from gpu.errors import BadRequestError, QuantizeOutOfMemory

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _i: SimpleNamespace(total_memory=24 * 2**30))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction", lambda _f, _i=None: None)
    monkeypatch.setattr(memory, "memory_fraction", lambda _i: 1.0)
    real = engine.gpu_memory_budget
    monkeypatch.setattr(engine, "gpu_memory_budget", lambda _device, gib: real(torch.device("cuda", 0), gib))
    encoders: list[weakref.ref] = []

    def gpu_oom_holding_the_encoders(pipe, *_a, **_k):
        encoders.append(weakref.ref(pipe.text_encoder_2))
        raise torch.OutOfMemoryError(CUDA_OOM)

    monkeypatch.setattr(in_memory, "encode_prompts", gpu_oom_holding_the_encoders)
    cfg = QuantizeConfig(calib_prompts=2, calib_steps=2, alpha_points=2, gpu_budget_gib=budget_gib)
    gc.collect()
    gc.disable()
    try:
        with pytest.raises(UserError) as raised:
            quantize_model(DEMO, tmp_path / "m.safetensors", cfg, library=ModelLibrary(tmp_path), device=CPU)
        assert encoders[0]() is None
    finally:
        gc.enable()
    if budget_gib < 24:  # the budget was the limit: said as the budget
        assert isinstance(raised.value, BadRequestError) and "than its budget of 4 GiB" in str(raised.value)
    else:
        assert isinstance(raised.value, QuantizeOutOfMemory)


def test_cuda_itself_out_of_memory_and_the_ram_while_loading_or_first_inputs_are_said(tmp_path, monkeypatch):
    """A CUDA library's workspace not had ("CUDA error: out of memory", a plain RuntimeError); torch's CPU
    allocator failing while the text encoders load (said as a damaged model); the RAM running out as the first
    block's inputs are computed (said as the step before, without the RAM budget that helps)."""
    import diffusers

    def cuda_error(*_a, **_k):
        raise RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported")

    monkeypatch.setattr(block_loop, "quantize_layers", cuda_error)
    with pytest.raises(UserError, match="the GPU ran out of memory while quantizing block 1 of 6"):
        quantize_model(DEMO, tmp_path / "m.safetensors", _cfg(), library=ModelLibrary(tmp_path), device=CPU)
    monkeypatch.undo()

    monkeypatch.setattr(block_loop, "preamble", lambda *_a, **_k: _no_ram())
    with pytest.raises(UserError) as raised:
        quantize_model(DEMO, tmp_path / "m.safetensors", _cfg(), library=ModelLibrary(tmp_path), device=CPU)
    assert str(raised.value).startswith("the computer ran out of memory (RAM) while computing the first block's "
                                        "inputs") and raised.value.ram_budget_helps is True  # fmt: skip
    monkeypatch.undo()

    monkeypatch.setattr(diffusers.FluxPipeline, "from_pretrained", classmethod(lambda *_a, **_k: _no_ram()))
    with pytest.raises(UserError, match=r"the computer ran out of memory \(RAM\) while loading the text encoders"):
        quantize_model(DEMO, tmp_path / "n.safetensors", _cfg(), library=ModelLibrary(tmp_path), device=CPU)


def _no_ram():
    raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
                       "you tried to allocate 9524000000 bytes. Error code 12 (Cannot allocate memory)")  # fmt: skip


def test_the_ram_running_out_among_the_block_inputs_names_the_ram_budget(tmp_path, monkeypatch):
    def no_ram(*_a, **_k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                           "memory: you tried to allocate 4503599627370496 bytes. Error code 12")  # fmt: skip

    monkeypatch.setattr(block_loop, "quantize_layers", no_ram)
    with pytest.raises(UserError) as raised:
        quantize_model(DEMO, tmp_path / "m.safetensors", _cfg(), library=ModelLibrary(tmp_path), device=CPU)
    err = raised.value
    assert str(err).startswith("the computer ran out of memory (RAM) while quantizing block 1 of 6")
    assert "smaller RAM budget" in err.hint and err.ram_budget_helps is True
    assert not any(w in err.text for w in GENERATION_WORDS)


def test_the_ram_running_out_where_the_budget_does_not_count_says_no_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "save_checkpoint", lambda *_a, **_k: (_ for _ in ()).throw(MemoryError()))
    with pytest.raises(UserError) as raised:
        quantize_model(DEMO, tmp_path / "m.safetensors", _cfg(), library=ModelLibrary(tmp_path), device=CPU)
    err = raised.value
    assert str(err).startswith("the computer ran out of memory (RAM) while putting m.safetensors together")
    assert "budget" not in err.hint and err.ram_budget_helps is False


def test_other_runtime_errors_pass_as_they_are(tmp_path, monkeypatch):
    def bug(*_a, **_k):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(in_memory, "encode_prompts", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        quantize_model(DEMO, tmp_path / "m.safetensors", _cfg(), library=ModelLibrary(tmp_path), device=CPU)


def test_the_command_line_says_it_in_one_line_without_a_traceback(tmp_path, monkeypatch, capsys):
    import main

    monkeypatch.setenv("NIBBLE_DATA_DIR", str(tmp_path / "data"))
    # the run on the CPU, as on a machine without a GPU: on one with a GPU the run's budget check words it first
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(in_memory, "encode_prompts", _gpu_oom)
    out = tmp_path / "m.safetensors"
    code = main.main(["quantize", str(DEMO), "--out", str(out), "--calib-prompts", "2", "--calib-steps", "2",
                      "--alpha-points", "2"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "error: the GPU ran out of memory while encoding the calibration prompts" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("exc", [MemoryError(), torch.OutOfMemoryError(CUDA_OOM)])
def test_the_wizard_says_memory_outside_the_run_in_a_quantize_runs_words(exc):
    pytest.importorskip("PySide6")  # the wizard's worker is Qt's (the GPU machine has no PySide6)
    import gpu.quantizer  # noqa: F401 - before the engine, which imported first is a circular import
    from app.quantize_worker import run_error

    error, settings_can_fix = run_error(exc, Path("/tmp/m"))
    assert error.kind == "oom" and not settings_can_fix
    assert "ran out of memory" in error.message
    assert not any(w in error.text for w in GENERATION_WORDS)


@pytest.mark.parametrize("fraction, has", [(1.0, " (it has 24.0 GiB)"),
                                           (0.25, " (it has 24.0 GiB, of which this program may use 6.0 GiB)")])
def test_the_gpus_size_said_names_a_cap_in_force(monkeypatch, fraction, has):
    """The sentence gave the card's size only, also where this process may use part of it (a memory fraction set
    before the run): the 79.2 GiB said hid that the cap was the limit."""
    from types import SimpleNamespace

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda _i: SimpleNamespace(total_memory=24 * 2**30))
    monkeypatch.setattr(memory, "memory_fraction", lambda _i: fraction)
    said = memory.quantize_out_of_memory(torch.OutOfMemoryError(CUDA_OOM), memory.RunStage("loading a block"))
    assert said is not None and str(said) == f"the GPU ran out of memory while loading a block{has}"
