"""settings.json is saved soon after a change, not only on a clean quit (a crash or a forced restart lost the
session's LoRA list and prompt), and never written in a session whose settings file could not be read."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import app.settings
from tests.app.gui import open_window


def _saved(path: Path) -> dict:
    """settings.json as on disk now; {} while there is none (a write is atomic: never half a file)."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def _lora(saved: dict, name: str) -> dict:
    return next((row for row in saved.get("loras", []) if Path(row["path"]).stem == name), {})


def test_settings_are_saved_soon_after_a_change_while_the_window_is_open(qtbot, window, data_root, monkeypatch):
    """The LoRA row and the prompt as set in the panels are on disk without a quit. A failed save (a full disk)
    is said once, not at each change, and the next change tries again."""
    path = data_root / "settings.json"
    row = window.lora_panel.row_for("monochrome-style")  # the shipped LoRA, off
    row.enabled.setChecked(True)
    row.slider.setValue(65)
    row.triggers.setText("ink wash")
    window.prompt_panel.prompt_edit.setPlainText("a lighthouse at dusk, long exposure")
    want = {"enabled": True, "strength": 0.65, "trigger_words": "ink wash"}
    qtbot.waitUntil(lambda: {k: _lora(_saved(path), "monochrome-style").get(k) for k in want} == want
                    and _saved(path)["last_job"]["prompt"] == "a lighthouse at dusk, long exposure")  # fmt: skip

    window._autosave.setInterval(10)  # the debounce was seen above; the rest needs no second of it each time
    writes = []

    def disk_full(target: Path, text: str) -> None:
        writes.append(text)
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    with monkeypatch.context() as full:
        full.setattr(app.settings, "atomic_write_text", disk_full)
        window.controller.prompt.prompt = "first change"
        qtbot.waitUntil(lambda: len(writes) == 1)
        said = window.error_dialog
        assert said is not None and str(path) in said.text() and "No space left" in said.text()
        window.controller.prompt.prompt = "second change"
        qtbot.waitUntil(lambda: len(writes) == 2)
        assert window.error_dialog is said  # no second dialog
    said.accept()
    window.controller.prompt.prompt = "after the disk was freed"
    qtbot.waitUntil(lambda: _saved(path)["last_job"]["prompt"] == "after the disk was freed")

    window.close()
    window.controller.prompt.prompt = "after the window closed"
    assert not window._autosave.isActive()


def test_a_settings_file_that_cannot_be_read_is_never_written_over(qtbot, data_root, monkeypatch):
    """An OSError reading settings.json (another program holding it) moved it aside if it could, else used the
    defaults and the notice said so; either way the quit wrote the defaults plus the session as settings.json,
    the LoRA list gone. The file stays where it is now, the session saves no settings, and the notice names
    the file and what to do."""
    path = data_root / "settings.json"
    saved = {"version": 2, "last_job": {"prompt": "my long careful prompt"},
             "loras": [{"path": str(data_root / "mine.safetensors"), "enabled": False, "strength": 0.65}]}
    path.write_text(json.dumps(saved))
    before = path.read_bytes()
    read_bytes = Path.read_bytes

    def held_elsewhere(self: Path) -> bytes:  # Windows: a sync tool has the file open without sharing
        if self == path:
            raise PermissionError(13, "The process cannot access the file because it is being used", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", held_elsewhere)
    window = open_window(qtbot, data_root)
    text = window.error_dialog.text() + window.error_dialog.informativeText()
    assert str(path) in text and "being used" in text and "close it, then restart" in text
    assert window.controller.prompt.prompt == ""  # the defaults
    window.controller.prompt.prompt = "typed in this session"
    assert not window._autosave.isActive()
    window.close()
    assert read_bytes(path) == before and [p.name for p in data_root.glob("settings.json*")] == ["settings.json"]
