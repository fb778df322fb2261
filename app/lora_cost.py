"""The sentence that says what the LoRAs of the last finished image cost: their names, ranks and strengths, and the
time per step the engine measured against the same model and size without them."""

from __future__ import annotations

from typing import Any

from gpu.lora.metadata import strength_words

# Two timings of the same steps differ by a few percent on their own (other programs, CPU clocks, caches): a
# difference smaller than that is no cost of the LoRAs ("-1.2% time per step" read as LoRAs making it faster).
COST_NOISE_PCT = 3.0


def cost_sentence(settings: dict[str, Any]) -> str:
    """What the engine measured about the LoRAs of one finished image, in words ("" when it used none)."""
    loras = settings.get("lora_list") or []
    if not loras:
        return ""
    names = ", ".join(f"{d['name']} (rank {d['rank']}{_apart(d)})" for d in loras)
    cost = settings.get("lora_overhead_pct")
    if cost is None:
        return f"Last image used {names}; its cost shows once an image of this size was made without LoRAs."
    if abs(cost) < COST_NOISE_PCT:
        return f"Last image used {names}: about the same time per step as the same model and size without LoRAs."
    return f"Last image used {names}: {cost:+.1f}% time per step vs. the same model and size without LoRAs."


def _apart(lora: dict[str, Any]) -> str:
    """The words "; strength 0.80, text 0.50" for a ``lora_list`` entry whose CLIP/T5 parts had a strength of
    their own, "" for one without."""
    return f"; {strength_words(lora, '.2f')}" if lora.get("text_strength") not in (None, lora.get("strength")) else ""
