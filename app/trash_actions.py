"""The gallery's trash as the panels use it: images deleted to the trash folder, the last deletion undone, the
trash emptied for good on a thread (``GalleryModel``), and the sentences that say what went wrong: which file, where,
how many moved or deleted before it, and what is left to do."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

from app.data_dir import DataDir, DataDirMoved
from app.engine_errors import EngineError, classify
from app.gallery_errors import DeleteCutShort, DeleteNotSaved, EmptyingNotStarted, UndoCutShort, UndoNotSaved
from app.gallery_model import GalleryModel
from app.gallery_trash import Deleted
from app.store import ImageRecord
from app.trash_listing import FailureKind, TrashEmptied, TrashListing
from app.trash_notices import kept_and_added
from app.wording import counted, hidden_note, were

log = logging.getLogger(__name__)


class TrashActions:
    """Delete, Undo delete and Empty trash of the gallery: each error said once, in words, by ``say`` (a dialog);
    what went well by ``tell`` (the status bar)."""

    def __init__(self, gallery: GalleryModel, data: DataDir, database: Path, say: Callable[[EngineError], None],
                 tell: Callable[[str], None]) -> None:  # fmt: skip
        """``database``: the gallery database's path, named when it refuses a change."""
        self._gallery = gallery
        self._data = data
        self._database = database
        self._say = say
        self._tell = tell

    def delete_images(self, rows: list[int]) -> None:
        """Gallery rows to the trash folder; a file that cannot be moved (open elsewhere, read-only folder, a
        file where the trash's folder goes) is reported with both paths, and it and the rest are kept. Images
        moved before it stay in the trash (undoable), and the message says so."""
        try:
            if (deleted := self._gallery.delete(rows)) is None:  # refused while the trash is emptied, and said
                return
            # Said: the images only vanished from the grid, with Undo delete enabled as the sole sign of where.
            self._tell(f"{_deleted_text(deleted)} (Undo delete brings {'it' if deleted.images == 1 else 'them'} back).")
        except DeleteCutShort as cut:
            log.error("moving images to the trash stopped after %d: %s", cut.moved, cut.cause, exc_info=cut.cause)
            self._say(self._delete_cut_short(cut))
        except DeleteNotSaved as unsaved:  # its own words: files stayed in the trash, "nothing else changed" is untrue
            log.error("moving images to the trash failed: %s", unsaved, exc_info=unsaved.cause)
            self._say(unsaved.error)
        except (OSError, sqlite3.Error) as exc:
            log.exception("moving images to the trash failed")
            self._say(self._trash_error("could not be moved to the trash folder", exc))

    def undo_delete(self) -> None:
        """Brings back every image of the last deletion, said in the status bar; what cannot come back is named,
        with how many did."""
        try:
            if back := self._gallery.undo_delete():
                self._tell(self._undone_text(back))
        except UndoCutShort as cut:
            log.error("restoring images from the trash stopped after %d: %s", cut.restored, cut.cause,
                      exc_info=cut.cause)
            self._say(self._undo_cut_short(cut))
        except UndoNotSaved as unsaved:  # its own words: files stayed in the images folder, not "nothing changed"
            log.error("restoring images from the trash failed: %s", unsaved, exc_info=unsaved.cause)
            self._say(unsaved.error)
        except (OSError, sqlite3.Error) as exc:
            log.exception("restoring an image from the trash failed")
            self._say(self._trash_error("could not be brought back from the trash folder", exc))

    def _undone_text(self, back: list[ImageRecord]) -> str:
        """What an Undo that brought ``back`` says, as a delete says what it moved: the images only appear in the
        grid, or not at all where the search or the "★ only" view hides them (the user, seeing nothing, clicked
        Undo again and brought back an older deletion too)."""
        hiding = [self._gallery.hidden_by(record) for record in back]
        hidden = sum(bool(by) for by in hiding)
        by = " and ".join(dict.fromkeys(what for by in hiding for what in by))
        return f"{counted(len(back), 'image')} brought back from the trash{hidden_note(hidden, len(back), by)}" \
            f"{_without_file_note(sum(record.missing for record in back), len(back))}."  # fmt: skip

    def empty_trash(self, listing: TrashListing) -> bool:
        """Deletes the images in the trash as ``listing`` found it for good (after the panel has asked), the files
        on a thread (``GalleryModel.empty_trash``); returns whether it began. The status bar says how far it got,
        then what was deleted (``on_trash_emptied``). An error before anything changed names the trash."""
        try:
            return self._gallery.empty_trash(listing)
        except (OSError, sqlite3.Error) as exc:
            log.exception("emptying the trash failed")
            self._say(self._trash_error("could not be deleted from the trash", exc))
            return False
        except EmptyingNotStarted as exc:  # the rows are forgotten: not "nothing changed"
            log.error("emptying the trash could not start its thread", exc_info=exc.cause)
            self._say(EngineError(
                "user", f"Empty trash could not start deleting the files ({exc}). The images in the trash can no "
                "longer be brought back with Undo; their files are still in the trash folder "
                f"{self._data.trash}.", "Close some programs (or restart Nibble Studio), then empty the trash "
                "again: it deletes them then."))  # fmt: skip
            return False

    def on_emptying_progress(self, deleted: int, total: int) -> None:
        """Empty trash's thread has deleted ``deleted`` of the ``total`` files: said in the status bar (without a
        count where no file is to be deleted: a trash of images whose file is gone showed "0 of 0 files")."""
        self._tell(f"Emptying the trash: {deleted} of {counted(total, 'file')} deleted…" if total
                   else "Emptying the trash…")

    def on_trash_emptied(self, emptied: TrashEmptied) -> None:
        """Empty trash's deletion ended: what it deleted, in the status bar; what kept it from deleting them all
        (the data folder moved away, an error that stopped it, files that could not be deleted) is said instead,
        with what did change."""
        if emptied.failures:
            _log_failures(emptied)
        if emptied.error is not None:
            log.error("emptying the trash stopped after %d files: %r", emptied.deleted, emptied.error)
        if emptied.moved is not None:
            self._say(self._trash_emptied_elsewhere(emptied, emptied.moved))
        elif emptied.error is not None:
            self._say(self._trash_emptying_stopped(emptied, emptied.error))
        elif emptied.failures:
            self._say(self._trash_partly_emptied(emptied))
        else:
            self._tell(_emptied_text(emptied))

    def _trash_emptied_elsewhere(self, emptied: TrashEmptied, moved: OSError) -> EngineError:
        # Not "emptied: 0 files deleted": the files not found at the old path went with the folder, still in its
        # trash (their rows forgotten already, in the database that moved with them: a listing there finds them).
        said = classify(moved)
        return EngineError(
            "user", f"The trash was not emptied: {counted(emptied.gone, 'file')} {were(emptied.gone)} no longer in "
            f"the trash folder {self._data.trash} ({counted(emptied.deleted, 'file')} {were(emptied.deleted)} "
            f"deleted). {said.message}",
            "If the folder was moved, its trash still holds them, no longer in the gallery: Empty trash deletes "
            f"them once Nibble Studio runs on that folder. {said.hint}")

    def _trash_emptying_stopped(self, emptied: TrashEmptied, error: Exception) -> EngineError:
        # The counts are how far the deletion got (it said "0 files were deleted", naming the trash folder as the
        # file that could not be).
        failed = f" {_failed(emptied)} could not be deleted." if emptied.failures else ""
        return EngineError(
            "user", f"Empty trash stopped by an error after {counted(emptied.deleted, 'file')} "
            f"{were(emptied.deleted)} deleted ({error}).{failed} The images in the trash can no longer be brought "
            "back with Undo.",
            f"The files left stay in the trash folder {self._data.trash} and are deleted the next time you empty the "
            "trash; if it stops again, the log file has the details.")

    def _trash_partly_emptied(self, partly: TrashEmptied) -> EngineError:
        # Not "nothing else was changed": the trash list (and with it Undo) is already gone and the other files
        # are deleted; what is left is deleted by the next Empty trash.
        path, exc = partly.failures[0]
        kinds = partly.failure_kinds()
        folders = len(partly.failed_folders) - (path in partly.failed_folders)
        others = _entries(len(partly.failures) - 1 - folders, folders, "other ")
        reason = exc.strerror or str(exc)
        elsewhy = len(partly.failures) - next(kind.count for kind in kinds if kind.first[0] is path)
        if elsewhy:  # said with the first one's reason only, other reasons were said nowhere
            reason += f"; {elsewhy} of them for other reasons, named in the log file"
        return EngineError(
            "user", f"The trash was only partly emptied: {path}{' and ' + others if others else ''} could not be "
            f"deleted ({reason}). "
            f"{counted(partly.deleted, 'file')} {were(partly.deleted)} "
            "deleted, and the images in the trash can no longer be brought back with Undo.",
            f"The files left stay in the trash folder {self._data.trash} and are deleted the next time you empty the "
            "trash. Check that they are not open in another program, then empty the trash again.")

    def _delete_cut_short(self, cut: DeleteCutShort) -> EngineError:
        # Not "nothing else was changed": the images moved before the failure are in the trash already. They
        # stay there (one Undo brings them all back) rather than being moved back unasked, which could fail in
        # turn for the same reason (a full or read-only disk). Those put there without their file are said as a
        # delete that ends well says them: nothing of theirs moved.
        total = cut.moved + cut.kept
        if cut.without_file:
            done = f"Only {cut.moved} of the {total} images went to the trash " \
                f"({_deleted_text(Deleted(cut.moved, cut.without_file))})"  # fmt: skip
            back = "that image" if cut.moved == 1 else "those images"
        else:
            done = f"Only {cut.moved} of the {total} images {were(cut.moved)} moved to the trash"
            back = f"the {counted(cut.moved, 'moved image')}"
        return EngineError(
            "user", f"{done}. The next could not be moved: {cut.cause} ({self._trash_where(cut.cause)}). "
            f"{self._rest(cut.kept)} in the gallery, unchanged.",
            f"Undo delete brings {back} back. Check "
            "that the image is not open in another program and that the data folder can be written, then delete "
            "the rest again.")

    def _undo_cut_short(self, cut: UndoCutShort) -> EngineError:
        # As for a delete cut short: the images already back stay back; the rest stay in the trash, still the
        # last deletion, so the next Undo tries exactly those again.
        lost = cut.without_file
        return EngineError(
            "user", f"Only {cut.restored} of the {cut.restored + cut.left} images "
            f"{were(cut.restored)} brought back from the trash. The next could not be: "
            f"{cut.cause} ({self._trash_where(cut.cause)}). {self._rest(cut.left)} in the trash."
            + (f" {lost.message}" if lost else ""),
            "Check that the image is not open in another program and that the data folder can be written, then "
            "click Undo delete again to bring back the rest." + (f" {lost.hint}" if lost else ""))

    @staticmethod
    def _rest(left: int) -> str:
        """The image a move failed on and those not tried after it (``left`` in all), as a sentence's start."""
        return f"It and {counted(left - 1, 'other image')} stay" if left > 1 else "It stays"

    def _trash_where(self, exc: BaseException) -> str:
        if isinstance(exc, sqlite3.Error):
            return f"the gallery database {self._database} could not be updated"
        return f"the trash folder is {self._data.trash}"  # str() of an OSError names the file(s): the image

    def _trash_error(self, what: str, exc: BaseException) -> EngineError:
        if isinstance(exc, DataDirMoved):  # an OSError too; its words say what to do, which no retry is
            return classify(exc)
        return EngineError("user", f"An image {what}: {exc} ({self._trash_where(exc)}).",
                           "Nothing else was changed. Check that the image is not open in another program and "
                           "that the data folder can be written, then try again.")


