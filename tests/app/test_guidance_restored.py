"""A restored guidance is the one the next image uses: the field showed one decimal and its rounded value was
written back into the state, so 3.25 (``main.py generate --guidance 3.25``, an A1111 image's CFG scale 7.25) came
back as 3.3 without a word and the image made again differed. What the field cannot show is said as rounded."""

from __future__ import annotations

from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import QLocale, Qt

from app.generation_state import GUIDANCE_MAX
from gpu.generation.png_metadata import write_png
from tests.app.gui import drop_file


def _generate(qtbot, window) -> dict:
    """The settings of the image the next Generate makes (the engine's, as they go into its PNG)."""
    with qtbot.waitSignal(window.controller.job_finished, timeout=120000) as blocker:
        window.controller.generate()
    return blocker.args[0][0].settings


def test_a_restored_guidance_is_the_one_the_next_image_uses(qtbot, tmp_path, window):
    state, panel = window.controller.prompt, window.prompt_panel
    shown: list = []
    window.controller.error.connect(shown.append)
    ours = write_png(tmp_path / "cli.png", Image.new("RGB", (8, 8)),
                     {"prompt": "a cat", "negative_prompt": "", "seed": 5, "steps": 2, "guidance": 3.25,
                      "width": 128, "height": 128, "model": "demo"})  # fmt: skip
    drop_file(panel, ours)
    assert state.guidance == 3.25 and panel.guidance_spin.value() == 3.25 and shown == []
    assert _generate(qtbot, window)["guidance"] == 3.25

    info = PngInfo()  # A1111's text: CFG scale is the guidance
    info.add_text("parameters", "a dog\nSteps: 2, CFG scale: 7.25, Seed: 6, Size: 128x128")
    Image.new("RGB", (8, 8)).save(tmp_path / "a1111.png", pnginfo=info)
    drop_file(panel, tmp_path / "a1111.png")
    assert state.guidance == 7.25 and panel.guidance_spin.value() == 7.25 and shown == []
    assert _generate(qtbot, window)["guidance"] == 7.25


def test_a_guidance_the_field_cannot_show_is_said_with_what_was_taken(qtbot, tmp_path, window):
    state, panel = window.controller.prompt, window.prompt_panel
    shown: list = []
    window.controller.error.connect(shown.append)
    for guidance, taken, note in ((3.125, 3.12, "its guidance value 3.125 is rounded to 3.12"),
                                  (75, GUIDANCE_MAX, f"its guidance value 75 is outside the form's 0.0 to "
                                                     f"{GUIDANCE_MAX}; set to {GUIDANCE_MAX}")):  # fmt: skip
        shown.clear()
        path = write_png(tmp_path / f"g{guidance}.png", Image.new("RGB", (8, 8)),
                         {"prompt": "a fox", "steps": 2, "guidance": guidance})  # fmt: skip
        drop_file(panel, path)
        assert state.guidance == taken == panel.guidance_spin.value()
        assert [e.kind for e in shown] == ["notice"] and note in shown[0].message
    # what the engine takes beyond the old form's 30, and exactly what the field shows
    assert _generate(qtbot, window)["guidance"] == GUIDANCE_MAX


def test_the_users_edit_of_the_field_is_still_the_state(qtbot, window):
    state, panel = window.controller.prompt, window.prompt_panel
    state.guidance = 3.25  # set in code: shown as it is, not replaced by the field's answer
    assert state.guidance == 3.25 == panel.guidance_spin.value()
    window.activateWindow()
    panel.guidance_spin.setFocus()
    panel.guidance_spin.selectAll()
    qtbot.keyClicks(panel.guidance_spin, "4.75")
    qtbot.keyClick(panel.guidance_spin, Qt.Key.Key_Tab)
    assert state.guidance == 4.75
    qtbot.keyClick(panel.guidance_spin, Qt.Key.Key_Up)  # the arrows: a tenth a step
    assert round(state.guidance, 2) == 4.85 == panel.guidance_spin.value()
    # Either mark is the decimal one, whatever the locale: the other was taken as a group separator, and "3,5" ran at
    # 35 in the C locale (in en_US "0,5" at 5), "3.5" copied from a model card at 35 in de_DE, without a word.
    for locale, point in ((QLocale.c(), "."), (QLocale(QLocale.Language.German, QLocale.Country.Germany), ",")):
        panel.guidance_spin.setLocale(locale)  # the field's own: the process's locale is left to the other tests
        for typed in ("3,5", "3.5", "0,5"):
            panel.guidance_spin.setFocus()
            panel.guidance_spin.selectAll()
            qtbot.keyClicks(panel.guidance_spin, typed)
            qtbot.keyClick(panel.guidance_spin, Qt.Key.Key_Tab)
            taken = float(typed.replace(",", "."))  # and shown with the locale's mark
            assert (state.guidance, panel.guidance_spin.text()) == (taken, f"{taken:.2f}".replace(".", point)), typed


def test_a_guidance_of_0_comes_back_after_a_restart(qapp, tmp_path):
    """0 meant "the model's default" in settings.json, so a guidance of 0 (the panel's lowest) came back as the
    panel's 3.5 after a restart, and the next images were made at 3.5 without a word."""
    from app.generation_state import PromptState
    from app.settings import LastJob, Settings, load_settings, save_settings

    state = PromptState()
    state.guidance, state.steps, state.width, state.height = 0.0, 12, 256, 192
    save_settings(tmp_path / "settings.json", Settings(last_job=state.to_last_job()))
    again = PromptState()
    again.load_last_job(load_settings(tmp_path / "settings.json").last_job)
    assert (again.guidance, again.steps, again.width, again.height) == (0.0, 12, 256, 192)
    fresh = PromptState()
    fresh.load_last_job(LastJob())  # a first start: the model's defaults come later, nothing is set from the file
    assert fresh.guidance == PromptState().guidance and fresh.steps == PromptState().steps
