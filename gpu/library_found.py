"""Finished quantized models in the app's models folder that the library does not list, added at start-up; and the
files the library leaves off its list on purpose, so that none of those comes back.

The quantize wizard writes its models into the app's models folder and then asks the engine to add them. An add
that never ran (the app quit before the engine got to it, a crash, a kill) left the user's multi-GiB model unlisted
in a folder the app does not show. Start-up therefore adds every finished SVDQ file found there that the library
neither lists nor leaves out on purpose. Unfinished work is never added: a run's ``*.parts`` folder and the
atomic writes' scratch folders and temp files (hidden names) are no ``*.safetensors`` files, a file that is no
SVDQ model (a LoRA put there by hand) is passed over, and a file whose sizes or checksum are wrong is left out.

Left out on purpose, in ``library.json`` under ``unlisted`` (path, size, modification and change times, and why): a
model the user removed (Remove keeps its file, so the next start would add it again), a file found damaged, and one
whose check failed in a way no check names (neither read again at every start; adding it by hand checks it again). Such
a failure may be the app's bug, not the file's: its record also holds the engine's stamp (``gpu.version.engine_stamp``:
the version and a hash of the engine's code) and holds only under it, so the first start of an engine that may have
fixed the bug (an update, or any change to its code: the version number alone stays the same between releases) checks
the file again. The record of a file found damaged (or unchecked) holds only while that very file is there, its size and
both times the same: the change time, which no program sets back, tells a copy put back with the old modification time
(a backup restored with ``cp -p`` in place of the damaged file), which is found. The record of a model the user removed
holds while its file is there with the same size, modification time and header (``head``: an SVDQ file's holds its
data's checksum), whatever its change time (which a chmod or a backup's hard link moves: the model removed came back). A
record whose file is gone or changed (a new run wrote that name again) is forgotten at the next save, and so is one
whose path is listed again (the user added it back). One whose folder is away (the models folder on a drive that is
unplugged) is kept as it is: forgotten, the model the user removed came back once the drive did. A folder is away when
it is not there, or when it is on another device than when the record was made (``dev``: an fstab mount point left empty
once its drive is unmounted is a folder all the same). A model removed while its file cannot be looked at is recorded by
its path alone (no size nor time), whatever its folder looks like: an fstab mount point left empty once its drive is
unmounted cannot be told from a folder the file was deleted from, and the user's removal must hold. Such a record names
the time it was made (``at_ns``) and the device of the folder then (``missing_dev``, none when no folder was there). It
holds for the file found at that path later if that file was last changed before the record (its change time: the model
removed, back with its drive; a file written or put back there since, whatever modification time it was given, is
another), whose size and times it then takes at the next save; with no file there, it holds while the folder is not
there or is on that same device (nothing tells it is gone), and is forgotten once the folder is there on another device
(the drive's own folder, mounted again, without the file). A model deleted for good from a folder that is there keeps
its record so, which leaves out no file written later.
An older version of this format ignores the key, and drops it when it saves."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gpu.version
from gpu.errors import CheckpointError, NewerAppError, UserError
from gpu.model_hash import head_digest
from gpu.out_of_memory import gpu_ran_out, ram_ran_out
from gpu.paths import file_times, resolved, same_file
from gpu.safetensors_header import is_safetensors_name

if TYPE_CHECKING:
    from gpu.library import ModelEntry, ModelLibrary

log = logging.getLogger(__name__)

UNLISTED_KEY = "unlisted"
REMOVED = "removed"  # the user took it off the list
DAMAGED = "damaged"  # found here with wrong sizes or checksum
# The reasons the user or the file gives, which hold under any version of the app (an unexpected failure's is
# this version's only)
LASTING = (REMOVED, DAMAGED)


def unchecked(err: Exception) -> str:
    """Why a file found here whose check failed in a way no check names (``err``) is left out: the error, in short."""
    return f"it could not be checked ({type(err).__name__}: {str(err)[:200]})"


def _record(path: Path, why: str) -> dict[str, Any] | None:
    """The record that leaves the file at ``path`` out, as it is now (with the device of its folder), with this
    engine's stamp where ``why`` is no reason the file itself gives (not ``LASTING``: ``unchecked``); its path alone,
    with the time now and the device of its folder if there is one, when no file can be looked at there (a model
    removed while its drive is unplugged or unmounted: ``_path_record_holds``); None when a folder is there (the search
    looks at files only), or for a path no file can have (a NUL from a hand edit)."""
    version = {} if why in LASTING else {"version": gpu.version.engine_stamp()}
    times = file_times(path)
    if times is None:
        if "\0" in str(path) or os.path.isdir(path):
            return None
        # Whatever its folder looks like: an empty folder may be the mount point of a drive unmounted, which holds
        # the file, and the user's removal must hold once the drive is mounted again
        seen = _folder_device(str(path))
        missing_dev = {} if seen is None else {"missing_dev": seen}
        return {"path": str(path), "why": why, **missing_dev, "at_ns": time.time_ns(), **version}
    device = _folder_device(str(path))
    dev = {} if device is None else {"dev": device}
    size, mtime_ns, ctime_ns = times
    # A removal is of the model, known by its header (an SVDQ file's holds its data's checksum): the change time, which
    # a chmod or a backup's hard link moves, brought the model removed back
    head = {"head": digest} if why == REMOVED and (digest := head_digest(path)) else {}
    return {"path": str(path), "size": size, "mtime_ns": mtime_ns, "ctime_ns": ctime_ns, **head, **dev, "why": why,
            **version}  # fmt: skip


def _holds(record: Mapping[str, Any]) -> bool:
    """Whether ``record`` still leaves its file out: that very file is still there (``_still_that_file``), and a
    record of an unexpected failure was made by this very engine (``engine_stamp``: another may have fixed what
    failed; a record of one without a version, or with a bare version number, is an earlier engine's)."""
    expected = record["why"] in LASTING
    return (expected or record.get("version") == gpu.version.engine_stamp()) and _still_that_file(record)


def _still_that_file(record: Mapping[str, Any]) -> bool:
    """Whether the file a record was made for is still at its path, unchanged (size, modification and change times;
    of a record made before records held the change time, the first two), or may be: the folder that holds it is away
    (``_folder_away``), so that nothing tells it is gone; for a record of its path alone, ``_path_record_holds``. A
    model the user removed is recorded with its header's digest (``head``), which stands for its change time: a
    chmod or a backup's hard link moves that alone."""
    if "size" not in record:
        return _path_record_holds(record)
    times = file_times(record["path"])
    if times is not None:
        if times[:2] != (record["size"], record["mtime_ns"]):
            return False
        if record.get("ctime_ns", times[2]) == times[2]:
            return True
        # Its change time alone moved: a chmod or a backup's hard link leaves a model removed the same model (its
        # header the same); a copy put in place of a damaged file with the old time is another, to check again
        return bool(record.get("head")) and head_digest(Path(record["path"])) == record["head"]
    return _folder_away(record)  # gone, unless its whole folder is away


def _path_record_holds(record: Mapping[str, Any]) -> bool:
    """Whether a record of a path alone (made while no file could be looked at there) still holds: for a file there
    last changed before the record (``at_ns``; its change time: the model removed; one written or put back since is
    another, whatever modification time it was given), and with no file there, while its folder is not there or is
    on the device it was on when the record was made (``missing_dev``: an empty mount point, or a folder the file was
    deleted from; nothing tells which). A folder there on another device is the drive's own, mounted again without
    the file: gone."""
    times = file_times(record["path"])
    if times is not None:
        return times[2] <= record.get("at_ns", times[2])
    device = _folder_device(record["path"])
    return "\0" not in record["path"] and (device is None or device == record.get("missing_dev"))


def _folder_away(record: Mapping[str, Any]) -> bool:
    """Whether the folder of the file of ``record`` is away: not there (a link to an unplugged drive), or on another
    device than the one ``record`` names (``dev``: a mount point whose drive is unmounted is an empty folder of the
    disk it is on). A device seen otherwise at the next plug-in only keeps the record of a file that is gone."""
    device = _folder_device(record["path"])
    return "\0" not in record["path"] and (device is None or device != record.get("dev", device))


def _folder_device(path: str) -> int | None:
    """The device (``st_dev``) of the folder that holds ``path``; None when no folder is there."""
    try:
        st = os.stat(os.path.dirname(path))
    except (OSError, ValueError):  # not there, or a path the system refuses (a NUL from a hand edit)
        return None
    return st.st_dev if stat.S_ISDIR(st.st_mode) else None


def _stamped(record: dict[str, Any]) -> dict[str, Any]:
    """``record``, made of its path alone while its folder was away, as ``_record`` makes it now that its file is
    there (its size, time and device: from now on it holds for that very file only); a model's removal recorded
    without its header's digest (an earlier version's, which compared the change time) with it, taken from the file
    it holds for; any other as it is."""
    if file_times(record["path"]) is None:
        return record
    if "size" in record:
        if record["why"] != REMOVED or "head" in record:
            return record
        return {**record, "head": digest} if (digest := head_digest(Path(record["path"]))) else record
    return _record(Path(record["path"]), record["why"]) or record  # held: its version, if any, is this engine's


def _records(library_file: Path) -> list[dict[str, Any]]:
    """The well-formed records in ``library_file`` (none when it is missing or unreadable: the library itself
    says what is wrong with it)."""
    try:
        data = json.loads(library_file.read_bytes())  # a byte order mark too (``library._parse_library``)
    except (OSError, ValueError, RecursionError):
        return []
    records = data.get(UNLISTED_KEY) if isinstance(data, dict) else None
    if not isinstance(records, list):
        return []
    keys = ("path", "size", "mtime_ns", "ctime_ns", "head", "dev", "missing_dev", "at_ns", "why", "version")
    return [{k: r[k] for k in keys if k in r}
            for r in records if _well_formed(r)]  # fmt: skip


def _well_formed(record: object) -> bool:
    """Whether ``record`` is one ``_record`` wrote (a hand-edited file may hold anything)."""
    if not isinstance(record, dict) or not isinstance(record.get("path"), str):
        return False
    # size and time both, or neither (a record of the path alone, made while the file's folder was away)
    numbers = [record.get("size"), record.get("mtime_ns")] if "size" in record or "mtime_ns" in record else []
    numbers += [record.get(k, 0) for k in ("ctime_ns", "dev", "missing_dev", "at_ns")]
    texts = [record.get("why"), record.get("version", ""), record.get("head", "")]
    return all(isinstance(t, str) for t in texts) and all(type(n) is int for n in numbers)  # a bool is no size


def unlisted_field(library_file: Path, listed: Iterable[Path], leave_out: Mapping[Path, str]) -> dict[str, Any]:
    """The ``unlisted`` part of the library file about to be written: the records ``library_file`` holds now
    that still hold (``_holds``) and whose file is not ``listed`` again, and one per path of ``leave_out`` (path ->
    why). Empty when there are none, so that a library with nothing left out is written as before."""
    listed_now = {str(resolved(p)) for p in listed}
    new = [r for p, why in leave_out.items() if (r := _record(Path(p), why)) is not None]
    new_paths = {str(resolved(Path(r["path"]))) for r in new}
    kept = [_stamped(r) for r in _records(library_file)
            if str(resolved(Path(r["path"]))) not in listed_now | new_paths and _holds(r)]  # fmt: skip
    records = kept + [r for r in new if str(resolved(Path(r["path"]))) not in listed_now]
    return {UNLISTED_KEY: records} if records else {}


def left_out(library_file: Path, path: Path) -> str:
    """Why the library leaves the file at ``path`` out on purpose (``REMOVED``, ``DAMAGED``), "" when it does
    not: no record for it, or one for another file once at that path."""
    key = str(resolved(path))
    for r in _records(library_file):
        if str(resolved(Path(r["path"]))) == key and _holds(r):
            return r["why"]
    return ""


def found_models(folder: Path, listed: Iterable[Path], library_file: Path) -> list[Path]:
    """The files directly in ``folder`` that may be finished SVDQ models the library lacks, by name order:
    ``*.safetensors`` files of no hidden name (scratch and temp files are hidden; parts folders are folders) that
    are not ``listed`` nor left out on purpose in ``library_file``. Read only by name and stat: whether each is
    an SVDQ model, whole, is ``add_found_models``'s to find out."""
    try:
        names = sorted(os.listdir(folder))
    except OSError:  # no models folder (yet), or one that cannot be read: nothing found
        return []
    listed = list(listed)
    found = []
    for name in names:
        path = Path(folder) / name
        if name.startswith(".") or not is_safetensors_name(name) or not path.is_file():
            continue
        if any(same_file(path, p) for p in listed):
            continue
        if why := left_out(library_file, path):
            # in the log: that very file (its change time the record's), or the model removed, back with its drive
            log.info("not adding %s, found in the models folder: left out (%s); adding it in the Models panel lists "
                     "it again", path, why)
            continue
        found.append(path)
    return found


def add_found_models(library: ModelLibrary, folder: Path, listed: Iterable[Path]) -> list[ModelEntry]:
    """Adds the finished SVDQ models ``found_models`` finds in ``folder`` (the app's models folder) to
    ``library``, each after its full check (sizes and checksum: a file cut short or damaged is recorded as left
    out, never added); returns the entries added. A file that is no SVDQ model is passed over; one whose check fails
    in a way no check names is left out too (``unchecked``: its traceback logged), and the files after it are looked
    at all the same; one that cannot be read now, or whose check ran out of memory, is tried again at the next
    start."""
    from gpu.checkpoint.verified import verify_checkpoint_once
    from gpu.model_files import inspect_model_path

    added: list[ModelEntry] = []
    for path in found_models(folder, listed, library.file):
        try:
            if inspect_model_path(path).kind != "svdq":
                continue
            verify_checkpoint_once(path)  # remembered: the add below does not read the file again
        except CheckpointError as err:
            log.warning("not adding %s, found in the models folder: %s", path, err)
            # Only wrong sizes, checksum or layout are the file's for good; a refusal that an update may lift (a
            # scheduler this version or its diffusers cannot run, a newer app's file) holds under this version only:
            # the first start of another version (a release) checks the file again
            newer = isinstance(err, NewerAppError)
            library.leave_out(path, f"it cannot run with this version ({err.text[:300]})" if newer else DAMAGED)
            continue
        except (UserError, OSError) as err:  # no model (another kind of file), or unreadable now
            log.info("not adding %s, found in the models folder: %s", path, err)
            continue
        except Exception as err:  # a case no check names yet: this file's problem, not the other files'
            if gpu_ran_out(err) or ram_ran_out(err):  # no fault of the file: tried again at the next start
                log.warning("not adding %s, found in the models folder, for now: %s", path, err)
                continue
            # Left out while it stays unchanged, as a damaged file is: checked again at every start, a multi-GiB file
            # was read whole (its checksum) and logged its traceback each time. Adding it by hand checks it again.
            why = unchecked(err)
            log.exception("not adding %s, found in the models folder: %s (left out while the file stays unchanged; "
                          "adding it to the library checks it again)", path, why)  # fmt: skip
            library.leave_out(path, why)
            continue
        entry = library.add(path)
        if not entry.already_added:
            log.info("added %s, found in the models folder, as %r", path, entry.name)
            added.append(entry)
    return added
