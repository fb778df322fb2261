"""settings.json is saved soon after a change, not only on a clean quit (a crash or a forced restart lost the
session's LoRA list and prompt), and never written in a session whose settings file could not be read."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

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

    # the debounce was seen above; the rest needs no second of it each time
    window.settings_state.autosave.setInterval(10)
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
    assert not window.settings_state.autosave.isActive()


@pytest.mark.parametrize("damaged", [False, True], ids=["held-open", "damaged-and-held-open"])
def test_a_settings_file_that_cannot_be_read_or_kept_is_never_written_over(qtbot, data_root, monkeypatch, damaged):
    """An OSError reading settings.json (another program holding it) moved it aside if it could, else used the
    defaults and the notice said so; either way the quit wrote the defaults plus the session as settings.json,
    the LoRA list gone. A damaged file that could not be moved aside (Windows: an editor or sync tool holding it
    open lets it be read, not renamed) was written over a second after the start, by the autosave the window's
    first resize starts. The file stays where it is now, the session saves no settings, and the notice names
    the file and what to do."""
    path = data_root / "settings.json"
    saved = {"version": 2, "last_job": {"prompt": "my long careful prompt"},
             "loras": [{"path": str(data_root / "mine.safetensors"), "enabled": False, "strength": 0.65}]}
    path.write_text(json.dumps(saved) + ("," if damaged else ""))  # damaged: a hand-edit's typo
    before = path.read_bytes()
    read_bytes = Path.read_bytes
    in_use = "The process cannot access the file because it is being used by another process"

    def held_elsewhere(self: Path) -> bytes:  # Windows: a sync tool has the file open without sharing
        if self == path:
            raise PermissionError(errno.EACCES, in_use, str(self))
        return read_bytes(self)

    def not_renamable(held: Path, *args: object, **kwargs: object) -> Path:  # Windows: open in an editor
        raise PermissionError(errno.EACCES, in_use, str(held))

    if damaged:
        monkeypatch.setattr(app.settings, "move_aside", not_renamable)
    else:
        monkeypatch.setattr(Path, "read_bytes", held_elsewhere)
    window = open_window(qtbot, data_root)
    text = window.error_dialog.text() + window.error_dialog.informativeText()
    assert str(path) in text and "being used" in text and "saves no settings" in text
    assert ("could not be moved aside" in text and "close it first" in text) if damaged else "close it, then" in text
    assert window.controller.prompt.prompt == ""  # the defaults
    window.controller.prompt.prompt = "typed in this session"
    assert not window.settings_state.autosave.isActive()
    window.close()
    assert read_bytes(path) == before and [p.name for p in data_root.glob("settings.json*")] == ["settings.json"]
