"""The gallery's trash: images deleted to the trash folder as one undoable deletion each, the last one brought
back (Undo), the trash listed on a thread (whether it holds anything, what Empty trash would delete) and emptied
for good on another; and the rules that refuse an action meanwhile (while Empty trash deletes, while the old trash
of another drive is gathered). A collaborator of ``GalleryModel``, whose rows, signals and ``has_trash`` and
``emptying`` it changes."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NamedTuple

from PySide6.QtCore import QObject

from app.background import Lookup, Lookups, to_qt_thread
from app.data_dir import DataDir, DataDirMoved
from app.engine_errors import EngineError
from app.gallery_errors import DeleteCutShort, DeleteNotSaved, EmptyingNotStarted, UndoCutShort
from app.image_files import move_to_trash, restore_from_trash
from app.reconcile import FolderImport, finish_interrupted_moves, list_folders
from app.store import ImageRecord, Store
from app.trash_listing import TrashEmptied, TrashListing, delete_listed, list_trash
from app.trash_names import clear_trash_name, in_trash_already
from app.trash_notices import (
    came_back_without_file,
    not_listed,
    refused_while_emptying,
    refused_while_gathering,
    undo_while_emptying,
    unreadable_because,
)

if TYPE_CHECKING:
    from app.gallery_model import GalleryModel

log = logging.getLogger(__name__)


class _Back(NamedTuple):
    """An image whose file Undo moved back from the trash, before its row says so."""

    record: ImageRecord  # as it comes back: under the name it got (another if a new file took its own), missing
    trash_name: str  # its name in the trash
    in_trash: bool  # whether its file was there (else nothing moved)
    # Its file was no longer in the trash (removed by hand, or by another program): the entry comes back all the
    # same, flagged missing as start-up flags an entry whose file is gone (its settings can still be reused).
    lost: bool


@dataclass(eq=False)
class _Emptying:
    """Empty trash deleting the files of its listing on its thread (``GalleryTrash.empty_trash``): ``total``
    files to delete, ``deleted`` so far as last told; ``stop`` set when the app closes; ``emptied``, what the
    thread did, counted as it goes (read once it ended: what it reached also when an error stopped it)."""

    total: int
    stop: threading.Event
    deleted: int = 0
    emptied: TrashEmptied = field(default_factory=TrashEmptied)


class _Look(NamedTuple):
    """A listing of the trash under way (``GalleryTrash._look_at_trash``): the trash version it began at, and
    what Empty trash asked for is told of it when it ends (None: only ``has_trash`` waits for it)."""

    version: int
    then: Callable[[TrashListing], object] | None


class GalleryTrash(QObject):
    """Delete, Undo delete and Empty trash of a ``GalleryModel`` (its parent), and the state they share: the undo
    list, the old trash being gathered, the listing and the deletion under way on their threads. A QObject on the
    Qt thread: the ends of those threads, and the old trash gathered, come to its slots through the event loop."""

    def __init__(self, model: GalleryModel, store: Store, data: DataDir) -> None:
        """Reads the undo list from ``store`` and looks at the trash (``has_trash``, Undo's count)."""
        super().__init__(model)
        self._model = model
        self._store = store
        self._data = data
        self._undo = self._undo_batches()
        # The old trash of another drive is gathered while the window is up (``wait_for_gather``): Undo and Empty
        # trash wait for it, as they would act on a trash half there.
        self._gather: FolderImport | None = None
        # The trash folder is listed on a thread (``_look_at_trash``): ``_version`` counts the changes to the
        # trash (a delete, an undo, Empty trash, the old trash gathered), so that a listing made before one is
        # not used; ``_look``: the listing under way (the latest asked for), None when none is.
        self._version = 0
        self._look: _Look | None = None
        # Why the trash could not be listed, as logged this session (``_log_not_listed``): it is listed again after
        # every undo and Empty trash, and a folder that stays unreadable logged its whole traceback each time.
        self._not_listed_logged: set[str] = set()
        self._stopped = False
        self._lookups = Lookups("Gallery", self)
        self._lookups.ended.connect(self._on_listed)
        # Empty trash's deletion under way (``empty_trash``), on a thread of its own (``_deleting``).
        self._emptying: _Emptying | None = None
        self._deleting = Lookups("Gallery", self)
        self._deleting.ended.connect(self._on_emptied)
        self._changed()

    def clear_name(self, rel_path: str) -> None:
        """A file in the trash under ``rel_path`` renamed out of the way of an image added under that name, its
        owners following it, on the undo list too (``clear_trash_name``)."""
        clear_trash_name(self._store, self._data, rel_path, self._undo)

    def _undo_batches(self) -> list[list[ImageRecord]]:
        """Deletions stay undoable across restarts: the trash is in the database, the latest deletion last. One
        entry per delete action, holding every image it moved whose file is in the trash: one Undo brings back
        what one Delete removed."""
        trash = self._data.trash
        batches = ([r for r in b if (trash / r.path).is_file()] for b in self._store.trash_batches())
        return [batch for batch in batches if batch]

    def wait_for_gather(self, folder_import: FolderImport) -> None:
        """Undo and Empty trash wait for ``folder_import`` to gather the old trash, if it has one to (they are
        greyed, and refused with a word if asked for meanwhile); deleting goes on (the gathering never replaces a
        file in the trash). Then the undo list is read again, its files now in the trash."""
        if not folder_import.gathering:
            return
        self._gather = folder_import
        folder_import.trash_gathered.connect(self._trash_gathered)
        self._changed()

    @property
    def _gathering(self) -> bool:
        """Whether the old trash is still being gathered (``wait_for_gather``)."""
        return self._gather is not None and self._gather.gathering

    def _trash_gathered(self, changed: bool, back: list[str]) -> None:
        self._undo = self._undo_batches()
        if changed:
            self._model.files_back(back)
        self._changed()

    @property
    def undo_count(self) -> int:
        """How many deletions (delete actions) Undo can bring back now (none while the old trash is gathered, nor
        while Empty trash deletes)."""
        return 0 if self._gathering or self._emptying is not None else len(self._undo)

    def _refused_while_emptying(self, what: str) -> bool:
        """Whether ``what`` (Delete, Empty trash) is refused while Empty trash deletes files, said if so: a delete
        moves files into the folder being emptied, under names the deletion may be about to reach (the picture of
        an image just deleted would be deleted for good, not undoable). Refused, not queued: run later, it would act
        on a selection the user has since left, images vanishing unasked. (Undo has nothing to bring back then:
        ``undo_while_emptying``.)"""
        if (emptying := self._emptying) is None:
            return False
        self._model.notice.emit(refused_while_emptying(what, emptying.deleted, emptying.total))
        return True

    def _refused_while_gathering(self, what: str) -> bool:
        """Whether ``what`` (Undo delete, Empty trash) must wait for the old trash, said if so."""
        if self._gathering:
            self._model.notice.emit(refused_while_gathering(what, self._data))
        return self._gathering

    def _changed(self) -> None:
        """Told of a change to the trash (a delete, an undo, Empty trash, the old trash gathered): Undo's count
        said (``trash_changed``), and ``has_trash`` set again, from a listing of the trash when Undo has nothing."""
        self._version += 1
        self._model.trash_changed.emit(self.undo_count)
        if self._emptying is not None:  # greyed until it ended, which looks at the trash again (``_on_emptied``)
            self._model.has_trash = False
            if self._look is not None:  # one under way is out of date: what Empty trash asked for waits
                self._look = _Look(self._version, self._look.then) if self._look.then is not None else None
            return
        asked = self._look is not None and self._look.then is not None  # by Empty trash
        if self._gathering or (self._undo and not asked):
            self._look = None  # a listing for ``has_trash`` alone tells nothing more now
            self._model.has_trash = not self._gathering
        elif not self._undo:  # the folder is looked at only when Undo has nothing, on a thread: it may hold
            self._look_at_trash(None)  # tens of thousands of files
        # else Empty trash's listing under way is listed again as it ends (``_on_listed``)

    def delete(self, rows: list[int]) -> bool:
        """Moves files to the trash folder as one deletion: ``undo_delete`` brings all of them back. Stops at
        the first OSError/sqlite3.Error met: that image and the ones after it stay as they were (file and row).
        Raised as it is when nothing was moved yet, else as ``DeleteCutShort`` saying how many were (so the
        message can say what did change: those are in the trash, undoable, not "nothing"). Returns False when
        refused, said (while Empty trash deletes: ``_refused_while_emptying``).

        The files move first, then every moved image's row says so in one commit (one per image took 4.4 s for
        500 images): a crash before it leaves files in the trash whose rows do not say so, which start-up moves
        back (``app.reconcile``), as it did for one image."""
        if self._refused_while_emptying("Delete"):  # deleting goes on while the old trash is gathered
            return False
        todo = sorted(set(rows), reverse=True)
        batch: list[ImageRecord] = []
        moved: list[int] = []
        self._undo.append(batch)  # on the stack from the start, so that clear_trash_name sees every trashed image
        try:
            when = self._store.next_trash_time()  # the whole action's: grouped again after a restart
            try:
                for row in todo:
                    record = self._model.record(row)
                    if not in_trash_already(self._store, self._data, record):
                        self.clear_name(record.path)
                        move_to_trash(self._data, record.path)
                    moved.append(row)
            finally:
                if moved:
                    self._trash_moved([self._model.record(row) for row in moved], when)
                    batch.extend(self._model.record(row) for row in moved)
                    self._model.remove_rows_at(moved)
        except (OSError, sqlite3.Error) as exc:
            if batch:
                raise DeleteCutShort(len(batch), len(todo) - len(batch), exc) from exc
            raise
        finally:
            if not batch:
                self._undo.pop()
            self._changed()
        return True

    def _trash_moved(self, records: list[ImageRecord], when: float) -> None:
        """Marks the rows of files just moved to the trash as trashed, in one commit; when that fails the files
        go back where the rows point, every one tried. One that cannot go back stays in the trash, its row not
        trashed (start-up moves it back), and a failed database write is raised as ``DeleteNotSaved`` naming it."""
        try:
            self._store.set_trashed_many(((r.id, None, None) for r in records), True, when=when)
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

    def undo_delete(self) -> bool:
        """Brings back every image of the last deletion. Stops at the first OSError/sqlite3.Error met: that
        image and the ones not yet tried stay in the trash as the last deletion (the next Undo tries them
        again). Raised as it is when none came back yet, else as ``UndoCutShort`` saying how many did.

        The files move back first, then their rows say so in one commit (one per image, then a reload of every
        row, took 2.1 s for 500 images of 30,000): a crash before it leaves files back whose rows still say
        "trashed", which start-up finishes (``app.reconcile``), as it did for one image. The rows that came back
        are put in the grid where they belong; the others stay as they were (scroll position, selection)."""
        if self._emptying is not None:
            self._model.notice.emit(undo_while_emptying(self._emptying.deleted, self._emptying.total))
            return False
        if self._refused_while_gathering("Undo delete") or not self._undo:
            return False
        batch = self._undo[-1]
        back: list[_Back] = []
        try:
            try:
                for record in reversed(batch):
                    back.append(self._restore(record))
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
            self._changed()
        if lost := [b.record for b in back if b.lost]:
            self._model.notice.emit(came_back_without_file(lost, self._data))
        return True

    def _restore(self, record: ImageRecord) -> _Back:
        """One image's file back from the trash; its row follows in ``_untrash``. When another file has taken
        its name, it is renamed in the trash first and its row says so in a commit of its own (rare): the file
        then comes back under the path its row has. Given its new name only by the later commit, a crash
        before it left the row to be taken out of the trash at start-up at its old path, another's picture,
        and its own file imported as a second entry."""
        in_trash = (self._data.trash / record.path).exists()
        if in_trash and self._model.path_of(record).exists():  # ``record`` is on the undo stack: its path follows
            self.clear_name(record.path)
        # With no file in the trash, a name no other row holds (a missing image's) if a new file has its own.
        restored = restore_from_trash(self._data, record.path, taken=self._store.has_path)
        lost = not in_trash and not record.missing  # one missing before its delete had no file to lose
        return _Back(replace(record, path=restored, missing=record.missing or lost), record.path, in_trash, lost)

    def _untrash(self, back: list[_Back]) -> None:
        """The rows of the files ``_restore`` brought back, in one commit, then in the grid. When the commit fails
        the files go back into the trash, every one tried."""
        try:
            self._store.set_trashed_many(((b.record.id, b.record.path, b.lost or None) for b in back), False)
        except BaseException:
            for b in back:
                if b.in_trash:
                    try:
                        os.replace(self._model.path_of(b.record), self._data.trash / b.trash_name)
                    except OSError:
                        pass  # its row still says "trashed": start-up finishes the undo (``app.reconcile``)
            back.clear()
            raise
        self._model.insert_records([b.record for b in back])

    def stop(self) -> None:
        """Closing: a listing of the trash under way not used (the database closes next), and Empty trash's
        deletion stopped before its next file (the rows were forgotten first: the files left stay in the trash,
        without a row, for the next Empty trash); none starts after."""
        self._stopped = True
        self._look = None
        if self._emptying is not None:
            self._emptying.stop.set()

    @property
    def listing_trash(self) -> bool:
        """Whether the trash is being listed, or emptied (``has_trash`` is set again, and Empty trash told, when the
        listing ends, which follows the deletion)."""
        return self._look is not None or self._emptying is not None

    def list_trash_to_empty(self, then: Callable[[TrashListing], object]) -> None:
        """Empty trash asked for: the trash is listed on a thread (Empty trash greyed meanwhile), then ``then`` is
        given what it holds (``TrashListing.size``: what the confirmation counts), for ``empty_trash``. A delete
        or an undo meanwhile has it listed again; asked for while Empty trash is deleting, it is listed once that
        ended (listed meanwhile, it would count files about to go)."""
        if not self._refused_while_gathering("Empty trash"):
            self._look_at_trash(then)

    def _look_at_trash(self, then: Callable[[TrashListing], object] | None) -> None:
        """The trash listed on a thread (``list_trash``), for ``has_trash`` and, with ``then``, for Empty trash (as
        for an Empty trash already waiting for a listing this one replaces). While Empty trash deletes, only
        noted: ``_on_emptied`` lists it then."""
        if self._stopped:
            return
        look = _Look(self._version, then or (self._look.then if self._look is not None else None))
        self._look = look
        if look.then is not None:
            self._model.has_trash = False  # greyed until the listing ends: a second click would list it twice
        if self._emptying is None:
            self._start_listing(look, None)

    def _start_listing(self, look: _Look, listing: TrashListing | None) -> None:
        # On a daemon thread (``Lookups``): a quit does not wait for a folder it lists (it writes nothing).
        self._lookups.start("listing the trash", lambda: (look, self._list(listing)))

    def _list(self, listing: TrashListing | None) -> TrashListing | Exception:
        """On the listing's thread: the trash listed (``listing`` None), else the pictures of the images folder and
        the trash for moving ``listing.shown`` back; handed to the Qt thread (``_on_listed``), also when it failed
        (why, without its traceback, whose frame holds this gallery). ``DataDirMoved`` when the data folder moved
        away before or during the listing: nothing was found at its old path, the trash's files went with it; a
        listing that failed is checked for it too (a folder of the trash gone with it while it was walked: it was
        said as a trash that could not be read, to try again)."""
        try:
            if listing is None:
                listing = list_trash(self._data.trash)
            else:
                listing.pictures = list_folders(self._data)
            self._data.check_in_place()
        except DataDirMoved as exc:  # said as a delete or an undo says it, which no retry helps
            return exc.with_traceback(None)
        except Exception as exc:  # the trash is left as the gallery has it; what asked for it is told
            if (moved := self._moved_away()) is not None:
                return moved
            if not isinstance(exc, OSError):  # a fault: its traceback, here only (the Qt thread gets none)
                log.exception("listing the trash folder %s failed", self._data.trash)
            return exc.with_traceback(None)
        return listing

    def _moved_away(self) -> DataDirMoved | None:
        """On the listing's thread: ``check_in_place``'s ``DataDirMoved``, without its traceback nor the error being
        handled meanwhile (their frames hold this gallery); None while the data folder is in place."""
        try:
            self._data.check_in_place()
        except DataDirMoved as exc:
            exc.__context__ = None
            return exc.with_traceback(None)
        return None

    def _on_listed(self, lookup: Lookup) -> None:
        """On the Qt thread: a listing, used only while it is the latest asked for and the trash has not changed
        since it began (else the trash is listed again). Which of its files are the pictures of entries in the
        gallery is asked of the database here (its connection is this thread's); Empty trash then has the
        folders listed for moving them back before it is told (``list_trash_to_empty``'s ``then``). A listing that
        failed (the data folder moved away too) leaves Empty trash enabled, and says why to Empty trash."""
        look: _Look
        listing: TrashListing | Exception
        look, listing = lookup.result  # ``_list`` raises nothing: a failed listing is why it failed
        if look is not self._look:
            return
        if isinstance(listing, Exception):
            self._look = None
            self._log_not_listed(listing)
            self._model.has_trash = not self._gathering  # unknown (no file at the old path of a moved data folder)
            if look.then is not None:
                self._model.notice.emit(not_listed(listing, self._data.trash))
            return
        if look.version != self._version:
            self._look_at_trash(look.then)
            return
        if listing.files and listing.pictures is None:
            # Such a file was left there by a delete whose commit failed and that could not move it back
            # (``DeleteNotSaved``): its row is not trashed, Undo cannot bring it back, and deleting it lost a
            # picture the user was told would come back.
            rows = self._store.all_paths()
            listing.shown = frozenset(rel for rel in listing.files if rel in rows and not rows[rel][2])
            if look.then is not None and listing.shown:
                self._start_listing(look, listing)
                return
        self._look = None
        self._model.has_trash = not self._gathering and (bool(self._undo) or bool(listing.deleted))
        if look.then is not None:
            listing.version = look.version
            look.then(listing)

    def _log_not_listed(self, why: Exception) -> None:
        """Logs a listing of the trash that failed with an ``OSError`` (a fault logged its traceback on its thread;
        a data folder moved away is said where it matters) as one line naming the trash folder and why, once per
        reason this session: the folder is listed again after every undo and Empty trash."""
        if isinstance(why, DataDirMoved) or not isinstance(why, OSError):
            return
        because = unreadable_because(why, self._data.trash)
        if because not in self._not_listed_logged:
            self._not_listed_logged.add(because)
            log.warning("the trash folder %s cannot be read (%s)", self._data.trash, because)

    def empty_trash(self, listing: TrashListing) -> bool:
        """Deletes the trash as ``listing`` (``list_trash_to_empty``) found it for good; returns whether it began.
        The rows first, here: a crash or a quit half-way leaves files without rows (still in the trash, emptied
        next time), never rows whose undo finds no file. Then the files, on a thread of their own (``emptying``;
        tens of thousands froze the window), told as they go (``emptying_progress``) and when done
        (``trash_emptied``). A listing older than a change to the trash since (a delete, an undo) deletes nothing,
        and says so; so does one asked for while the trash is being emptied already.

        Only the listing's ``deleted`` files are deleted: the picture of an entry in the gallery is moved back
        first, as start-up does (``finish_interrupted_moves``), or left in the trash when it still cannot be.

        A database error raises before anything changed. A file that cannot be deleted (open in another program
        on Windows, read-only) does not stop the others: they are all tried, then ``TrashEmptied.failures``
        names the ones left. ``DataDirMoved`` before anything changed when the data folder moved away: the
        database open in the moved folder would forget its trashed rows while their files, in the moved trash,
        stayed. A thread that cannot start raises ``EmptyingNotStarted`` after the rows were forgotten: their
        files stay in the trash, for the next Empty trash."""
        if self._refused_while_emptying("Empty trash") or self._refused_while_gathering("Empty trash"):
            return False
        if listing.version != self._version:
            self._model.notice.emit(EngineError("notice", "Nothing was deleted: the trash changed while Empty trash "
                                                "asked (an image was deleted or brought back meanwhile).",
                                                "Empty the trash again."))  # fmt: skip
            return False
        self._data.check_in_place()
        if listing.shown:
            self._put_back(listing)
        self._store.forget_trashed()  # their files, now rowless, stay among ``deleted``
        self._undo.clear()
        emptying = _Emptying(listing.size[0], threading.Event())  # counted as the confirmation counted them

        def told(deleted: int) -> None:  # on the deletion's thread
            to_qt_thread(self._deleted_so_far, deleted)

        # On a daemon thread: a quit does not wait for it (``stop`` ends it early; the rows are forgotten already).
        # ``_emptying`` is set only once it started (set before, a failed start left Delete, Undo and Empty trash
        # greyed for the session); its progress and its end come through the event loop, so after that.
        try:
            self._deleting.start("emptying the trash",
                                 lambda: delete_listed(listing, emptying.stop, told, emptying.emptied))  # fmt: skip
        except RuntimeError as exc:  # no thread could start (the system's limit): the rows are forgotten, their
            self._changed()  # files wait in the trash for the next Empty trash, which this lists
            raise EmptyingNotStarted(exc) from exc
        self._emptying = emptying
        self._model.emptying = True
        self._changed()  # Undo and Empty trash greyed; a listing under way is out of date
        self._model.emptying_progress.emit(0, emptying.total)
        return True

    def _deleted_so_far(self, deleted: int) -> None:
        """On the Qt thread: how far Empty trash's deletion got, told on (``emptying_progress``)."""
        if (emptying := self._emptying) is not None:
            emptying.deleted = deleted
            self._model.emptying_progress.emit(deleted, emptying.total)

    def _on_emptied(self, lookup: Lookup) -> None:
        """On the Qt thread: Empty trash's deletion ended. Delete, Undo and Empty trash are enabled again, the
        trash is looked at again (files left keep Empty trash enabled: the next one deletes them), and what was
        deleted is told (``trash_emptied``); nothing of it once the app is closing.

        Files found gone are checked for a data folder moved away meanwhile (``TrashEmptied.moved``): deleting
        at its old path found every file gone, and the end said "emptied: 0 files deleted" of files all still in
        the moved trash."""
        if self._stopped or (emptying := self._emptying) is None:
            return
        emptied = emptying.emptied  # as far as the thread got, also when an error stopped it
        # ``delete_listed`` lets no file's OSError out: an error is a fault, logged (``Lookups``) and said with the
        # counts the thread reached (said as a failure of the trash folder, it was "0 files were deleted").
        emptied.error = lookup.error
        if emptied.gone:
            try:
                self._data.check_in_place()
            except DataDirMoved as exc:
                emptied.moved = exc
        self._emptying = None
        self._model.emptying = False
        # As the listing this starts says again (which tells a data folder moved away: not an empty trash).
        self._model.has_trash = bool(emptied.failures) or emptied.error is not None or emptied.moved is not None
        self._changed()
        self._model.trash_emptied.emit(emptied)

    def _put_back(self, listing: TrashListing) -> None:
        """The files in the trash of the entries ``listing.shown`` in the gallery moved back to the images folder,
        with start-up's repairs on the folders as ``listing.pictures`` lists them; one that still cannot move is
        logged and stays (``empty_trash`` leaves it)."""
        assert listing.pictures is not None
        try:
            finish_interrupted_moves(self._store, self._data, self._store.all_paths(), dict(listing.pictures.images),
                                     in_trash_folder=listing.pictures.trash)  # fmt: skip
        except OSError:
            log.exception("a picture in the trash whose entry is in the gallery could not be moved back; it is kept")
        # An undo a failed commit left half-done is finished by the repair too: its rows come back.
        self._model.files_back(list(listing.shown))
