"""What the LoRA panel says of a file the engine refuses (``app.lora_header.read_header``): the engine's words
without the file's name, which the panel says its own way (by the row's path). It cut the name off the engine's
message by matching its text (``removeprefix``); the engine's errors now give their words apart (``LoraError.problem``,
as ``FileProblem.problem``), and nothing is cut off a message."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from app.lora_header import read_header
from gpu.lora.keys import LoraError
from gpu.lora.metadata import header_summary
from tests.lora_files import sdxl_like

BASE = "lora_unet_double_blocks_0_img_attn_proj"


def _refused(path: Path) -> LoraError:
    """The engine's error for the LoRA file ``path``."""
    with pytest.raises(LoraError) as caught:
        header_summary(path)
    return caught.value


@pytest.mark.parametrize(("extra", "words"), [
    ({"stray.weight": torch.zeros(2)}, "1 key(s) are not FLUX.1 LoRA weights this app understands: stray.weight"),
    ({f"{BASE}.alpha": torch.zeros(2)}, f"{BASE}.alpha is not a scalar"),
])  # fmt: skip
def test_a_refusal_that_names_the_file_first_gives_its_words_apart(tmp_path, extra, words):
    path = tmp_path / "style.safetensors"
    save_file({f"{BASE}.lora_down.weight": torch.zeros(1, 8), f"{BASE}.lora_up.weight": torch.zeros(8, 1)} | extra,
              path)  # fmt: skip
    err = _refused(path)
    assert str(err) == f"style.safetensors: {words}"  # the engine's own message, the command line's, as it was
    assert err.problem == words  # was: no such field; the panel cut the name off the message's text
    assert read_header(path).problem == words


def test_a_refusal_whose_sentence_names_the_file_is_said_whole(tmp_path):
    """"style.safetensors is a LoRA for SDXL …": the name is the sentence's subject, kept."""
    path = sdxl_like(tmp_path / "style.safetensors")
    err = _refused(path)
    assert err.problem == str(err) and str(err).startswith(f"{path.name} is a LoRA for ")
    assert read_header(path).problem == str(err)
