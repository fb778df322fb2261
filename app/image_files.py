"""The images folder: naming new PNGs, moving them to the trash and back, reading their settings."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.data_dir import DataDir
from app.engine_errors import is_disk_full
from gpu.atomic import (
    SCRATCH_NAME,
    atomic_write_new,
    atomic_write_with,
    publish_left_behind,
    remove_stale_temps,
    scratch_prefix,
)
from gpu.errors import OutputError
from gpu.generation.png_metadata import PNG_SIGNATURE, png_problem
from gpu.os_errors import own_remedy
from gpu.paths import first_free_path

if TYPE_CHECKING:
    from gpu.generation.png_metadata import ImageSettings

log = logging.getLogger(__name__)

# Held while a name in the trash is checked and taken: the old trash of another drive is gathered on a thread while
# the user deletes images (``gather_trash``), and neither may replace the file the other just put there.
_TRASH_NAMES = threading.Lock()
# How long a scratch folder of an image save stays another program's save under way (``recover_cut_short_saves``).
LIVE_SAVE_SECONDS = 600
_CLOCK_SLACK_SECONDS = 60  # a save's file times may run a little ahead of this clock (a network share's server)
# Said of a new image that could not be written, and the remedy the app offers (it picks the folder itself).
_NOT_SAVED = "The picture just generated was not saved."
_WRITABLE_HINT = ("Check that the folder can be written (not read-only) and its disk is not full, or start "
                  "Nibble Studio with another data folder (--data-dir PATH).")


def new_image_path(data: DataDir, seed: int, index: int, when: float | None = None) -> Path:
    """``images/YYYY-MM-DD/HHMMSS-<seed>-<index>.png``, the name a new image is offered first (``save_new_image``
    takes it or the next free one). Raises ``OutputError`` naming the folder when it cannot be written
    (``images_folder``), saying that the picture it was asked for (generated already) was not saved: the job's end
    alone did not tell it was lost."""
    stamp = time.localtime(time.time() if when is None else when)
    try:
        folder = images_folder(data, when)
    except OutputError as exc:
        raise type(exc)(f"{exc} {_NOT_SAVED}", exc.hint) from exc
    return folder / f"{time.strftime('%H%M%S', stamp)}-{seed}-{index}.png"


def save_new_image(data: DataDir, path: Path, write: Callable[[Path], None]) -> Path:
    """A new image written by ``write(tmp)`` (a temporary path, written plainly: ``encode_png``; this call fsyncs
    it, and its errors name ``path``, never the temporary file) and published at ``path`` (``new_image_path``), or
    at the first of ``<stem>-1.png``, ``<stem>-2.png``, … that no file holds and the trash does not keep for undo
    (``free_image_path``); returns the path written. The name is claimed by the publishing step itself
    (``gpu.atomic.atomic_write_new``, as ``main.py generate`` saves): a file another program writes at a name after
    it was looked at stays, and the image takes the next name. Chosen first, then published with a replace, the
    image lost such a file."""
    return atomic_write_new(path, write, first=1, taken=lambda candidate: _held(data, candidate))


def images_folder(data: DataDir, when: float | None = None) -> Path:
    """The day's folder new images go to (``images/YYYY-MM-DD``), made and tried with a scratch file. The
    engine worker calls it before a job runs: a job whose images cannot be saved is refused at once, in words
    that name the folder, rather than after minutes of generating, as an internal error, its images lost.

    Raises ``OutputError`` (a file in the way, a read-only folder or disk, no space for a file), and
    ``DataDirMoved`` when the data folder is gone or another (``DataDir.check_in_place``): the old path made again
    held the new PNGs while their rows went into the moved database."""
    folder = data.images / time.strftime("%Y-%m-%d", time.localtime(time.time() if when is None else when))
    data.check_in_place()
    try:
        folder.mkdir(parents=True, exist_ok=True)  # the root is there (checked): at most images/ is made again
        fd, scratch = tempfile.mkstemp(prefix=".nibble-check-", dir=folder)  # hidden: reconcile skips it
        os.close(fd)
        os.unlink(scratch)
    except OSError as exc:
        if (in_the_way := _file_in_the_way(folder)) is not None:
            raise OutputError(
                f"Images cannot be saved in {folder}: {in_the_way} is a file, not a folder.",
                "Move that file out of the way, or start Nibble Studio with another data folder (--data-dir PATH).",
            ) from exc
        raise OutputError(f"Images cannot be saved in {folder}: {exc.strerror or exc}.", _WRITABLE_HINT) from exc
    return folder


def image_not_saved(path: Path, exc: BaseException) -> OutputError:
    """The error said when the new image ``path`` could not be written (``save_new_image`` failed), in the words of
    ``images_folder``'s check at a job's start: the image by its name, why, that the picture just generated was not
    saved, and the remedy. A read-only folder or disk, no permission, a failing drive: the app's remedy, as the
    engine's ("choose a folder you can write to") is the command line's, where the user picks the output; the app
    picks its images folder itself. A cause with a remedy of its own (the file open in another program, a link to
    an unplugged drive: ``gpu.os_errors.own_remedy``; an engine error with a hint, no OS error behind it) keeps its
    reason and remedy: the folder was not the problem."""
    # The OS's reason, not the engine's sentence around it: output_errors wraps the OSError it caught
    cause = next((e for e in (exc, exc.__cause__) if isinstance(e, OSError) and e.strerror), None)
    if cause is not None:
        reason, hint = own_remedy(cause) or (cause.strerror, _WRITABLE_HINT)
    else:
        reason, hint = str(exc), getattr(exc, "hint", "") or _WRITABLE_HINT
    return OutputError(f"The image {path.name} cannot be saved in {path.parent}: {reason}. {_NOT_SAVED}", hint)


def _file_in_the_way(folder: Path) -> Path | None:
    """The file, if any, that stands where ``folder`` or one of its parents should be: mkdir's own "File exists"
    or "Not a directory" does not say which."""
    return next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)


def free_image_path(data: DataDir, path: Path, first: int = 2, taken: Callable[[str], bool] | None = None) -> Path:
    """``path`` or ``<stem>-<n>.png`` inside the images folder, such that neither the images folder nor the trash
    holds that name: an image in the trash keeps its name for undo, so a new image must never take it. Nor the old
    trash (``DataDir.other_trash``), while files that could not be gathered wait there to move in. ``taken``:
    names (relative to the images folder) held otherwise, e.g. by gallery rows whose file is missing."""
    return first_free_path(path, first, lambda candidate: _held(data, candidate, taken))


def free_image_name(data: DataDir, rel_path: str, taken: Callable[[str], bool] | None = None) -> str:
    """``free_image_path`` for a name relative to the images folder (as stored), returned as one."""
    return relative(data, free_image_path(data, absolute(data, rel_path), taken=taken))


def _held(data: DataDir, candidate: Path, taken: Callable[[str], bool] | None = None) -> bool:
    """Whether a new image may not take the name ``candidate`` (see ``free_image_path``)."""
    rel = relative(data, candidate)
    # lexists: a dangling link under the name is a file there all the same (the trash refuses to replace it).
    return (os.path.lexists(candidate) or os.path.lexists(data.trash / rel)
            or os.path.lexists(data.other_trash / rel) or (taken is not None and taken(rel)))  # fmt: skip


def relative(data: DataDir, path: Path) -> str:
    """``path`` relative to the images folder, as stored in the database. Taken as written first: a symbolic
    link in the folder (to a PNG kept elsewhere) is an entry of the folder under its own name; resolving it
    first gave a path outside the folder, and the ValueError stopped the start-up."""
    path = Path(path)
    try:
        rel = path.relative_to(data.images)
        if ".." not in rel.parts:
            return rel.as_posix()
    except ValueError:
        pass  # another spelling of the folder (a link to it, "..", relative): compared resolved
    return path.parent.resolve().joinpath(path.name).relative_to(data.images.resolve()).as_posix()


def gallery_file(data: DataDir, path: Path) -> Path | None:
    """The gallery image's file that ``path`` names, as the gallery names it (``absolute``), None outside the
    images folder. Told by the path resolved (``relative``), not as a dialog named it: a link to the images folder
    (a shortcut among the user's pictures, the data folder reached through a link) named no thumbnail held. May
    look at the disk."""
    try:
        return absolute(data, relative(data, path))
    except (ValueError, OSError):
        return None


def absolute(data: DataDir, rel_path: str) -> Path:
    return data.images / rel_path


def move_to_trash(data: DataDir, rel_path: str) -> bool:
    """One rename into the trash (``DataDir.trash``: on the images' own disk), so a crash leaves the file in one
    place or the other, never in both nor half-copied; returns whether there was a file to move (none: renamed or
    deleted outside the app). ``DataDirMoved`` when the data folder moved away: the trash's folders made again at
    its old path split the data in two."""
    data.check_in_place()
    source = absolute(data, rel_path)
    target = data.trash / rel_path
    target.parent.mkdir(parents=True, exist_ok=True)
    with _TRASH_NAMES:
        if not source.exists():
            return False
        if os.path.lexists(target):  # gathered from the old trash since the caller cleared the name: kept
            raise FileExistsError(errno.EEXIST, "a file of that name was just moved into the trash from the old "
                                  "trash folder; delete the image again", str(target))  # fmt: skip
        os.replace(source, target)
        return True


def restore_from_trash(data: DataDir, rel_path: str, taken: Callable[[str], bool] | None = None,
                       written: Callable[[Path], bool] | None = None) -> str:  # fmt: skip
    """Moves the file back and returns its path relative to the images folder: its old one, or a free name if
    another file has taken that one since (it is never replaced), or a Save as under way writes it (``written``:
    whether one writes a path; its copy, published after, replaced the picture brought back). With no file left in
    the trash, nothing moves and the name returned is still one no other file holds: an entry given a stranger's
    name would show that picture as its own once start-up finds the file there."""
    data.check_in_place()  # as for move_to_trash; and a file not found there was not lost, the folder moved
    source = data.trash / rel_path
    target = absolute(data, rel_path)
    if target.exists() or (written is not None and written(target)):
        target = free_image_path(data, target, taken=_held_or_written(data, taken, written))
    if not source.exists():
        return relative(data, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # One rename, as into the trash. shutil.move falls back to copy-then-delete when the rename fails, and on
    # Windows a file open in another program can be neither renamed nor deleted: the copy stayed behind in the
    # images folder beside the trashed original (a duplicate at the next start, and the undo got another name).
    os.replace(source, target)
    return relative(data, target)


def _held_or_written(data: DataDir, taken: Callable[[str], bool] | None, written: Callable[[Path], bool] | None
                     ) -> Callable[[str], bool]:  # fmt: skip
    """``taken`` (names relative to the images folder held otherwise) with the names a Save as under way writes."""
    def held(rel: str) -> bool:
        return bool((taken is not None and taken(rel)) or (written is not None and written(absolute(data, rel))))

    return held


def rename_in_trash(data: DataDir, rel_path: str, taken: Callable[[str], bool] | None = None,
                    trash: Path | None = None) -> str:  # fmt: skip
    """Gives an image in the trash a name that no file in the images folder or the trash has, nor any name
    ``taken`` says is held (gallery rows whose file is missing: the row's new path would break the database's
    unique paths, and Undo failed on it every time), so that another image can take its old one; returns it.
    ``trash``: the folder it is in, when not ``data.trash`` (the old trash, still to be gathered)."""
    new_rel = free_image_name(data, rel_path, taken)
    trash = trash or data.trash
    os.replace(trash / rel_path, trash / new_rel)
    return new_rel


@dataclass
class TrashGathered:
    """What ``gather_trash`` did: files moved; files left in the old trash because a different file holds their
    name in the trash (``clashed``: only the user can tell which to keep), and those left for another reason
    (``left``, ``why``: the first such failure)."""

    moved: int = 0
    clashed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    why: str = ""


class NameTaken(FileExistsError):
    """A different file already holds the name a file of the old trash would take in the trash."""


def gathers_across_drives(data: DataDir) -> bool:
    """Whether ``gather_trash`` has an old trash to gather from another drive: a copy of each file (minutes for
    gigabytes on a USB drive), which the app does after its window shows. On one drive it is a rename per file."""
    try:
        return data.other_trash.is_dir() and os.stat(data.other_trash).st_dev != os.stat(data.trash).st_dev
    except OSError:  # no trash (yet), or unreadable: gathered at once, where the failure is said
        return False


def gather_trash(data: DataDir, stop: threading.Event | None = None,
                 progress: Callable[[int, int], None] | None = None) -> TrashGathered:  # fmt: skip
    """Moves the files of the trash's other place (``DataDir.other_trash``: the trash of an earlier start, before
    images/ moved to another drive or back) into ``data.trash``, under the same names, so that Undo, Empty trash
    and start-up's repairs find them: left there, Undo lost them, Empty trash never freed them, and a file a failed
    delete left in the trash never came back.

    One rename where both are on one drive; else a copy, synced and renamed into place whole, then the original
    removed: a crash at any step leaves each file whole in one place or both, never half-copied in its place, and
    the next start finishes it (a copy found in place, the same bytes, lets the original go). A file that cannot be
    moved, or finds a different file under its name, stays where it is (nothing is deleted), logged, for the caller
    to say; the others still move (one such file held back every file after it, at every start). A full disk ends
    it: every file after would fail the same way.

    ``stop`` set (the app closing) ends it between two files, the rest left for the next start; ``progress`` is
    told (files done, files in all) before each file. No file of the trash is ever replaced: the user may delete
    images meanwhile (``_TRASH_NAMES``)."""
    old = data.other_trash
    try:
        if not old.is_dir() or (data.trash.is_dir() and os.path.samefile(old, data.trash)):
            return TrashGathered()
        files = sorted(f for f in old.rglob("*") if f.is_file() or f.is_symlink())
    except OSError as exc:
        log.warning("the old trash folder %s could not be read: %s", old, exc)
        return TrashGathered(left=[str(old)], why=exc.strerror or str(exc))
    done = TrashGathered()
    for at, source in enumerate(files):
        if stop is not None and stop.is_set():
            break
        if progress is not None:
            progress(at, len(files))
        target = data.trash / source.relative_to(old)
        try:
            _move_whole(source, target)
        except NameTaken:
            done.clashed.append(str(source))
            log.warning("not moved from the old trash: a different file %s is in the trash already", target)
            continue
        except (OSError, OutputError) as exc:
            full = is_disk_full(exc)
            done.left.extend(str(f) for f in (files[at:] if full else [source]))
            done.why = done.why or getattr(exc, "strerror", None) or str(exc)
            log.warning("not moved from the old trash %s into %s: %s (%s)", old, data.trash, source, exc)
            if full:
                break
            continue
        done.moved += 1
    for folder in sorted((f for f in old.rglob("*") if f.is_dir()), reverse=True) + [old]:
        try:
            folder.rmdir()  # emptied: an old trash left in place would be taken for the trash again (``create``)
        except OSError:
            pass
    if done.moved:
        log.info("%d file(s) of the old trash %s moved into the trash %s", done.moved, old, data.trash)
    return done


def _move_whole(source: Path, target: Path) -> None:
    """``source`` to ``target``, never replacing a file there and never leaving half a copy in its place (see
    ``gather_trash``). A file already at ``target`` with the same bytes is the copy of an earlier start cut short:
    ``source`` goes; a different one is ``NameTaken``. Across drives the copy is made under a hidden name beside
    ``target`` first, and takes its name only if no file has it by then: a delete may have put one there during
    the copy."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if (in_the_way := _file_in_the_way(target.parent)) is None:
            raise
        raise OSError(exc.errno, f"{in_the_way} is a file, not a folder", str(target.parent)) from exc
    try:
        _rename_if_free(source, target)
        return
    except NameTaken:
        _let_go_if_same(source, target)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    copy = target.with_name(f"{scratch_prefix(target)}gathered")  # hidden: no listing takes it for a picture
    for cut_short in (copy, target):  # the scratch copies of an earlier start (of a version that wrote ``target``)
        remove_stale_temps(cut_short)
    atomic_write_with(copy, lambda scratch: shutil.copy2(source, scratch))  # synced, renamed into place whole
    try:
        _rename_if_free(copy, target)
    except NameTaken:
        os.unlink(copy)
        _let_go_if_same(source, target)
        return
    os.unlink(source)


def _rename_if_free(source: Path, target: Path) -> None:
    """One rename of ``source`` to ``target``; ``NameTaken`` when a file has that name (a rename replaces it)."""
    with _TRASH_NAMES:
        if os.path.lexists(target):
            raise NameTaken(errno.EEXIST, "a different file of that name is in the trash already", str(target))
        os.rename(source, target)


def _let_go_if_same(source: Path, target: Path) -> None:
    """Removes ``source`` when ``target`` holds the same bytes; else ``NameTaken``."""
    if (there := file_fingerprint(target)) is None or there != file_fingerprint(source):
        raise NameTaken(errno.EEXIST, "a different file of that name is in the trash already", str(target))
    os.unlink(source)


def png_paths(folder: Path, walked: list[str] | None = None, unreadable: dict[str, str] | None = None
              ) -> dict[str, str]:  # fmt: skip
    """The files under ``folder`` named ``*.png`` in any case (a camera's or another program's ``IMG_1.PNG`` copied
    in too), by their path relative to ``folder`` as the database stores it ("2026-01-01/x.png"), each with its
    path. Hidden names are left out, with all under a hidden folder: not only hidden files, a write killed before
    its rename leaves its complete PNG in ``atomic_path``'s hidden scratch folder (".<name>.<random>.tmp/new.png"),
    which is no gallery image until start-up has published it (``recover_cut_short_saves``). A link to a file is
    listed under its own name; links to folders are not followed (a link back up the tree would never end), nor are
    folders that cannot be read. ``os.scandir`` and strings: a ``Path`` per file, made again to be made relative,
    took a second of every start-up at 30,000 images. ``walked``, when given, gets each folder listed (``folder``
    first, if it could be), in the same walk: the folders the images folder's watch looks at (``app.folder_watch``).
    ``unreadable``, when given, gets each folder that is there but could not be listed (no permission, a failing
    drive mounted there), by its path relative to ``folder`` ending in "/" ("" for ``folder`` itself), with why:
    nothing is known of the files under it (``NotListed``), which are not gone."""
    return dict(_png_entries(folder, walked, unreadable))


def holds_png(folder: Path) -> bool:
    """Whether any file ``png_paths`` would list under ``folder`` is a PNG; stops at the first one."""
    return any(is_png(path) for _rel, path in _png_entries(folder))


def _png_entries(folder: Path, walked: list[str] | None = None, unreadable: dict[str, str] | None = None
                 ) -> Iterator[tuple[str, str]]:  # fmt: skip
    """``png_paths``' entries one by one, as the folders are listed (each put in ``walked``, when given)."""
    for prefix, entry in _listed(folder, walked, unreadable):
        name = entry.name
        try:
            # is_file: a link to a file is listed, a link to a folder is not
            if not name.startswith(".") and name.lower().endswith(".png") and entry.is_file():
                yield prefix + name, entry.path
        except OSError:  # gone since the listing, or a link that loops
            continue


def _listed(folder: Path, walked: list[str] | None = None, unreadable: dict[str, str] | None = None
            ) -> Iterator[tuple[str, os.DirEntry[str]]]:  # fmt: skip
    """(path of its folder relative to ``folder``, ending in "/" or "", entry) for every entry of ``folder`` and of
    the folders under it that are not hidden, hidden entries included; links to folders are not followed, and
    folders that cannot be read are passed over. ``walked``, when given, gets the path of each folder listed;
    ``unreadable`` each folder that is there but could not be listed, whole or part (see ``png_paths``)."""
    folders = [("", os.fspath(folder))]
    while folders:
        prefix, path = folders.pop()
        try:
            with os.scandir(path) as entries:
                if walked is not None:
                    walked.append(path)
                for entry in entries:
                    yield prefix, entry
                    try:
                        if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                            folders.append((f"{prefix}{entry.name}/", entry.path))
                    except OSError:  # gone since the listing
                        continue
        except OSError as exc:  # not there (no trash yet, removed since its parent's listing), or not readable
            if unreadable is not None and exc.errno not in _NOT_THERE:
                unreadable[prefix] = exc.strerror or str(exc)
            continue


def folder_at(folder: Path, prefix: str) -> str:
    """The path of the folder ``prefix`` (relative to ``folder``, ending in "/", as ``png_paths`` names one) for a
    message or the log."""
    return os.path.normpath(os.path.join(folder, prefix))


# What ``os.scandir`` says of a folder that is not there: nothing under it is, unlike one it may not read.
_NOT_THERE = (errno.ENOENT, errno.ENOTDIR)


@dataclass(frozen=True)
class NotListed:
    """The paths (relative to the images folder) a listing tells nothing of: those under a folder it could not read
    (``png_paths``' ``unreadable``), and those of ``also``. Their entries are neither gone nor back: flagged missing,
    a folder whose permissions were taken away (or whose drive failed) showed every picture in it as lost."""

    folders: tuple[str, ...] = ()
    also: Container[str] = ()

    def __contains__(self, rel: object) -> bool:
        return rel in self.also or (isinstance(rel, str) and any(rel.startswith(f) for f in self.folders))


def is_png(path: str | Path) -> bool:
    """A regular file that starts with the PNG signature (a folder named ``x.png`` or an empty file is not)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE
    except OSError:  # a folder, unreadable, or gone since the scan
        return False


@dataclass
class CutShortSaves:
    """What ``recover_cut_short_saves`` did, as paths relative to the images folder (the trash's alike): whole
    pictures ``published`` in the images folder, unfinished files moved to the trash (``trashed``), and the scratch
    folders ``left`` as they were (``why``: the first failure)."""

    published: list[str] = field(default_factory=list)
    trashed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    why: str = ""


def recover_cut_short_saves(data: DataDir) -> CutShortSaves:
    """The saves a kill cut short (``kill -9``, a power loss, the app's own exit while an image was written),
    finished: such a save leaves its file in a hidden scratch folder (``gpu.atomic.SCRATCH_NAME``) beside the name it
    was to take, a complete PNG when the kill came between its sync and its publishing link, and neither the gallery
    (hidden names are passed over) nor anything else ever took it out. Each file in one, anywhere in the images folder
    outside hidden folders (the trash's own scratch copies are ``gather_trash``'s): a whole PNG (``png_problem``) is
    published under a free name, ``HHMMSS-<seed>-recovered.png`` in the folder of the save, which the start-up import
    then takes into the gallery; any other file but an empty one goes to the trash (as ``HHMMSS-cut-short.png``),
    where the user can still open it and Empty trash deletes it: nothing that holds part of a picture is deleted
    unseen. The scratch folder is then removed. A folder that cannot be finished stays as it is, for the next start.

    Only while no writer of this app can be at work in the folder: at start-up, under the data folder's instance
    lock. A ``main.py generate`` run saving into the images folder holds no such lock: a scratch folder changed in
    the last ``LIVE_SAVE_SECONDS`` may be its save under way (taking it failed that run, and trashed a picture half
    written), so it is left for a later start; a save takes seconds, a kill leaves its folder as it was."""
    done = CutShortSaves()
    now = time.time()
    for scratch in [Path(entry.path) for _prefix, entry in _listed(data.images) if _is_scratch(entry)]:
        try:
            # A live save writes with this clock: a folder dated ahead of it (written while the clock was wrong) is
            # an old one, which left alone would stay hidden, unsaid, until the clock caught up.
            if now - LIVE_SAVE_SECONDS < _last_change(scratch) <= now + _CLOCK_SLACK_SECONDS:
                log.info("%s may be a save under way (changed in the last minutes): left for a later start", scratch)
                continue
            _finish_scratch(data, scratch, done)
        except FileNotFoundError:
            # Something in it went meanwhile: a save under way that finished (published, its file unlinked, its
            # folder removed); what a dead writer left changes no more. Looked at again at the next start.
            log.info("%s changed while it was looked at: a save under way, left for a later start", scratch)
        except OSError as exc:
            _not_finished(data, scratch, exc, done)
    return done


def _not_finished(data: DataDir, scratch: Path, exc: OSError, done: CutShortSaves) -> None:
    """Notes ``scratch``, which could not be finished, for the start-up notice."""
    done.left.append(relative(data, scratch))
    done.why = done.why or exc.strerror or str(exc)
    log.warning("the unfinished save in %s could not be recovered: %s", scratch, exc)


def _last_change(scratch: Path) -> float:
    """The newest modification time of the scratch folder and what it holds (a writer adds its file to the folder,
    then writes the file)."""
    times = [scratch.lstat().st_mtime]
    for where, subfolders, files in os.walk(scratch):
        times += [os.lstat(os.path.join(where, name)).st_mtime for name in files + subfolders]
    return max(times)


def _is_scratch(entry: os.DirEntry[str]) -> bool:
    """Whether ``entry`` is a scratch folder of ``gpu.atomic``'s writes (a link of that name is not: never followed)."""
    try:
        return bool(SCRATCH_NAME.match(entry.name)) and entry.is_dir(follow_symlinks=False)
    except OSError:  # gone since the listing
        return False


def _finish_scratch(data: DataDir, scratch: Path, done: CutShortSaves) -> None:
    """``recover_cut_short_saves`` for one scratch folder."""
    folder = scratch.parent  # the folder the save was for
    for where, subfolders, files in os.walk(scratch, topdown=False):  # links are not followed
        for name in files + [d for d in subfolders if os.path.islink(os.path.join(where, d))]:
            path = Path(where, name)
            if path.is_symlink() or path.stat().st_size == 0:  # nothing of a picture in it
                path.unlink()
                continue
            if os.name != "nt" and path.stat().st_nlink > 1:
                # The kill came between the publishing link and the unlink (``gpu.atomic._link_or_claim``): the
                # picture has its name already, and publishing this second link made it twice in the gallery.
                path.unlink()
                continue
            problem = png_problem(path)
            stamp = time.strftime("%H%M%S", time.localtime(path.stat().st_mtime))
            if not problem:
                seed = (read_image_settings(path) or {}).get("seed")
                named = f"-{seed}" if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 else ""
                target = folder / f"{stamp}{named}-recovered.png"
                published = publish_left_behind(path, target, first=1, taken=lambda c: _held(data, c))
                done.published.append(relative(data, published))
                log.info("a save cut short was found whole in %s and published as %s", scratch, published)
            else:
                done.trashed.append(_trash_cut_short(data, path, folder / f"{stamp}-cut-short{path.suffix or '.png'}"))
                log.info("a save cut short in %s left an unfinished file (%s): moved to the trash as %s", scratch,
                         problem, data.trash / done.trashed[-1])  # fmt: skip
        os.rmdir(where)


def _trash_cut_short(data: DataDir, path: Path, wanted: Path) -> str:
    """Moves the unfinished file ``path`` into the trash, under ``wanted``'s name (relative to the images folder)
    or the next that neither the images folder nor the trash holds, and returns that name. One rename: the trash is
    on the images' disk (``DataDir.create``)."""
    with _TRASH_NAMES:
        rel = relative(data, free_image_path(data, wanted, first=1))
        target = data.trash / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(path, target)  # free_image_path looked at the trash under the lock: nothing is replaced
    return rel


def read_image_settings(path: Path) -> dict[str, Any] | None:
    """Settings stored in an image: a PNG's (ours, A1111 ``parameters`` or ComfyUI, best effort), a JPEG's, WebP's
    or GIF's (A1111/Forge text in EXIF, XMP or a comment), or an A1111 ``.txt`` file's. None if there are none.
    Never raises (``inspect_image_settings``)."""
    return inspect_image_settings(path).settings


def inspect_image_settings(path: Path) -> ImageSettings:
    """``read_image_settings`` with the reasons a file has none, or what was left out of them
    (``ImageSettings.problems``: phrases about the file, for a message that names it). The file's kind is told
    by its content, not its name; a file that is no image is said to be none.

    Never raises: the file may come from any program (copied into the images folder, dropped on the panel), and
    start-up reads every one it finds. Metadata that trips the reader counts as none (logged), rather than
    stopping the app from starting at all."""
    from gpu.generation.image_metadata import inspect_image  # pure-Python metadata readers, no torch
    from gpu.generation.png_metadata import ImageSettings

    try:
        return inspect_image(Path(path))
    except Exception:  # a reader bug on some program's metadata must cost that file its settings, not start-up
        log.warning("the metadata of %s could not be read; taken as none", path, exc_info=True)
        return ImageSettings(None, ["its settings could not be read (the log file has the details)"])


def read_image_text(path: Path) -> dict[str, str]:
    from gpu.generation.png_metadata import read_png_text

    try:
        return read_png_text(Path(path))
    except (OSError, ValueError):
        return {}


def file_fingerprint(path: Path) -> tuple[int, str] | None:
    """(size, SHA-256 hex) of the file's bytes, or None when it cannot be read: what tells the same picture under
    another name (renamed or moved by the user) from a different one whose settings and size happen to match."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    except OSError:
        return None
    return size, digest.hexdigest()
