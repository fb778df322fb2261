"""Names in the trash folder: which trashed images own the file under a name there (also under another spelling the
file system takes for the same), whether a gallery entry's own picture was left there (or a trashed entry's is back
in the images folder already), and a file renamed out of the way of another that takes its name
(``rename_in_trash``), its owners following it, as does a deleted image that holds the name without a file there."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

from app.data_dir import DataDir
from app.image_files import absolute, file_fingerprint, free_image_name, read_image_settings, rename_in_trash
from app.store import ImageRecord, Store


def _spelling(rel_path: str) -> str:
    """``rel_path`` as a file system that ignores case and Unicode normalization compares it."""
    return unicodedata.normalize("NFC", rel_path).casefold()


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them is not there
        return False


def trash_owners(store: Store, data: DataDir, rel_path: str) -> list[ImageRecord]:
    """Those of the images in the trash (every trashed row, not only the undo list's, which files still being
    gathered from an old trash have not joined) whose file is the one in the trash under ``rel_path``: its own
    name, or another spelling of it where the file system takes both for one (case on Windows, macOS and a USB
    drive's exFAT; Unicode normalization on macOS). The database's paths are unique only as written."""
    key = _spelling(rel_path)
    trash = data.trash
    trashed = (r for batch in store.trash_batches() for r in batch)
    return [r for r in trashed if _spelling(r.path) == key and (r.path == rel_path or _same_file(trash / r.path,
            trash / rel_path))]  # fmt: skip


def in_trash_already(store: Store, data: DataDir, record: ImageRecord) -> bool:
    """Whether the file of ``record`` (a row in the gallery) is in the trash under its name: a delete whose
    commit failed could not move it back. It is that row's file, as start-up would take it, unless an image
    in the trash has it (``trash_owners``): renamed out of the way as another's, it was left with no row (Undo
    brought the entry back missing, Empty trash deleted the picture); taken when it was another's, Undo
    brought that picture back as this entry's, and the other image without it."""
    if absolute(data, record.path).exists() or not (data.trash / record.path).is_file():
        return False
    return not trash_owners(store, data, record.path)


class PathSpellings:
    """Every row's path by its spelling (``_spelling``), read from the database when first asked and kept until
    ``forget``: one read for a whole Undo batch. Read once per image whose file was back, an Undo of thousands of
    them (after a failed one) read every row thousands of times."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._by_spelling: dict[str, list[str]] | None = None

    def spelled_as(self, rel_path: str) -> list[str]:
        """The paths of the rows that are ``rel_path`` or another spelling of it (as written in the database)."""
        if self._by_spelling is None:
            by_spelling: dict[str, list[str]] = {}
            for path in self._store.all_paths():
                by_spelling.setdefault(_spelling(path), []).append(path)
            self._by_spelling = by_spelling
        return self._by_spelling.get(_spelling(rel_path), [])

    def forget(self) -> None:
        """Read again when next asked: a row's path changed."""
        self._by_spelling = None


def back_in_images(store: Store, data: DataDir, record: ImageRecord, paths: PathSpellings) -> bool:
    """Whether the file of ``record`` (an image in the trash) is in the images folder under its name already, with
    none in the trash: moved back by hand, or left there by an Undo whose commit failed and which could not move it
    back into the trash. It is that row's picture, as start-up takes it (``app.reconcile.finish_interrupted_moves``)
    and as a delete takes its file left in the trash (``in_trash_already``), unless it is known to be another
    (``another_picture``: a file copied in under that name since) or another row holds it under another spelling
    of the name (``paths``: the rows' paths, current). Undo giving the entry a free name instead left its picture
    with no entry (a second one, without the star, at the next start) and the entry marked missing."""
    own = absolute(data, record.path)
    if (data.trash / record.path).exists() or not own.is_file():
        return False
    if any(path != record.path and _same_file(absolute(data, path), own) for path in paths.spelled_as(record.path)):
        return False
    return not another_picture(store, record, own)


def another_picture(store: Store, record: ImageRecord, path: Path) -> bool:
    """Whether the file at ``path`` is known to be another picture than the one of ``record``: not the size and
    bytes (SHA-256) its row stored, or, where those are not known (an image imported from its file), other
    settings than its own. With nothing to tell them apart (no settings in the file, or it cannot be read) it is
    taken for its own. The one rule of Undo (``back_in_images``) and start-up (``app.reconcile``) for a trashed
    entry's name taken in the images folder: a file there is its picture unless this says otherwise."""
    return not_its_picture(record, store.stored_fingerprint(record.id), path)


def not_its_picture(record: ImageRecord, stored: tuple[int | None, str | None], path: Path) -> bool:
    """``another_picture`` with the row's stored (size, SHA-256) read beforehand (``Store.fingerprints``): asked
    off the database's thread, where a file is hashed without freezing the window (Empty trash's listing)."""
    size, sha = stored
    if size is not None:
        fingerprint = file_fingerprint(path)
        return fingerprint is not None and (fingerprint[0] != size or sha not in (None, fingerprint[1]))
    settings = read_image_settings(path)
    return bool(settings) and bool(record.settings) and settings != record.settings


def clear_trash_name(store: Store, data: DataDir, rel_path: str, undo: list[list[ImageRecord]]) -> None:
    """A name in the trash is given up, not taken: deleting or adding an image of that name must not destroy what
    holds it. A file in the trash under ``rel_path`` (a deleted image, or one the database no longer knows) is
    renamed; the deleted image whose file it is follows it, also under another spelling of the name
    (``trash_owners``). A deleted image that holds the name with no file there (missing when it was deleted, or its
    file removed from the trash by hand) is given a free one: left there, a new image's row took it over
    (``Store.add_images`` brings the row at its path back from the trash), its prompt and settings lost, and its
    Undo then renamed the new image's row. Each follows in its row and in its record on the undo list (``undo``)."""
    if os.path.lexists(data.trash / rel_path):  # a dangling link there is in the way as well
        owners = trash_owners(store, data, rel_path)
        new_rel = rename_in_trash(data, rel_path, taken=store.has_path)
        try:
            _follow(store, [owner.id for owner in owners], new_rel, undo)
        except BaseException:
            os.replace(data.trash / new_rel, data.trash / rel_path)
            raise
    elif (fileless := store.trashed_at(rel_path)) is not None:
        # No file to move: a name that no file (images, trash) nor row holds, as a renamed file gets, is enough.
        _follow(store, [fileless], free_image_name(data, rel_path, store.has_path), undo)


def _follow(store: Store, trashed: list[int], new_rel: str, undo: list[list[ImageRecord]]) -> None:
    """The rows of the deleted images ``trashed`` (ids) given ``new_rel``, and their records on the undo list:
    Undo brings an image back under its record's path."""
    undoable = {record.id: record for batch in undo for record in batch}
    for image_id in trashed:
        store.set_path(image_id, new_rel)
        if (listed := undoable.get(image_id)) is not None:
            listed.path = new_rel
