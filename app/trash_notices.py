"""What the gallery's trash says to the user when it refuses an action or could not do all of it (``EngineError``
notices): Delete, Undo or Empty trash asked for while the trash is emptied or the old trash gathered, images Undo
brought back without their file, a trash folder Empty trash could not list; and Empty trash's question."""

from __future__ import annotations

from pathlib import Path

from app.data_dir import DataDir, DataDirMoved
from app.engine_errors import EngineError, classify
from app.history_model import prompt_line
from app.image_files import absolute
from app.store import ImageRecord
from app.trash_listing import TrashListing
from app.wording import counted, were
from gpu.errors import named_few


def _so_far(deleted: int, total: int) -> str:
    return f"{deleted} of {counted(total, 'file')} deleted so far"


def empty_trash_question(listing: TrashListing) -> str:
    """What Empty trash asks before removing what ``listing`` found for good: its files and their size, and the
    images in the trash whose file is already gone (counted too: they go, and Undo brought them back); apart, the
    images it keeps, their own picture back in the images folder (``TrashListing.back``: counted among those whose
    file is gone, they were asked about as removed "for good", then kept), and the pictures there under the names
    of images in the trash, which it adds to the gallery."""
    files, size = listing.size
    kept = len(listing.back)
    n = max(listing.fileless - kept, 0)
    besides = kept_and_added(kept, len(listing.taken or ()) - kept, ended=False)
    also = f" {'; '.join(besides)}." if besides else ""
    if not files and not n:
        return f"Empty the trash? Nothing in it is deleted:{also}"
    if not files:
        return f"Remove the {counted(n, 'image')} in the trash for good? " \
            f"{'Its file is' if n == 1 else 'Their files are'} already gone.{also}"  # fmt: skip
    fileless = f", and remove the {counted(n, 'image')} in it whose file is already gone" if n else ""
    return f"Delete the {counted(files, 'file')} in the trash ({size / 2**20:.1f} MiB) for good{fileless}?{also}"


def kept_and_added(kept: int, added: int, ended: bool) -> list[str]:
    """What Empty trash does besides deleting, as its question (``ended`` False) and its end say it: the ``kept``
    images in the trash whose own picture is back in the images folder stay in the gallery, and the ``added``
    pictures put there under the name of an image in the trash are added to it ([] for none of either)."""
    said = []
    if kept:
        said.append(f"{counted(kept, 'image')} whose picture {'was' if ended else 'is'} back in the images folder "
                    f"{'stays' if kept == 1 else 'stay'} in the gallery")  # fmt: skip
    if added:
        done = were(added) if ended else "is" if added == 1 else "are"
        said.append(f"{counted(added, 'picture')} put in the images folder under the name of an image in the trash "
                    f"{done} added to the gallery")  # fmt: skip
    return said


def refused_while_emptying(what: str, deleted: int, total: int) -> EngineError:
    """``what`` (Delete, Empty trash) refused while Empty trash has ``deleted`` of its ``total`` files."""
    # "Once Empty trash has ended", not "once the status bar says the trash was emptied": a partial failure
    # ends with a message instead, and the status bar's words go after seconds.
    return EngineError(
        "notice", f"{what} cannot be done while the trash is being emptied ({_so_far(deleted, total)}).",
        f"Try {what} again once Empty trash has ended; nothing was changed.")  # fmt: skip


def undo_while_emptying(deleted: int, total: int) -> EngineError:
    """Undo asked for while Empty trash deletes (``deleted`` of ``total`` files so far): said as it is. The undo list
    went with the rows Empty trash forgot, and Delete is refused meanwhile, so nothing can be brought back, then or
    after (it said "try again once the trash was emptied", and then did nothing)."""
    return EngineError(
        "notice", "Undo delete cannot bring back the images in the trash: Empty trash is deleting them for good "
        f"({_so_far(deleted, total)}).", "Nothing was changed; once Empty trash has begun, its images cannot "
        "be brought back.")  # fmt: skip


def refused_while_gathering(what: str, data: DataDir) -> EngineError:
    """``what`` (Undo delete, Empty trash) waiting for the old trash of another drive to be gathered."""
    return EngineError(
        "notice", f"{what} waits until the old trash folder {data.other_trash} is moved into the trash "
        f"folder {data.trash}: it is on another drive, and its files are being copied (the status bar "
        "says how far).", f"Try {what} again once that is done. Deleting images works meanwhile.")  # fmt: skip


def came_back_without_file(records: list[ImageRecord], data: DataDir) -> EngineError:
    """The entries of ``records`` (one or more) Undo brought back marked missing, their files no longer in the
    trash: named, with where to put the files back."""
    # Named as the grid shows them: by their prompt's start (a file name says little), else by file name.
    names = named_few([f"'{prompt_line(r.prompt, 40)}'" if r.prompt.strip() else Path(r.path).name
                       for r in records])  # fmt: skip
    trash = data.trash
    if len(records) == 1:
        return EngineError(
            "notice",
            f"The file of {names} was no longer in the trash folder {trash}; its entry is back in the gallery "
            "without a picture, marked missing.",
            f"Its settings can still be reused. Put the file back as {absolute(data, records[0].path)} and it shows "
            "again at the next start.",
        )
    return EngineError(
        "notice",
        f"The files of {len(records)} images ({names}) were no longer in the trash folder {trash}; their "
        "entries are back in the gallery without a picture, marked missing.",
        "Their settings can still be reused. Files put back as "
        f"{named_few([str(absolute(data, r.path)) for r in records])} show again at the next start.",
    )


def unreadable_because(why: Exception, trash: Path) -> str:
    """Why the trash folder ``trash`` could not be listed (``why``), in a few words: the folder of it that could not
    be read (``list_trash``'s ``filename``; not named when it is the trash itself), and the system's reason."""
    where = getattr(why, "filename", None)
    said = getattr(why, "strerror", None) or str(why)
    return f"{where}: {said}" if where and Path(where) != trash else said


def not_listed(why: Exception, trash: Path) -> EngineError:
    """What Empty trash says when the trash folder ``trash`` could not be listed for it (``why``)."""
    if isinstance(why, DataDirMoved):
        return classify(why)
    # the log has no more than this of an OSError (one line, logged once per reason), but a fault's traceback
    details = "" if isinstance(why, OSError) else "; the log file has the details"
    return EngineError("user", f"The trash folder {trash} could not be read "
                       f"({unreadable_because(why, trash)}), so it was not emptied.",
                       f"Check that it can be opened, then try again{details}.")  # fmt: skip
