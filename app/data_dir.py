"""Where the app keeps the user's data: one folder, chosen by ``--data-dir``, ``NIBBLE_DATA_DIR`` or appdirs.

Images, the gallery database and settings must stay together in it. A data folder renamed or moved while the app
runs is not followed: its old path is not made again for the next file (``DataDir.check_in_place``), which put new
images and settings in a second tree the database, still open in the moved folder, knew nothing of.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from gpu.atomic import check_folder_writable
from gpu.errors import OutputError
from gpu.paths import DATA_DIR_ENV, user_data_dir

# The trash when images/ is on another disk than the data folder (a link or junction to a bigger one): a file moves
# to the trash and back by one rename (crash-safe, see ``app.image_files``), and no rename crosses disks. Hidden, so
# that the images folder's listing (``png_paths``) never takes an image in the trash for a gallery image.
IMAGES_TRASH = ".trash"


class DataDirMoved(OutputError, OSError):
    """The data folder was moved, renamed or removed since the app opened it. An ``OSError`` too, so that every
    caller that handles a failed file operation (delete, undo, settings) handles this one."""


@dataclass(frozen=True)
class DataDir:
    root: Path
    # (st_dev, st_ino) of ``root`` when the app opened it (``create``); None: not checked (a DataDir never created)
    identity: tuple[int, int] | None = field(default=None, compare=False, repr=False)
    trash_folder: Path | None = field(default=None, compare=False, repr=False)  # chosen by ``create``

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def trash(self) -> Path:
        return self.trash_folder or self.root / "trash"

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
        the folder concerned) when one cannot be used. Returns the DataDir to use: the root's identity
        remembered (``check_in_place``) and its trash chosen (``IMAGES_TRASH``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        check_folder_writable(self.root)
        self.images.mkdir(exist_ok=True)
        check_folder_writable(self.images)
        root = os.stat(self.root)
        data = dataclasses.replace(self, identity=(root.st_dev, root.st_ino), trash_folder=self._trash_for_images())
        for folder in (data.trash, data.quantized):
            folder.mkdir(exist_ok=True)
            check_folder_writable(folder)
        return data

    def _trash_for_images(self) -> Path:
        """``trash/`` unless images/ is on another file system (then ``IMAGES_TRASH`` inside it), or was when an
        image last went to the trash: the trash stays where its images are, the images folder moved back too."""
        inside = self.images / IMAGES_TRASH
        if inside.is_dir():
            return inside
        beside = self.root / "trash"
        if os.stat(self.images).st_dev != os.stat(beside if beside.is_dir() else self.root).st_dev:
            return inside
        return beside

    def check_in_place(self) -> None:
        """Raises ``DataDirMoved`` when ``root`` is gone, or is no longer the folder the app opened (the old one
        moved or renamed, another made in its place). Call it before writing a file whose folders would
        otherwise be made again at the old path; creating the root itself is for start-up (``create``) only."""
        try:
            now = os.stat(self.root)
            same = self.identity is None or (now.st_dev, now.st_ino) == self.identity
        except FileNotFoundError:
            same = False
        if not same:
            raise DataDirMoved(
                f"The data folder {self.root} was moved or removed while Nibble Studio ran, so nothing more is "
                "saved in it: quit Nibble Studio and start it again (with --data-dir NEW_PATH if the folder was "
                "moved).",
                "Its images, gallery database and settings stay together only in one folder: a new one made at "
                "the old path would split them.",
            )


def resolve_data_dir(explicit: Path | None = None) -> DataDir:
    """An explicit folder wins; it is also exported so the engine (model library) agrees on the location."""
    if explicit is not None:
        os.environ[DATA_DIR_ENV] = str(Path(explicit).resolve())
    return DataDir(user_data_dir().resolve()).create()
