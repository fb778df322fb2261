"""Pictures put in the images folder while the app runs (by another program, or copied by hand), imported without a
restart: before, only the next start found them.

A ``QFileSystemWatcher`` watches the images folder and every folder under it that is not hidden (it tells of
changes in a folder's own entries only). A change has the folder looked at a moment later (``SETTLE_MS``, once
however many changes come meanwhile): listed on a thread, as start-up lists it (``png_paths``), and each PNG no entry
holds compared with what the last look found. A file is imported only once it is as the last look found it (size and
modification time) and is a whole PNG (``png_problem``): one still being written (growing, or not yet ending as a
PNG ends) is looked at again a moment later, never imported half-written nor said to be damaged. One that stays as
it is for ``GIVE_UP_S`` without becoming a whole PNG is no write under way: it is imported as it is, as start-up
would (the gallery shows it as unreadable).

The files found are imported by start-up's import (``FolderImport.import_more``: a thread reads them, a batch per
commit), after the picture of an entry whose file is gone (renamed or moved) has been given to that entry
(``claim_found_files``). A file found at the path of an entry flagged missing is that entry's own back: once whole
(as a new file), the entry is un-flagged instead. No look is made while an import runs: its files have no row yet.

An entry's file the look did not find (deleted by hand) has its entry flagged missing, as start-up flags it
(``flag_gone_files``), once no file found is still being written (a picture renamed is followed by its entry, never
shown missing meanwhile), and once two looks in a row found it gone with no picture come in between (``_settled``:
a backup copied back a file at a time showed each picture not copied yet as missing until its turn); never while
the images folder itself could not be listed (a drive unplugged: it says nothing of each picture), nor where the
folder holding it could not be read (``NotListed``: its permissions taken away, a failing drive mounted there;
logged once). Nor before start-up's gathering of the old trash from another drive has ended, when an
entry's picture may still wait there: no look is made before (the gathering is part of the import's run).

An images folder that cannot be listed (removed, moved away, its drive unplugged) is looked at again every
``AWAY_MS`` until it can be: a folder's watch ends when it is removed (when it is moved too, where Qt polls for
want of the system's watches), and nothing tells of a folder made again at its place (a backup put back): the
pictures put in it then came in only at the next start. Meanwhile the window says so (``away``: only the log did,
and the next job was refused). Once it is back, it and its folders are watched anew, and looked at again once
their watches are set (a file put in one between the look's listing and its watch was found at its next change
only).
Linux tells a folder's watch nothing when the folder is moved (renamed): the watch of the folder holding the images
folder does, and a change there has it looked at when the folder at its path is no longer the one watched (its
device and inode, ``identity``): moved away, or another moved in its place (a backup), watched anew at once. A
look that fails (an error on its thread, or the gallery database's) is made again after ``AWAY_MS`` too: the change
that asked for it told of it already, and the pictures it would have found waited for the next change. Such a
failure that lasts is logged once when it starts, changes kind or ends (``LastingFailure``), not at each try.

The app's own writes are not imported a second time: a picture the engine saves has its row committed (the Qt
thread's ``image_saved``) long before a second look can find it unchanged, and ``FolderImport`` leaves out a file
that has a row by the time its batch is committed. A picture Undo brings back, or Save as writes over one in the
gallery, has its row already.

No file-system call of the images folder's is made on the Qt thread (a dead network mount or a failing drive in it
froze the window): the looks list and stat on their thread, the check of which folder is at its path after its parent
changed runs on a thread of its own (one at a time), and the watch of a folder new to the watch is set once a look
found it there. Qt's ``addPaths`` itself stats the folder and sets the system's watch on the Qt thread (a stat and an
``inotify_add_watch`` of its path, seen with strace): made only a moment after the look's thread found it answering.
A look with no answer for ``SLOW_MS`` (such a mount: its listing may never return) is logged once and said above
the grid (``away``) until it returns; no second look of the tree is started behind it, the changes told of meanwhile
have it looked at once it returns.

While a folder the system will not watch is there (Linux's limit of watched folders, inotify's
``max_user_watches``, reached), the images folder is looked at every ``POLL_MS`` too, which the log says once per
such folder: before, the pictures put in it were found at the next start only."""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import time
from collections.abc import Container, Set
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal

