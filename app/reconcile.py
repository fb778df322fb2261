"""Start-up reconciliation of the images folder with the database, after a crash or manual file changes.

A PNG without a row (the app died between writing the file and committing the row, or the user copied it
in) is imported from its own metadata; a folder or a file without the PNG signature is not an image and is left
alone (not imported, not touched). A row whose file is gone is kept and flagged ``missing`` so the user
sees what was lost instead of silently forgetting it; it is un-flagged if the file comes back. A new file that is
the picture of such a row, renamed or moved inside the images folder by the user, takes that row over (its favorite
and id kept) instead of being imported as a second entry: the same size and bytes (SHA-256) as the row stored, or,
for a row stored without a hash (imported ones: hashing a whole folder at every import would slow the start-up), the
same size and the same non-empty settings text. A file that fits several rows, or a row several files, is imported
as it is: two different pictures are never merged.

The trash is first gathered in one place (``gather_trash``): images/ moved to another drive, or back, since the last
start puts the trash elsewhere, and the files in the old one would be out of reach of Undo, Empty trash and the
repairs below. On one drive that is a rename per file, done before the window shows; from another drive it is a copy
per file (minutes for gigabytes on a USB drive), done by ``FolderImport`` once the window is up. Meanwhile the old
trash counts as part of the trash for the repairs below, an entry whose picture waits there is not flagged missing,
and the repairs are done again for the files gathered (``repair_after_gather``, on folders listed by that thread).

A delete or an undo interrupted between moving the file and committing its row is finished the safe way: an
image whose row is not in the trash but whose file is comes back into the gallery; a trashed row whose file was
already moved back is taken out of the trash, unless its file is known to be another picture (the rule of Undo,
``app.trash_names.another_picture``). A file copied in under the name of an image in the trash is imported, and the
trashed image is renamed so that both can be seen (never overwritten on undo).

A save cut short by a kill leaves its file in a hidden scratch folder of the write, where no listing sees it: start-up
publishes a whole picture found there, to be imported with the other new files, and moves an unfinished one to the
trash, saying so (``recover_cut_short_saves``, ``cut_short_notice``).

The app checks the folder before its window shows (``check_folder``: a listing and a few stats) and imports the new
files after (``FolderImport``), newest first, a batch per commit, while the window is in use: a crash or a quit
part-way leaves files without a row, which the next start imports. ``reconcile`` does both at once.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Container, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.background import start_thread, to_qt_thread
from app.data_dir import DataDir
from app.engine_errors import EngineError
from app.image_dates import import_date
from app.image_files import (
    CutShortSaves,
    NotListed,
    TrashGathered,
    absolute,
    file_fingerprint,
    folder_at,
    free_image_name,
    gather_trash,
    gathers_across_drives,
    is_png,
    png_paths,
    read_image_settings,
    recover_cut_short_saves,
    rename_in_trash,
    restore_from_trash,
)
from app.import_dates import ImportDates
from app.observable import Prop
from app.store import PromptRecord, Recovery, Store, prompt_of
from app.trash_names import another_picture
from app.valid_text import storable
from app.wording import counted, were
from gpu.errors import named_few
from gpu.generation.png_metadata import PNG_SIGNATURE, UNBUFFERED, inspect_png_file

log = logging.getLogger(__name__)

# Images imported per commit: one commit (and disk sync) per image made re-importing a large folder slow; a crash
# loses at most the batch's rows, whose files are imported again at the next start.
_IMPORT_BATCH = 500
_BATCH_SECONDS = 0.25  # in the app, a batch is committed at least this often (a slow disk: the gallery fills in)
_STOP_WAIT_S = 1.0  # how long closing waits for the file being read (nothing is written: not longer)
_DONE_SHOWN_MS = 15_000  # how long "N images imported" stays in the status bar
# How often the images folder's watch looks at it while a folder in it cannot be read (or watched): ``POLL_MS`` of
# ``app.folder_watch``, defined here for ``unreadable_notice`` to say it
UNREAD_POLL_MS = 30_000
# Batches read and not yet committed: nothing held the reader back, and all 30,000 rows of a first start could
# wait in Qt's event queue (memory; all of it dropped at a quit). One committed while the next waits keeps the
# Qt thread busy and the disk reading.
_IN_FLIGHT = 2

# (path, settings, created, file size, file SHA-256): a row of ``Store.add_images``.
ImportRow = tuple[str, dict[str, Any], float, int, None]


@dataclass
class ReconcileReport:
    imported: int = 0
    missing: int = 0
    found_again: int = 0
    repaired: int = 0  # deletes / undos interrupted half-way, finished
    moved: int = 0  # missing entries whose picture was found under another name, and took it over
    unnamed: list[str] = field(default_factory=list)  # PNGs not imported: their names are no valid text (shown)
    # What the check could not do, for the user: the window says it with its other start-up notices
    notices: list[EngineError] = field(default_factory=list)
    # The old trash is on another drive: ``FolderImport`` gathers it once the window is up (Undo and Empty trash
    # wait for it)
    gather_later: bool = False
    # The folders of the images folder the check could not read (``png_paths``' ``unreadable``), said in its
    # notices: the watch says them again only once they can be read (``FolderWatch``)
    unreadable: dict[str, str] = field(default_factory=dict)


def finish_interrupted_moves(store: Store, data: DataDir, rows: dict[str, tuple[int, bool, bool]],
                             on_disk: dict[str, str], waiting: Container[str] = (),
                             in_trash_folder: dict[str, str] | None = None, others: Mapping[str, bool] | None = None
                             ) -> int:  # fmt: skip
    """Finishes the deletes and undos a crash cut short (see the module's text); ``rows``: ``store.all_paths()``,
    ``on_disk``: ``png_paths(data.images)``, updated with the files moved back. Also what Empty trash does first
    (``GalleryModel.empty_trash``): a file a failed delete could not move back is its entry's picture, not trash.
    ``waiting``: the pictures of the old trash, on another drive, not gathered yet: in the trash all the same (a
    trashed entry's name taken in the images folder is given up there), and a picture to move back is left for
    ``repair_after_gather`` (a copy across drives). ``in_trash_folder``: ``png_paths(data.trash)``, when listed
    already. Listings may be older than the last image deleted (``repair_after_gather``): the files a change rests on
    are looked at again. ``others``: whether the file in the images folder under the name of an image in the trash
    is another picture than its own, where that is known already (Empty trash's listing hashed them on its thread,
    and they are unchanged since); any other such file is hashed here (``another_picture``)."""
    repaired = 0
    if in_trash_folder is None:
        in_trash_folder = png_paths(data.trash)
    others = others or {}
    for rel, (row_id, _missing, trashed) in rows.items():
        in_trash = rel in in_trash_folder
        if not in_trash and rel in waiting:
            if trashed and rel in on_disk:
                store.set_path(row_id, rename_in_trash(data, rel, taken=store.has_path, trash=data.other_trash))
            continue
        if not trashed and rel not in on_disk and in_trash and is_png(data.trash / rel):
            # deleted, but the app died before the row said so: the deletion never happened
            rel_back = restore_from_trash(data, rel)
            on_disk[rel_back] = os.path.join(data.images, rel_back)
            repaired += 1
        elif not trashed or rel not in on_disk or not _is_file_now(data.images, rel):
            continue  # nothing to finish, or deleted since the listing: its file is in the trash now
        elif in_trash:  # another image now has the trashed one's name: give the trashed a new one
            store.set_path(row_id, rename_in_trash(data, rel, taken=store.has_path))
        elif _another_picture_at(store, data, row_id, rel, others):
            # Copied in under its name while the app was closed: imported as a new entry (``check_folder``), the
            # trashed entry kept in the trash, without its picture, under a name of its own. Taken as its
            # picture, it came back with another's picture, which Undo refuses (``back_in_images``).
            store.set_path(row_id, free_image_name(data, rel, store.has_path))
        else:  # brought back, but the row was not updated: finish
            store.set_trashed(row_id, False)
            repaired += 1
    return repaired


def _another_picture_at(store: Store, data: DataDir, row_id: int, rel: str, known: Mapping[str, bool]) -> bool:
    """Whether the file at ``rel`` in the images folder is known to be another picture than the one of the row
    ``row_id``: as ``known`` says where it holds ``rel`` (found already, off the window's thread), else looked at
    here (``another_picture``)."""
    if rel in known:
        return known[rel]
    record = store.image(row_id)
    return record is not None and another_picture(store, record, absolute(data, rel))


def _is_file_now(folder: Path, rel: str) -> bool:
    """Whether ``rel`` is a file under ``folder`` now, as ``png_paths`` lists one (a link to a file counts)."""
    return os.path.isfile(os.path.join(folder, rel))


def _same_picture(
    fingerprint: tuple[int, str], settings: dict[str, Any] | None, row: tuple[dict[str, Any], int | None, str | None]
) -> bool:
    """Whether a file (its size and hash, and its settings when read) is the picture of a row (``file_facts``)."""
    row_settings, size, sha = row
    if fingerprint[0] != size:
        return False
    if sha is not None:
        return fingerprint[1] == sha
    return bool(settings) and settings == row_settings  # no settings text: nothing to tell two pictures apart


def _take_over_moved(store: Store, new: dict[str, str], gone: set[int]) -> set[str]:
    """Gives each row of ``gone`` (not in the trash, its file not found) the file of ``new`` that is its picture,
    renamed or moved (see the module's text for how that is known); returns the files taken over. Only files of a
    size some row has are read: a start-up with hundreds of new files and missing rows stays a matter of stats."""
    facts = store.file_facts(gone)
    by_size: dict[int, list[int]] = {}
    for rid, (_settings, size, _sha) in facts.items():
        if size is not None:
            by_size.setdefault(size, []).append(rid)
    found: dict[str, tuple[list[int], tuple[int, str]]] = {}
    for rel, path in new.items():
        try:
            rids = by_size.get(os.stat(path).st_size)
        except OSError:
            continue
        if not rids or (fingerprint := file_fingerprint(Path(path))) is None:
            continue
        # as the store holds them (``file_facts``): a lone surrogate made U+FFFD, or such a picture never matched
        settings = storable(read_image_settings(Path(path))) if any(facts[rid][2] is None for rid in rids) else None
        same = [rid for rid in rids if _same_picture(fingerprint, settings, facts[rid])]
        if same:
            found[rel] = (same, fingerprint)
    claims = Counter(rid for rids, _fingerprint in found.values() for rid in rids)
    moves = [(rids[0], rel, size, sha) for rel, (rids, (size, sha)) in found.items()
             if len(rids) == 1 and claims[rids[0]] == 1]  # fmt: skip
    if moves:
        store.take_over(moves)
    for rid, rel, _size, _sha in moves:
        log.info("image %d was renamed or moved to %s: its entry follows it", rid, rel)
    return {rel for _rid, rel, _size, _sha in moves}


def valid_name(rel: str) -> bool:
    """False for a name that is no valid text: on Linux a file name is any bytes, and one in another encoding
    (an old Latin-1 archive unpacked as is) reaches Python with surrogate escapes, which the database (UTF-8)
    refuses. Such a file is left where it is and named to the user, instead of stopping the start-up."""
    try:
        rel.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def shown_name(path: str | Path) -> str:
    """``path`` for a message or the log, whatever bytes its name has (undecodable ones shown as "�")."""
    return os.fsencode(path).decode("utf-8", "replace")


def _learn_sizes(store: Store, on_disk: dict[str, str]) -> None:
    """Stores the file size of the rows an earlier version added without one (once: a stat each), so that
    such a picture, renamed later, is still known by its size and settings."""
    sizes = []
    for rel, rid in store.unsized().items():
        try:
            sizes.append((rid, os.stat(on_disk[rel]).st_size))
        except (KeyError, OSError):
            continue
    if sizes:
        store.set_file_sizes(sizes)


def gather_notice(data: DataDir, gathered: TrashGathered) -> EngineError | None:
    """What to tell the user of the files of the old trash ``gather_trash`` could not move, in one notice: a name
    taken by a different file in the trash (only the user can choose which to keep), or a failure to write."""
    said = []
    if clashed := gathered.clashed:
        said.append(_left_in_old_trash(
            data, clashed, f"{were(len(clashed))} not moved into the trash folder {data.trash}, as a different file "
            "of the same name is already there",
            f"Look at what is left in {data.other_trash}: move a picture still wanted to a folder of your own, "
            f"delete the rest. Leave {data.trash} as it is: Undo delete brings its files back under their "
            "names."))  # fmt: skip
    if left := gathered.left:
        said.append(_left_in_old_trash(
            data, left, f"could not be moved into the trash folder {data.trash} ({gathered.why})",
            f"Check that {data.trash} can be written and its drive has room: Nibble Studio tries again at its next "
            "start. Or move the files yourself into it, each in the same folder as in the old trash."))  # fmt: skip
    if not said:
        return None
    return EngineError("notice", " ".join(m for m, _h in said), " ".join(h for _m, h in said))


def cut_short_notice(data: DataDir, found: CutShortSaves) -> EngineError | None:
    """What to tell the user of the saves a kill cut short that start-up found (``recover_cut_short_saves``), in one
    notice; None when there were none. The pictures come into the gallery under names they did not have, the
    unfinished files go to the trash: neither without a word."""
    said, hints = [], []
    if published := found.published:
        said.append(f"{counted(len(published), 'image')} whose saving was cut short (Nibble Studio was stopped while "
                    f"writing {_it(published)}) {were(len(published))} found whole and added to the gallery "
                    f"({named_few(published)}).")  # fmt: skip
    if trashed := found.trashed:
        said.append(f"{counted(len(trashed), 'image')} whose saving was cut short {were(len(trashed))} left "
                    f"unfinished and {were(len(trashed))} moved to the trash folder {data.trash} "
                    f"({named_few(trashed)}).")  # fmt: skip
        hints.append(f"Empty trash deletes {_it(trashed)}; to keep what {_it(trashed)} "
                     f"{'holds' if len(trashed) == 1 else 'hold'}, copy {_it(trashed)} out of the trash folder first.")
    if left := found.left:
        said.append(f"{counted(len(left), 'unfinished save')} in the images folder could not be finished "
                    f"({found.why}): left where {'it is' if len(left) == 1 else 'they are'}, nothing deleted "
                    f"({named_few(left)}).")  # fmt: skip
        hints.append(f"Check that {data.images} and {data.trash} can be written: Nibble Studio tries again at its "
                     "next start.")  # fmt: skip
    return EngineError("notice", " ".join(said), " ".join(hints)) if said else None


def _it(things: list[str]) -> str:
    return "it" if len(things) == 1 else "them"


def _left_in_old_trash(data: DataDir, files: list[str], not_moved: str, hint: str) -> tuple[str, str]:
    """The message and hint for ``files`` left in the old trash, ``not_moved`` saying why."""
    one = len(files) == 1
    return (f"{counted(len(files), 'file')} in the old trash folder {data.other_trash} {not_moved}: Undo delete and "
            f"Empty trash do not see {'it' if one else 'them'}. {'It was' if one else 'They were'} left where "
            f"{'it is' if one else 'they are'}, nothing was deleted ({named_few(files)}).", hint)  # fmt: skip


@dataclass(frozen=True)
class Listed:
    """The images folder and the trash as ``png_paths`` lists them, for ``repair_after_gather``."""

    images: dict[str, str]
    trash: dict[str, str]
    unreadable: dict[str, str] = field(default_factory=dict)  # the folders of ``images`` not read (``png_paths``)


def list_folders(data: DataDir) -> Listed:
    """The listings ``repair_after_gather`` works on, made on the gathering's thread: on the Qt thread they held
    the window for seconds at 30,000 images."""
    unreadable: dict[str, str] = {}
    return Listed(png_paths(data.images, unreadable=unreadable), png_paths(data.trash), unreadable)


def repair_after_gather(store: Store, data: DataDir, listed: Listed) -> tuple[bool, list[str]]:
    """After the old trash of another drive was gathered (``FolderImport``): start-up's repairs done for its files
    (the picture of an entry in the gallery moved back, a name taken given up) and the entries whose picture did
    not come back flagged missing. Returns whether any entry changed, and the paths of the pictures moved back.
    ``listed``: ``list_folders`` after the gathering. The user may have deleted images since, and the engine saved
    new ones: the files a change rests on are looked at again, else an image saved since would be flagged missing
    and one deleted since brought back."""
    on_disk = dict(listed.images)
    before = set(on_disk)
    repaired = finish_interrupted_moves(store, data, store.all_paths(), on_disk, in_trash_folder=listed.trash)
    missing, found_again = _flag_missing(store, data, on_disk, NotListed(tuple(listed.unreadable)))
    return bool(repaired or missing or found_again), [rel for rel in on_disk if rel not in before]


def _flag_missing(store: Store, data: DataDir, on_disk: dict[str, str], waiting: Container[str] = ()
                  ) -> tuple[int, int]:  # fmt: skip
    """Flags missing the entries (not in the trash) whose file is not ``on_disk`` nor ``waiting`` in the old trash
    (``finish_interrupted_moves``) nor under a folder that could not be read (``NotListed``), un-flags those whose
    file is back; returns how many of each. Each is looked at again first: ``on_disk`` may be older than the last
    image saved or deleted (``repair_after_gather``)."""
    rows = store.all_paths()
    now_missing = [rid for rel, (rid, missing, trashed) in rows.items()
                   if not trashed and not missing and rel not in on_disk and rel not in waiting
                   and not _is_file_now(data.images, rel)]  # fmt: skip
    back = [rid for rel, (rid, missing, trashed) in rows.items()
            if missing and rel in on_disk and _is_file_now(data.images, rel)]  # fmt: skip
    if now_missing:
        store.set_missing(now_missing, True)
    if back:
        store.set_missing(back, False)
    return len(now_missing), len(back)


def check_folder(store: Store, data: DataDir) -> tuple[ReconcileReport, dict[str, str]]:
    """Everything ``reconcile`` does but importing the new files, which it returns (path relative to the images
    folder -> path; not yet opened, so some may be no PNG). A matter of listing the folder and of the files a
    missing entry may have become: the window waits for it, and for no import. Only with the data folder locked
    (``app.instance_lock``, which ``MainWindow`` takes first): the saves a kill cut short are finished here
    (``recover_cut_short_saves``), and no save may be under way."""
    report = ReconcileReport(gather_later=gathers_across_drives(data))
    waiting: Container[str] = ()
    if report.gather_later:  # after the window shows
        waiting = png_paths(data.other_trash)
    elif (notice := gather_notice(data, gather_trash(data))) is not None:
        report.notices.append(notice)
    # before the listing: the pictures published here are imported with the other new files
    if (notice := cut_short_notice(data, recover_cut_short_saves(data))) is not None:
        report.notices.append(notice)
    rows = store.all_paths()
    # No file is opened here: opening every file for its signature (30,000 at every start) took most of the
    # start-up. A file with a row is its picture, whatever is in it now (the gallery says "unreadable"); a new
    # one is told a PNG or not by its import (``read_new_file``).
    unreadable: dict[str, str] = {}
    on_disk = png_paths(data.images, unreadable=unreadable)
    if unreadable:
        report.notices.append(unreadable_notice(data, unreadable))
        report.unreadable = unreadable
    unknown = NotListed(tuple(unreadable), waiting)  # their entries kept as they are, neither gone nor back
    for rel in [rel for rel in on_disk if not valid_name(rel)]:
        path = on_disk.pop(rel)
        if is_png(path):
            report.unnamed.append(shown_name(path))
            log.warning("not imported, its name is no valid text: %s", report.unnamed[-1])
    report.repaired = finish_interrupted_moves(store, data, rows, on_disk, waiting)
    rows = store.all_paths()
    new = {rel: path for rel, path in on_disk.items() if rel not in rows}
    gone = {rid for rel, (rid, _missing, trashed) in rows.items()
            if not trashed and rel not in on_disk and rel not in unknown}  # fmt: skip
    moved = _take_over_moved(store, new, gone) if new and gone else set()
    report.moved = len(moved)
    for rel in moved:
        del new[rel]
    if new:  # a first start with a folder of images reads each: it can take minutes
        log.info("importing %d new file(s) found in the images folder", len(new))
    _learn_sizes(store, on_disk)
    report.missing, report.found_again = _flag_missing(store, data, on_disk, unknown)  # the rows taken over: moved
    return report, new


def unreadable_notice(data: DataDir, unreadable: dict[str, str]) -> EngineError:
    """What start-up says of the folders of the images folder it could not read (``png_paths``' ``unreadable``):
    their pictures' entries are kept as they were, none flagged missing, none imported."""
    named = [f"{folder_at(data.images, prefix)} ({why})" for prefix, why in sorted(unreadable.items())]
    for said in named:
        log.warning("the folder %s could not be read: its pictures' entries are left as they are", said)
    one = len(named) == 1
    return EngineError(
        "notice", f"{'A folder' if one else f'{len(named)} folders'} of the images folder could not be read: "
        f"{named_few(named)}. The gallery shows the pictures in {'it' if one else 'them'} as they were, none flagged "
        "missing, and the pictures put there meanwhile are not added.",
        f"Check that Nibble Studio may open {'that folder' if one else 'those folders'} (its permissions, or the "
        f"drive mounted there): Nibble Studio looks at {'it' if one else 'them'} again every "
        f"{UNREAD_POLL_MS // 1000} s and reads {'it' if one else 'them'} as soon as it can, no restart needed.",
    )  # fmt: skip


def claim_found_files(store: Store, data: DataDir, found: dict[str, str], listed: Container[str]
                      ) -> tuple[dict[str, str], set[str]]:  # fmt: skip
    """For the files ``found`` in the images folder while the app runs (``app.folder_watch``; path relative to it ->
    path), with ``listed`` the names its listing held: those no entry holds now, less the ones that are the picture of
    an entry whose file is gone (renamed or moved by the user), which that entry takes over as at start-up
    (``_take_over_moved``: imported instead, the entry was flagged missing at the next start, its star left on it);
    returns them, to import, and the paths of the entries that have their file again: those that took a file over,
    and those flagged missing whose own file is back under their name, un-flagged as start-up un-flags them (they
    stayed flagged until the next start). An entry's file is looked at again before it is taken for gone: the
    listing is older than the images saved since."""
    rows = store.all_paths()
    new = {rel: path for rel, path in found.items() if rel not in rows}
    back = {rel for rel in found if rel in rows and rows[rel][1] and not rows[rel][2]}  # missing, not in the trash
    if back:
        store.set_missing([rows[rel][0] for rel in back], False)
    gone = {rid for rel, (rid, _missing, trashed) in rows.items()
            if not trashed and rel not in listed and not _is_file_now(data.images, rel)}  # fmt: skip
    moved = _take_over_moved(store, new, gone) if new and gone else set()
    return {rel: path for rel, path in new.items() if rel not in moved}, moved | back


def flag_gone_files(store: Store, data: DataDir, gone: Iterable[str]) -> list[str]:
    """Flags missing the gallery's entries whose file a look at the images folder did not find while the app runs
    (``gone``: their paths; ``app.folder_watch``), as start-up flags them (``_flag_missing``): deleted by hand, they
    were shown as there until the next start. Each is looked at again first, the look being older than the saves,
    deletes and take-overs since: an entry in the trash now, or at another path, or whose file is there, is left as
    it is. Returns the paths flagged."""
    records = [r for r in store.images_at(gone) if not r.missing and not _is_file_now(data.images, r.path)]
    if records:
        store.set_missing([r.id for r in records], True)
        log.info("%d gallery picture(s) no longer in the images folder: flagged missing", len(records))
    return [r.path for r in records]


def read_new_file(rel: str, path: str) -> ImportRow | None:
    """The row of a file without one, None when it is no PNG (left alone: not imported, not touched) or is gone.
    One open for its signature, size, date and text chunks, and no pixel decoded: the signature check, a stat and
    the settings reader each opened it (and made a ``Path`` of it) before, three times the cost of a 30,000-image
    import."""
    try:
        with open(path, "rb", buffering=UNBUFFERED) as f:
            if f.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                return None
            stat = os.fstat(f.fileno())
            try:
                settings = inspect_png_file(f).settings
            except Exception:  # as ``inspect_image_settings``: a reader bug costs the file its settings, not the import
                log.warning("the metadata of %s could not be read; taken as none", path, exc_info=True)
                settings = None
    except OSError:  # a folder named .png, unreadable, or gone since the scan
        return None
    settings = storable(settings or {})
    return rel, settings, import_date(settings, stat.st_mtime), stat.st_size, None


def _newest_first(new: dict[str, str]) -> list[tuple[str, str]]:
    """``new``'s (rel, path) by file time, newest first: the gallery lists the newest first, so the import fills it
    from the top and each batch goes below the last one, instead of pushing what the user looks at down. By file
    time, not by the date the settings give (``import_date``): that one is in the file, and reading every file
    before the first batch left the gallery empty meanwhile (minutes on a slow disk). A copy that did not keep the
    file times fills in out of order, each row put where its date sorts (``GalleryModel.insert_records``)."""
    dated = []
    for rel, path in new.items():
        try:
            dated.append((os.stat(path).st_mtime, rel, path))
        except OSError:  # gone since the scan
            continue
    dated.sort(reverse=True)
    return [(rel, path) for _mtime, rel, path in dated]


def _import_batches(new: dict[str, str], stop: threading.Event, seconds: float) -> Iterator[list[ImportRow]]:
    """The rows of ``new``'s PNGs, newest first, ``_IMPORT_BATCH`` at a time, or fewer when reading them took
    ``seconds`` (a slow disk: the gallery still fills in); stops between two files once ``stop`` is set."""
    batch: list[ImportRow] = []
    began = time.monotonic()
    for rel, path in _newest_first(new):
        if stop.is_set():
            return
        if (row := read_new_file(rel, path)) is not None:
            batch.append(row)
        if batch and (len(batch) >= _IMPORT_BATCH or time.monotonic() - began >= seconds):
            yield batch
            batch, began = [], time.monotonic()
    if batch:
        yield batch


def reconcile(store: Store, data: DataDir) -> ReconcileReport:
    """``check_folder``, then the old trash of another drive gathered and the new files imported before it returns.
    The app does both after its window is up instead (``FolderImport``)."""
    report, new = check_folder(store, data)
    if report.gather_later:  # no window to show first
        if (notice := gather_notice(data, gather_trash(data))) is not None:
            report.notices.append(notice)
        repair_after_gather(store, data, list_folders(data))
    report.imported += len(import_files(store, new))
    return report


def import_files(store: Store, new: dict[str, str]) -> list[str]:
    """Imports the files ``new`` (path relative to the images folder -> path) at once, as start-up does, a batch per
    commit; returns the paths recorded (a file that is no PNG, or gone, is left alone)."""
    added: list[str] = []
    for rows in _import_batches(new, threading.Event(), math.inf):
        store.add_images(rows)
        added += [row[0] for row in rows]
    return added


def _database_unusable(exc: Exception) -> bool:
    """Whether ``exc`` says the database takes no row now (a full disk, an I/O error, a damaged or closed file),
    rather than that it refuses one row (text it cannot hold, a value out of range): then recording a batch's images
    one at a time cannot help."""
    return isinstance(exc, sqlite3.Error) and not isinstance(
        exc, (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError)
    )


class FolderImport(QObject):
    """Imports the new files ``check_folder`` found while the window is up: a first start with 30,000 images in
    the folder read them all before the window showed (90 s of nothing on screen, as if hung). A thread reads
    them (files only), at most ``_IN_FLIGHT`` batches ahead; each batch is committed on the Qt thread, the one the
    Store's connection belongs to, then handed to the gallery (``imported``). ``status`` says how far it is.
    ``stop`` (closing the window) drops what was read and not committed: every batch is one commit, so nothing is
    half-recorded, and the files without a row are imported at the next start.

    Before the import, the same thread gathers the old trash of another drive (``ReconcileReport.gather_later``):
    copied across drives, it held the window back for minutes with nothing on screen. ``gathering`` says it is
    under way, from the start until the old trash is gathered and the repairs done after it (the gallery's Undo and
    Empty trash wait for it: ``GalleryModel.wait_for_gather``); closing stops it between two files, the rest
    gathered at the next start. The same thread lists the folders for those repairs (``list_folders``).

    The pictures put in the images folder later, while the app runs, are imported the same way (``import_more``,
    which ``app.folder_watch`` calls): each such import is a run of its own, after the one under way, with its own
    thread, stop and status; ``running`` is true while any is under way."""

    status = Prop("")
    status_changed = Signal(str)
    running = Prop(False)  # from the start, while files are left to import or gather (also before ``start``)
    running_changed = Signal(bool)
    # At the end of the gathering: whether entries changed, and the paths of the pictures moved back to the images
    # folder (``repair_after_gather``)
    trash_gathered = Signal(bool, list)
    imported = Signal(list)  # list[ImageRecord] of a batch just committed
    history_changed = Signal()  # at the end, when images gave the history prompts back (after a damaged database)
    # EngineError notices: files the database refused (at the end), or why the import stopped (the database could
    # not take a batch, the reading broke off)
    failed = Signal(object)
    notice = Signal(object)  # EngineError: the files of the old trash that could not be gathered (``gather_notice``)

    def __init__(self, store: Store, data: DataDir, new: dict[str, str], report: ReconcileReport,
                 recovery: Recovery | None = None, parent: QObject | None = None) -> None:  # fmt: skip
        """``report``: counts the images imported; ``recovery``: after a lost database (``Store.recovery``), which
        ends once all are imported."""
        super().__init__(parent)
        self._store, self._data, self._new, self.report, self._recovery = store, data, new, report, recovery
        # The run under way's (each run has its own, given to its thread: a run that ended never takes the next's)
        self._stop = threading.Event()
        self._in_flight = threading.Semaphore(_IN_FLIGHT)  # taken by the thread per batch, given back as committed
        self._thread: threading.Thread | None = None
        self._prompts_added = False
        self._refused: list[str] = []  # the files the database refused (their paths in the images folder)
        self._imported = 0  # by the run under way
        self._more: dict[str, str] = {}  # files found since start-up (``import_more``), for the next run
        self._started = self._closed = False
        self._done_shown = QTimer(self, singleShot=True, interval=_DONE_SHOWN_MS)
        self._done_shown.timeout.connect(self._clear_status)
        self.gathering: bool = report.gather_later
        self.running = bool(new) or self.gathering
        # The rows an earlier version imported by their file times, dated again once, beside the import
        self.dates = ImportDates(store, data, self)

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.dates.start()
        if not self.running:  # nothing left: a recovery's last batch was committed by a start cut short after it
            self._end_recovery()
            self._next_run()  # files found meanwhile, if any
            return
        self._begin()

    def import_more(self, new: dict[str, str]) -> None:
        """Files put in the images folder since start-up (path relative to it -> path; ``app.folder_watch``),
        imported as start-up's are, once the run under way (if any) has ended: the window's status says so, and the
        gallery shows each batch as it is committed. A file the database has a row of by then is left out."""
        self._more.update(new)
        if self._started and not self.running:
            self._next_run()

    def _next_run(self) -> None:
        """The files of ``import_more`` not imported yet, in a run of their own (none after closing)."""
        if self._closed or not self._more:
            return
        self._new, self._more = self._more, {}
        self._stop, self._in_flight = threading.Event(), threading.Semaphore(_IN_FLIGHT)
        self._prompts_added, self._refused, self._imported = False, [], 0
        self._recovery = None  # start-up's run ended it, or left it to the next start
        self.running = True
        self._begin()

    def _begin(self) -> None:
        """The run under way started on its thread, said in ``status``."""
        self._done_shown.stop()  # the last run's "N images imported" is replaced, never cleared under this one's
        self.status = ("Moving the old trash…" if self.gathering
                       else f"Importing {counted(len(self._new), 'image')} from the images folder…")  # fmt: skip
        # A daemon: a quit does not wait for the file it reads (it writes nothing); no QThread Qt could abort on.
        self._thread = start_thread("Image import", self._run, self._new, self._stop, self._in_flight)

    def stop(self) -> None:
        """Closing: nothing more is committed (the Store closes next), nor said (the window goes)."""
        self._closed = True
        self.dates.stop()
        self._halt()
        self._done_shown.stop()
        if self._thread is not None:
            self._thread.join(_STOP_WAIT_S)

    def _halt(self) -> None:
        """Nothing more read nor committed; the thread, if it waits for a batch to be taken, goes on and ends."""
        self._stop.set()
        self._in_flight.release()

    def _run(self, new: dict[str, str], stop: threading.Event, in_flight: threading.Semaphore) -> None:
        """On the thread of a run of the files ``new``: the batches, read and handed to the Qt thread, then the end,
        whatever broke the reading off: an error here left the status at "Importing N images…" for good, with
        nothing said. ``stop`` and ``in_flight``: the run's own (the Qt thread's are the next run's once it ended)."""
        why = ""
        try:
            if self.gathering:
                self._gather(stop)
                if stop.is_set():
                    return
            for rows in _import_batches(new, stop, _BATCH_SECONDS):
                in_flight.acquire()  # given back by ``_on_read``, or by ``_halt``
                if stop.is_set():
                    return
                to_qt_thread(self._on_read, stop, in_flight, rows)
        except Exception as exc:
            if not stop.is_set():  # else the window is closing: not news
                log.exception("reading the new files in %s failed: the import stopped", self._data.images)
                why = str(exc) or type(exc).__name__
        finally:
            if not stop.is_set():
                to_qt_thread(self._on_done, stop, why)

    def _gather(self, stop: threading.Event) -> None:
        """On the thread: the old trash gathered, then the folders listed for the repairs after it, which the Qt
        thread makes (the Store's connection is its own), also when the gathering broke off."""
        gathered = None
        try:
            gathered = gather_trash(self._data, stop, functools.partial(to_qt_thread, self._on_moving))
        finally:
            if not stop.is_set():
                to_qt_thread(self._on_gathered, gathered, list_folders(self._data))

    def _on_moving(self, done: int, files: int) -> None:
        if self.gathering and not self._stop.is_set():
            self.status = f"Moving the old trash: {done} of {counted(files, 'file')}…"

    def _on_gathered(self, gathered: TrashGathered | None, listed: Listed | None) -> None:
        """On the Qt thread: the old trash gathered (None: the gathering broke off), start-up's repairs done for its
        files on the folders as ``listed`` after it (None: not listed, left to the next start), the gallery told,
        and what could not be moved said."""
        if self._stop.is_set() or not self.gathering:
            return
        changed, back = False, []
        try:
            if listed is not None:
                changed, back = repair_after_gather(self._store, self._data, listed)
        except (sqlite3.Error, OSError):  # as at start-up (``AppController``): the next start repairs it
            log.exception("the repairs after gathering the old trash failed")
        self.gathering = False
        self.trash_gathered.emit(changed, back)
        if self._new:
            self.status = f"Importing {counted(len(self._new), 'image')} from the images folder…"
        if gathered is not None and (notice := gather_notice(self._data, gathered)) is not None:
            self.notice.emit(notice)

    def _on_read(self, stop: threading.Event, in_flight: threading.Semaphore, rows: list[ImportRow]) -> None:
        """On the Qt thread: a batch of the run of ``stop`` and ``in_flight`` committed (with its stars and history
        entries after a damaged database), but for the files that have a row by now: a picture the engine saved,
        a row of the gallery's already (committed again, its record was listed twice)."""
        in_flight.release()
        if stop.is_set():  # closing, or the run ended
            return
        try:
            added = self._commit([row for row in rows if not self._store.has_path(row[0])])
            records = self._store.images_at(added)
        except sqlite3.Error as exc:  # e.g. a full disk: the app goes on with what is there
            log.exception("importing the new images failed")
            self._finish(EngineError(
                "notice", f"Not all the new images found in {self._data.images} could be added to the gallery: "
                f"the gallery database {self._store.path} could not be written ({exc}). "
                f"{counted(self._imported, 'image')} {were(self._imported)} added.",
                "Check that the data folder can be written and its disk is not full; the others are added at the "
                "next start."))  # fmt: skip
            return
        self.report.imported += len(added)
        self._imported += len(added)
        if records:
            self.imported.emit(records)
        self.status = (f"Importing {counted(len(self._new), 'image')} from the images folder… "
                       f"({self._imported} done)")  # fmt: skip

    def _commit(self, rows: list[ImportRow]) -> list[str]:
        """Records ``rows`` in one commit; if the database refuses one of them, one at a time, without those it
        refuses (named at the end): one such file kept its whole batch out, at every start. Returns the paths
        recorded; raises when the database takes no row (``_database_unusable``)."""
        try:
            favorites, prompts = self._recovered(rows)
            self._store.add_images(rows, favorites, prompts)
        except Exception as exc:
            if _database_unusable(exc):
                raise
            if len(rows) > 1:
                log.warning("a batch of %d new images could not be recorded (%s): recorded one at a time", len(rows),
                            exc)  # fmt: skip
                return [path for row in rows for path in self._commit([row])]
            log.warning("not imported, the database refused %s: %s", os.path.join(self._data.images, rows[0][0]), exc)
            self._refused.append(rows[0][0])
            return []
        self._prompts_added |= bool(prompts)
        return [row[0] for row in rows]

    def _on_done(self, stop: threading.Event, why: str) -> None:
        """On the Qt thread: every file of the run of ``stop`` read, or the reading broke off (``why``)."""
        if stop.is_set():  # closing, or a batch the database could not take ended it already
            return
        self._on_gathered(None, None)  # broken off while gathering: Undo and Empty trash must not wait for good
        if not why:
            self._finish()
            return
        self._finish(EngineError(
            "notice", f"The import of the new images found in {self._data.images} stopped after "
            f"{counted(self._imported, 'image')} of {len(self._new)} ({why}).",
            "The others are imported at the next start. If it stops again, the log file says where: please report "
            "it."))  # fmt: skip

    def _finish(self, problem: EngineError | None = None) -> None:
        """The run's end, all imported or not (``problem``, said): the history reloaded once if images gave it prompts
        back (also when cut short: those committed are in it), the files the database refused named, once; then the
        files found since (``import_more``), if any, in the next run."""
        self._halt()
        self.running = False
        if problem is None and not self._refused:  # else the next start imports the rest with it
            self._end_recovery()
        if self._prompts_added:  # once: a reload of the list at each batch lost its selection each time
            self.history_changed.emit()
        if problem is None and self._imported:
            self.status = f"{counted(self._imported, 'image')} imported from the images folder."
            self._done_shown.start()
        else:  # nothing imported (a text file named .png), or the notice says how far it went
            self.status = ""
        if refused := self._refused:
            one = len(refused) == 1
            self.failed.emit(EngineError(
                "notice", f"{counted(len(refused), 'image')} in {self._data.images} could not be added to the "
                f"gallery: the gallery database could not record {'its' if one else 'their'} settings "
                f"({named_few(refused)}). {'The file was' if one else 'The files were'} left unchanged and "
                f"{'is' if one else 'are'} tried again at the next start.",
                "The log file says why for each. Saving the picture again with another program, or moving it out of "
                "the images folder, ends this message."))  # fmt: skip
        if problem is not None:
            self.failed.emit(problem)
        self._next_run()

    def _clear_status(self) -> None:
        self.status = ""

    def _end_recovery(self) -> None:
        """Every image of a recovery is back (``Store.end_recovery``); one whose end cannot be written goes on at
        the next start, with nothing left to import."""
        if self._recovery is None:
            return
        try:
            self._store.end_recovery()
        except sqlite3.Error:
            log.exception("the end of the re-import after a lost database could not be recorded")

    def _recovered(self, rows: list[ImportRow]) -> tuple[set[str], list[PromptRecord]]:
        """The stars and history entries ``rows`` get back after a lost database (none otherwise)."""
        if self._recovery is None:
            return set(), []
        prompts = []
        for _rel, settings, created, _size, _sha in rows:
            prompt, negative = prompt_of(settings).strip(), str(settings.get("negative_prompt") or "").strip()
            if prompt:
                prompts.append(PromptRecord(0, prompt, negative, 1, created))
        return self._recovery.favorites, self._store.prompts_to_recover(prompts)
