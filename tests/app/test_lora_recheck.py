"""A LoRA whose file could not be read at one Generate (held by another program for a moment, a OneDrive
placeholder while offline, no read permission yet) is read again at the next: its size and time do not change,
and it stayed refused until removed and added again."""

from __future__ import annotations

from pathlib import Path

from app.lora_state import LoraState
from gpu.errors import UserError
from gpu.paths import resources_dir
from tests.app.gui import used_restored


def test_a_lora_unreadable_once_is_read_again_at_the_next_generate(qtbot, tmp_path, monkeypatch):
    import gpu.lora.metadata

    shipped = sorted((resources_dir() / "loras").glob("*.safetensors"))[0]
    lora = tmp_path / shipped.name
    lora.write_bytes(shipped.read_bytes())
    state = LoraState()
    entry = state.add_file(lora, enabled=True)
    assert not state.unusable()
    real = gpu.lora.metadata.header_summary

    def held(path: Path):
        raise UserError(f"{Path(path).name}: the file cannot be read (it is being used by another process)")

    monkeypatch.setattr(gpu.lora.metadata, "header_summary", held)
    entry.stamp = None  # as if changed since read: the next Generate reads it, and it is held then
    state.refresh()
    assert state.unusable() == [entry]
    monkeypatch.setattr(gpu.lora.metadata, "header_summary", real)  # let go; its size and time are the same
    state.refresh()
    assert state.unusable() == []  # was: still refused, "cannot be read"


def test_a_lora_named_by_file_name_only_is_never_taken_from_the_current_folder(qtbot, tmp_path, monkeypatch):
    """Images record a LoRA's file name only (no folder). Reused, that name was resolved against the folder the
    app was started from, and a file of that name there was added to the panel: only listed rows are matched."""
    shipped = sorted((resources_dir() / "loras").glob("*.safetensors"))[0]
    (tmp_path / shipped.name).write_bytes(shipped.read_bytes())
    monkeypatch.chdir(tmp_path)
    state = LoraState()
    used = [{"name": shipped.stem, "file": shipped.name, "strength": 0.5}]
    assert used_restored(qtbot, state, used) == [f"The image used the LoRA '{shipped.stem}' ({shipped.name}), which "
                                                 "is not here any more; new images are made without it."]  # fmt: skip
    assert state.entries == []
    listed = state.add_file(resources_dir() / "loras" / shipped.name)
    assert used_restored(qtbot, state, used) == [] and state.requests() == [(str(listed.path), 0.5)]
