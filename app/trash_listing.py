"""What the gallery's trash folder holds, listed on a thread (``GalleryModel``'s Empty trash and its "anything in
the trash?"): with tens of thousands of images, listing the trash and the images folder on the Qt thread froze
the window. Only files are looked at here; the database, the Qt thread's own, is asked on that thread."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from app.reconcile import Listed


@dataclass
class TrashListing:
    """The trash folder as listed: ``files``, every file (or link) by its path relative to the trash as the
    database stores it; ``sizes``, the bytes of the regular files among them; ``folders``, deepest first.

    Filled in on the Qt thread after the listing: ``shown``, the files that are the pictures of entries in the
    gallery (left there by a delete whose commit failed: ``DeleteNotSaved``), which Empty trash moves back rather
    than deletes; ``pictures``, the images folder and the trash listed for moving them back (only when there are
    such); ``version``, the gallery's trash version it was made at (``GalleryModel.empty_trash`` acts on a listing
    of the trash as it is)."""

    files: dict[str, Path] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    folders: list[Path] = field(default_factory=list)
    shown: frozenset[str] = frozenset()
    pictures: Listed | None = None
    version: int = -1

    @property
    def deleted(self) -> list[Path]:
        """The files Empty trash deletes: those of images in the trash and those no row has."""
        return [path for rel, path in self.files.items() if rel not in self.shown]

    @property
    def size(self) -> tuple[int, int]:
        """(files, bytes) Empty trash deletes, as its confirmation counts them (a broken link left out)."""
        sizes = [self.sizes[rel] for rel in self.files if rel not in self.shown and rel in self.sizes]
        return len(sizes), sum(sizes)


def list_trash(trash: Path) -> TrashListing:
    """The files and folders under ``trash`` (none when it is no folder); a link is a file, never followed into."""
    listing = TrashListing()
    if not trash.is_dir():
        return listing
    for path in trash.rglob("*"):
        if path.is_file() or path.is_symlink():
            rel = path.relative_to(trash).as_posix()
            listing.files[rel] = path
            try:
                listing.sizes[rel] = os.stat(path).st_size  # a link to a file counts as the file
            except OSError:  # a broken link, or gone since the listing: nothing to count
                pass
        elif path.is_dir():
            listing.folders.append(path)
    listing.folders.sort(reverse=True)  # a folder after those under it
    return listing
