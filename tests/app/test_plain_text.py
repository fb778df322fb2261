"""The user's text that looks like HTML ("a neon <b>OPEN</b> sign", a file named "<i>poster.png") is shown as
written: Qt drew it as rich text where a label, message box or tooltip took it for HTML, so the token counter quoted
an ignored end that differed from the prompt (OPEN in bold, its tags gone), the history's tooltip lost its line
breaks, and a dialog naming the file dropped named another."""

from __future__ import annotations

import shutil

from PIL import Image
from PySide6.QtGui import Qt, QTextDocument  # QtGui's Qt: QtCore's with mightBeRichText

from gpu.paths import resources_dir
from tests.app.gui import drop_file, gallery_images, open_window

PROMPT = "a neon <b>OPEN</b> sign " + "in a shop window " * 6 + "with <i>late</i> hours"


def _as_shown(tooltip: str) -> list[str]:
    """The lines a tooltip shows, as Qt decides (rich text where ``mightBeRichText``), blank lines left out."""
    document = QTextDocument()
    if Qt.mightBeRichText(tooltip):
        document.setHtml(tooltip)
    else:
        document.setPlainText(tooltip)
    return [line for line in document.toPlainText().splitlines() if line.strip()]


def test_text_that_looks_like_html_is_shown_as_written(qtbot, data_root, tmp_path):
    from app.data_dir import resolve_data_dir
    from app.history_model import prompt_tooltip
    from app.lora_model import EntryRole
    from app.plain_text import plain_tooltip
    from app.widgets.lora_row import LoraRow

    gallery_images(resolve_data_dir(data_root), [PROMPT])
    window = open_window(qtbot, data_root)
    controller = window.controller
    qtbot.waitUntil(lambda: controller.prompt_meter is not None, timeout=60000)
    controller.prompt.prompt, controller.prompt.negative_prompt = PROMPT, PROMPT
    panel = window.prompt_panel
    for counter in (panel.token_count, panel.negative_token_count):
        assert counter.text().endswith("window with <i>late</i> hours'")
        assert counter.textFormat() == Qt.TextFormat.PlainText  # was AutoText: drawn as HTML
    for label in (window.model_panel.details, panel.status, window.status_label):
        assert label.textFormat() == Qt.TextFormat.PlainText  # model names and paths

    history = controller.history
    history.add("<b>bold</b> poster of a cat\nsecond line", "<i>ink</i>")
    tip = history.data(history.index(0), Qt.ItemDataRole.ToolTipRole)
    assert _as_shown(tip) == ["<b>bold</b> poster of a cat", "second line", "Negative prompt:", "<i>ink</i>",
                              "Used 1×"]  # fmt: skip
    gallery = controller.gallery
    tip = gallery.data(gallery.index(0), Qt.ItemDataRole.ToolTipRole)
    assert _as_shown(tip) == prompt_tooltip(PROMPT).splitlines() and len(_as_shown(tip)) == 2
    plain_tip = "a plain one\n  spaced"
    assert plain_tooltip(plain_tip) == plain_tip  # text Qt shows as written is left as it is, not escaped

    lora = tmp_path / "<b>ink.safetensors"
    shutil.copyfile(resources_dir() / "loras" / "monochrome-style.safetensors", lora)
    entry = controller.loras.add_file(lora)
    loras = window.lora_panel.view.model_
    row = next(r for r in range(loras.rowCount()) if loras.data(loras.index(r), EntryRole) is entry)
    assert _as_shown(loras.data(loras.index(row), Qt.ItemDataRole.ToolTipRole)) == ["<b>ink", str(lora)]
    assert _as_shown(LoraRow(controller.loras, entry).enabled.toolTip()) == ["<b>ink", str(lora)]

    plain = tmp_path / "<i>poster.png"
    Image.new("RGB", (8, 8)).save(plain)
    drop_file(panel, plain)
    dialog = window.error_dialog
    assert dialog.text().startswith("Nothing was restored from <i>poster.png: ")
    assert dialog.textFormat() == Qt.TextFormat.PlainText


def test_the_quantize_wizards_labels_show_prompts_and_paths_as_written(qtbot, data_root, tmp_path):
    """The wizard's comparison prompts (from a model's own calibration_prompts.txt) and the labels naming files and
    folders were drawn as HTML where they looked like it, as the main window's were."""
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QLabel

    from app.data_dir import resolve_data_dir
    from app.quantize_worker import Comparison, QuantizeJob
    from gpu.quantizer import QuantizeConfig
    from tests.app.gui import window_without_engine

    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    window.quantize_panel.open_button.click()
    wizard = window.quantize_panel.wizard
    wizard.run_state.out_path = tmp_path / "<b>mine.safetensors"  # a name the summary says apart from its folder
    wizard.run_state.job = QuantizeJob("demo", wizard.run_state.out_path, QuantizeConfig())  # the run it came from
    image = QImage(8, 8, QImage.Format.Format_RGB32)
    wizard.run_state.take_comparisons([Comparison("a neon <b>OPEN</b> sign", None, image, None, None)])
    grid = wizard.result_page.grid
    shown = [grid.itemAt(i).widget() for i in range(grid.count())]
    prompt = next(w for w in shown if isinstance(w, QLabel) and "OPEN" in w.text())
    assert prompt.text() == "a neon <b>OPEN</b> sign" and prompt.textFormat() == Qt.TextFormat.PlainText
    assert "Saved <b>mine.safetensors in " in wizard.result_page.summary.text()
    for label in (wizard.result_page.summary, wizard.result_page.parts_left, wizard.source_page.description):
        assert label.textFormat() == Qt.TextFormat.PlainText