from app.background import Lookup, Lookups
from app.data_dir import DataDir
from app.engine_errors import EngineError, classify
from app.gallery_model import GalleryModel
from app.image_files import NotListed, folder_at, png_paths
from app.lasting_failure import LastingFailure
from app.observable import Prop
from app.reconcile import UNREAD_POLL_MS, FolderImport, claim_found_files, flag_gone_files, valid_name
from app.store import Store
from gpu.generation.png_metadata import png_problem

log = logging.getLogger(__name__)

# How long after a change the folder is looked at, and how often again while files in it are still being written.
SETTLE_MS = 1000
# How often the folders the system will not watch, or that cannot be read, are looked at instead (a look lists the
# whole images folder: a few seconds of a thread at 30,000 pictures on a slow disk, too much to make every second).
POLL_MS = UNREAD_POLL_MS  # start-up's notice of a folder not read says it
# How long a file may stay as it is without being a whole PNG before it is taken for one that will stay so (a
# damaged picture, a file that is no PNG) and imported as start-up would import it.
GIVE_UP_S = 60.0
# How often the images folder is looked at while it cannot be listed (``FolderWatch``): one failed listing; and how
# long after a look that failed (its error, or the database's) it is made again.
AWAY_MS = 5000
# How long a look may go without an answer before the log and the window say so (``FolderWatch._not_answering``): a
# dead network mount or a failing drive in the images folder holds its listing, maybe for good, and every later look
# waited behind it without a word.
SLOW_MS = 30_000

Stamp = tuple[int, int]  # a file's size and modification time (ns): what changes while it is written
Identity = tuple[int, int]  # a folder's device and inode: another folder at the same path has another


def identity(folder: Path) -> Identity | None:
    """Which folder is at ``folder`` now, None where none is (or it cannot be reached)."""
    try:
        stat = os.stat(folder)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


@dataclass(frozen=True)
class Sighting:
    """A file without an entry as a look found it."""

    stamp: Stamp
    since: float  # when it was first found with this stamp (``time.monotonic``)
    handed: bool = False  # handed to the import as it is: not again while it stays so (no PNG, or refused)


@dataclass(frozen=True)
class Look:
    """What one look at the images folder found (``look_at_folder``)."""

    folders: list[str]  # the folders listed: the images folder and those under it that are not hidden
    listed: frozenset[str]  # every PNG's path relative to the images folder
    ready: dict[str, str]  # the files to import now, or a missing entry's back (relative path -> path)
    seen: dict[str, Sighting]  # the files without an entry, for the next look to compare with
    reached: bool  # whether the images folder itself could be listed
    gone: frozenset[str] = frozenset()  # the paths of entries with a file that the listing lacks
    identity: Identity | None = None  # which folder was at the images folder's path when listed
    # The folders that are there but could not be read (relative, ending in "/"; ``png_paths``), with why: their
    # entries are not gone
    unreadable: dict[str, str] = field(default_factory=dict)
    away: EngineError | None = None  # why the images folder could not be listed, as a job refused for it says it
    # The folders listed that are still folders at its end, to watch: looked at on the look's thread (a stat on the
    # window's thread froze it on a dead mount), one removed since its listing left out (Qt's watch refused it,
    # which was taken for the system's limit of watches)
    there: list[str] = field(default_factory=list)

    @property
    def waiting(self) -> list[str]:
        """The files still being written: looked at again."""
        return [rel for rel, sighting in self.seen.items() if not sighting.handed]


def _stamp(path: str) -> Stamp | None:
    try:
        stat = os.stat(path)
    except OSError:  # gone since the listing
        return None
    return stat.st_size, stat.st_mtime_ns


