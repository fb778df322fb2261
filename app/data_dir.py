"""Where the app keeps the user's data: one folder, chosen by ``--data-dir``, ``NIBBLE_DATA_DIR`` or appdirs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gpu.atomic import check_folder_writable
from gpu.paths import DATA_DIR_ENV, user_data_dir


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def trash(self) -> Path:
        return self.root / "trash"

    @property
    def database(self) -> Path:
        return self.root / "nibble.sqlite3"

    @property
    def settings(self) -> Path:
        return self.root / "settings.json"

    @property
    def quantized(self) -> Path:
        return self.root / "models"

    def create(self) -> DataDir:
        """Makes the folders (those there already are kept) and checks a file can be made in each: an existing
        folder that takes none (read-only, or a link to such a place) passed mkdir, and a later step failed
        naming a file inside (for images/: every generated picture, after the work). ``OSError`` (``filename``
        the folder concerned) when one cannot be used."""
        self.root.mkdir(parents=True, exist_ok=True)
        check_folder_writable(self.root)
        for folder in (self.images, self.trash, self.quantized):
            folder.mkdir(exist_ok=True)
            check_folder_writable(folder)
        return self


def resolve_data_dir(explicit: Path | None = None) -> DataDir:
    """An explicit folder wins; it is also exported so the engine (model library) agrees on the location."""
    if explicit is not None:
        os.environ[DATA_DIR_ENV] = str(Path(explicit).resolve())
    return DataDir(user_data_dir().resolve()).create()
