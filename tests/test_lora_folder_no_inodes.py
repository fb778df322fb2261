"""'Add folder…' on a drive whose file system reports inode 0 for every file (some Windows network shares and FUSE
drives: Python documents ``st_ino`` as unique only when it is not 0). The folders listed were told apart by
(device, inode) alone, so every subfolder was taken for one listed already and skipped without a word."""

from __future__ import annotations

import os
from pathlib import Path

from gpu.lora.folder import list_lora_files


def _no_inodes(monkeypatch, root: Path) -> None:
    """``os.stat`` of anything under ``root`` says inode 0, as such a drive does (the rest of the stat as it is)."""
    real = os.stat

    def stat(path, *args, **kwargs):
        st = real(path, *args, **kwargs)
        if isinstance(path, (str, os.PathLike)) and os.fspath(path).startswith(str(root)):
            fields = list(st[:10])
            fields[1] = 0  # st_ino
            return os.stat_result(fields)
        return st

    monkeypatch.setattr(os, "stat", stat)


def test_subfolders_on_a_drive_without_inodes_are_listed_and_a_loop_still_once(tmp_path, monkeypatch):
    root = tmp_path / "loras"
    wanted = [root / "top.safetensors", root / "flux" / "a.safetensors", root / "flux" / "style" / "b.safetensors"]
    for path in wanted:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")  # names only: the listing reads no header
    (root / "flux" / "loop").symlink_to(root, target_is_directory=True)  # a link to a folder above: listed once
    (root / "same").symlink_to(root / "flux", target_is_directory=True)  # another way to flux/: listed once
    _no_inodes(monkeypatch, tmp_path)
    assert os.stat(root / "flux").st_ino == 0

    listing = list_lora_files(root)
    assert listing.files == wanted  # was: [top.safetensors] alone, flux/ taken for the root listed already
    assert listing.unreadable == [] and listing.too_deep == []
