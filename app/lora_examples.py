"""The example LoRAs the app ships (resources/loras): their folder, and the name by which one is kept in the settings:
its row of the LoRA panel (``LoraSetting.example``), or the user's removal of it (``Settings.removed_examples``)."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path, PurePath

from gpu.paths import resolved as resolve_path
from gpu.paths import resources_dir


def examples_folder() -> Path:
    """The folder of the example LoRAs the app ships."""
    return resources_dir() / "loras"


def example_name(path: Path, folder: Path | None = None) -> str | None:
    """The path below resources/loras of an example LoRA the app ships ("monochrome-style.safetensors"), by which
    the settings keep it (a bundle's resources may lie elsewhere at each start); None for another file. ``folder``:
    ``examples_folder()`` resolved, given by a caller that names many files, each ``path`` resolved already (a
    row's ``LoraEntry.resolved``): nothing is looked up on disk then."""
    try:
        if folder is None:
            path, folder = resolve_path(path), resolve_path(examples_folder())
        return path.relative_to(folder).as_posix()
    except ValueError:
        return None


def shipped_example(name: str) -> Path | None:
    """The file of the example LoRA ``name`` (``example_name``) in this app's resources; None when it ships none of
    that name (an example a later version dropped, a hand-edited name)."""
    path = examples_folder() / name
    try:
        return path if name and path.is_file() and example_name(path) == name else None
    except (OSError, ValueError):  # a name no file can have (a NUL byte)
        return None


def saved_example_path(path: str, example: str | None) -> Path | None:
    """Where the example LoRA a settings row names is now: its ``example`` name in this app's resources; or, for a
    row saved by an earlier version (by absolute path only: ``example`` None, the key absent), a path whose part
    below its last ``resources/loras`` folder is a shipped example, and whose file is either missing (the app
    folder moved or upgraded since) or a copy of this app's (an earlier install kept beside this one). None for a
    row of another file, which stays at its ``path``: this version writes ``example`` for every row, "" for a
    user's own file, which may well lie below some ``resources/loras`` under the example's name."""
    if example is not None:
        return shipped_example(example) if example else None
    parts = PurePath(path).parts
    below = [i + 2 for i in range(len(parts) - 2) if parts[i:i + 2] == ("resources", "loras")]
    shipped = shipped_example("/".join(parts[below[-1]:])) if below else None
    if shipped is None or not os.path.lexists(path):
        return shipped
    try:  # the file's bytes, not its name (1.3 MB, read once: an earlier version's settings only)
        return shipped if filecmp.cmp(path, shipped, shallow=False) else None
    except OSError:  # unreadable: it cannot be told from a file of the user's
        return None
