"""Opening the gallery database at start-up, repairing what can be repaired.

A damaged file ("not a database", "malformed") is moved aside with its journal files (``gpu.damaged_files``) and a
fresh database is started; the controller then re-imports the images folder (``app.reconcile``), so the
gallery comes back from the PNGs' own metadata. The history and the stars that can still be read from the damaged
file (``salvage``) are kept in the new database's first commit (``Store``'s ``recovering``) until that import has
ended: the import runs while the window is in use, and one cut short by a quit or a crash goes on at the next start
with them (``Store.recovery``). A database that cannot be opened or created at all (read-only
folder, disk I/O error, locked by another program, written by a newer version) raises ``StoreUnavailable``, whose
message names the path.

A database missing, or empty (0 bytes: SQLite takes that for a new database, and deletes its journal on opening),
while the images folder holds PNGs is no first start: its stars and history are gone. It is handled as a damaged
one (an empty file kept aside, its journal with it), so that the history is rebuilt from the PNGs and the user is
told; a true first start (no images) stays silent. The journal files a missing database left (its -wal may hold
every change since its last checkpoint, megabytes of history after a crash) are kept aside too, each under its own
name: SQLite deletes them when it creates the new database.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from app.data_dir import DataDir
from app.engine_errors import StartupRefused
from app.image_files import holds_png
from app.store import SCHEMA_VERSION, PromptRecord, Salvaged, Store, UpgradeFailed
from gpu.damaged_files import move_aside

log = logging.getLogger(__name__)

# SQLite's files beside the database move with it: a stale journal beside a fresh database could be replayed into it.
JOURNAL_FILES = ("-wal", "-shm", "-journal")
_DAMAGED_CODES = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB (primary codes; literal for Python 3.10)
# A file SQLite could not reach or write: SQLITE_PERM, _READONLY, _IOERR, _FULL, _CANTOPEN; and their words, for a
# Python without the codes (3.10)
_ACCESS_CODES = (3, 8, 10, 13, 14)
_ACCESS_WORDS = ("permission", "readonly", "read-only", "disk i/o", "full", "unable to open")
# A file another program holds locked past SQLite's wait: SQLITE_BUSY, _LOCKED ("database is locked", "database table
# is locked")
_LOCK_CODES = (5, 6)
_LOCK_WORDS = ("locked",)


@dataclass
class OpenedStore:
    store: Store
    damaged_copy: Path | None = None  # where a damaged (or empty) database was kept; None when none was
    damage: str = ""  # what was wrong with it: the store is new and its history must be rebuilt when set
    journals: list[Path] = field(default_factory=list)  # where a missing database's journal files were kept

    @property
    def rebuilt(self) -> bool:
        """Whether the gallery starts anew though images were made before: damaged, empty or missing. A missing
        file has no ``damaged_copy``, and its history is rebuilt from the PNGs alone."""
        return bool(self.damage)


class StoreUnavailable(StartupRefused):
    """The database can be neither opened nor replaced; the app cannot start without one."""


def is_damaged(exc: BaseException) -> bool:
    """True for a file that is not (or no longer) a valid SQLite database, as opposed to one we cannot reach."""
    code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in _DAMAGED_CODES
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text


def _open_checked(path: Path, recovering: Salvaged | None = None) -> Store:
    store = Store(path, recovering)
    try:
        store.check()
    except BaseException:
        store.close()
        raise
    return store


def _refused(path: Path, exc: sqlite3.Error) -> StoreUnavailable:
    """Why the database at ``path`` cannot be used, for a SQLite error ``exc`` that is no damage, in words that fit
    its cause: its folder and disk are named only where SQLite could not reach or write the file, and a lock another
    program holds as such. An upgrade that failed on a row's text, or a lock, was blamed on them ("check that the
    folder is writable")."""
    if _caused_by(exc, _LOCK_CODES, _LOCK_WORDS):
        return StoreUnavailable(
            f"The gallery database {path} is in use by another program ({exc}).",
            "Close the program that has it open (a database browser, a backup or sync tool, Nibble Studio on "
            "another computer that shares this folder), then start Nibble Studio again. Nothing in it was changed.",
        )
    if _caused_by(exc, _ACCESS_CODES, _ACCESS_WORDS):
        return _unavailable(path, exc)
    if isinstance(exc, UpgradeFailed):
        return StoreUnavailable(
            f"The gallery database {path} could not be upgraded from schema {exc.version} to schema {SCHEMA_VERSION} "
            f"(this version's): {exc.reason}.",
            "Nothing in it was changed, and the Nibble Studio that last used it still opens it. The log file has the "
            "details; or start Nibble Studio with another data folder (--data-dir PATH).")  # fmt: skip
    return StoreUnavailable(f"The gallery database {path} cannot be opened: {exc}.",
                            "Nothing in it was changed. The log file has the details; or start Nibble Studio with "
                            "another data folder (--data-dir PATH).")  # fmt: skip


