"""The token counter under the prompt box: a prompt longer than the model reads lost its end without a word; the
panel now counts the model's tokens as the user types and, past the limit, warns with the end the model ignores."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt

from app.theme import WARNING_COLOR
from gpu.generation.prompt_length import PromptLength, PromptMeter


class Counting(PromptMeter):
    """The model's meter, noting each text it measures in ``measured``."""

    def __init__(self, meter: PromptMeter, measured: list[str]) -> None:
        super().__init__(meter.tokenizer, meter.limit)
        self.measured = measured

    def __call__(self, prompt: str) -> PromptLength:
        self.measured.append(prompt)
        return super().__call__(prompt)


def _meter_loaded(qtbot, window) -> None:
    qtbot.waitUntil(lambda: window.controller.prompt_meter is not None, timeout=60000)


def test_typing_a_long_prompt_warns_with_the_ignored_end_and_a_short_one_clears_it(qtbot, window):
    _meter_loaded(qtbot, window)
    panel = window.prompt_panel
    counter, edit = panel.token_count, panel.prompt_edit
    y = {w: w.mapTo(panel, QPoint(0, 0)).y() for w in (edit, counter, panel.negative_edit)}
    assert y[edit] < y[counter] < y[panel.negative_edit]  # right under the prompt box
    edit.setFocus()
    qtbot.keyClicks(edit, "a small red star in the top left on a blue background with a green ring and a yellow "
                          "square near the bottom right corner and a purple triangle in the middle of the picture, "
                          "drawn large")  # fmt: skip
    assert counter.isVisible() and counter.text() == (
        "45 / 32 tokens: the model ignores the end: 'triangle in the middle of the picture, drawn large'"
    )
    assert WARNING_COLOR in counter.styleSheet()
    window.resize(700, 380)  # a short dock: the warning's lines are all shown (the dock scrolls instead)
    qtbot.waitUntil(lambda: window.width() == 700 and window.height() == 380, timeout=5000)
    qtbot.wait(50)  # the layout settles
    assert counter.height() >= counter.heightForWidth(counter.width()) > counter.fontMetrics().height()
    qtbot.keyClick(edit, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(edit, "a red star")
    assert window.controller.prompt.prompt == "a red star"
    assert counter.text() == "4 / 32 tokens" and WARNING_COLOR not in counter.styleSheet()


def test_the_model_is_described_before_its_tokenizer_is_read(qtbot, window):
    """The meter's first load imports transformers and reads the T5 tokenizer (~3 s on this CPU): describe()
    did it before the Models panel got the model's facts, so they showed that much later at start-up."""
    _meter_loaded(qtbot, window)
    controller = window.controller
    worker = controller._engine.worker
    seen: list[tuple[str, object]] = []
    worker.model_described.connect(lambda info: seen.append(("facts", info.name)))
    worker.prompt_meter_ready.connect(lambda model, meter, guided: seen.append((model, meter)))
    controller.prompt.prompt = "a red star"
    assert controller.select_model("demo-int4")
    # The lambdas run on the engine's thread (a lambda has no thread of its own to be queued to), so they can see
    # both signals before the controller, on the window's thread, has taken the second: wait for that too.
    qtbot.waitUntil(lambda: len(seen) == 2 and controller.prompt_meter is seen[1][1], timeout=60000)
    assert seen[0] == ("facts", "demo-int4") and seen[1][0] == "demo-int4" and seen[1][1].limit == 32
    assert controller.model_info.name == "demo-int4"
    assert window.prompt_panel.token_count.text() == "4 / 32 tokens"


def test_a_long_negative_prompt_is_counted_under_its_own_box(qtbot, window):
    """The engine reads the negative prompt with T5 to the same limit: one longer was cut without a word in the app
    (the command line said it), the counter measuring only the prompt."""
    _meter_loaded(qtbot, window)
    panel = window.prompt_panel
    counter, edit = panel.negative_token_count, panel.negative_edit
    y = {w: w.mapTo(panel, QPoint(0, 0)).y() for w in (edit, counter, panel.form)}
    assert y[edit] < y[counter] < y[panel.form]  # right under the negative prompt's box
    window.controller.prompt.prompt = "a red star"
    window.controller.prompt.negative_prompt = " ".join(f"word{i}" for i in range(60))
    assert counter.isVisible() and counter.text().startswith("121 / 32 tokens: the model ignores the end: 'word")
    assert WARNING_COLOR in counter.styleSheet()
    assert panel.token_count.text() == "4 / 32 tokens"  # the prompt's own count
    window.controller.prompt.negative_prompt = "blurry"
    assert counter.text() == "3 / 32 tokens" and WARNING_COLOR not in counter.styleSheet()
    # The demo model has no guidance input: at a guidance of at most 1 the job does not use the negative prompt at
    # all, which the counter said was cut at its end ("121 / 32 tokens: the model ignores the end").
    window.controller.prompt.negative_prompt = " ".join(f"word{i}" for i in range(60))
    panel.guidance_spin.setValue(1.0)
    assert counter.text() == ("the negative prompt is not used at guidance 1 on demo, which guides away from it only "
                              "above 1: raise the guidance to use it")  # fmt: skip
    assert WARNING_COLOR in counter.styleSheet()
    panel.guidance_spin.setValue(0.5)
    assert counter.text().startswith("the negative prompt is not used at guidance 0.5 on demo")
    panel.guidance_spin.setValue(1.5)
    assert counter.text().startswith("121 / 32 tokens: the model ignores the end: 'word")
    window.controller.prompt.negative_prompt = ""
    assert counter.text() == ""
    panel.guidance_spin.setValue(1.0)
    assert counter.text() == ""  # no negative prompt: nothing to say
    # A keystroke measures only its own box: each in either box tokenized both texts (40 ms on the GUI thread per
    # keystroke in the prompt box with a 20,000-character negative prompt, 0.2 ms without).
    window.controller.prompt.negative_prompt = "blurry, " * 2500
    measured: list[str] = []
    window.controller.prompt_measure.on_meter("demo", Counting(window.controller.prompt_meter, measured))
    assert sorted(measured) == sorted([window.controller.prompt.prompt, window.controller.prompt.negative_prompt])
    measured.clear()
    panel.prompt_edit.setFocus()
    qtbot.keyClicks(panel.prompt_edit, "s")
    assert measured == ["a red stars"] and panel.token_count.text() == "5 / 32 tokens"

