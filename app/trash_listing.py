"""What the gallery's trash folder holds, listed on a thread (``GalleryModel``'s Empty trash and its "anything in
the trash?"), and Empty trash's deletion of it, on a thread too (``delete_listed``): with tens of thousands of
images, listing the trash and the images folder, or deleting the files, on the Qt thread froze the window. Only
files are looked at here; the database, the Qt thread's own, is asked and changed on that thread."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from app.reconcile import Listed
from gpu.paths import is_junction


@dataclass
class TrashListing:
    """The trash folder as listed: ``files``, every file (or link) by its path relative to the trash as the
    database stores it; ``sizes``, the bytes of the regular files among them; ``folders``, deepest first.

    Filled in on the Qt thread after the listing: ``shown``, the files that are the pictures of entries in the
    gallery (left there by a delete whose commit failed: ``DeleteNotSaved``), which Empty trash moves back rather
    than deletes; ``pictures``, the images folder and the trash listed for moving them back (only when there are
    such); ``version``, the gallery's trash version it was made at (``GalleryModel.empty_trash`` acts on a listing
    of the trash as it is); ``fileless``, how many images in the trash have no file in it (one missing when it was
    deleted, or its trashed file removed by hand), which Empty trash removes too (Undo brings them back, missing).
    ``taken``, for Empty trash: the names of images in the trash that a file in the images folder holds (a picture
    copied there by hand, or the image's own moved back), which Empty trash imports or gives back to its image, as
    start-up would; None until looked at. ``judged``: for each of ``taken`` that is the name of an image in the
    trash without its file there, whether the file is that image's own picture (not known to be another:
    ``trash_names.another_picture``, a file's hash), with the file's (size, modification time, change time) as it
    was hashed (None: it changed meanwhile): Empty trash's repair takes that word for a file unchanged since, not
    hashing it again on the window's thread. ``back`` are the own pictures among them."""

    files: dict[str, Path] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    folders: list[Path] = field(default_factory=list)
    shown: frozenset[str] = frozenset()
    taken: frozenset[str] | None = None
    judged: dict[str, tuple[tuple[int, int, int] | None, bool]] = field(default_factory=dict)
    pictures: Listed | None = None
    version: int = -1
    fileless: int = 0

    @property
    def back(self) -> frozenset[str]:
        """The names of ``judged`` whose file is its image's own picture, which keeps that image in the gallery:
        Empty trash's question counts them apart from the images it removes (it asked to remove "for good" an image
        "whose file is already gone", then kept it)."""
        return frozenset(rel for rel, (_times, own) in self.judged.items() if own)

    @property
    def deleted(self) -> list[Path]:
        """The files Empty trash deletes: those of images in the trash and those no row has."""
        return [path for rel, path in self.files.items() if rel not in self.shown]

    @property
    def size(self) -> tuple[int, int]:
        """(files, bytes) Empty trash deletes, as its confirmation counts them: every file of ``deleted``, a broken
        link too (no bytes), as its progress and its end count them (``delete_listed``); left out, the three said
        "Delete the 3 files", "0 of 4 files deleted" and "4 files deleted", and a trash holding only a broken link
        was "empty" while Empty trash stayed enabled."""
        deleted = [rel for rel in self.files if rel not in self.shown]
        return len(deleted), sum(self.sizes.get(rel, 0) for rel in deleted)

    @property
    def empty(self) -> bool:
        """Whether Empty trash has nothing to do: no file to delete, and no image without its file to remove (those
        left out, a trash of such images was "empty" while Undo brought them back)."""
        return not self.size[0] and not self.fileless


def list_trash(trash: Path) -> TrashListing:
    """The files and folders under ``trash`` (none when it is no folder); a link is a file, never followed into. A
    folder that cannot be read raises its ``OSError`` (``filename``: that folder): ``Path.rglob`` skipped it, and a
    trash whose files could not be read was listed as empty ("The trash is empty." while they stayed). A folder
    gone meanwhile holds nothing to list (the data folder moved away: the caller checks that)."""
    listing = TrashListing()
    if not trash.is_dir():
        return listing
    folders = [("", trash)]
    while folders:
        prefix, folder = folders.pop()
        try:
            with os.scandir(folder) as entries:
                found = list(entries)
        except FileNotFoundError:
            continue
        for entry in found:
            rel, path = prefix + entry.name, folder / entry.name
            if entry.is_dir(follow_symlinks=False):
                listing.folders.append(path)
                if not is_junction(path):  # deleted as itself (rmdir), never what its target holds
                    folders.append((f"{rel}/", path))
            elif entry.is_file() or entry.is_symlink():
                listing.files[rel] = path
                try:
                    listing.sizes[rel] = entry.stat().st_size  # a link to a file counts as the file
                except OSError:  # a broken link, or gone since the listing: nothing to count
                    pass
    listing.folders.sort(reverse=True)  # a folder after those under it
    return listing


# How often, at most, the deletion tells how far it got (``delete_listed``'s ``told``): each is a call on the Qt
# thread and a status bar update, not one per file of tens of thousands.
PROGRESS_EVERY_S = 0.25


@dataclass
class TrashEmptied:
    """What Empty trash's deletion did (``delete_listed``): ``deleted`` files (``freed`` bytes of them, as the
    confirmation counted them), and ``failures``, the files and folders that could not be deleted, with why (they
    stay in the trash folder, deleted the next time it is emptied).

    ``gone``: files no longer there when their turn came. No failure when a move back of a picture renamed them in
    the trash, but all of them go this way when the data folder is moved away meanwhile: the end checks it then
    (``TrashEmptier._on_emptied``) and sets ``moved``, rather than say "emptied" of files all still in the moved
    trash. ``error``: what stopped the deletion before its end (a fault, not an ``OSError`` of one file); the
    counts are those it reached, the files not tried stay in the trash. ``fileless``: the images in the trash that
    had no file there, removed with the rows (``TrashListing.fileless``). ``kept``: images in the trash whose own
    picture was back in the images folder (moved back by hand, or by an Undo whose commit failed), which stay in the
    gallery; ``imported``: pictures put in the images folder under the name of an image in the trash, added to the
    gallery (``TrashListing.taken``)."""

    deleted: int = 0
    freed: int = 0
    failures: list[tuple[Path, OSError]] = field(default_factory=list)
    failed_folders: set[Path] = field(default_factory=set)  # those of ``failures`` that are folders
    gone: int = 0
    error: Exception | None = None
    moved: OSError | None = None  # a ``DataDirMoved``: why the files ``gone`` were not there
    fileless: int = 0
    kept: int = 0
    imported: int = 0

    def failure_kinds(self) -> list[FailureKind]:
        """``failures`` by kind (the same error number and words), the most first; in one pass, for tens of
        thousands of them, each kind naming only its first few."""
        kinds: dict[tuple[int | None, str], FailureKind] = {}
        for path, exc in self.failures:
            kind = kinds.setdefault(_kind_of(exc), FailureKind(_reason(exc)))
            if path in self.failed_folders:
                kind.folders += 1
            else:
                kind.files += 1
            if len(kind.first) < FailureKind.NAMED:
                kind.first.append(path)
        return sorted(kinds.values(), key=lambda kind: -kind.count)  # stable: of as many, the first met first


@dataclass
class FailureKind:
    """Files and folders Empty trash could not delete for one reason (``TrashEmptied.failure_kinds``): ``reason``,
    the error without a path ("[Errno 13] Permission denied"); ``first``, the first ``NAMED`` of them."""

    NAMED: ClassVar[int] = 3

    reason: str
    files: int = 0
    folders: int = 0
    first: list[Path] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.files + self.folders


def _kind_of(exc: OSError) -> tuple[int | None, str]:
    return exc.errno, exc.strerror or str(exc)


def _reason(exc: OSError) -> str:
    """``exc`` without the path it names: its error number and words."""
    return f"[Errno {exc.errno}] {exc.strerror}" if exc.errno is not None and exc.strerror else str(exc)


def delete_listed(
    listing: TrashListing, stop: threading.Event, told: Callable[[int], object], emptied: TrashEmptied
) -> TrashEmptied:
    """On Empty trash's thread: the listing's ``deleted`` files deleted, then its folders that are empty by then;
    counted in ``emptied`` (returned) as it goes, the caller's: it knows how far the deletion got also when an
    error stopped it (an exception leaves no result to read). A file that cannot be deleted (open in another program
    on Windows, read-only) does not stop the others; one already gone is counted apart (``TrashEmptied.gone``).
    Stops before the next file once ``stop`` is set (the app closes: the files not tried stay in the trash, for the
    next Empty trash). ``told(deleted so far)`` every ``PROGRESS_EVERY_S``."""
    last = time.monotonic()
    for rel, path in listing.files.items():
        if rel in listing.shown:
            continue
        if stop.is_set():
            return emptied
        try:
            path.unlink()
            emptied.deleted += 1
            emptied.freed += listing.sizes.get(rel, 0)
        except FileNotFoundError:
            emptied.gone += 1
        except OSError as exc:
            emptied.failures.append((path, _without_frames(exc)))
        if time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            told(emptied.deleted)
    for folder in listing.folders:
        try:
            folder.rmdir()
        except FileNotFoundError:
            pass
        except OSError as exc:
            if not _holds_files(folder):  # a folder still holding a file left is no news
                emptied.failures.append((folder, _without_frames(exc)))
                emptied.failed_folders.add(folder)
    return emptied


def _without_frames(exc: OSError) -> OSError:
    """``exc`` without its traceback, kept in ``TrashEmptied.failures``: its frame, this deletion's, holds the
    ``emptied`` it is kept in (a reference cycle, which a garbage collection on any thread would free) and
    ``told``, the gallery's (a Qt object freed with it)."""
    return exc.with_traceback(None)


def _holds_files(folder: Path) -> bool:
    """Whether ``folder`` is a folder with anything in it (False when it cannot be read: its failure is said)."""
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:
        return False
