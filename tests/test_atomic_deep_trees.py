"""The deep trees' helpers of the tests themselves (``tests/deep_trees.py``, the ``deep_path`` fixture): a tree
deeper than Python's recursion limit is removed whatever its test did, and a link in it is not followed."""

from __future__ import annotations

import os
from pathlib import Path

from deep_trees import deep_path_room, remove_tree


def test_a_tree_deeper_than_the_recursion_limit_is_removed_one_level_at_a_time(tmp_path, deep_path):
    """The deep tests removed their tree only after their asserts passed: a failure left 1100 folders that
    pytest's clean-up (shutil.rmtree, recursive on Python 3.11) could not remove."""
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious").write_bytes(b"mine")
    bottom = deep_path(1100, "bottom")
    folder = Path()
    for name in bottom.parts:  # os.makedirs recurses once per level too
        folder /= name
        folder.mkdir()
    (bottom / "file").write_bytes(b"x")
    (bottom.parents[500] / "beside").write_bytes(b"y")  # files at more than one level
    os.symlink(keep, bottom / "link")  # removed, not followed
    remove_tree(tmp_path / "d")
    assert sorted(tmp_path.iterdir()) == [keep] and (keep / "precious").read_bytes() == b"mine"


def test_a_deep_path_the_file_system_cannot_hold_is_said_so(tmp_path, monkeypatch):
    """macOS takes paths of at most 1024 bytes, where a tree 1100 deep cannot be made: such a test is skipped."""
    monkeypatch.setattr(os, "pathconf", lambda path, name: 1024 if name == "PC_PATH_MAX" else 255)
    why = deep_path_room(tmp_path, 1100, "a.png")
    assert why is not None and why.endswith("bytes is longer than the 1024 allowed here")
    monkeypatch.setattr(os, "pathconf", lambda path, name: 4096 if name == "PC_PATH_MAX" else 255)
    assert deep_path_room(tmp_path, 1100, "a.png") is None
