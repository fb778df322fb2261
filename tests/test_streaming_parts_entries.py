"""What in a quantize run's parts folder (``OUT.safetensors.parts``) is the engine's, to delete with it, and what is
the user's, never deleted (``gpu.streaming.parts_folder``): told by name and by what the entry is, not by name only."""

from __future__ import annotations

from pathlib import Path

import pytest

import gpu.quantizer  # noqa: F401 - before gpu.streaming's modules, which imported first are a circular import
from gpu.errors import OutputError
from gpu.streaming.parts_folder import (
    PartsLeft,
    check_parts_folder,
    delete_parts,
    discards_nothing,
    foreign_entries,
    parts_dir,
)  # fmt: skip
from gpu.streaming.unfinished import unfinished_runs

PHOTO = b"the user's photo"


def _users_folder(folder: Path) -> Path:
    folder.mkdir()
    (folder / "photo.png").write_bytes(PHOTO)
    return folder


def test_a_folder_or_link_named_as_an_engine_file_is_the_users(tmp_path):
    """A folder of the user's named as a file the engine writes ("block-0001.safetensors/", "manifest.json/", or a
    file manager's "Thumbs.db/") went with the parts folder, everything in it deleted (``shutil.rmtree``), and no
    run refused the folder up front. The engine writes no folder nor link of such a name: one is the user's, named
    as such, and stays. Its scratch folders go, and a link in their way as a link, not what it leads to."""
    parts = parts_dir(tmp_path / "o.safetensors")
    parts.mkdir()
    (parts / "samples.safetensors").write_bytes(b"samples")
    (parts / "block-0000.safetensors").write_bytes(b"block")
    _users_folder(parts / "act0")  # spilled block inputs, by the engine's own folder name
    elsewhere = _users_folder(tmp_path / "elsewhere")
    (parts / "act").symlink_to(elsewhere, target_is_directory=True)
    for name in ("block-0001.safetensors", "manifest.json", "Thumbs.db"):
        _users_folder(parts / name)
    (parts / "block-0002.safetensors").symlink_to(elsewhere / "photo.png")
    users = ["Thumbs.db", "block-0001.safetensors", "block-0002.safetensors", "manifest.json"]

    assert foreign_entries(parts) == users
    with pytest.raises(OutputError) as refused:  # a run refuses the folder before it deletes anything in it
        check_parts_folder(parts)
    assert str(refused.value).startswith(f"{parts} holds files the quantizer did not write (Thumbs.db, "
                                         "block-0001.safetensors, block-0002.safetensors and 1 more)")  # fmt: skip
    assert not discards_nothing(parts) and unfinished_runs(tmp_path) == []

    assert delete_parts(parts) == PartsLeft(parts, foreign=tuple(users))
    assert sorted(p.name for p in parts.iterdir()) == users
    assert all((parts / name / "photo.png").read_bytes() == PHOTO for name in users if name != "block-0002.safetensors")
    assert (parts / "block-0002.safetensors").is_symlink() and (elsewhere / "photo.png").read_bytes() == PHOTO


def test_a_parts_folder_holding_a_file_of_the_users_is_not_said_to_lose_nothing(tmp_path):
    """``discards_nothing`` was True of a folder without a manifest whose only file was the user's: the wizard
    offered its name as free, and the run then refused the folder ("holds files the quantizer did not write")."""
    parts = parts_dir(tmp_path / "o.safetensors")
    parts.mkdir()
    (parts / ".tmpAb12Cd").write_bytes(b"half a file")  # what a killed run leaves: nothing lost
    assert discards_nothing(parts)
    (parts / "notes.txt").write_text("the user's")
    assert not discards_nothing(parts)


