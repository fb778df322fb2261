"""A prompt longer than the model reads was cut by T5 without a word: the engine now measures it with the
model's own tokenizer and limit, names the end it ignores, and the CLI says so."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from gpu.generation.memory import _t5_embeds
from gpu.generation.request import GenerationRequest
from gpu.generation.service import GenerationService
from gpu.paths import resources_dir

DEMO = resources_dir() / "models" / "demo"
LIMIT = json.loads((DEMO / "nibble.json").read_text())["max_sequence_length"]  # 32
LONG = ("a small red star in the top left on a blue background with a green ring and a yellow square near the "
        "bottom right corner and a purple triangle in the middle of the picture, drawn large")  # fmt: skip
LONG_END = "triangle in the middle of the picture, drawn large"  # what of LONG the demo model's 32 tokens miss


@pytest.fixture(scope="module")
def service() -> GenerationService:
    return GenerationService(device=torch.device("cpu"))


@pytest.mark.parametrize("model", ["demo", "demo-int4"])
def test_the_model_description_measures_prompts_with_the_models_tokenizer_and_limit(service, model):
    """demo-int4 is an SVDQ file: its tokenizer is its base pipeline's (the demo folder)."""
    meter = service.prompt_meter(model)
    assert meter is not None and meter.limit == LIMIT
    long = meter(LONG)
    assert long.over and long.limit == LIMIT and long.tokens == 45 and long.ignored == LONG_END
    assert long.note("prompt", model) == (f"the prompt is 45 tokens long; model {model} reads the first {LIMIT}, "
                                          f"so this end of it is ignored: '{LONG_END}'")  # fmt: skip
    short = meter("a red star")
    assert (short.tokens, short.over, short.ignored, short.note("prompt", model)) == (4, False, "", "")


@pytest.fixture(scope="module")
def t5() -> SimpleNamespace:
    """The demo pipeline's T5 tokenizer and encoder, loaded as FluxPipeline loads them (what ``_t5_embeds`` uses)."""
    from transformers import T5EncoderModel, T5Tokenizer

    return SimpleNamespace(tokenizer_2=T5Tokenizer.from_pretrained(DEMO / "tokenizer_2"),
                           text_encoder_2=T5EncoderModel.from_pretrained(DEMO / "text_encoder_2").eval())  # fmt: skip


def _embeds(pipe: SimpleNamespace, prompt: str) -> torch.Tensor:
    with torch.inference_mode():
        return _t5_embeds(pipe, prompt, LIMIT, torch.device("cpu"))


def test_what_the_meter_says_is_ignored_is_what_the_text_encoder_never_sees(service, t5):
    meter = service.prompt_meter("demo")
    fits, over = "red " * (LIMIT - 2) + "blue", "red " * (LIMIT - 1) + "blue"  # with the end token: LIMIT, LIMIT + 1
    assert (meter(fits).tokens, meter(fits).over) == (LIMIT, False)
    assert (meter(over).tokens, meter(over).over, meter(over).ignored) == (LIMIT + 1, True, "blue")
    assert torch.equal(_embeds(t5, over), _embeds(t5, "red " * (LIMIT - 1)))  # "blue" changed nothing
    assert not torch.equal(_embeds(t5, fits), _embeds(t5, "red " * (LIMIT - 2)))  # here it counts
    # A real prompt: the encoder reads exactly the text before the ignored end, and all of it.
    long = meter(LONG)
    read = LONG[: len(LONG) - len(long.ignored)].rstrip()
    assert meter(read).tokens == LIMIT and torch.equal(_embeds(t5, LONG), _embeds(t5, read))
    assert not torch.equal(_embeds(t5, LONG), _embeds(t5, read.rsplit(" ", 1)[0]))


def test_the_generated_image_says_which_prompts_were_cut(service):
    """The negative prompt is measured only when the job used it: the demo model runs true CFG for guidance > 1."""
    request = GenerationRequest(LONG, negative_prompt=LONG, steps=1, width=64, height=64, guidance=5.0)
    (image,) = service.generate(request)
    lengths = image.extras["prompt_lengths"]
    assert set(lengths) == {"prompt", "negative prompt"}
    assert all(x.over and x.ignored == LONG_END for x in lengths.values())
    assert "prompt_lengths" not in image.settings  # nor in the PNG metadata
    (image,) = service.generate(GenerationRequest("a red star", negative_prompt=LONG, steps=1, width=64, height=64,
                                                  guidance=1.0))  # fmt: skip
    assert list(image.extras["prompt_lengths"]) == ["prompt"] and not image.extras["prompt_lengths"]["prompt"].over


def test_a_damaged_tokenizer_leaves_the_model_described_without_a_counter(tmp_path):
    """tokenizers raises a bare Exception for a damaged tokenizer.json: describe() let it through, so the model
    could not even be selected; the counter is optional, the description is not."""
    folder = tmp_path / "demo-copy"
    folder.mkdir()
    for part in DEMO.iterdir():
        if part.name != "tokenizer_2":
            (folder / part.name).symlink_to(part)
    (folder / "tokenizer_2").mkdir()
    for part in (DEMO / "tokenizer_2").iterdir():
        (folder / "tokenizer_2" / part.name).write_bytes(part.read_bytes())
    damaged = '{"version": "1.0", "added_tokens": [], "model": {"type": "nonsense"}}'  # parsed by Rust: bare Exception
    (folder / "tokenizer_2" / "tokenizer.json").write_text(damaged)
    service = GenerationService(device=torch.device("cpu"))
    assert service.describe(str(folder)).name == "demo-copy" and service.prompt_meter(str(folder)) is None


def test_a_very_long_ignored_end_is_quoted_by_its_start_with_the_rest_counted():
    """A 15,001-token prompt's ignored end was quoted whole: one 65 KB line on the console and in the log."""
    from gpu.generation.prompt_length import PromptLength

    end = "word " * 12_000 + "last"  # 60,004 characters; the first 80 are 16 words
    note = PromptLength(15_001, 512, end).note("prompt", "flux-dev")
    assert note == ("the prompt is 15001 tokens long; model flux-dev reads the first 512, so this end of it is "
                    f"ignored: '{'word ' * 16}'… (59924 more characters)")  # fmt: skip
    assert PromptLength(33, 32, "drawn 'large'").note("prompt", "demo").endswith(''': "drawn 'large'"''')  # whole
