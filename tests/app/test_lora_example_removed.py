"""The example LoRA the app ships came back at every start after the user removed it: the settings kept no row for
it ("loras": []), and the start added the examples again. A removed example stays removed now; a settings file of
an earlier version, which does not say what was removed, gets the examples as before, once."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt

from tests.app.gui import open_window

EXAMPLE = "monochrome-style"


def _names(window) -> list[str]:
    return [e.name for e in window.controller.loras.entries]


def test_a_removed_example_lora_stays_removed_at_the_next_start(qtbot, data_root):
    window = open_window(qtbot, data_root)
    assert EXAMPLE in _names(window)
    qtbot.mouseClick(window.lora_panel.row_for(EXAMPLE).remove_button, Qt.MouseButton.LeftButton)
    assert EXAMPLE not in _names(window)
    window.close()
    assert json.loads((data_root / "settings.json").read_text())["loras"] == []

    again = open_window(qtbot, data_root)
    assert EXAMPLE not in _names(again)
    again.close()
    saved = json.loads((data_root / "settings.json").read_text())  # by its name below resources/loras
    assert saved["loras"] == [] and saved["removed_examples"] == [f"{EXAMPLE}.safetensors"]


def test_settings_of_an_earlier_version_get_the_examples_once(qtbot, data_root):
    """A file without ``removed_examples`` (written before it was kept) may be one whose example was removed: it is
    listed again at the first start, as it was, and a removal from then on is kept."""
    (data_root / "settings.json").write_text(json.dumps({"version": 2, "loras": []}))
    window = open_window(qtbot, data_root)
    assert EXAMPLE in _names(window)
    window.controller.loras.remove(next(e for e in window.controller.loras.entries if e.name == EXAMPLE))
    window.close()
    again = open_window(qtbot, data_root)
    assert EXAMPLE not in _names(again)
