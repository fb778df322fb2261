"""The gallery's trash: images deleted to the trash folder as one undoable deletion each, the last one brought
back (Undo), and the state that Delete, Undo and Empty trash share: the undo list, the old trash of another drive
being gathered (Undo and Empty trash wait for it), how many times the trash changed. Listing and emptying the
trash is its ``TrashEmptier``'s. A collaborator of ``GalleryModel``, whose rows and signals it changes."""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Container
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from PySide6.QtCore import QObject

from app.data_dir import DataDir
from app.gallery_errors import DeleteCutShort, DeleteNotSaved, UndoCutShort, UndoNotSaved
from app.image_files import move_to_trash, restore_from_trash
from app.reconcile import FolderImport
from app.store import ImageRecord, Store
from app.trash_emptier import TrashEmptier
from app.trash_names import PathSpellings, back_in_images, clear_trash_name, in_trash_already
from app.trash_notices import (
    came_back_without_file,
    refused_while_gathering,
)

if TYPE_CHECKING:
    from app.gallery_model import GalleryModel

log = logging.getLogger(__name__)


class _Back(NamedTuple):
    """An image whose file Undo moved back from the trash, before its row says so."""

    record: ImageRecord  # as it comes back: under the name it got (another if a new file took its own), missing
    trash_name: str  # its name in the trash
    in_trash: bool  # whether its file was there (else nothing moved: gone, or back in the images folder already)
    # Its file was no longer in the trash (removed by hand, or by another program): the entry comes back all the
    # same, flagged missing as start-up flags an entry whose file is gone (its settings can still be reused).
    lost: bool


class Deleted(NamedTuple):
    """What a delete did (``GalleryTrash.delete``): ``images`` put in the trash, ``without_file`` of them with no file
    to move (renamed, moved or deleted outside the app; or missing already), marked missing."""

    images: int
    without_file: int