def look_at_folder(data: DataDir, with_file: Set[str], trashed: Container[str], seen: dict[str, Sighting]) -> Look:
    """On a thread: the images folder listed, and each PNG at no entry's path (``with_file``: the gallery's entries
    with a file, ``trashed``: the trash's; ``Store.watched_paths``) compared with the last look's ``seen``: ready to
    import (or to be a missing entry's file again) when unchanged since, and a whole PNG (or unchanged for
    ``GIVE_UP_S``); and the entries of ``with_file`` not listed, once the images folder itself was, and is no empty
    mount point left by its drive (``DataDir.images_away``); and the folders listed that are still there. A name that
    is no valid text is left to start-up, which names it."""
    now = time.monotonic()
    images = data.images
    at = identity(images)  # before the listing: a folder put in its place since is looked at again
    folders: list[str] = []
    unreadable: dict[str, str] = {}
    listing = png_paths(images, folders, unreadable)
    ready: dict[str, str] = {}
    kept: dict[str, Sighting] = {}
    for rel, path in listing.items():
        if rel in with_file or rel in trashed or not valid_name(rel) or (stamp := _stamp(path)) is None:
            continue
        before = seen.get(rel)
        if before is None or before.stamp != stamp:  # new, or written since the last look
            kept[rel] = Sighting(stamp, now)
        elif before.handed or (png_problem(path) and now - before.since < GIVE_UP_S):
            kept[rel] = before  # handed already, or not whole yet: a write under way
        else:
            ready[rel] = path
            kept[rel] = replace(before, handed=True)
    why = data.images_away()  # its drive unmounted, the empty folder it was mounted on is listed: it holds none
    reached = folders[:1] == [os.fspath(images)] and why is None  # listed first: else it could not be
    # nothing is known gone where the images folder could not be listed (gone, unplugged), nor under a folder that
    # could not be read
    unknown = NotListed(tuple(unreadable))
    gone = frozenset(rel for rel in with_file.difference(listing) if rel not in unknown) if reached else frozenset()
    away = None if why is None else classify(why)
    there = [folder for folder in folders if os.path.isdir(folder)]
    return Look(folders, frozenset(listing), ready, kept, reached, gone, at, unreadable, away, there)


def look_or_error(*args: Any) -> Look | Exception:
    """``look_at_folder``, its error returned rather than raised: the watch logs a failure that lasts once
    (``LastingFailure``), where the thread logged its traceback at each try, every ``AWAY_MS``."""
    try:
        return look_at_folder(*args)
    except Exception as exc:
        return exc


