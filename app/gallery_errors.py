"""What the gallery raises when a delete, an undo, Empty trash or a star did not do all it was asked: how far it got,
why it stopped, and the words that say so to the user (``EngineError``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.data_dir import DataDir
from app.engine_errors import EngineError
from app.image_files import absolute
from app.store import ImageRecord
from app.wording import counted
from gpu.errors import named_few


class DeleteCutShort(Exception):
    """Moving several images to the trash stopped at one that could not be moved (``cause``: open in another
    program on Windows, a read-only folder, a database error). The ``moved`` images before it are in the trash
    by then, together on the undo stack (one Undo brings them back), ``without_file`` of them put there without
    their file (not found in the images folder: nothing moved); that one and the others not yet tried (``kept`` in
    all) are unchanged, file and row."""

    def __init__(self, moved: int, kept: int, cause: OSError | sqlite3.Error, without_file: int = 0) -> None:
        super().__init__(f"{moved} image(s) put in the trash ({without_file} without their file), then {cause}")
        self.moved = moved
        self.kept = kept
        self.cause = cause
        self.without_file = without_file


class DeleteNotSaved(sqlite3.Error):
    """A delete's commit failed (``cause``: a full disk) after its files were moved to the trash, and moving some
    back failed too: the files of ``left`` (records) stayed in the trash under their rows' own names while the
    rows, not trashed, show in the gallery without a picture. Nothing is lost: start-up moves such a file back,
    and deleting such an entry again takes its file as already in the trash. ``error`` says where each file is
    and how to get it back ("nothing else was changed" would be untrue). A ``sqlite3.Error``, as the failed
    commit it reports, so that whatever handles that still does."""

    def __init__(
        self, cause: sqlite3.Error, deleted: int, left: list[ImageRecord], data: DataDir, database: Path
    ) -> None:
        trashed = [str(data.trash / r.path) for r in left]
        super().__init__(f"{cause}; {counted(len(left), 'file')} stayed in the trash: {named_few(trashed)}")
        self.cause = cause
        one = len(left) == 1
        self.error = EngineError(
            "user",
            f"{counted(deleted, 'image')} could not be moved to the trash: the gallery database {database} could "
            f"not be updated ({cause}). "
            + (f"The file {trashed[0]} could not be moved back from the trash either; its entry shows in the "
               "gallery without a picture." if one else
               f"{len(left)} of the files could not be moved back from the trash either ({named_few(trashed)}); "
               "their entries show in the gallery without a picture."),
            ("Nibble Studio moves it back at its next start, or move it back yourself to "
             f"{absolute(data, left[0].path)}." if one else
             f"Nibble Studio moves them back at its next start, or move them back yourself from {data.trash} to "
             f"the same place under {data.images}.")
            + " Check that the data folder can be written and its disk is not full before deleting again.",
        )  # fmt: skip


class UndoNotSaved(sqlite3.Error):
    """An Undo's commit failed (``cause``: a full disk) after its files were moved back from the trash, and moving
    some into the trash again failed too: the files of ``left`` (records) are in the images folder under their
    rows' own names while the rows are still in the trash, still the last deletion. Nothing is lost: the next Undo
    takes such a file as its entry's picture, as start-up does. ``error`` says where each file is ("nothing else
    was changed" would be untrue). A ``sqlite3.Error``, as the failed commit it reports (``DeleteNotSaved``)."""

    def __init__(self, cause: sqlite3.Error, left: list[ImageRecord], data: DataDir, database: Path) -> None:
        back = [str(absolute(data, r.path)) for r in left]
        super().__init__(f"{cause}; {counted(len(left), 'file')} stayed in the images folder: {named_few(back)}")
        self.cause = cause
        one = len(left) == 1
        self.error = EngineError(
            "user",
            f"Undo delete brought no image back from the trash: the gallery database {database} could not be "
            f"updated ({cause}). "
            + (f"The file {back[0]} could not be moved back into the trash either: it is in the images folder "
               "while its entry is still in the trash." if one else
               f"{len(left)} of the files could not be moved back into the trash either ({named_few(back)}): they "
               "are in the images folder while their entries are still in the trash."),
            "Check that the data folder can be written and its disk is not full, then click Undo delete again: it "
            + ("takes that file for its entry's picture" if one else "takes those files for their entries' pictures")
            + " (as Nibble Studio does at its next start).",
        )  # fmt: skip


class UndoCutShort(Exception):
    """Undoing a delete of several images stopped at one that could not be brought back (``cause``: open in
    another program on Windows, a read-only folder, a database error). The ``restored`` images before it are
    back in the gallery; that one and the others not yet tried (``left`` in all) are still in the trash, and
    still the last deletion: the next Undo tries them again."""

    def __init__(
        self, restored: int, left: int, cause: OSError | sqlite3.Error, without_file: EngineError | None = None
    ) -> None:
        super().__init__(f"{restored} image(s) brought back from the trash, then {cause}")
        self.restored = restored
        self.left = left
        self.cause = cause
        # Of the ``restored``: the entries back without their picture (file gone from the trash), named with
        # where to put the files back; said in the same message.
        self.without_file = without_file


class EmptyingNotStarted(Exception):
    """Empty trash forgot the trashed rows but its deletion's thread could not start (``cause``: the system's
    limit on threads): their files are still in the trash, for the next Empty trash. Its own type: the caller's
    ``except RuntimeError`` also took any other RuntimeError (a RecursionError, a deleted Qt object) raised
    before anything changed for this one, and said the rows were forgotten."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class FavoritesNotSaved(Exception):
    """Starring (or unstarring) images failed: the gallery database could not be written (``cause``), and no
    image changed. ``error`` says so to the user, naming the database."""

    def __init__(self, count: int, favorite: bool, database: Path, cause: sqlite3.Error) -> None:
        super().__init__(
            f"{'Starring' if favorite else 'Unstarring'} {counted(count, 'image')} failed: the gallery database "
            f"{database} could not be changed ({cause})."
        )
        self.cause = cause
        self.error = EngineError(
            "user",
            str(self),
            "Nothing was changed. Check that the data folder can be written and its disk is not full, then try again.",
        )