def _caused_by(exc: sqlite3.Error, codes: tuple[int, ...], words: tuple[str, ...]) -> bool:
    """Whether SQLite failed with ``exc`` for one of the causes of primary error ``codes``; by its ``words`` on a
    Python that gives no code (3.10)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in codes
    return any(word in str(exc.__cause__ or exc).lower() for word in words)


def _unavailable(path: Path, reason: object) -> StoreUnavailable:
    """``StoreUnavailable`` for a database its folder or disk keeps from being opened or made, for ``reason``."""
    return StoreUnavailable(
        f"The gallery database {path} cannot be opened: {reason}.",
        f"Check that the folder {path.parent} exists and is writable, and that its disk is healthy and not full; "
        "or start Nibble Studio with another data folder (--data-dir PATH).",
    )


def _lost(path: Path, images: Path) -> str:
    """Why the database at ``path`` is a lost one rather than a first start (see the module's text); "" if not."""
    try:
        size = path.stat().st_size if path.exists() else None
    except OSError:
        return ""  # not readable: opening it says why
    if size not in (None, 0) or not holds_png(images):
        return ""
    if size is None:
        return f"the file was missing, though the images folder {images} holds images"
    return "the file was empty, 0 bytes: its stars and prompt history were lost before this start"


def open_store(path: Path, images: Path | None = None) -> OpenedStore:
    """The gallery database at ``path``, repaired or started anew (see the module's text). ``images``: the images
    folder, by default the one beside it (``DataDir``'s layout)."""
    path = Path(path)
    damage = _lost(path, DataDir(path.parent).images if images is None else images)
    journals = [] if path.exists() else _keep_journals(path)
    why = damage
    if not damage:
        try:
            return OpenedStore(_open_checked(path), journals=journals)
        except sqlite3.Error as exc:
            if not is_damaged(exc):
                raise _refused(path, exc) from exc
            damage, why = str(exc), f"it is damaged ({exc})"
        except RuntimeError as exc:  # written by a newer version: keep it untouched for that version
            raise StoreUnavailable(
                str(exc), "Update Nibble Studio, or start it with another data folder (--data-dir PATH)."
            ) from exc
        except OSError as exc:
            raise _unavailable(path, exc) from exc
    log.error("gallery database %s: %s; keeping what is there aside and starting a new one", path, why)
    kept = None
    if path.exists():  # a missing one has nothing more to keep
        try:
            kept = move_aside(path, JOURNAL_FILES)
        except OSError as exc:
            raise _unavailable(path, f"{why} and it could not be moved aside ({exc})") from exc
    recovered = _salvaged(kept)
    try:
        try:
            store = _open_checked(path, recovered)
        except sqlite3.Error:  # what was read back may be what the new database refuses: the images still return
            if recovered == ([], set()):
                raise
            log.exception("the history and favorites read back from %s could not be kept", kept)
            store = _open_checked(path, ([], set()))
    except sqlite3.Error as exc:
        raise _refused(path, exc) from exc
    except OSError as exc:
        raise _unavailable(path, exc) from exc
    return OpenedStore(store, kept, damage, journals)


def _keep_journals(path: Path) -> list[Path]:
    """The journal files beside the missing database ``path``, each moved aside (``move_aside``); where they were
    kept. Raises ``StoreUnavailable`` when one cannot be moved: the new database would delete it."""
    kept = []
    for suffix in JOURNAL_FILES:
        journal = Path(f"{path}{suffix}")
        if journal.exists():
            try:
                kept.append(move_aside(journal))
            except OSError as exc:
                raise _unavailable(path, f"the file is missing, and its journal file {journal.name} could not be "
                                   f"moved aside ({exc})") from exc  # fmt: skip
            log.warning("gallery database %s missing: kept its journal file %s as %s", path, journal, kept[-1])
    return kept


def _salvaged(kept: Path | None) -> Salvaged:
    """What ``salvage`` reads back from the copy ``kept`` aside (none: the database was missing)."""
    try:
        if kept is not None:
            return salvage(kept)
    except OSError:  # e.g. no room for the copy it reads
        log.exception("reading back the history and favorites from %s failed", kept)
    return [], set()


def salvage(damaged: Path) -> Salvaged:
    """The prompt history and the favorite images' paths that can still be read from a damaged database (often
    all of it: the damage may be in another table). Reads a copy, so the kept file is never changed."""
    prompts: list[PromptRecord] = []
    favorites: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "damaged.sqlite3"
        try:
            for suffix in ("", "-wal"):
                if Path(f"{damaged}{suffix}").is_file():
                    shutil.copyfile(f"{damaged}{suffix}", f"{copy}{suffix}")
            db = sqlite3.connect(copy)
        except (OSError, sqlite3.Error):
            return prompts, favorites
        try:
            for query, keep in (
                (
                    "SELECT prompt, negative_prompt, uses, last_used FROM prompts",
                    lambda row: prompts.append(
                        PromptRecord(0, str(row[0]), str(row[1] or ""), int(row[2] or 1), float(row[3] or 0))
                    ),
                ),
                # Not "WHERE favorite = 1": sqlite3 steps to the next row before it hands one over, and a step
                # that met a damaged page anywhere after the last favorite dropped that favorite. Unfiltered, the
                # next row is the one beside it.
                ("SELECT path, favorite FROM images", lambda row: row[1] and favorites.add(str(row[0]))),
            ):
                try:
                    for row in db.execute(query):  # rows read before a damaged page are kept
                        keep(row)
                except (sqlite3.Error, ValueError, TypeError) as exc:
                    log.warning("salvaging %s: %s", damaged, exc)
        finally:
            db.close()
    return prompts, favorites
