"""A prompt holding a lone surrogate (JSON's "\\ud83d", half an emoji, which other programs write into a PNG's
settings): restored, it is made valid text and said; measured, the token count is unknown instead of the
tokenizer's TypeError raised out of the prompt's signal (the prompt box meanwhile dropped the character unsaid)."""

from __future__ import annotations

import json

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.app.gui import restored_from


def test_a_restored_prompt_with_half_an_emoji_is_made_valid_text_and_said(qtbot, window, tmp_path):
    controller = window.controller
    shown: list = []
    controller.error.connect(shown.append)
    info = PngInfo()
    info.add_itxt("nibble", json.dumps({"prompt": "a cat \ud83d", "negative_prompt": "\udc00blur", "seed": 5,
                                        "steps": 2, "width": 128, "height": 128, "model": "demo"}))  # fmt: skip
    png = tmp_path / "other.png"
    Image.new("RGB", (64, 64)).save(png, pnginfo=info)
    restored_from(controller, [png])
    assert controller.prompt.prompt == "a cat \ufffd" and controller.prompt.negative_prompt == "\ufffdblur"
    assert window.prompt_panel.prompt_edit.toPlainText() == "a cat \ufffd"  # as the form holds it, not one less
    notices = [e.message for e in shown if "not valid text" in e.message]
    assert len(notices) == 1 and notices[0].startswith("Settings restored from other.png, but not all as saved: ")
    assert "its prompt held characters that are not valid text" in notices[0]
    assert "its negative prompt held characters" in notices[0]
    qtbot.waitUntil(lambda: controller.prompt_meter is not None, timeout=60000)
    assert controller.prompt_length.text.endswith(" tokens")
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as done:
        controller.generate()  # the image is made from the prompt the form shows
    assert [r.settings["prompt"] for r in done.args[0]] == ["a cat \ufffd"]


def test_a_prompt_the_tokenizer_refuses_is_not_measured_and_logged_once(qtbot, window, caplog):
    controller = window.controller
    qtbot.waitUntil(lambda: controller.prompt_meter is not None, timeout=60000)
    for prompt in ("a cat \ud83d", "a dog \ud83d"):  # the tokenizer raises a TypeError (was: out of the signal)
        controller.prompt.prompt = prompt
    assert controller.prompt_length.text.endswith(" tokens")  # of what the prompt box holds: it drops them
    assert [r.message for r in caplog.records if "could not be counted" in r.message] == [
        "the prompt's tokens could not be counted: TextEncodeInput must be Union[TextInputSequence, "
        "Tuple[InputSequence, InputSequence]]"]  # fmt: skip