def _deleted_text(deleted: Deleted) -> str:
    """What a delete did, as a sentence's start: the images moved to the trash, and apart those whose file was not
    found, which went without it (it said "1 image moved to the trash" of an entry whose file was renamed by hand,
    though nothing moved)."""
    moved, fileless = deleted.images - deleted.without_file, deleted.without_file
    if not fileless:
        return f"{counted(moved, 'image')} moved to the trash"
    one = fileless == 1
    if not moved:
        return f"{counted(fileless, 'image')} put in the trash without {'its file' if one else 'their files'}, " \
            f"which {were(fileless)} not found in the images folder"  # fmt: skip
    return f"{counted(moved, 'image')} moved to the trash, and {fileless} whose file{'' if one else 's'} " \
        f"{were(fileless)} not found in the images folder put there without {'it' if one else 'them'}"  # fmt: skip


def _without_file_note(fileless: int, total: int) -> str:
    """What an undo that brought ``total`` images back says of the ``fileless`` of them that came back without a
    file (marked missing): "; it has no file and shows as missing" for one of one, "" for none."""
    if not fileless:
        return ""
    if fileless == total:
        return "; it has no file and shows as missing" if total == 1 else "; they have no files and show as missing"
    return f"; {fileless} of them {'has no file and shows' if fileless == 1 else 'have no files and show'} as missing"


