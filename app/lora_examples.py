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
    row that names none (``example`` None: the key absent, an earlier version's row by absolute path; or "": a
    row taken for another file), a path whose part below its last ``resources/loras`` folder is a shipped example
    and whose file is a copy of this app's (an earlier install kept beside this one) or is missing (the app folder
    moved or upgraded since). A missing file of a row with ``example`` "" is taken for the example only in an app's
    folder (``_app_folder``): the previous version wrote "" for an earlier install's example too, and its row was
    switched off once that install was deleted, while a user's own LoRA on a drive not plugged in (its path below
    some ``resources/loras``, under the example's name) must keep its row. None for a row of another file, which
    stays at its ``path``."""
    if example:
        return shipped_example(example)
    parts = PurePath(path).parts
    below = [i + 2 for i in range(len(parts) - 2) if parts[i:i + 2] == ("resources", "loras")]
    shipped = shipped_example("/".join(parts[below[-1]:])) if below else None
    if shipped is None:
        return None
    if not os.path.lexists(path):
        return shipped if example is None or _app_folder(parts[:below[-1] - 2]) else None
    try:  # the file's bytes, not its name (1.3 MB, read once: an earlier version's settings only)
        return shipped if filecmp.cmp(path, shipped, shallow=False) else None
    except OSError:  # unreadable: it cannot be told from a file of the user's
        return None


def _app_folder(parts: tuple[str, ...]) -> bool:
    """Whether the folder of path ``parts`` (the one holding a ``resources`` folder) is laid out as an app's: the
    bundle's ``_internal`` (PyInstaller 6), a folder named like the app ("nibble-0.1.0", "Nibble Studio"), or
    named as the one holding this app's resources (a source checkout's). Only the names are looked at: the file
    there is missing, and its folder most often with it."""
    name = parts[-1] if parts else ""
    return name == "_internal" or "nibble" in name.casefold() or name == resources_dir().parent.name
