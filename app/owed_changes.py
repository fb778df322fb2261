"""The changes to the model library the app owes (a path to add, a name to remove) until the engine has made
them, and their making at quit or at the next start, when the engine thread could not take them up. Thread-safe:
asked on the GUI thread, made on the engine thread or the quitting GUI thread."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from app.atomic import atomic_write_text
from app.data_dir import DataDir
from gpu.errors import UserError
from gpu.library import ModelLibrary
from gpu.paths import Stamp, file_stamp, same_file

log = logging.getLogger(__name__)


# Held by every write of the model library (add, remove, the start-up's search of the models folder): at quit the
# GUI thread makes the changes the engine never got to (``EngineThread.stop``), and the engine thread may still be
# in a step then.
library_writes = threading.Lock()

ADD, REMOVE = "add", "remove"  # the kinds of ``OwedChanges``: a model's path added, a model's name taken off
# How long the quit waits, in all, for the changes owed (``make_changes_now``): an engine thread that could not
# stop may hold the library's write lock for good (its write on a hung drive), an add may read a file on a drive
# that went away for good, and the quit must not hang.
LIBRARY_WAIT_S = 5.0
OWED_CHANGES = "owed-changes.json"  # in the data folder: the changes asked and not yet made (``OwedChanges``)
# Its name before it held the adds too (removals only): read once, then removed once its removals are recorded anew
OLD_OWED_REMOVALS = "owed-removals.json"


class OwedChanges:
    """The changes to the model library (a path to add, a name to remove) the GUI thread asked the engine for that
    it has not made yet, in the order asked. A thread told to quit drops the calls still queued to it, so a
    change asked for just before the app quit (the wizard's finished model, kept at shutdown; an add or a Remove
    queued behind a generation job, which the quit cancels) never ran: the user's quantized model sat unlisted in
    the models folder, and a model the panel said was being removed was listed again at the next start.
    ``EngineThread.stop`` makes those left here.

    They are also kept in ``record`` (atomically written, in the data folder) from the moment they are asked until
    made: one the quit could not make in its wait (an engine that could not stop, inside a write; a file on a drive
    that hangs) is left unmade (the app exits without waiting for it), and the next start makes those ``record``
    lists (``carried``), in order. An add left only to the next start's search of the models folder was lost for a
    file removed before (the library leaves it out on purpose) or kept outside that folder."""

    def __init__(self, record: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._changes: list[tuple[str, str]] = []
        self._record = record
        # The path each name to remove had in the library when asked: removed by name only while it lists the same
        # path (another model may have been added under that name since, by the CLI)
        self._paths: dict[str, str] = {}
        # The stamp of that file when asked: a file written at that path since (a new quantize run) is not removed
        self._stamps: dict[str, Stamp | None] = {}
        carried = _read_record(record) if record is not None else []
        for kind, value, path, stamp in carried:
            self._changes.append((kind, value))
            if kind == REMOVE:
                self._paths[value], self._stamps[value] = path, stamp
        self._carried = list(self._changes)
        old = None if record is None else record.with_name(OLD_OWED_REMOVALS)
        if old is not None and old.exists() and self._write_record():
            old.unlink(missing_ok=True)  # its removals are in ``record`` now (or it was read there already)

    def put(self, kind: str, value: str, path: str = "") -> None:
        """``value`` (a path for ``ADD``, a name for ``REMOVE``, with ``path``, its path in the library) owed,
        after those asked before. An add drops the removals still owed of the model at that path: the user's
        latest word is that it is listed."""
        # A folder model (diffusers) is not stamped (``file_stamp``): its removal was skipped as "written anew"; it is
        # removed by name and path.
        stamp = file_stamp(path) if kind == REMOVE else None
        with self._lock:
            # Else a removal the engine could not end (a hung drive), made at quit or at the next start, took off
            # the model the user had added back since.
            dropped = [(k, v) for k, v in self._changes if kind == ADD and k == REMOVE and self._at(v, value)]
            for change in dropped:
                self._changes.remove(change)
            self._changes.append((kind, value))
            if kind == REMOVE:
                self._paths[value], self._stamps[value] = path, stamp
            self._write_record()

    def discard(self, kind: str, value: str) -> None:
        """The change made, or refused by the library (once, for each time it was asked)."""
        with self._lock:
            if (kind, value) in self._changes:
                self._changes.remove((kind, value))
                self._write_record()

    def _at(self, name: str, path: str) -> bool:
        """Whether the removal owed of ``name`` is of the model at ``path`` (its path when asked is known)."""
        listed = self._paths.get(name, "")
        return bool(listed) and same_file(listed, path)

    def owed(self) -> list[tuple[str, str]]:
        """The changes still owed, in the order asked (each stays owed until ``discard``)."""
        with self._lock:
            return list(self._changes)

    def path(self, name: str) -> str:
        """The path the model ``name`` had in the library when its removal was asked ("" unknown)."""
        with self._lock:
            return self._paths.get(name, "")

    def rewritten(self, name: str) -> bool:
        """Whether another file is at the path of ``name``'s removal than when it was asked (its size or
        modification time differ); False when that is not known, or no file is there (the removal still holds)."""
        with self._lock:
            path, asked = self._paths.get(name, ""), self._stamps.get(name)
        now = file_stamp(path)
        return asked is not None and now is not None and now != asked

    def carried(self) -> list[tuple[str, str]]:
        """The changes the last session left unmade (read from ``record``), in order, handed out once. They stay
        owed and recorded until each is tried: the caller discards each just before trying it, so one that never
        ends (a file on a hung network drive) is tried at one start only, and those after it are still made at quit
        or at the next start (all dropped at once before the first was tried, they were lost with it)."""
        with self._lock:
            carried, self._carried = self._carried, []
        return carried

    def _write_record(self) -> bool:
        """``record`` as the changes owed now say (removed when none is); under ``_lock``. Returns whether it was
        written. One that cannot be is logged: the change is still made, by the engine or at quit, unless the
        engine cannot stop."""
        if self._record is None:
            return False
        changes = [{"kind": ADD, "path": value} if kind == ADD else _removal(value, self._paths.get(value, ""),
                                                                           self._stamps.get(value))
                   for kind, value in self._changes]  # fmt: skip
        try:
            if changes:
                atomic_write_text(self._record, json.dumps({"changes": changes}, indent=2))
            else:
                self._record.unlink(missing_ok=True)
        except (OSError, UserError) as err:  # OutputError: a full disk, a read-only data folder
            log.warning("the model library changes owed could not be recorded in %s: %s", self._record, err)
            return False
        return True


def _removal(name: str, path: str, stamp: Stamp | None) -> dict[str, object]:
    """The record of the removal of ``name`` (listed at ``path``, its file stamped ``stamp`` when asked)."""
    size, mtime_ns = stamp if stamp is not None else (None, None)
    return {"kind": REMOVE, "name": name, "path": path, "size": size, "mtime_ns": mtime_ns}


def _read_record(record: Path) -> list[tuple[str, str, str, Stamp | None]]:
    """The changes (kind, path or name, path of a removal, its stamp) ``record`` lists, else the removals its old
    name lists; none when neither is there or the one there cannot be read (logged)."""
    for path in (record, record.with_name(OLD_OWED_REMOVALS)):
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            return [_change(c) for c in saved["changes"]] if path == record else \
                [_change({"kind": REMOVE, **r}) for r in saved["removals"]]  # fmt: skip
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError) as err:
            log.warning("the model library changes owed in %s could not be read (%s); none is made", path, err)
            return []
    return []


def _change(saved: dict[str, object]) -> tuple[str, str, str, Stamp | None]:
    """One change of a record, as ``_read_record`` gives it (ValueError, KeyError: not one this version makes)."""
    if saved["kind"] == ADD:
        return ADD, str(saved["path"]), "", None
    if saved["kind"] != REMOVE:
        raise ValueError(f"a change of unknown kind {saved['kind']!r}")
    size, mtime_ns = saved.get("size"), saved.get("mtime_ns")
    stamp = (size, mtime_ns) if isinstance(size, int) and isinstance(mtime_ns, int) else None
    return REMOVE, str(saved["name"]), str(saved.get("path", "")), stamp


def make_change(library: ModelLibrary, owed: OwedChanges, kind: str, value: str, wait_s: float | None = None,
                failed: Callable[[str, str], None] | None = None) -> bool:  # fmt: skip
    """Makes the owed change (``kind``, ``value``) to ``library`` (under ``library_writes``, waited for up to
    ``wait_s``; None: as long as it takes), logged, and discards it from ``owed``. A removal is made again freely:
    a name not listed any more (made already, by a thread that could not stop or before a kill), listed with
    another path than when it was asked, or whose file was written anew since, is left as it is. A change the
    library refuses is logged, told to ``failed`` (message, hint) where given (the quit has no one to tell), and
    discarded: a model not added keeps its file. Returns False, the change still owed (and recorded, for the next
    start), when the lock was not had in time."""
    what = f"adding {value} to" if kind == ADD else f"removing {value!r} from"
    if not library_writes.acquire(timeout=-1 if wait_s is None else wait_s):
        log.warning("%s the model library is left to the next start: another write holds it", what)
        return False
    try:
        if kind == ADD:
            done = f"added {value} as {library.add(Path(value)).name!r} to"
        elif not _still_listed(library, value, owed.path(value)) or owed.rewritten(value):
            done = f"left {value!r} as it is in (removed already, another model by that name now, or its file " \
                "written anew since the Remove)"  # fmt: skip
        else:
            library.remove(value)
            done = f"removed {value!r} from"
        log.info("%s the model library", done)
    except Exception as err:  # noqa: BLE001 - the app is quitting or starting: the next change is still made
        if isinstance(err, UserError):  # the file moved or damaged since, the name gone: the library's own words
            log.warning("%s the model library failed: %s", what, err)
        else:
            log.exception("%s the model library failed", what)
        if failed is not None:
            again = "add the model again" if kind == ADD else "remove the model again"
            failed(f"{what.capitalize()} the model library, as asked in the last session, failed: {err}",
                   getattr(err, "hint", "") or f"{again} from the Models panel")
    finally:
        library_writes.release()
    owed.discard(kind, value)
    return True


def _still_listed(library: ModelLibrary, name: str, path: str) -> bool:
    """Whether ``library`` lists ``name``, at ``path`` where that is known (not ""): the same file, however spelled."""
    listed = library.listed_path(name)
    return listed is not None and (not path or same_file(listed, path))


def make_changes_now(data: DataDir, owed: OwedChanges) -> None:
    """Makes the changes ``owed`` to the model library of ``data`` (the quit's, after the engine's stop), in their
    order (``make_change``), also one the engine took up and could not end, on a helper thread waited for
    ``LIBRARY_WAIT_S`` at most in all: a change not made by then stays recorded, and the next start makes it.
    Quick for a model the quantizer has just written: its checksum is not read again."""
    # One deadline for all, the lock's waits and the writes: an add owed behind a removal the stuck engine holds
    # the lock in waited for it for good, and an add of a file on a drive gone away read it for good, on the GUI
    # thread: the app never exited. The helper left running is a daemon, which does not hold up the exit.
    deadline = time.monotonic() + LIBRARY_WAIT_S

    def make_all() -> None:
        for kind, value in owed.owed():
            make_change(ModelLibrary(data.root), owed, kind, value, max(0.0, deadline - time.monotonic()))

    helper = threading.Thread(target=make_all, name="owed library changes", daemon=True)
    helper.start()
    helper.join(max(0.0, deadline - time.monotonic()))
    if helper.is_alive():
        log.warning("the model library changes still owed are left to the next start (a change did not end in %s s: "
                    "a file on a drive that does not answer?): %s", LIBRARY_WAIT_S, owed.owed())
