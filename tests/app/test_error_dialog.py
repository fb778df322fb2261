"""The error dialog: what the engine says (command-line one-liners) reads as sentences, and every error says
what to try."""

from __future__ import annotations

from PySide6.QtWidgets import QWidget

from app.engine_errors import EngineError
from app.widgets.error_dialog import FALLBACK_HINT, show_error
from app.wording import sentence, sentences


def test_sentence_capitalises_plain_words_never_file_names():
    assert sentence("copy or download the file again") == "Copy or download the file again."
    assert sentence("x.safetensors: truncated") == "x.safetensors: truncated."  # a name stays as on disk
    assert sentence("Done.") == "Done."
    assert sentence("the folder", capital=False) == "the folder."
    assert sentences("a.ckpt is a pickle\n\nthe other is empty") == "a.ckpt is a pickle.\n\nThe other is empty."


def test_an_error_without_a_hint_gets_one_and_reads_as_sentences(qtbot):
    parent = QWidget()
    qtbot.addWidget(parent)
    box = show_error(parent, EngineError("user", "cannot do that with this model"))
    assert box.text() == "Cannot do that with this model."
    assert box.informativeText() == FALLBACK_HINT
    box.accept()
    notice = show_error(parent, EngineError("notice", "Something was repaired."))
    assert notice.informativeText() == ""  # a notice is no error: nothing to try
    notice.accept()


def test_a_broken_model_file_is_named_in_sentences_with_what_to_try(qtbot, window, tmp_path):
    """Adding a file that is no safetensors showed "broken.safetensors: header claims 7306915995885594368 bytes
    but the file has 800: truncated or not a safetensors file", no full stop and nothing to try."""
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00garbage" * 100)
    window.controller.add_model(str(bad))
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible(), timeout=30000)
    text = window.error_dialog.text()
    assert "broken.safetensors: not a safetensors file, or a damaged/incomplete copy" in text, text
    assert text.endswith("."), text
    assert window.error_dialog.informativeText() == "Copy or download the file again."
    window.error_dialog.accept()


def test_the_same_error_again_while_its_dialog_is_open_opens_no_second_one(qtbot, data_root):
    """Each job queued behind a LoRA that fails when applied failed the same way: one dialog stacked per job,
    each to be dismissed. The same words while their dialog is still open are logged, not shown again; other
    words, or the same after the dialog was closed, are shown."""
    from app.data_dir import resolve_data_dir
    from tests.app.gui import window_without_engine

    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    failed = EngineError("user", "style.safetensors expects 3072 inputs", "use a LoRA made for this model")
    window.show_error(failed)
    first = window.error_dialog
    window.show_error(EngineError("user", failed.message, failed.hint))
    assert window.error_dialog is first and first.isVisible()
    window.show_error(EngineError("user", "another problem"))
    assert window.error_dialog is not first
    window.error_dialog.accept()
    first.accept()
    window.show_error(failed)
    assert window.error_dialog is not first and window.error_dialog.isVisible()
    window.error_dialog.accept()