# How many reasons why Empty trash could not delete files are logged one by one (the others in one line).
_REASONS_LOGGED = 5


def _emptied_text(emptied: TrashEmptied) -> str:
    """What Empty trash that ended well says: the files deleted, those gone already, and the images in the trash
    that had no file, removed too (left out, they went uncounted, and a trash of only them said "0 files"); then
    the images that stay in the gallery, their picture back in the images folder, and the pictures found there
    under the names of images in the trash, added (an entry appearing, or staying, unsaid)."""
    fileless = emptied.fileless
    back = "".join(f"; {said}" for said in kept_and_added(emptied.kept, emptied.imported, ended=True))
    if fileless and not emptied.deleted and not emptied.gone:
        return f"The trash was emptied: {counted(fileless, 'image')} whose file was already gone {were(fileless)} " \
            f"removed{back}."  # fmt: skip
    if not fileless and not emptied.deleted and not emptied.gone and back:
        return f"The trash was emptied: {back.removeprefix('; ')}."
    gone = f"; {counted(emptied.gone, 'file')} {were(emptied.gone)} gone already" if emptied.gone else ""
    removed = f"; {counted(fileless, 'image')} without a file {were(fileless)} removed too" if fileless else ""
    return f"The trash was emptied: {counted(emptied.deleted, 'file')} deleted ({emptied.freed / 2**20:.1f} MiB)" \
        f"{gone}{removed}{back}."  # fmt: skip


