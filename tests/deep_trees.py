"""Folder trees deeper than Python's recursion limit, for the tests that make them (``d/d/…`` 1100 levels): where
they fit, and their removal, which must not recurse either."""

from __future__ import annotations

import os
from pathlib import Path

# Bytes beyond a deep path's own that the tests' writes there add: the engine's room for its scratch folders
# (gpu.output_names' _PATH_ROOM, 64), a lock or probe file's name, a "cache" folder.
_ROOM = 128


def deep_path_room(folder: Path, levels: int, name: str) -> str | None:
    """Why ``d/``×``levels`` + ``name`` under ``folder`` cannot be written on this system, or None: its whole path
    with room for what is written beside it is longer than the file system's path limit (macOS: 1024 bytes)."""
    try:
        limit = os.pathconf(folder, "PC_PATH_MAX")
    except (AttributeError, OSError, ValueError):  # no pathconf (Windows: 259 characters without long paths)
        limit = 259
    need = len(os.fsencode(folder)) + 1 + 2 * levels + len(os.fsencode(name)) + _ROOM
    return None if limit <= 0 or need <= limit else f"a path of {need} bytes is longer than the {limit} allowed here"


def remove_tree(top: Path) -> None:
    """Removes ``top`` (a folder, if there) and all in it, one level at a time: ``shutil.rmtree`` recurses once per
    level on Python 3.11 and fails on a tree deeper than the recursion limit, which pytest's own clean-up of
    ``tmp_path`` then cannot remove. Links are removed, never followed."""
    if not top.is_dir() or top.is_symlink():
        return
    stack = [top]
    while stack:
        folders = []
        with os.scandir(stack[-1]) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                else:
                    os.unlink(entry.path)
        if folders:  # this folder is looked at again, empty of files, once they are gone
            stack.extend(folders)
        else:
            stack.pop().rmdir()