class GalleryTrash(QObject):
    """Delete and Undo delete of a ``GalleryModel`` (its parent), and the state they share with Empty trash
    (``emptier``: listing and emptying the trash on threads). A QObject on the Qt thread: the old trash gathered
    (``FolderImport.trash_gathered``) comes to its slot through the event loop."""

    def __init__(self, model: GalleryModel, store: Store, data: DataDir) -> None:
        """Reads the undo list from ``store`` and looks at the trash (``has_trash``, Undo's count)."""
        super().__init__(model)
        self._store = store
        self._data = data
        # Whether a Save as under way writes a path (``ImageSave.writes``, set by the controller): Undo brings no
        # picture back under that name, which the save's copy then replaced (the picture lost for good).
        self.written: Callable[[Path], bool] = lambda _path: False
        self._undo = self._undo_batches()
        # The old trash of another drive is gathered while the window is up (``wait_for_gather``): Undo and Empty
        # trash wait for it, as they would act on a trash half there.
        self._gather: FolderImport | None = None
        # The changes to the trash (a delete, an undo, Empty trash, the old trash gathered), so that a listing
        # made before one is not used (``TrashEmptier``).
        self._version = 0
        self.emptier = TrashEmptier(self, store, data)
        self.changed()

    @property
    def _model(self) -> GalleryModel:
        """Its model, its Qt parent: held by Qt, not by a Python attribute, so that no reference cycle keeps the
        model alive until a collection, which may run on any thread."""
        return self.parent()  # type: ignore[return-value]

    def clear_name(self, rel_path: str) -> None:
        """A file in the trash under ``rel_path`` renamed out of the way of an image added under that name, its
        owners following it, on the undo list too (``clear_trash_name``)."""
        clear_trash_name(self._store, self._data, rel_path, self._undo)

    def _undo_batches(self) -> list[list[ImageRecord]]:
        """Deletions stay undoable across restarts: the trash is in the database, the latest deletion last. One
        entry per delete action, holding every image it moved: one Undo brings back what one Delete removed. An
        image whose file is in neither trash folder (removed by hand since, or missing before its delete) is on it
        too, and comes back marked missing as within a session (``_restore``): left off, its entry stayed in the
        trash for good, its prompt and settings lost without a word. One whose file waits in the old trash
        (``DataDir.other_trash``: still to be gathered, or left there by a move that failed) is left off until it
        is gathered: Undo cannot move it back from there."""
        trash, old_trash = self._data.trash, self._data.other_trash
        batches = ([r for r in b if (trash / r.path).is_file() or not (old_trash / r.path).is_file()]
                   for b in self._store.trash_batches())  # fmt: skip
        return [batch for batch in batches if batch]

    def wait_for_gather(self, folder_import: FolderImport) -> None:
        """Undo and Empty trash wait for ``folder_import`` to gather the old trash, if it has one to (they are
        greyed, and refused with a word if asked for meanwhile); deleting goes on (the gathering never replaces a
        file in the trash). Then the undo list is read again, its files now in the trash."""
        if not folder_import.gathering:
            return
        self._gather = folder_import
        folder_import.trash_gathered.connect(self._trash_gathered)
        self.changed()

    @property
    def gathering(self) -> bool:
        """Whether the old trash is still being gathered (``wait_for_gather``)."""
        return self._gather is not None and self._gather.gathering

    def _trash_gathered(self, changed: bool, back: list[str]) -> None:
        self._undo = self._undo_batches()
        if changed:
            self._model.files_back(back)
        self.changed()

    @property
    def undo_count(self) -> int:
        """How many deletions (delete actions) Undo can bring back now (none while the old trash is gathered, nor
        while Empty trash deletes)."""
        return 0 if self.gathering or self.emptier.deleting else len(self._undo)

    def refused_while_gathering(self, what: str) -> bool:
        """Whether ``what`` (Undo delete, Empty trash) must wait for the old trash, said if so."""
        if self.gathering:
            self._model.notice.emit(refused_while_gathering(what, self._data))
        return self.gathering

    def changed(self) -> None:
        """Told of a change to the trash (a delete, an undo, Empty trash, the old trash gathered): Undo's count
        said (``trash_changed``), and ``has_trash`` set again (``TrashEmptier.after_change``)."""
        self._version += 1
        self._model.trash_changed.emit(self.undo_count)
        self.emptier.after_change()

    @property
    def version(self) -> int:
        """How many changes the trash has had (``changed``): a listing made before the latest is not used."""
        return self._version

    @property
    def has_undo(self) -> bool:
        """Whether the undo list holds any deletion (also while Undo is refused)."""
        return bool(self._undo)

    def without_file(self, files: Container[str]) -> list[ImageRecord]:
        """The images on the undo list that have no file among ``files`` (the trash's, as listed): missing when
        they were deleted, or their trashed file removed (or moved back into the images folder) by hand since."""
        return [record for batch in self._undo for record in batch if record.path not in files]

    def forget_undo(self) -> None:
        """Empties the undo list: Empty trash forgot the trashed rows."""
        self._undo.clear()

    def delete(self, rows: list[int]) -> Deleted | None:
        """Moves files to the trash folder as one deletion: ``undo_delete`` brings all of them back. Stops at
        the first OSError/sqlite3.Error met: that image and the ones after it stay as they were (file and row).
        Raised as it is when nothing was moved yet, else as ``DeleteCutShort`` saying how many were (so the
        message can say what did change: those are in the trash, undoable, not "nothing"). Returns what it did;
        None when refused, said (while Empty trash deletes: ``TrashEmptier.refused_while_emptying``).

        An image whose file is not in the images folder (renamed there by hand during the session) goes to the
        trash without it, marked missing as start-up marks an entry whose file is gone: counted apart, so that the
        delete does not say it moved a file, nor its Undo that the file left the trash.

        The files move first, then every moved image's row says so in one commit (one per image took 4.4 s for
        500 images): a crash before it leaves files in the trash whose rows do not say so, which start-up moves
        back (``app.reconcile``), as it did for one image."""
        if self.emptier.refused_while_emptying("Delete"):  # deleting goes on while the old trash is gathered
            return None
        todo = sorted(set(rows), reverse=True)
        batch: list[ImageRecord] = []
        moved: list[int] = []
        fileless: set[int] = set()  # the rows of those with no file to move
        self._undo.append(batch)  # on the stack from the start, so that clear_trash_name sees every trashed image
        try:
            when = self._store.next_trash_time()  # the whole action's: grouped again after a restart
            try:
                for row in todo:
                    record = self._model.record(row)
                    if not in_trash_already(self._store, self._data, record):
                        self.clear_name(record.path)
                        if not move_to_trash(self._data, record.path):
                            fileless.add(row)
                    moved.append(row)
            finally:
                if moved:
                    trashed = [replace(self._model.record(row), missing=True) if row in fileless
                               else self._model.record(row) for row in moved]  # fmt: skip
                    self._trash_moved(trashed, when)
                    batch.extend(trashed)
                    self._model.remove_rows_at(moved)
        except (OSError, sqlite3.Error) as exc:
            if batch:
                raise DeleteCutShort(len(batch), len(todo) - len(batch), exc, len(fileless)) from exc
            raise
        finally:
            if not batch:
                self._undo.pop()
            self.changed()
        return Deleted(len(batch), len(fileless))

    def _trash_moved(self, records: list[ImageRecord], when: float) -> None:
        """Marks the rows of files just moved to the trash as trashed, in one commit, those with no file to move
        (``missing``) missing too; when that fails the files go back where the rows point, every one tried. One that
        cannot go back stays in the trash, its row not trashed (start-up moves it back), and a failed database
        write is raised as ``DeleteNotSaved`` naming it."""
        try:
            self._store.set_trashed_many(((r.id, None, r.missing or None) for r in records), True, when=when)
        except BaseException as exc:
            left: list[ImageRecord] = []
            for record in records:
                try:
                    restore_from_trash(self._data, record.path)
                except OSError:
                    left.append(record)
            if left and isinstance(exc, sqlite3.Error):
                raise DeleteNotSaved(exc, len(records), left, self._data, self._store.path) from exc
            raise
        for record in records:
            self._model.thumbnails.forget(self._model.path_of(record))

    def undo_delete(self) -> list[ImageRecord]:
        """Brings back every image of the last deletion; returns them as they came back (none when there is no
        deletion to undo, or when refused, said). Stops at the first OSError/sqlite3.Error met: that
        image and the ones not yet tried stay in the trash as the last deletion (the next Undo tries them
        again). Raised as it is when none came back yet, else as ``UndoCutShort`` saying how many did.

        The files move back first, then their rows say so in one commit (one per image, then a reload of every
        row, took 2.1 s for 500 images of 30,000): a crash before it leaves files back whose rows still say
        "trashed", which start-up finishes (``app.reconcile``), as it did for one image. The rows that came back
        are put in the grid where they belong; the others stay as they were (scroll position, selection)."""
        if self.emptier.refused_undo():
            return []
        if self.refused_while_gathering("Undo delete") or not self._undo:
            return []
        batch = self._undo[-1]
        back: list[_Back] = []
        paths = PathSpellings(self._store)
        try:
            try:
                for record in reversed(batch):
                    back.append(self._restore(record, paths))
            finally:
                if back:
                    self._untrash(back)
                    del batch[len(batch) - len(back) :]
        except (OSError, sqlite3.Error) as exc:
            if back:  # one message: the cut-short error counts the entries back without their file
                lost = [b.record for b in back if b.lost]
                notice = came_back_without_file(lost, self._data) if lost else None
                raise UndoCutShort(len(back), len(batch), exc, notice) from exc
            raise
        finally:
            if not batch:
                self._undo.pop()
            self.changed()
        if lost := [b.record for b in back if b.lost]:
            self._model.notice.emit(came_back_without_file(lost, self._data))
        return [b.record for b in back]

    def _restore(self, record: ImageRecord, paths: PathSpellings) -> _Back:
        """One image's file back from the trash; its row follows in ``_untrash``. When another file has taken
        its name, it is renamed in the trash first and its row says so in a commit of its own (rare): the file
        then comes back under the path its row has. Given its new name only by the later commit, a crash
        before it left the row to be taken out of the trash at start-up at its old path, another's picture,
        and its own file imported as a second entry. Its file already back in the images folder under its name
        (``back_in_images``) is taken as it is; ``paths``: the rows' paths, read once for the Undo."""
        in_trash = (self._data.trash / record.path).exists()
        if in_trash and self._model.path_of(record).exists():  # ``record`` is on the undo stack: its path follows
            self.clear_name(record.path)
            paths.forget()  # rows renamed: what ``paths`` read is out of date
        if not in_trash and back_in_images(self._store, self._data, record, paths):
            return _Back(replace(record, missing=False), record.path, in_trash=False, lost=False)
        # With no file in the trash, a name no other row holds (a missing image's) if a new file has its own.
        restored = restore_from_trash(self._data, record.path, taken=self._store.has_path, written=self.written)
        lost = not in_trash and not record.missing  # one missing before its delete had no file to lose
        return _Back(replace(record, path=restored, missing=record.missing or lost), record.path, in_trash, lost)

    def _untrash(self, back: list[_Back]) -> None:
        """The rows of the files ``_restore`` brought back, in one commit, then in the grid. When the commit fails
        the files go back into the trash, every one tried. One that cannot go back stays in the images folder, its
        row still trashed (the next Undo, or start-up, takes it as its picture: ``back_in_images``), and a failed
        database write is raised as ``UndoNotSaved`` naming it: "nothing else was changed" would be untrue."""
        try:
            # Its missing flag as it comes back: set when its file is gone, cleared when one missing before its
            # delete has its file back in the images folder.
            self._store.set_trashed_many(((b.record.id, b.record.path, b.record.missing) for b in back), False)
        except BaseException as exc:
            left: list[ImageRecord] = []
            for b in back:
                if b.in_trash:
                    try:
                        os.replace(self._model.path_of(b.record), self._data.trash / b.trash_name)
                    except OSError:
                        left.append(b.record)
            back.clear()
            if left and isinstance(exc, sqlite3.Error):
                raise UndoNotSaved(exc, left, self._data, self._store.path) from exc
            raise
        self._model.insert_records([b.record for b in back])

