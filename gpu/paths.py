"""Where the engine finds shipped resources and keeps user data.

Resources live in the repository's ``resources/`` folder, or inside a PyInstaller bundle
(``sys._MEIPASS``). User data always goes to the platform's user directories (appdirs), or to the
folder named by ``NIBBLE_DATA_DIR`` (tests and portable installs).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import appdirs

from gpu.version import APP_NAME

DATA_DIR_ENV = "NIBBLE_DATA_DIR"


def resources_dir() -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def user_data_dir() -> Path:
    override = os.environ.get(DATA_DIR_ENV)
    path = Path(override) if override else Path(appdirs.user_data_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def user_cache_dir() -> Path:
    override = os.environ.get(DATA_DIR_ENV)
    path = Path(override) / "cache" if override else Path(appdirs.user_cache_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True)
    return path


def first_free_path(path: Path, first: int = 2, taken: Callable[[Path], bool] = Path.exists) -> Path:
    """``path`` if it is not ``taken`` (default: nothing is there), else ``<stem>-<first>``, ``<stem>-<first + 1>``,
    … with the same suffix: a name picked for the user never replaces a file they already have."""
    path, n = Path(path), first
    candidate = path
    while taken(candidate):
        candidate, n = path.with_name(f"{path.stem}-{n}{path.suffix}"), n + 1
    return candidate
