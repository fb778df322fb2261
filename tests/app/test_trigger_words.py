"""Insert trigger words (LoRA panel) and the dice next to the seed. A second Insert after switching on another LoRA
appended the first LoRAs' words again ("mono, neon, mono, neon, glow"), and a word was taken as there when it was
only part of another ("mono" in "monochrome"). The rules live in the prompt state now, tested without a window."""

from __future__ import annotations

from app.generation_state import PromptState
from tests.app.test_lora_panel import _tiny_lora


def test_only_the_words_the_prompt_lacks_are_added_as_whole_words(qapp):
    state = PromptState()
    state.add_words("mono, neon")
    assert state.prompt == "mono, neon"
    state.prompt = "a cat, mono, neon  "
    state.add_words("mono, neon, glow")  # another LoRA switched on since the first Insert
    assert state.prompt == "a cat, mono, neon, glow"
    state.prompt = "a MONO photo of a monochrome cat"
    state.add_words("mono, chrome, Mono, ink wash, ink wash, , ")
    assert state.prompt == "a MONO photo of a monochrome cat, chrome, ink wash"
    state.add_words("")
    state.add_words("c++ style")  # no pattern: a word of the regular expressions' own signs is found as written
    state.add_words("c++ style")
    assert state.prompt == "a MONO photo of a monochrome cat, chrome, ink wash, c++ style"


def test_the_dice_gives_a_new_seed_locked_or_not(qapp):
    state = PromptState()
    for locked in (False, True):
        state.seed_locked, state.seed = locked, 5
        flips: list[object] = []
        state.seed_locked_changed.connect(flips.append)
        assert state.random_seed() == state.seed != 5 and state.seed_locked is locked and flips == []
        state.seed_locked_changed.disconnect(flips.append)
    assert state.next_seed() == state.seed  # locked: the jobs after keep it


def test_the_insert_button_adds_the_switched_on_loras_words_once(qtbot, bare_window, tmp_path):
    panel, state = bare_window.lora_panel, bare_window.controller.prompt
    loras = bare_window.controller.loras
    first, second = loras.add_files([_tiny_lora(tmp_path / "a.safetensors", words="mono"),
                                     _tiny_lora(tmp_path / "b.safetensors", words="neon glow")], enabled=False)[0]
    state.prompt = "a cat"
    loras.set_enabled(first, True)
    panel.insert_button.click()
    loras.set_enabled(second, True)
    panel.insert_button.click()
    panel.insert_button.click()
    assert state.prompt == "a cat, mono, neon glow" == bare_window.prompt_panel.prompt_edit.toPlainText()
