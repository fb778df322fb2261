"""The atomic writer's folders: a failed write into a folder tree it created takes the tree back."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import gpu.atomic
from gpu.atomic import atomic_path, atomic_write_bytes
from gpu.errors import OutputError


def _disk_full(*_args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_write_removes_the_empty_folders_it_created(tmp_path: Path, monkeypatch) -> None:
    """A write that failed (the writer raised, or the disk was full) left the new folders made for its target
    behind, empty. They are removed again; folders that were there before stay."""
    kept = tmp_path / "kept"
    kept.mkdir()
    target = kept / "new" / "deeper" / "out.png"
    with pytest.raises(ValueError, match="the writer failed"), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise ValueError("the writer failed")
    assert sorted(tmp_path.rglob("*")) == [kept]

    monkeypatch.setattr(gpu.atomic, "replace_file", _disk_full)  # fails after the writer finished
    with pytest.raises(OutputError, match="out.png: No space left on device"):
        atomic_write_bytes(target, b"whole")
    assert sorted(tmp_path.rglob("*")) == [kept]


def test_a_created_folder_that_holds_a_file_is_kept(tmp_path: Path) -> None:
    """Only empty folders go: one that received a file during the write (another writer's) stays, with its
    ancestors; a successful write keeps the folders it made."""
    target = tmp_path / "new" / "deeper" / "out.png"
    with pytest.raises(ValueError), atomic_path(target):
        (tmp_path / "new" / "other.png").write_bytes(b"another writer's")
        raise ValueError
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == ["new", "new/other.png"]

    atomic_write_bytes(target, b"whole")
    assert target.read_bytes() == b"whole" and sorted(target.parent.iterdir()) == [target]


def test_a_folder_where_files_can_be_made_but_not_removed_is_refused_naming_the_folder(tmp_path, monkeypatch):
    """Some network shares and ACLs let a file be created but not deleted; the check then said nothing useful
    (a bare error about its own probe file) or, worse, passed on to fail at the first replaced file."""

    def no_delete(path: object) -> None:
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(gpu.atomic.os, "unlink", no_delete)
    with pytest.raises(OSError) as refused:
        gpu.atomic.check_folder_writable(tmp_path)
    assert refused.value.filename == str(tmp_path)
    assert refused.value.strerror.startswith("a file can be created in it but not removed (.write-test-")
