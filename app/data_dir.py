"""Where the app keeps the user's data: one folder, chosen by ``--data-dir``, ``NIBBLE_DATA_DIR`` or appdirs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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
        for folder in (self.root, self.images, self.trash, self.quantized):
            folder.mkdir(parents=True, exist_ok=True)
        return self


def resolve_data_dir(explicit: Path | None = None) -> DataDir:
    """An explicit folder wins; it is also exported so the engine (model library) agrees on the location."""
    if explicit is not None:
        os.environ[DATA_DIR_ENV] = str(Path(explicit).resolve())
    return DataDir(user_data_dir().resolve()).create()
