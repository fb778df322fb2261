"""A negative prompt that is only white space (a stray newline left in the box, ``--negative " "``) is no negative
prompt: the engine runs, records and saves the job exactly as with an empty one, as the app's history stores it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpu.generation.png_metadata import NIBBLE_KEY, PARAMETERS_KEY, read_png_text
from gpu.generation.request import GenerationRequest
from gpu.generation.service import GenerationService, save_image

BLANKS = [" ", "\n", "  \n\t ", "\u3000"]  # an ideographic space too: what str.strip() (the history's rule) strips


def _job(service: GenerationService, negative: str, model: str = "demo"):
    # guidance 5: the demo model (no guidance embedding) runs classic CFG against the negative prompt
    request = GenerationRequest("a red star", model=model, negative_prompt=negative, seed=3, steps=2, width=64,
                                height=64, guidance=5.0)  # fmt: skip
    (result,) = service.generate(request)
    return result


def _made(result) -> dict:
    """What decides the image: the settings without the run's own times."""
    return {k: v for k, v in result.settings.items() if k not in ("duration_s", "created", "lora_overhead_pct")}


@pytest.mark.parametrize("blank", BLANKS)
def test_a_blank_negative_prompt_makes_and_saves_what_an_empty_one_does(cpu_service, blank, tmp_path):
    empty, spaced = _job(cpu_service, ""), _job(cpu_service, blank)
    assert spaced.settings["negative_prompt"] == ""
    assert _made(spaced) == _made(empty) and spaced.image.tobytes() == empty.image.tobytes()
    texts = read_png_text(save_image(spaced, tmp_path / "spaced.png"))  # what the CLI and the app write
    assert "Negative prompt" not in texts[PARAMETERS_KEY]
    assert json.loads(texts[NIBBLE_KEY])["negative_prompt"] == ""


def test_words_in_a_negative_prompt_are_kept_as_given(cpu_service):
    assert _job(cpu_service, " blurry \n").settings["negative_prompt"] == " blurry \n"


@pytest.fixture(scope="module")
def distilled(tmp_path_factory) -> Path:
    """A tiny guidance-distilled pipeline (FLUX.1-dev's kind: guidance is an input, a negative prompt means true
    CFG, a second transformer pass each step)."""
    from tiny_flux import make_tiny_flux

    return make_tiny_flux(tmp_path_factory.mktemp("models") / "dev", guidance_embeds=True)


def test_a_blank_negative_prompt_runs_no_true_cfg_on_a_guidance_distilled_model(cpu_service, distilled):
    passes: list[int] = []
    empty = _job(cpu_service, "", str(distilled))
    hook = cpu_service.loaded.pipe.transformer.register_forward_hook(lambda *_: passes.append(1))
    try:
        spaced = _job(cpu_service, "\n", str(distilled))
    finally:
        hook.remove()
    assert len(passes) == spaced.settings["steps"]  # one pass a step, not two
    assert list(spaced.extras["prompt_lengths"]) == ["prompt"]  # no negative prompt was encoded
    assert _made(spaced) == _made(empty) and spaced.image.tobytes() == empty.image.tobytes()
