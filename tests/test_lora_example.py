"""The example LoRA shipped for the demo model: loads through our engine and visibly applies its style."""

from __future__ import annotations

from safetensors import safe_open

from gpu.demo.evaluate import heldout_set
from gpu.demo.train_lora import OUT as SHIPPED
from gpu.demo.train_lora import saturation
from gpu.generation.request import GenerationRequest
from gpu.generation.service import GenerationService


def test_monochrome_lora_desaturates_at_strength_one_and_not_at_zero():
    with safe_open(str(SHIPPED), "pt") as f:
        meta = f.metadata()
    assert meta["modelspec.trigger_phrase"] == "monochrome" and "gpu.demo.train_lora" in meta["nibble.recipe"]
    prompts, seeds = heldout_set(3)
    service = GenerationService()

    def images(strength: float | None) -> list:
        loras = [] if strength is None else [(str(SHIPPED), strength)]
        # 8 steps, half the demo's 16: the style shows as much (saturation with the LoRA 0.50 of without, 0.51 at
        # 16 steps), and the nine images take half the time
        return [
            service.generate(GenerationRequest(prompt=p, model="demo", seed=s, loras=loras, steps=8))[0].image
            for p, s in zip(prompts, seeds, strict=True)
        ]

    plain = images(None)
    off = images(0.0)
    on = images(1.0)
    assert [im.tobytes() for im in off] == [im.tobytes() for im in plain]  # strength 0 is a no-op
    assert saturation(on) < 0.7 * saturation(plain)


def test_generation_reports_the_measured_cost_of_active_loras():
    service = GenerationService()
    first = service.generate(GenerationRequest("a red circle", model="demo", steps=4, loras=[(str(SHIPPED), 1.0)]))
    assert "lora_overhead_pct" not in first[0].settings  # no baseline without LoRAs measured yet
    service.generate(GenerationRequest("a red circle", model="demo", steps=4))
    request = GenerationRequest("a red circle", model="demo", steps=4, loras=[(str(SHIPPED), 1.0)])
    [with_lora] = service.generate(request)
    cost = with_lora.settings["lora_overhead_pct"]
    assert isinstance(cost, float) and -90.0 < cost < 1000.0
    assert with_lora.settings["lora_list"][0]["name"] == "monochrome-style"