def _log_failures(emptied: TrashEmptied) -> None:
    """The files and folders Empty trash could not delete, logged in a few lines however many there are (a line
    per file, tens of thousands of them logged on the Qt thread, froze the window): how many for each reason,
    the first few named, the most frequent ``_REASONS_LOGGED`` reasons one a line, then how many for the others."""
    kinds = emptied.failure_kinds()
    if len(kinds) == 1:
        log.error("emptying the trash: %s could not be deleted: %s", _failed(emptied), _logged(kinds[0]))
        return
    log.error("emptying the trash: %s could not be deleted, for %d reasons:", _failed(emptied), len(kinds))
    for kind in kinds[:_REASONS_LOGGED]:
        log.error("emptying the trash: %s: %s", _entries(kind.files, kind.folders), _logged(kind))
    if rest := kinds[_REASONS_LOGGED:]:
        log.error("emptying the trash: and %s for %d other reasons, the first: %s",
                  _entries(sum(kind.files for kind in rest), sum(kind.folders for kind in rest)), len(rest),
                  _logged(rest[0]))  # fmt: skip


def _logged(kind: FailureKind) -> str:
    """A reason and the first few of its files: "[Errno 13] Permission denied (/t/a.png, /t/b.png and 7 more)"."""
    more = f" and {kind.count - len(kind.first)} more" if kind.count > len(kind.first) else ""
    return f"{kind.reason} ({', '.join(str(path) for path in kind.first)}{more})"


def _failed(emptied: TrashEmptied) -> str:
    """How many files and folders Empty trash could not delete, in words ("3 files and 1 folder")."""
    folders = len(emptied.failed_folders)
    return _entries(len(emptied.failures) - folders, folders)


def _entries(files: int, folders: int, other: str = "") -> str:
    """"3 files", "1 folder", "3 files and 1 folder" ("" for none; ``other``: "2 other files")."""
    return " and ".join(counted(n, other + noun) for n, noun in ((files, "file"), (folders, "folder")) if n)