class FolderWatch(QObject):
    """Watches the images folder from ``start`` to ``stop`` and imports what is put in it (see the module's text)."""

    # While the images folder cannot be listed (removed, moved away, its drive unplugged): what the window says of it
    # for as long as it lasts (``AWAY_SAID``); "" while it is there
    away = Prop("")
    away_changed = Signal(str)
    said = Signal(str)  # a passing word for the status bar: the images folder is back

    def __init__(self, store: Store, data: DataDir, folder_import: FolderImport, gallery: GalleryModel,
                 parent: QObject | None = None, unreadable: dict[str, str] | None = None) -> None:  # fmt: skip
        """``unreadable``: the folders in the images folder that start-up could not read, and said
        (``ReconcileReport.unreadable``): logged again only once they can be read."""
        super().__init__(parent)
        self._store, self._data, self._import, self._gallery = store, data, folder_import, gallery
        self._watcher = QFileSystemWatcher(self)
        self._watcher.directoryChanged.connect(self._changed)
        # The folder holding the images folder: Linux tells the watch of a folder nothing when it is moved (renamed),
        # its parent's watch does (the database's writes there too: only another folder at its path is looked at)
        self._parent = QFileSystemWatcher(self)
        self._parent.directoryChanged.connect(self._parent_changed)
        self._identity: Identity | None = None  # the folder at the images folder's path that is watched
        self._timer = QTimer(self, singleShot=True, interval=SETTLE_MS)
        self._timer.timeout.connect(self._look)
        # the folders the system refused to watch: looked at every POLL_MS, as while a folder cannot be read
        self._unwatched: set[str] = set()
        self._poll = QTimer(self)
        self._poll.timeout.connect(self._changed)  # a method, not a lambda holding the watch: gone with it
        self._lookups = Lookups("Images folder", self)
        self._lookups.ended.connect(self._looked)
        self._looking: Lookup | None = None
        # A look without an answer for SLOW_MS: said (``_not_answering``) until it ends
        self._slow = QTimer(self, singleShot=True, interval=SLOW_MS)
        self._slow.timeout.connect(self._not_answering)
        self._hung = False
        # Which folder is at the images folder's path, asked on a thread when its parent changes (one at a time: on
        # a dead mount the stat never ends, and the threads piled up); another change meanwhile asks again after
        self._checks = Lookups("Images folder", self)
        self._checks.ended.connect(self._checked)
        self._checking: Lookup | None = None
        self._check_again = False
        self._seen: dict[str, Sighting] = {}
        self._last: Look | None = None  # the last look that listed the images folder: what it found gone
        # the folders in it the last look (or start-up) could not read: said once each
        self._unreadable: dict[str, str] = dict(unreadable or {})
        self._due = False  # a look was asked for while one could not be made: made once it can
        self._away = False  # the last look could not list the images folder: looked at again every AWAY_MS
        self._failure = LastingFailure(log)  # the folder away, the looks or the database failing: logged once
        self._on = False
        self.looks = 0  # looks made, for the tests
        folder_import.running_changed.connect(self._import_running)

    @property
    def waiting(self) -> list[str]:
        """The files found without an entry that are still being written (relative to the images folder)."""
        return [rel for rel, sighting in self._seen.items() if not sighting.handed]

    def start(self) -> None:
        """Watching from now on; a first look soon (the files put in since start-up listed the folder), which sets
        the watches of the folders it lists and has them looked at again once set. No file-system call of the
        images folder's is made on the window's thread: on a dead mount it froze the window."""
        self._on = True
        self._parent.addPath(os.fspath(self._data.images.parent))  # the data folder: the database's, used here
        self._timer.start(SETTLE_MS)

    def stop(self) -> None:
        """Closing: no look starts, nor is one under way used (the database closes next), nor said to have no answer
        (the log said so of a watch stopped, while the closing's dialog of a failed save kept events running)."""
        self._on = False
        for timer in (self._timer, self._poll, self._slow):
            timer.stop()
        for watcher in (self._watcher, self._parent):
            if folders := watcher.directories():
                watcher.removePaths(folders)

    def _changed(self, _folder: str = "") -> None:
        """A watched folder's entries changed, or the time came to look at those not watched (``POLL_MS``): looked at
        once the moment has passed (not again for each change)."""
        if self._on and (not self._timer.isActive() or self._timer.interval() != SETTLE_MS):
            self._timer.start(SETTLE_MS)

    def _parent_changed(self, _folder: str = "") -> None:
        """The images folder's parent changed: looked at if the images folder was moved away, or another put in its
        place (a stat, on a thread: the database's every write changes the parent too, and on a dead mount the stat
        froze the window); once the check under way has ended, if one is."""
        if not self._on:
            return
        if self._checking is not None:
            self._check_again = True
            return
        self._check_again = False
        check = functools.partial(identity, self._data.images)
        self._checking = self._checks.start("checking the images folder", check)

    def _checked(self, lookup: Lookup) -> None:
        """Which folder is at the images folder's path, asked by ``_parent_changed``: another than the one watched,
        or none, is looked at."""
        if lookup is not self._checking:
            return
        self._checking = None
        if lookup.error is None and lookup.result != self._identity:
            self._changed()
        if self._check_again:
            self._parent_changed()

    def _import_running(self, running: bool) -> None:
        if not running and self._due:
            self._changed("")

    def _look(self) -> None:
        """The folder looked at on a thread, unless a look or an import is under way (then once they end)."""
        if not self._on:
            return
        if self._looking is not None or self._import.running:
            self._due = True
            return
        self._due = False
        try:
            with_file, trashed = self._store.watched_paths()
        except sqlite3.Error as exc:  # the import says it when it commits
            self._not_compared(exc, "the images folder could not be compared with the gallery database")
            self._again()
            return
        look = functools.partial(look_or_error, self._data, with_file, trashed, dict(self._seen))
        self._looking = self._lookups.start("looking for new pictures", look)
        self._slow.start()

    def _not_answering(self) -> None:
        """The look under way has had no answer for ``SLOW_MS``: a dead mount or a failing drive in the images
        folder. Logged once, and said above the grid until it ends; no other look is started meanwhile (``_due``:
        one is made once it answers)."""
        if self._looking is None or self._hung:
            return
        self._hung = True
        log.warning("looking for new pictures in the images folder %s has had no answer for %g s (a network or "
                    "external drive in it not answering?): looked at again once it answers", self._data.images,
                    SLOW_MS / 1000)  # fmt: skip
        self.away = not_answering_said(self._data)

    def _answering(self) -> None:
        """The look that had no answer ended: said in the log, its line taken away (the look's own end may say the
        images folder away again)."""
        self._slow.stop()
        if self._hung:
            self._hung = False
            log.info("the images folder %s answers again", self._data.images)
            if not self._away:
                self.away = ""

    def _looked(self, lookup: Lookup) -> None:
        """A look ended: the folders found watched, the files ready imported, another look soon for those still
        being written, the entries found gone once only, and the folders watched anew (a file put in one before its
        watch was set is listed then)."""
        if lookup is not self._looking:
            return
        self._looking = None
        self._answering()
        if not self._on:
            return
        self.looks += 1
        result = lookup.error if lookup.error is not None else lookup.result
        failed = isinstance(result, BaseException)
        again_soon = False
        if failed:
            self._failure.failed(f"look: {type(result).__name__}: {result}",
                                 f"the images folder {self._data.images} could not be looked at: {result}; looked "
                                 f"at again every {AWAY_MS // 1000} s", "the images folder is looked at as before",
                                 exc_info=result)  # fmt: skip
        else:
            look: Look = result
            self._unwatched.intersection_update(look.folders)  # those gone: asked for again if made again
            self._away_or_back(look)
            again_soon = self._watch(look.there)  # listed before their watch was set: listed again
            seen, self._seen = self._seen, look.seen
            look, unsure = self._settled(look)
            again_soon |= unsure
            if (look.ready or look.gone) and not self._take(look):
                failed, self._seen = True, seen  # the files it found ready are ready again at the next look
            elif not self._away:
                self._failure.ended()
        if self._due or ((self.waiting or again_soon) and not failed):
            self._changed("")
        elif self._away or failed:
            self._again()

    def _again(self) -> None:
        """The folder looked at again in ``AWAY_MS``: it could not be listed, or the look failed. No watch may tell
        of a change before (the images folder away has none; the change that asked for the failed look has told of
        itself already), and a look every ``SETTLE_MS`` would try a lasting failure each second."""
        self._timer.start(AWAY_MS)

    def _settled(self, look: Look) -> tuple[Look, bool]:
        """``look`` with only the entries it found gone that the last look found gone too, with no picture come into
        the folder between the two; and whether some it found gone are left for a look soon to tell. A backup copied
        back file by file (into the images folder made again) showed each picture not copied yet as missing until
        its turn came; a picture deleted by hand is flagged at the look after the one that found it gone, about two
        seconds after the delete."""
        last, self._last = self._last, (look if look.reached else None)
        if last is None or not look.reached or not look.gone:
            return replace(look, gone=frozenset()), bool(look.gone)
        settled = look.gone & last.gone if look.listed <= last.listed else frozenset()
        return replace(look, gone=settled), settled != look.gone

    def _away_or_back(self, look: Look) -> None:
        """The images folder listed (``look.reached``) or not: gone, it is looked at every ``AWAY_MS`` (no watch
        tells of its return), and the window says so (``away``) until it is back (``said``). The watches of its
        folders are ended where it is not the folder watched (each stands for a folder moved or removed with it):
        the one at its path now is watched anew. The folders in it that cannot be read are logged once each."""
        if look.identity != self._identity and (folders := self._watcher.directories()):
            self._watcher.removePaths(folders)
        self._identity = look.identity
        if not look.reached:
            self._away = True
            self.away = away_said(self._data, look.away)
            self._failure.failed("away", f"the images folder {self._data.images} cannot be listed (removed, moved, "
                                 f"or on a drive away): looked at every {AWAY_MS // 1000} s until it is back",
                                 f"the images folder {self._data.images} is back: watched again")  # fmt: skip
            return
        self._log_unreadable(look.unreadable)
        if self._away:
            self._away, self.away = False, ""
            self.said.emit(f"The images folder {self._data.images} is back: watched again, new pictures are saved "
                           "in it.")  # fmt: skip

    def _log_unreadable(self, unreadable: dict[str, str]) -> None:
        """The folders of the images folder that cannot be read now logged, once each; those read again too."""
        images = self._data.images
        for prefix in unreadable.keys() - self._unreadable.keys():
            log.warning("the folder %s in the images folder cannot be read (%s): the entries of its pictures are left "
                        "as they are until it can", folder_at(images, prefix), unreadable[prefix])  # fmt: skip
        for prefix in self._unreadable.keys() - unreadable.keys():
            log.info("the folder %s in the images folder can be read again", folder_at(images, prefix))
        self._unreadable = unreadable

    def _watch(self, folders: list[str]) -> bool:
        """``folders`` (a look found them there: ``Look.there``) watched too, those watched already left as they
        are; those the system refuses to watch are looked at every ``POLL_MS`` instead, said once, and not asked for
        again (each refusal is a line of Qt's in the log), until they are gone from a look. Whether any was not
        asked for before: a file put in it after the look listed it and before its watch was set is found by a look
        made now. Qt's ``addPaths`` stats each folder and sets its watch (``inotify_add_watch``) on this thread: made
        only for the folders new to the watch, which the look's thread found answering a moment before."""
        asked = set(self._watcher.directories()) | self._unwatched
        if new := [folder for folder in folders if folder not in asked]:
            for folder in self._watcher.addPaths(new):
                log.warning("the folder %s cannot be watched (the system's limit of watched folders reached?): it is "
                            "looked at every %g s instead", folder, POLL_MS / 1000)  # fmt: skip
                self._unwatched.add(folder)
        self._poll_while_unseen()
        return bool(new)

    def _poll_while_unseen(self) -> None:
        """The images folder looked at every ``POLL_MS`` while a folder in it is not watched, or cannot be read: no
        watch tells of its permissions given back, nor of a drive mounted there again (start-up's notice of such a
        folder advised a restart, the only thing that read it again)."""
        if not self._unwatched and not self._unreadable:
            self._poll.stop()
        elif not self._poll.isActive():
            self._poll.start(POLL_MS)

    def _take(self, look: Look) -> bool:
        """The files ``look`` found ready: an entry whose file is gone takes its own picture over, a missing entry
        its own file back, the others are imported (``FolderImport.import_more``); then the entries whose file it
        did not find flagged missing, unless a file found is still being written (a rename's new name: its entry
        takes it over at a later look). False where the gallery's database failed: the look is made again."""
        # the entries under a folder that could not be read are not looked at one by one: on a failing drive each
        # stat (on this thread) may take as long as its listing did
        listed = NotListed(tuple(look.unreadable), look.listed)
        try:
            new, back = claim_found_files(self._store, self._data, look.ready, listed)
        except (sqlite3.Error, OSError) as exc:
            self._not_compared(exc)
            return False
        # a failure flagging the gone ones loses neither the files found nor the entries that have theirs again
        gone = [] if look.waiting else self._flag_gone(look.gone)
        if back or gone:  # their entries show their file again, or as missing, where they are listed
            self._gallery.files_back(sorted(back.union(gone or ())))
        if new:
            log.info("%d new picture(s) found in the images folder: imported", len(new))
            self._import.import_more(new)
        return gone is not None

    def _flag_gone(self, gone: frozenset[str]) -> list[str] | None:
        """The entries at ``gone`` flagged missing (``flag_gone_files``): their paths, None where the database
        failed."""
        try:
            return flag_gone_files(self._store, self._data, gone)
        except (sqlite3.Error, OSError) as exc:
            self._not_compared(exc)
            return None

    def _not_compared(self, exc: Exception, said: str = "") -> None:
        """The gallery database's failure said in the log (with its traceback) once while it lasts, on the Qt
        thread."""
        said = said or f"the pictures found in {self._data.images} could not be compared with the gallery"
        self._failure.failed(f"database: {type(exc).__name__}: {exc}", f"{said}: {exc}; tried again every "
                             f"{AWAY_MS // 1000} s", "the gallery database is read and written again as before",
                             exc_info=exc)  # fmt: skip


def not_answering_said(data: DataDir) -> str:
    """What the window says while a look at the images folder has had no answer for ``SLOW_MS``: a dead mount or a
    failing drive in it. Pictures are still saved (the day's folder may answer): only new pictures put in it by
    hand wait."""
    return (
        f"The images folder {data.images} cannot be reached: looking for new pictures in it has had no answer for "
        f"{SLOW_MS // 1000} s, as on a network or external drive that stopped answering. The pictures put in it by "
        "hand are found once it answers. If a drive is mounted in it, connect or mount it again."
    )


def away_said(data: DataDir, why: EngineError | None) -> str:
    """What the window says while the images folder cannot be listed: why, as a job refused for it says it
    (``DataDir.images_away``), what the app does meanwhile, and what to do."""
    message, hint = (why.message, why.hint) if why is not None else (
        f"The images folder {data.images} cannot be listed.", "")
    return f"{message} Nibble Studio looks for it every {AWAY_MS // 1000} s and watches it again once it can be " \
        f"listed. {hint}".strip()  # fmt: skip
