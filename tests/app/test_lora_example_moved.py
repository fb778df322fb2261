"""The example LoRA the app ships was saved by its absolute path in the app folder: once that folder moved or was
upgraded, its row came back as a missing file (switched off, said) beside a new row of the example at the new path.
It is saved by its name below resources/loras too, and found where this app has it, on or off at its strength; an
earlier version's settings (the absolute path only, its file gone) are read the same."""

from __future__ import annotations

import json

import pytest

from app.data_dir import resolve_data_dir
from gpu.lora import read_lora
from gpu.paths import resources_dir
from tests.app.gui import used_restored, window_without_engine

NAME = "monochrome-style.safetensors"


@pytest.mark.parametrize("saved_by", ["example", "old path"])
def test_the_example_lora_is_found_in_the_moved_app_folder_on_at_its_strength(qtbot, data_root, tmp_path, saved_by):
    # a macOS bundle's resources ("Resources"), found by the name; a PyInstaller folder's, by its resources/loras
    old = (tmp_path / "Nibble.app" / "Contents" / "Resources" / "loras" / NAME if saved_by == "example" else
           tmp_path / "OLD-nibble-0.1.0" / "_internal" / "resources" / "loras" / NAME)  # fmt: skip
    row = {"path": str(old), "enabled": True, "strength": 0.6, **({"example": NAME} if saved_by == "example" else {})}
    (data_root / "settings.json").write_text(json.dumps({"version": 2, "loras": [row]}))
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    state, shipped = window.controller.loras, resources_dir() / "loras" / NAME
    assert [(e.path, e.enabled, e.strength, e.missing) for e in state.entries] == [(shipped, True, 0.6, False)]
    assert not [n.message for n in window.controller.notices if "LoRA" in n.message]

    # an image made with the example in the old folder finds it (by its hash)
    state.switch_to({})
    used = {"name": "monochrome-style", "file": str(old), "strength": 0.7, "hash": read_lora(shipped).short_hash}
    used_restored(qtbot, state, [used], lambda *said: None)
    qtbot.waitUntil(lambda: state.entries[0].enabled)
    assert state.entries[0].strength == 0.7
    window.close()
    saved = json.loads((data_root / "settings.json").read_text())["loras"]
    assert [(s["path"], s["example"], s["enabled"], s["strength"]) for s in saved] == [(str(shipped), NAME, True, 0.7)]
