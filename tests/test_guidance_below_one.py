"""Guidance below 1 on a model without a guidance embedding (the demo model: classic CFG against the negative prompt,
which diffusers runs only for a true_cfg_scale above 1) made exactly the guidance-1 image, while the PNG said 0.5:
those settings made another image on a model where guidance is an input. The job now runs, records and saves the
guidance that ran (1), and says once why; on a guidance-distilled model any guidance is real and kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpu.generation.png_metadata import NIBBLE_KEY, PARAMETERS_KEY, read_png_text
from gpu.generation.request import GenerationRequest
from gpu.generation.service import save_image

NOTE = ("guidance {g} is the same as 1 on {model}, which guides away from the negative prompt only above 1: the image "
        "is made, and saved, with guidance 1")
UNUSED_NEGATIVE = ("the negative prompt is not used at guidance 1 on demo, which guides away from it only above 1: "
                   "raise the guidance to use it")


def _job(service, guidance: float, model: str = "demo", batch: int = 1, negative: str = "blurry"):
    request = GenerationRequest("a red star", model=model, negative_prompt=negative, seed=3, steps=2, width=64,
                                height=64, guidance=guidance, batch_count=batch)  # fmt: skip
    return service.generate(request)


@pytest.mark.parametrize("guidance", [0.0, 0.5])
def test_guidance_below_1_without_a_guidance_embedding_is_saved_as_the_1_that_ran(cpu_service, guidance, tmp_path):
    (one,) = _job(cpu_service, 1.0)
    (low,) = _job(cpu_service, guidance)
    assert low.image.tobytes() == one.image.tobytes()  # what diffusers ran: no CFG, as at 1
    assert low.settings["guidance"] == 1.0 and low.extras["notes"] == [NOTE.format(g=f"{guidance:g}", model="demo")]
    texts = read_png_text(save_image(low, tmp_path / "low.png"))  # what the CLI and the app write
    assert json.loads(texts[NIBBLE_KEY])["guidance"] == 1.0
    assert "CFG scale: 1.0," in texts[PARAMETERS_KEY], texts[PARAMETERS_KEY]  # A1111's
    (above,) = _job(cpu_service, 1.5)
    assert above.settings["guidance"] == 1.5 and above.extras["notes"] == []


def test_a_negative_prompt_at_guidance_1_without_a_guidance_embedding_is_said_unused(cpu_service):
    """At guidance 1 classic CFG does not run: the negative prompt the PNG records changed nothing, unsaid."""
    (one,) = _job(cpu_service, 1.0)
    (plain,) = _job(cpu_service, 1.0, negative="")
    assert one.image.tobytes() == plain.image.tobytes()  # what diffusers ran: the negative prompt unused
    assert one.settings["negative_prompt"] == "blurry"  # kept: a reuse of the image makes it again
    assert one.extras["notes"] == [UNUSED_NEGATIVE] and plain.extras["notes"] == []


@pytest.fixture(scope="module")
def distilled(tmp_path_factory) -> Path:
    """A tiny guidance-distilled pipeline (FLUX.1-dev's kind: guidance is an input of the transformer)."""
    from tiny_flux import make_tiny_flux

    return make_tiny_flux(tmp_path_factory.mktemp("models") / "dev", guidance_embeds=True)


def test_a_model_is_described_with_whether_guidance_is_its_input(cpu_service, distilled):
    """The app's negative prompt counter says the job does not use it at guidance 1 on a model without a guidance
    input: the facts say which models have one, before loading (an SVDQ file from its metadata)."""
    described = {m: cpu_service.describe(m).takes_guidance for m in ("demo", "demo-int4")}
    assert described == {"demo": False, "demo-int4": False} and cpu_service.describe(str(distilled)).takes_guidance


def test_guidance_below_1_on_a_guidance_distilled_model_is_real_and_kept(cpu_service, distilled):
    (low,) = _job(cpu_service, 0.5, str(distilled))
    (one,) = _job(cpu_service, 1.0, str(distilled))
    assert low.settings["guidance"] == 0.5 and low.extras["notes"] == []
    assert low.image.tobytes() != one.image.tobytes()


def test_the_command_line_says_it_once_for_a_batch(tmp_path, capsys, monkeypatch):
    from main import main

    monkeypatch.chdir(tmp_path)
    code = main(["--data-dir", str(tmp_path / "data"), "generate", "a red star", "--guidance", "0.5", "--steps", "1",
                 "--width", "64", "--height", "64", "--batch", "2", "--out", str(tmp_path / "star.png")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert err.count("note: ") == 1 and f"note: {NOTE.format(g='0.5', model='demo')}\n" in err, err
    for i in range(2):
        assert json.loads(read_png_text(tmp_path / f"star-{i}.png")[NIBBLE_KEY])["guidance"] == 1.0
