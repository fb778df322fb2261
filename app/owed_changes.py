"""The changes to the model library the app owes (a path to add, a name to remove) until the engine has made
them, and their making at quit or at the next start, when the engine thread could not take them up. Thread-safe:
asked on the GUI thread, made on the engine thread or the quitting GUI thread."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from app.atomic import atomic_write_text
from app.data_dir import DataDir
from gpu.errors import UserError
from gpu.library import ModelLibrary
from gpu.paths import same_file

log = logging.getLogger(__name__)


# Held by every write of the model library (add, remove, the start-up's search of the models folder): at quit the
# GUI thread makes the changes the engine never got to (``EngineThread.stop``), and the engine thread may still be
# in a step then.
library_writes = threading.Lock()

ADD, REMOVE = "add", "remove"  # the kinds of ``OwedChanges``: a model's path added, a model's name taken off
# How long the quit waits, in all, for the model library's write lock to make the changes owed
# (``make_changes_now``): an engine thread that could not stop may hold it for good (its write on a hung drive), and
# the quit must not hang.
LIBRARY_WAIT_S = 5.0
OWED_REMOVALS = "owed-removals.json"  # in the data folder: the removals asked and not yet made (``OwedChanges``)


class OwedChanges:
    """The changes to the model library (a path to add, a name to remove) the GUI thread asked the engine for that
    it has not made yet, in the order asked. A thread told to quit drops the calls still queued to it, so a
    change asked for just before the app quit (the wizard's finished model, kept at shutdown; an add or a Remove
    queued behind a generation job, which the quit cancels) never ran: the user's quantized model sat unlisted in
    the models folder, and a model the panel said was being removed was listed again at the next start.
    ``EngineThread.stop`` makes those left here.

    The removals are also kept in ``record`` (atomically written, in the data folder) from the moment they are
    asked until made: an engine that could not stop at quit, inside its removal, left it unmade (the app exits
    without waiting for it), and the next start makes those ``record`` lists (``carried``)."""

    def __init__(self, record: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._changes: list[tuple[str, str]] = []
        self._record = record
        # The path each name to remove had in the library when asked: removed by name only while it lists the same
        # path (another model may have been added under that name since, by the CLI)
        self._paths: dict[str, str] = {}
        self._carried = _read_record(record) if record is not None else {}
        for name, path in self._carried.items():
            self._changes.append((REMOVE, name))
            self._paths[name] = path

    def put(self, kind: str, value: str, path: str = "") -> None:
        """``value`` (a path for ``ADD``, a name for ``REMOVE``, with ``path``, its path in the library) owed,
        after those asked before. An add drops the removals still owed of the model at that path: the user's
        latest word is that it is listed."""
        with self._lock:
            # Else a removal the engine could not end (a hung drive), made at quit or at the next start, took off
            # the model the user had added back since.
            dropped = [(k, v) for k, v in self._changes if kind == ADD and k == REMOVE and self._at(v, value)]
            for change in dropped:
                self._changes.remove(change)
            self._changes.append((kind, value))
            if kind == REMOVE:
                self._paths[value] = path
            if kind == REMOVE or dropped:
                self._write_record()

    def discard(self, kind: str, value: str) -> None:
        """The change made, or refused by the library (once, for each time it was asked)."""
        with self._lock:
            if (kind, value) in self._changes:
                self._changes.remove((kind, value))
                if kind == REMOVE:
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

    def carried(self) -> list[str]:
        """The names of the removals the last session left unmade (read from ``record``), taken once."""
        with self._lock:
            carried, self._carried = list(self._carried), {}
        return carried

    def _write_record(self) -> None:
        """``record`` as the removals owed now say (removed when none is); under ``_lock``. A record that cannot be
        written is logged: the removal is still made, by the engine or at quit, unless the engine cannot stop."""
        if self._record is None:
            return
        names = [value for kind, value in self._changes if kind == REMOVE]
        try:
            if names:
                atomic_write_text(self._record, json.dumps(
                    {"removals": [{"name": n, "path": self._paths.get(n, "")} for n in names]}, indent=2))
            else:
                self._record.unlink(missing_ok=True)
        except (OSError, UserError) as err:  # OutputError: a full disk, a read-only data folder
            log.warning("the model removals owed could not be recorded in %s: %s", self._record, err)


def _read_record(record: Path) -> dict[str, str]:
    """The removals (name -> path) ``record`` lists; none when it is not there or cannot be read (logged)."""
    try:
        removals = json.loads(record.read_text(encoding="utf-8"))["removals"]
        return {str(r["name"]): str(r.get("path", "")) for r in removals}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("the model removals owed in %s could not be read (%s); none is made", record, err)
        return {}


def make_change(library: ModelLibrary, owed: OwedChanges, kind: str, value: str, wait_s: float | None = None
                ) -> bool:  # fmt: skip
    """Makes the owed change (``kind``, ``value``) to ``library`` (under ``library_writes``, waited for up to
    ``wait_s``; None: as long as it takes), logged, and discards it from ``owed``. A removal is made again freely:
    a name not listed any more (made already, by a thread that could not stop or before a kill), or listed with
    another path than when it was asked, is left as it is. Nothing can be shown here (the app quits, or starts), so
    a change the library refuses is logged, and discarded: a model not added keeps its file, and the next start's
    search of the models folder says why again (for a model there). Returns False, the change still owed (and a
    removal recorded, for the next start), when the lock was not had in time."""
    what = f"adding {value} to" if kind == ADD else f"removing {value!r} from"
    if not library_writes.acquire(timeout=-1 if wait_s is None else wait_s):
        if kind == REMOVE:
            log.warning("%s the model library is left to the next start: another write holds it", what)
        else:  # not recorded: only the models folder is searched at a start
            log.warning("%s the model library was given up: another write holds it (a model in the app's models "
                        "folder is found and added at the next start; one elsewhere must be added again)", what)
        return False
    try:
        if kind == ADD:
            done = f"added {value} as {library.add(Path(value)).name!r} to"
        elif not _still_listed(library, value, owed.path(value)):
            done = f"left {value!r} as it is in (removed already, or another model by that name now)"
        else:
            library.remove(value)
            done = f"removed {value!r} from"
        log.info("%s the model library", done)
    except UserError as err:  # the file moved or damaged since, the name gone: the library's own words
        log.warning("%s the model library failed: %s", what, err)
    except Exception:  # noqa: BLE001 - the app is quitting or starting: logged, the next change is still made
        log.exception("%s the model library failed", what)
    finally:
        library_writes.release()
    owed.discard(kind, value)
    return True


def _still_listed(library: ModelLibrary, name: str, path: str) -> bool:
    """Whether ``library`` lists ``name``, at ``path`` where that is known (not "")."""
    listed = library.listed_path(name)
    return listed is not None and (not path or str(listed) == path)


def make_changes_now(data: DataDir, owed: OwedChanges) -> None:
    """Makes the changes ``owed`` to the model library of ``data`` on the calling thread (the quitting GUI thread,
    after the engine's stop), in their order (``make_change``), also a removal the engine took up and could not
    end. The write lock is waited for ``LIBRARY_WAIT_S`` at most for them all: a removal not made by then is made
    at the next start (recorded); an add is not recorded, and is left to the next start's search of the models
    folder (``make_change`` logs it). Quick for a model the quantizer has just written: its checksum is not read
    again."""
    # One deadline for all: an add owed behind a removal the stuck engine holds the lock in waited for it for good,
    # and the app never exited
    deadline = time.monotonic() + LIBRARY_WAIT_S
    for kind, value in owed.owed():
        make_change(ModelLibrary(data.root), owed, kind, value, max(0.0, deadline - time.monotonic()))
