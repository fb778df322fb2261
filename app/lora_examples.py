"""The example LoRAs the app ships (resources/loras): their folder, and the name by which one is kept in the settings:
its row of the LoRA panel (``LoraSetting.example``), or the user's removal of it (``Settings.removed_examples``)."""

from __future__ import annotations

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


def saved_example_path(path: str, example: str) -> Path | None:
    """Where the example LoRA a settings row names is now: its ``example`` name in this app's resources, or, for a
    row saved by an earlier version (by absolute path only, ``example`` empty), a missing file below a
    ``resources/loras`` folder (the app folder moved or upgraded since) whose name below it is a shipped example.
    None for a row of another file, which stays at its ``path``."""
    if example:
        return shipped_example(example)
    parts = PurePath(path).parts
    below = [i + 2 for i in range(len(parts) - 2) if parts[i:i + 2] == ("resources", "loras")]
    if not below or os.path.lexists(path):
        return None
    return shipped_example("/".join(parts[below[-1]:]))
