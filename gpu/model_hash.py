"""The model hash (A1111's ``Model hash``: the first 10 hex digits of the SHA-256 of a model's weights), computed
once per set of files and kept while the files stay the same: who a set of files is without reading them
(``FilesStamp``), and the look at their heads that tells a renumbered inode from another file."""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from gpu.errors import ModelLoadError
from gpu.safetensors_header import checked_weight_files


def model_hash(path: Path | str) -> str:
    """First 10 hex digits of the SHA-256 of the model's weights (A1111's ``Model hash``).

    For a pipeline folder the transformer's weight files that load (``checked_weight_files``) are hashed in name
    order. Hashed once while the files stay the same (``same_files``: a file system that numbers its inodes anew,
    a USB drive's exFAT, hashes nothing again; another file copied over with the same size and time does)."""
    files = _hashed_files(Path(path))
    stamp, digest = _known_hash(files)
    if digest:
        return digest
    stamp = with_heads(stamp)  # before the hashing: what a later look compares with is what was hashed
    digest = _hash_files(files)
    _HASHES.pop(stamp.files, None)
    _HASHES[stamp.files] = (stamp, digest)
    while len(_HASHES) > _HASHES_KEPT:
        _HASHES.pop(next(iter(_HASHES)))  # the oldest
    return digest


def known_model_hash(path: Path | str, confirmed: dict[FilesStamp, str] | None = None) -> str:
    """``model_hash`` of the model at ``path`` when this process hashed it and its files are the same since; ""
    otherwise. Nothing is hashed (at most the files' headers read): for the app's window thread, which must not
    read gigabytes (restoring an image's model checks the file is the one the image was made with).

    ``confirmed``: the caller's memo, files' stamps -> the hash their headers proved them to have (``same_files``),
    written here: the cache ``model_hash`` keeps is the engine thread's, never written from this one, so after a
    chmod (a change time moved alone) every call read the headers again; with the memo, only the first while the
    stamp stays (a file put in their place has another one). At most ``_HASHES_KEPT`` stamps, the oldest dropped."""
    path = Path(path)
    where = str(path)
    # A model never hashed here is not looked at on disk: a folder's headers are read only for one that was
    hashed = {name for files in list(_HASHES) for name, *_ in files}  # list(): the engine's thread may add one
    if not any(name == where or name.startswith(where + os.sep) for name in hashed):
        return ""
    try:
        stamp = files_stamp(_hashed_files(path))
    except (ModelLoadError, OSError):
        return ""
    known = _HASHES.get(stamp.files)
    if known is None:
        return ""
    if confirmed is not None and confirmed.get(stamp) == known[1]:
        return known[1]
    if not same_files(known[0], stamp):
        return ""
    if confirmed is not None:
        confirmed.pop(stamp, None)
        confirmed[stamp] = known[1]
        while len(confirmed) > _HASHES_KEPT:
            confirmed.pop(next(iter(confirmed)))  # the oldest
    return known[1]


def _hashed_files(path: Path) -> list[Path]:
    """The files ``model_hash`` hashes for the model at ``path``: what loads, not every file there (a .fp16
    variant beside the weights changed the hash)."""
    return checked_weight_files(path / "transformer", path.name) if path.is_dir() else [path]


def _known_hash(files: list[Path]) -> tuple[FilesStamp, str]:
    """(the ``files_stamp`` of ``files``, their hash when ``model_hash``'s cache holds it for the files as they are
    now, else ""). The cache notes the inodes as they are numbered now, so that their contents are not read again
    while the numbers stay."""
    stamp = files_stamp(files)
    known = _HASHES.get(stamp.files)
    if known is None or not same_files(known[0], stamp):
        return stamp, ""
    _HASHES[stamp.files] = (replace(stamp, heads=known[0].heads), known[1])
    return stamp, known[1]


@dataclass(frozen=True)
class FilesStamp:
    """Who a set of files is without reading them (``files_stamp``), and the look at their contents that tells a
    renumbered inode from another file (``with_heads``, ``same_files``).

    ``files``: (path, size, mtime_ns) of each; ``nodes``: their (st_dev, st_ino, st_ctime_ns): vfat/exFAT (USB
    drives), cifs with noserverino, sshfs and autofs hand out inodes anew when a file is looked at again, so a
    changed one is no proof of another file; the change time is there because ``cp -p`` over the file rewrites the
    same inode with the same size and modification time (only ctime, which no program can set back, moves);
    ``heads``: each one's ``head_digest`` (None: not read)."""

    files: tuple[tuple[str, int, int], ...]
    nodes: tuple[tuple[int, int, int], ...]
    heads: tuple[str, ...] | None = None


def files_stamp(files: Iterable[Path]) -> FilesStamp:
    """The ``FilesStamp`` of ``files`` from their ``stat`` alone; a file gone is left out (what reads it names
    it)."""
    stats = []
    for f in files:
        try:
            stats.append((str(f), f.stat()))
        except OSError:
            continue
    return FilesStamp(tuple((name, st.st_size, st.st_mtime_ns) for name, st in stats),
                      tuple((st.st_dev, st.st_ino, st.st_ctime_ns) for _, st in stats))  # fmt: skip


def with_heads(stamp: FilesStamp) -> FilesStamp:
    """``stamp`` with its files' ``head_digest``s read."""
    return replace(stamp, heads=tuple(head_digest(Path(name)) for name, *_ in stamp.files))


def same_files(recorded: FilesStamp, now: FilesStamp) -> bool:
    """Whether the files ``now`` stamps are those ``recorded`` stamped: the same paths, sizes and times, and the
    same inodes and change times, or else the same ``head_digest``s (read now; ``recorded`` needs its ``heads``).

    A changed inode alone is no other file: on a USB drive's exFAT it would cost a reload and a re-hash of gigabytes
    at every job. An SVDQ file's header records the SHA-256 of its data, so another SVDQ model copied over with the
    same size and time (``cp -p``: same inode, new change time; or a rename over it: new inode) has another header
    and is told apart. A diffusers weight file's header holds only
    names, shapes and offsets: other data under the same header, copied over with the same size and the very same
    modification time, is taken for the same file (no file system tells that copy from a renumbered inode without
    reading the data)."""
    if recorded.files != now.files:
        return False
    if recorded.nodes == now.nodes:
        return True
    heads = recorded.heads
    return heads is not None and all(heads) and with_heads(now).heads == heads


_MAX_HEAD = 256 << 20  # gpu.safetensors_header's limit on a header's length
_SMALL_FILE = 1 << 20  # a file that is no safetensors file (config.json) is read whole up to this


def head_digest(path: Path) -> str:
    """The SHA-256 of a safetensors file's header (its length and JSON: for an SVDQ file the data's recorded
    checksum with it), or of the first MiB of any other file (a config.json is read whole); "" when it cannot be
    read."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else None
            size = os.fstat(f.fileno()).st_size
            if n is not None and n <= _MAX_HEAD and 8 + n <= size:
                return hashlib.sha256(head + f.read(n)).hexdigest()
            return hashlib.sha256(head + f.read(_SMALL_FILE)).hexdigest()
    except OSError:
        return ""


# (path, size, mtime_ns) of the files hashed -> (their stamp with heads, the hash): model_hash's cache
_HASHES: dict[tuple[tuple[str, int, int], ...], tuple[FilesStamp, str]] = {}
_HASHES_KEPT = 64


def _hash_files(files: list[Path]) -> str:
    h = hashlib.sha256()
    for name in files:
        with open(name, "rb") as f:
            while chunk := f.read(16 << 20):
                h.update(chunk)
    return h.hexdigest()[:10]
