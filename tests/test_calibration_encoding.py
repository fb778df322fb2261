"""Encoding the calibration prompts (minutes with T5-XXL on a small GPU) reports its progress and stops at a cancel
after the prompt under way; a cancel while the text encoders load stops as soon as they are loaded. Before, the
encoding neither said how far it was nor asked the cancel: the run went on through every prompt (the wizard's Cancel
greyed and nothing moving), and the first check came at the first trajectory step."""

from __future__ import annotations

import pytest
import torch

from gpu.errors import Cancelled
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from gpu.quantizer import QuantizeConfig, QuantizeEvent, quantize_model
from gpu.streaming.parts_folder import parts_dir

DEMO = resources_dir() / "models" / "demo"
CPU = torch.device("cpu")
PROMPTS = 20


def _cfg() -> QuantizeConfig:
    return QuantizeConfig(calib_prompts=PROMPTS, calib_steps=2, max_tokens_per_layer=64, refine_iters=1,
                          alpha_points=2)  # fmt: skip


def _encoding(events: list[QuantizeEvent]) -> list[QuantizeEvent]:
    """The progress events of the encoding: its prompts counted (the trajectory steps count to 2)."""
    return [e for e in events if e.kind == "stage" and e.total == PROMPTS and e.index]


def test_a_cancel_while_the_prompts_are_encoded_stops_after_the_prompt_under_way(tmp_path):
    events: list[QuantizeEvent] = []
    out = tmp_path / "m.safetensors"
    with pytest.raises(Cancelled):
        quantize_model(DEMO, out, _cfg(), on_event=events.append, library=ModelLibrary(tmp_path), device=CPU,
                       should_cancel=lambda: any(e.index >= 3 for e in _encoding(events)))  # fmt: skip
    assert [e.index for e in _encoding(events)] == [1, 2, 3]  # not all 20 prompts
    assert not any(e.message.startswith("recording") for e in events)
    assert not parts_dir(out).exists()  # stopped before the samples: nothing written


def test_a_cancel_while_the_text_encoders_load_stops_once_they_are_loaded(tmp_path):
    events: list[QuantizeEvent] = []
    with pytest.raises(Cancelled):
        quantize_model(DEMO, tmp_path / "m.safetensors", _cfg(), on_event=events.append,
                       library=ModelLibrary(tmp_path), device=CPU,
                       should_cancel=lambda: any(e.message == "loading text encoders" for e in events))  # fmt: skip
    assert not any(e.message.startswith("encod") for e in events)  # no prompt encoded after the cancel


def test_the_encoding_counts_every_prompt_in_a_few_lines(tmp_path):
    """Each prompt moves the progress (index of total); a line is said for about every tenth, not each of them (the
    command line prints each line, the wizard logs it)."""
    events: list[QuantizeEvent] = []
    cancel_at_recording = lambda: any(e.message.startswith("recording") for e in events)  # noqa: E731
    with pytest.raises(Cancelled):  # the encoding is all this test needs
        quantize_model(DEMO, tmp_path / "m.safetensors", _cfg(), on_event=events.append,
                       library=ModelLibrary(tmp_path), device=CPU, should_cancel=cancel_at_recording)  # fmt: skip
    encoding = _encoding(events)
    assert [e.index for e in encoding] == list(range(1, PROMPTS + 1))
    said = [e.message for e in encoding if e.message]
    assert said == [f"encoded {i}/{PROMPTS} prompts" for i in range(2, PROMPTS + 1, 2)]
