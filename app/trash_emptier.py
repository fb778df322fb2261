"""Empty trash of the gallery: the trash folder listed on a thread (whether it holds anything: ``has_trash``;
what Empty trash would delete, for its confirmation), then its files deleted for good on another, told as they go;
and the rule that refuses Delete, Undo and another Empty trash meanwhile. ``GalleryTrash``'s, whose undo list it
forgets and whose changes it is told of; the threads' work is ``app.trash_listing``'s."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, NamedTuple

from PySide6.QtCore import QObject

from app.background import Lookup, Lookups, to_qt_thread
from app.data_dir import DataDir, DataDirMoved
from app.engine_errors import EngineError
from app.gallery_errors import EmptyingNotStarted
from app.image_files import absolute
from app.reconcile import finish_interrupted_moves, import_files, list_folders
from app.store import ImageRecord, Store
from app.trash_listing import TrashEmptied, TrashListing, delete_listed, list_trash
from app.trash_names import not_its_picture
from app.trash_notices import not_listed, refused_while_emptying, undo_while_emptying, unreadable_because
from gpu.paths import file_times

if TYPE_CHECKING:
    from app.gallery_model import GalleryModel
    from app.gallery_trash import GalleryTrash

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Emptying:
    """Empty trash deleting the files of its listing on its thread (``TrashEmptier.empty_trash``): ``total``
    files to delete, ``deleted`` so far as last told; ``stop`` set when the app closes; ``emptied``, what the
    thread did, counted as it goes (read once it ended: what it reached also when an error stopped it)."""

    total: int
    stop: threading.Event
    deleted: int = 0
    emptied: TrashEmptied = field(default_factory=TrashEmptied)


# An image in the trash with its row's stored (file size, SHA-256), for a thread without the database.
_Stored = tuple[ImageRecord, tuple[int | None, str | None]]
_Times = tuple[int, int, int]  # a file's size, modification and change times (``gpu.paths.file_times``)


class _Look(NamedTuple):
    """A listing of the trash under way (``TrashEmptier._look_at_trash``): the trash version it began at, and
    what Empty trash asked for is told of it when it ends (None: only ``has_trash`` waits for it)."""

    version: int
    then: Callable[[TrashListing], object] | None


class TrashEmptier(QObject):
    """Listing and emptying the trash of a ``GalleryTrash`` (its parent), on threads of their own, for its
    ``GalleryModel`` (whose ``has_trash``, ``emptying`` and signals it sets). A QObject on the Qt thread: the ends
    of those threads come to its slots through the event loop."""

    def __init__(self, trash: GalleryTrash, store: Store, data: DataDir) -> None:
        """Nothing listed yet: ``GalleryTrash`` tells it of the trash as it is (``after_change``)."""
        super().__init__(trash)
        self._store = store
        self._data = data
        # The trash folder is listed on a thread (``_look_at_trash``): ``_look`` is the listing under way (the
        # latest asked for), None when none is; one made before a change to the trash is not used.
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
        # The pictures a listing judged (``TrashListing.judged``) that changed while Empty trash asked, judged again
        # on a thread of their own after Yes (``_judge_again``): the listing being judged again, with its thread's
        # lookup (None once another Empty trash is asked for: that one is answered), and the last one judged again
        # (judged once more, not again and again while a picture keeps changing).
        self._judging: tuple[Lookup, TrashListing] | None = None
        self._judged_again: TrashListing | None = None
        self._judgements = Lookups("Gallery", self)
        self._judgements.ended.connect(self._on_judged_again)

    @property
    def _trash(self) -> GalleryTrash:
        """Its ``GalleryTrash``, its Qt parent (as ``GalleryTrash._model``: no reference cycle)."""
        return self.parent()  # type: ignore[return-value]

    @property
    def _model(self) -> GalleryModel:
        """The gallery model, its parent's parent."""
        return self.parent().parent()  # type: ignore[union-attr,return-value]

    @property
    def deleting(self) -> bool:
        """Whether Empty trash is deleting files on its thread (Undo has nothing to bring back meanwhile)."""
        return self._emptying is not None

    def refused_undo(self) -> bool:
        """Whether Undo is refused as Empty trash deletes the images it would bring back, said if so
        (``undo_while_emptying``)."""
        if (emptying := self._emptying) is None:
            return False
        self._model.notice.emit(undo_while_emptying(emptying.deleted, emptying.total))
        return True

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
        listing ends, which follows the deletion), or its pictures changed since the listing are judged again
        (``_judge_again``)."""
        return self._look is not None or self._emptying is not None or self._judging is not None

    def refused_while_emptying(self, what: str) -> bool:
        """Whether ``what`` (Delete, Empty trash) is refused while Empty trash deletes files, said if so: a delete
        moves files into the folder being emptied, under names the deletion may be about to reach (the picture of
        an image just deleted would be deleted for good, not undoable). Refused, not queued: run later, it would act
        on a selection the user has since left, images vanishing unasked. (Undo has nothing to bring back then:
        ``undo_while_emptying``.)"""
        if (emptying := self._emptying) is None:
            return False
        self._model.notice.emit(refused_while_emptying(what, emptying.deleted, emptying.total))
        return True

    def after_change(self) -> None:
        """After a change to the trash (``GalleryTrash.changed``): ``has_trash`` set again, from a listing of the
        trash when Undo has nothing; greyed while Empty trash deletes."""
        if self._emptying is not None:  # greyed until it ended, which looks at the trash again (``_on_emptied``)
            self._model.has_trash = False
            if self._look is not None:  # one under way is out of date: what Empty trash asked for waits
                self._look = _Look(self._trash.version, self._look.then) if self._look.then is not None else None
            return
        asked = self._look is not None and self._look.then is not None  # by Empty trash
        if self._trash.gathering or (self._trash.has_undo and not asked):
            self._look = None  # a listing for ``has_trash`` alone tells nothing more now
            self._model.has_trash = not self._trash.gathering
        elif not self._trash.has_undo:  # the folder is looked at only when Undo has nothing, on a thread: it may hold
            self._look_at_trash(None)  # tens of thousands of files
        # else Empty trash's listing under way is listed again as it ends (``_on_listed``)

    def list_trash_to_empty(self, then: Callable[[TrashListing], object]) -> None:
        """Empty trash asked for: the trash is listed on a thread (Empty trash greyed meanwhile), then ``then`` is
        given what it holds (``TrashListing.size``: what the confirmation counts), for ``empty_trash``. A delete
        or an undo meanwhile has it listed again; asked for while Empty trash is deleting, it is listed once that
        ended (listed meanwhile, it would count files about to go)."""
        if not self._trash.refused_while_gathering("Empty trash"):
            # One said Yes to before (enabled again by a delete or an undo while its pictures were judged again) is
            # dropped unsaid: going on once judged, it said "Nothing was deleted … Empty the trash again." after this
            # one had emptied the trash as asked
            self._judging = None
            self._look_at_trash(then)

    def _look_at_trash(self, then: Callable[[TrashListing], object] | None) -> None:
        """The trash listed on a thread (``list_trash``), for ``has_trash`` and, with ``then``, for Empty trash (as
        for an Empty trash already waiting for a listing this one replaces). While Empty trash deletes, only
        noted: ``_on_emptied`` lists it then."""
        if self._stopped:
            return
        look = _Look(self._trash.version, then or (self._look.then if self._look is not None else None))
        self._look = look
        if look.then is not None:
            self._model.has_trash = False  # greyed until the listing ends: a second click would list it twice
        if self._emptying is None:
            self._start_listing(look, None)

    def _start_listing(self, look: _Look, listing: TrashListing | None, trashed: Sequence[str] = (),
                       fileless: Sequence[_Stored] = ()) -> None:  # fmt: skip
        # On a daemon thread (``Lookups``): a quit does not wait for a folder it lists (it writes nothing).
        self._lookups.start("listing the trash", lambda: (look, self._list(listing, trashed, fileless)))

    def _list(self, listing: TrashListing | None, trashed: Sequence[str], fileless: Sequence[_Stored]
              ) -> TrashListing | Exception:  # fmt: skip
        """On the listing's thread: the trash listed (``listing`` None), else, for Empty trash, which of the names
        ``trashed`` (of the images in the trash) a file in the images folder holds (``TrashListing.taken``), which
        of those is the own picture of an image of ``fileless`` (``TrashListing.judged``: hashed here, not on the
        window's thread, for the question and the repair after it) and, when it has files to move back or such
        names, the pictures of the images folder and the trash (``TrashListing.pictures``); handed to the Qt thread
        (``_on_listed``), also when it failed (why, without its traceback, whose frame holds this gallery).
        ``DataDirMoved`` when the data folder moved away before or during the listing: nothing was found at its old
        path, the trash's files went with it; a listing that failed is checked for it too (a folder of the trash
        gone with it while it was walked: it was said as a trash that could not be read, to try again)."""
        try:
            if listing is None:
                listing = list_trash(self._data.trash)
            else:
                listing.taken = frozenset(rel for rel in trashed if absolute(self._data, rel).is_file())
                listing.judged = self._judge(listing.taken, fileless)
                if listing.shown or listing.taken:
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

    def _judge(self, taken: frozenset[str], fileless: Sequence[_Stored]) -> dict[str, tuple[_Times | None, bool]]:
        """On the listing's thread: ``TrashListing.judged`` of the names of ``taken`` that images of ``fileless``
        have: whether the file in the images folder under each is that image's own picture (not known to be
        another: each hashed), with its times as they were before and after (None where they moved meanwhile)."""
        judged: dict[str, tuple[_Times | None, bool]] = {}
        for record, stored in fileless:
            if record.path in taken:
                path = absolute(self._data, record.path)
                before = file_times(path)
                own = not not_its_picture(record, stored, path)
                judged[record.path] = (before if file_times(path) == before else None, own)
        return judged

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
        gallery, and which images are in the trash, is asked of the database here (its connection is this
        thread's); Empty trash then has the images folder looked at for their names, and the folders listed for
        moving pictures back, before it is told (``list_trash_to_empty``'s ``then``). A listing that failed (the
        data folder moved away too) leaves Empty trash enabled, and says why to Empty trash."""
        look: _Look
        listing: TrashListing | Exception
        look, listing = lookup.result  # ``_list`` raises nothing: a failed listing is why it failed
        if look is not self._look:
            return
        if isinstance(listing, Exception):
            self._look = None
            self._log_not_listed(listing)
            # Unknown (no file at the old path of a moved data folder).
            self._model.has_trash = not self._trash.gathering
            if look.then is not None:
                self._model.notice.emit(not_listed(listing, self._data.trash))
            return
        if look.version != self._trash.version:
            self._look_at_trash(look.then)
            return
        if listing.taken is None and (listing.files or look.then is not None):  # the trash listed, not looked at
            # Such a file was left there by a delete whose commit failed and that could not move it back
            # (``DeleteNotSaved``): its row is not trashed, Undo cannot bring it back, and deleting it lost a
            # picture the user was told would come back.
            rows = self._store.all_paths()
            listing.shown = frozenset(rel for rel in listing.files if rel in rows and not rows[rel][2])
            trashed = [rel for rel, (_id, _missing, in_trash) in rows.items() if in_trash]
            if look.then is not None and (listing.shown or trashed):
                self._start_listing(look, listing, trashed, self._stored(self._trash.without_file(listing.files)))
                return
        self._look = None
        self._model.has_trash = not self._trash.gathering and (self._trash.has_undo or bool(listing.deleted))
        if look.then is not None:
            listing.version = look.version
            listing.fileless = len(self._trash.without_file(listing.files))
            look.then(listing)

    def _stored(self, records: list[ImageRecord]) -> list[_Stored]:
        """``records`` (images in the trash) each with its row's stored fingerprint, read here, on the database's
        thread, for the listing's thread to tell their own pictures from others (``not_its_picture``); copies, so
        that settings parsed there are not cached into the undo list's records."""
        stored = self._store.fingerprints(record.id for record in records)
        return [(replace(record), stored.get(record.id, (None, None))) for record in records]

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
        first, as start-up does (``finish_interrupted_moves``), or left in the trash when it still cannot be. So is
        a file in the images folder under the name of an image in the trash (``TrashListing.taken``) taken as
        start-up takes it: the image's own picture, moved back by hand, keeps the image in the gallery; another
        (copied in by hand) is imported and shown once the images in the trash are forgotten (it waited for the
        next start).

        A database error raises before anything changed. A file that cannot be deleted (open in another program
        on Windows, read-only) does not stop the others: they are all tried, then ``TrashEmptied.failures``
        names the ones left. ``DataDirMoved`` before anything changed when the data folder moved away: the
        database open in the moved folder would forget its trashed rows while their files, in the moved trash,
        stayed. A thread that cannot start raises ``EmptyingNotStarted`` after the rows were forgotten: their
        files stay in the trash, for the next Empty trash."""
        if self.refused_while_emptying("Empty trash") or self._trash.refused_while_gathering("Empty trash"):
            return False
        if listing.version != self._trash.version:
            self._model.notice.emit(EngineError("notice", "Nothing was deleted: the trash changed while Empty trash "
                                                "asked (an image was deleted or brought back meanwhile).",
                                                "Empty the trash again."))  # fmt: skip
            return False
        if listing is not self._judged_again and (changed := self._changed_since_judged(listing)):
            if self._judge_again(listing, changed):
                return True
        self._data.check_in_place()
        kept = self._put_back(listing) if listing.shown or listing.taken else frozenset()
        self._store.forget_trashed()  # their files, now rowless, stay among ``deleted``
        self._trash.forget_undo()
        # The names of the images forgotten that a picture holds are free now; those kept hold theirs.
        imported = self._import_taken(listing.taken - kept) if listing.taken else 0
        # Counted as the confirmation counted them: the files, and the images without one, whose rows went here
        # (but those that stay in the gallery, their picture back in the images folder).
        emptied = TrashEmptied(fileless=listing.fileless - len(kept), kept=len(kept), imported=imported)
        emptying = _Emptying(listing.size[0], threading.Event(), emptied=emptied)

        def told(deleted: int) -> None:  # on the deletion's thread
            to_qt_thread(self._deleted_so_far, deleted)

        # On a daemon thread: a quit does not wait for it (``stop`` ends it early; the rows are forgotten already).
        # ``_emptying`` is set only once it started (set before, a failed start left Delete, Undo and Empty trash
        # greyed for the session); its progress and its end come through the event loop, so after that.
        try:
            self._deleting.start("emptying the trash",
                                 lambda: delete_listed(listing, emptying.stop, told, emptying.emptied))  # fmt: skip
        except RuntimeError as exc:  # no thread could start (the system's limit): the rows are forgotten, their
            self._trash.changed()  # files wait in the trash for the next Empty trash, which this lists
            raise EmptyingNotStarted(exc) from exc
        self._emptying = emptying
        self._model.emptying = True
        self._trash.changed()  # Undo and Empty trash greyed; a listing under way is out of date
        self._model.emptying_progress.emit(0, emptying.total)
        return True

    def _changed_since_judged(self, listing: TrashListing) -> frozenset[str]:
        """The names of ``listing.judged`` whose file changed since it was judged (its times, a stat each): another
        picture put there while Empty trash asked, which the listing's word no longer holds for."""
        return frozenset(listing.judged) - self._unchanged_since_judged(listing)

    def _unchanged_since_judged(self, listing: TrashListing) -> frozenset[str]:
        """The names of ``listing.judged`` whose file is as it was judged (its times, a stat each)."""
        return frozenset(rel for rel, (times, _own) in listing.judged.items()
                         if times is not None and file_times(absolute(self._data, rel)) == times)  # fmt: skip

    def _judge_again(self, listing: TrashListing, changed: frozenset[str]) -> bool:
        """Empty trash said Yes to ``listing``, whose pictures ``changed`` changed since they were judged: they are
        judged again (hashed) on a thread of their own, Empty trash greyed meanwhile (it hashed them on the window's
        thread, in the repair, the window frozen as long as large pictures took), then Empty trash goes on with the
        listing (``judged_again``, ``_on_judged_again``). Returns whether the thread started (if not, Empty trash
        goes on at once, the repair hashing them here, as before)."""
        records = [record for record in self._trash.without_file(listing.files) if record.path in changed]
        stored = self._stored(records)
        try:
            lookup = self._judgements.start("judging again the pictures changed while Empty trash asked",
                                            lambda: self._judge(changed, stored))  # fmt: skip
        except RuntimeError:  # no thread could start (the system's limit)
            log.warning("the pictures changed while Empty trash asked are judged on the window's thread")
            return False
        self._judging, self._judged_again = (lookup, listing), listing
        self._model.has_trash = False  # greyed: a second Empty trash would ask again of the same trash
        return True

    def _on_judged_again(self, lookup: Lookup) -> None:
        """On the Qt thread: the pictures changed while Empty trash asked have been judged again (``_judge_again``):
        what the thread found goes into the listing's ``judged``, and Empty trash goes on with it (``judged_again``,
        which reaches ``empty_trash`` through the actions that say its errors); nothing once the app is closing. A
        thread that failed leaves them as they were: the repair looks at them on the window's thread. One dropped
        (another Empty trash asked for meanwhile) goes on no further."""
        if self._stopped or self._judging is None or self._judging[0] is not lookup:
            return
        _lookup, listing = self._judging
        self._judging = None
        if lookup.error is None:
            listing.judged.update(lookup.result)
        self._model.judged_again.emit(listing)

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
        self._trash.changed()
        self._model.trash_emptied.emit(emptied)

    def _put_back(self, listing: TrashListing) -> frozenset[str]:
        """The files in the trash of the entries ``listing.shown`` in the gallery moved back to the images folder,
        with start-up's repairs on the folders as ``listing.pictures`` lists them (an image in the trash whose own
        picture is back in the images folder stays in the gallery); one that still cannot move is logged and stays
        (``empty_trash`` leaves it). Returns the names of the images in the trash that stay in the gallery."""
        assert listing.pictures is not None
        rows = self._store.all_paths()
        # An image in the trash with its file there goes with it: the repair renamed that file out of the way of a
        # picture in the images folder under its name, and the deletion, which deletes the listed names, found it
        # gone and left it in the trash.
        rows = {rel: row for rel, row in rows.items() if not (row[2] and rel in listing.files)}
        trashed = {row_id for row_id, _missing, in_trash in rows.values() if in_trash}
        try:
            finish_interrupted_moves(self._store, self._data, rows, dict(listing.pictures.images),
                                     in_trash_folder=listing.pictures.trash, others=self._still_judged(listing))
        except OSError:
            log.exception("a picture in the trash whose entry is in the gallery could not be moved back; it is kept")
        # An undo a failed commit left half-done is finished by the repair too: its rows come back.
        self._model.files_back(list(listing.shown | (listing.taken or frozenset())))
        # Their paths as they were: the repair takes a row out of the trash as it is, and renames only those it
        # leaves there (another picture holding the name).
        return frozenset(rel for rel, (row_id, _missing, in_trash) in self._store.all_paths().items()
                         if row_id in trashed and not in_trash)  # fmt: skip

    def _still_judged(self, listing: TrashListing) -> dict[str, bool]:
        """Whether each file of ``listing.judged`` is another picture than its image's own, as the listing's thread
        found by its hash, for those unchanged since (their times, a stat each): the repair hashes none of them
        again on the window's thread. One changed since the question (another picture put there meanwhile) is left
        out: the repair looks at it as it is now."""
        unchanged = self._unchanged_since_judged(listing)
        return {rel: not own for rel, (_times, own) in listing.judged.items() if rel in unchanged}

    def _import_taken(self, names: frozenset[str]) -> int:
        """The files in the images folder under ``names``, those of the images in the trash just forgotten
        (``TrashListing.taken``, less those kept: no row holds them now), imported and shown, as start-up would
        import them; returns how many. One that cannot be is left to the next start (logged): Empty trash goes
        on. (It read every row's path for that, also when there was none.)"""
        new = {rel: str(absolute(self._data, rel)) for rel in names}
        try:
            added = import_files(self._store, new)
            self._model.add_imported(self._store.images_at(added))
        except (OSError, sqlite3.Error):
            log.exception("the pictures under the names of images in the trash could not be imported; the next start "
                          "imports them")  # fmt: skip
            return 0
        return len(added)