def test_a_junction_in_a_scratch_folders_way_is_not_spilled_into(tmp_path, monkeypatch):
    """A Windows junction named as a scratch folder ("act") is a folder to ``is_symlink`` and ``is_dir``: the block
    inputs were spilled through it into its target (GiBs in another folder, its files of those names replaced).
    Told by ``not_a_folder``'s rule, it goes as a link does, or the run stops naming it. Simulated: lstat reports
    the reparse tag Windows gives (a junction that cannot be unlinked here, as one held open)."""
    from types import SimpleNamespace

    from gpu.streaming.activation_store import ActivationStore

    parts = parts_dir(tmp_path / "o.safetensors")
    parts.mkdir()
    spill = _users_folder(parts / "act")
    real_lstat = Path.lstat

    def lstat(path: Path):
        status = real_lstat(path)
        return SimpleNamespace(st_mode=status.st_mode, st_reparse_tag=0xA0000003) if path == spill else status

    monkeypatch.setattr(Path, "lstat", lstat)
    with pytest.raises(OutputError, match="is in the way: the quantizer spills block inputs into a folder"):
        ActivationStore(spill)
    assert [p.name for p in spill.iterdir()] == ["photo.png"] and (spill / "photo.png").read_bytes() == PHOTO


def test_an_older_builds_scratch_folder_goes_with_the_parts_folder(tmp_path):
    """Older builds' atomic writes left, killed mid-write, a scratch FOLDER ".<name>.<random>.tmp/" in the parts
    folder (holding the file being written and safetensors' own scratch), and before that a temp file of that name.
    Counted as the user's since engine files count only as plain files, it refused the whole parts folder (hours of
    blocks no longer resumed), the Unfinished runs hid it, and a deletion kept it for good. It is the engine's, as
    a scratch folder of today's name is: it goes with what it holds, a link of that name as a link."""
    parts = parts_dir(tmp_path / "o.safetensors")
    parts.mkdir()
    (parts / "manifest.json").write_text('{"done": {}}')
    (parts / "block-0000.safetensors").write_bytes(b"block")
    old = parts / ".block-0001.safetensors.ab12cd34.tmp"
    old.mkdir()
    (old / "block-0001.safetensors").write_bytes(b"half a block")
    (old / ".tmpAb12Cd").write_bytes(b"safetensors' scratch")
    (parts / ".samples.safetensors.x1y2z3w4.tmp").write_bytes(b"half the samples")  # the oldest builds' temp file
    elsewhere = _users_folder(tmp_path / "elsewhere")
    (parts / ".manifest.json.q9r8s7t6.tmp").symlink_to(elsewhere, target_is_directory=True)

    assert foreign_entries(parts) == []
    check_parts_folder(parts)  # resumed, not refused
    assert [run.parts for run in unfinished_runs(tmp_path)] == [parts]
    assert delete_parts(parts) is None and not parts.exists()
    assert (elsewhere / "photo.png").read_bytes() == PHOTO  # the link went, not what it leads to


def test_a_folder_named_almost_as_an_older_builds_scratch_is_the_users(tmp_path):
    """Older builds' scratch names end in tempfile's 8 random characters; a folder whose name only looks like one
    (".manifest.json.my-backup.tmp/") is the user's: it refuses the run, and a deletion keeps it with what it holds
    (taken for a scratch folder, it was deleted whole)."""
    parts = parts_dir(tmp_path / "o.safetensors")
    parts.mkdir()
    (parts / "manifest.json").write_text('{"done": {}}')
    backup = parts / ".manifest.json.my_backup_of_settings.tmp"
    backup.mkdir()
    (backup / "precious.txt").write_bytes(PHOTO)
    assert foreign_entries(parts) == [backup.name]
    left = delete_parts(parts)
    assert left is not None and left.foreign == (backup.name,)
    assert (backup / "precious.txt").read_bytes() == PHOTO


def test_a_spill_folder_left_over_is_emptied_before_it_is_spilled_into(tmp_path):
    """``ActivationStore`` removes what is at its spill folder's name by the one rule of the parts folder's deletion
    (``delete_entry``: a link or junction as itself, a folder with what it holds) instead of telling a link first
    and removing it by a rule of its own: a folder a failed removal left (a file held then) is cleared of what can
    go before it is spilled into, not written over among its stale files."""
    from gpu.streaming.activation_store import ActivationStore

    spill = parts_dir(tmp_path / "o.safetensors") / "act0"
    spill.mkdir(parents=True)
    (spill / "7.safetensors").write_bytes(b"a stale block input")
    store = ActivationStore(spill)
    assert spill.is_dir() and list(spill.iterdir()) == [] and store.spill == spill
