"""The LoRA files an image's restore looks at, looked at on a thread of their own (``FilesRead``): whether each is a
file, the file it resolves to, its header. Matched on the window's thread (``app.lora_reuse``), every such look
froze the window as long as a slow or hung network share took to answer. The matching then asks ``FilesRead``
alone, never the files: what the thread found is what the restore goes by."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path, PureWindowsPath
from typing import Any

from app.lora_header import UNREADABLE, FileRead, LoraHeader, read_file
from gpu.generation.png_metadata import encodable
from gpu.paths import resolved as resolve_path

log = logging.getLogger(__name__)

# A path ``FilesRead`` was not asked to look at: taken as no file, and never read on the window's thread
NOT_LOOKED = "it was not read"


class FilesRead:
    """What a thread found of some LoRA files (``look``), asked on the window's thread (``is_file``, ``resolved``,
    ``read``) in place of the files themselves."""

    def __init__(self) -> None:
        self._is_file: dict[Path, bool | OSError | ValueError] = {}
        self._resolved: dict[Path, Path | OSError | ValueError] = {}
        self._reads: dict[Path, FileRead] = {}

    def look(self, path: Path) -> None:
        """On the thread: whether ``path`` is a file (or what that raised: a folder on the way one may not read, a
        NUL byte in the name), the file it resolves to and, where that did not raise, its stamp and header."""
        if path in self._is_file:
            return
        self._resolved[path] = _or_error(resolve_path, path)
        self._is_file[path] = _or_error(Path.is_file, path)
        if not isinstance(self._is_file[path], Exception):
            self._reads[path] = read_file(path)

    def look_all(self, paths: Iterable[Path]) -> FilesRead:
        """``look`` at each of ``paths``; returns this."""
        for path in paths:
            self.look(path)
        return self

    def is_file(self, path: Path) -> bool:
        """``Path.is_file`` as the thread found it: what it raised there is raised again."""
        found = self._is_file.get(path)
        if isinstance(found, (OSError, ValueError)):
            raise found
        if found is None:
            log.warning("the LoRA file %s was not looked at before the image's LoRAs were matched", path)
        return bool(found)

    def resolved(self, path: Path) -> Path:
        """``resolve_path(path)`` as the thread found it (what it raised raised again); made absolute only, where
        the thread did not look."""
        found = self._resolved.get(path) or path.absolute()
        if isinstance(found, Exception):
            raise found
        return found

    def read(self, path: Path) -> FileRead:
        """``read_file(path)`` as the thread read it; one it did not read is said to be unreadable (no job takes it)."""
        found = self._reads.get(path)
        if found is None:
            log.warning("the LoRA file %s was not read before the image's LoRAs were matched", path)
            return FileRead(None, LoraHeader("", NOT_LOOKED, NOT_LOOKED, kind=UNREADABLE), path.absolute(),
                            path.absolute())  # fmt: skip
        return found


def _or_error(look: Callable[[Path], Any], path: Path) -> Any:
    """``look(path)``, or the error it raised that the matching takes as no such file (``FilesRead`` raises it
    again there): a folder on the way one may not read (``OSError``), a NUL byte in the name (``ValueError``)."""
    try:
        return look(path)
    except (OSError, ValueError) as err:
        return err


def given_path(path: Path) -> Path | None:
    """The file an image's LoRA entry names by ``path``, where it names one by a full path (``~`` expanded); None for
    a bare file name, which is looked up by name only."""
    return path.expanduser() if path.expanduser().is_absolute() else None


def file_names(path: Path) -> set[str]:
    """The names a listed file of an image's LoRA ``path`` may have. An image made on Windows names
    "C:\\loras\\x.safetensors", whose name on Linux would be all of it; PureWindowsPath splits at either separator.
    A Linux name that is not UTF-8 is in the image escaped ("styl\\xe9.safetensors", ``encodable``), whose backslash
    is no separator."""
    return {PureWindowsPath(str(path)).name, path.name}


def is_named(row: Path, names: set[str]) -> bool:
    """Whether the listed file ``row`` has one of the names ``names`` (``file_names``), as listed or as an image
    records it (``encodable``)."""
    return bool({row.name, encodable(row.name)} & names)


def look_used(used: Any, rows: list[tuple[Path, Path]]) -> FilesRead:
    """On the thread: what ``app.lora_reuse.match_by_file`` asks of the LoRAs of one of our images (``lora_list``:
    ``used``), the panel's rows being ``rows`` ((path, path resolved) each): each file named by a full path, and
    each row listed under its file name or at its very path."""
    files = FilesRead()
    for item in used if isinstance(used, list) else [used]:
        if not isinstance(item, dict):
            continue
        try:
            path = Path(str(item.get("file", "")))
            given = given_path(path)
            if given is not None:
                files.look(given)
            at = files.resolved(given) if given is not None else None
            names = file_names(path)
        except (OSError, ValueError, RuntimeError):  # "~nobody/x": said as not here when matched
            continue
        files.look_all(row for row, resolved in rows if is_named(row, names) or resolved == at)
    return files


def rows_of_stems(refs: Any, rows: list[Path]) -> list[Path]:
    """What ``app.lora_reuse.match_by_stem`` asks of the LoRAs of another program's image (``refs``: ``lora_refs``),
    the panel's rows being at ``rows``: each row whose file stem is one of theirs, in any case (names alone: no file
    is looked at here)."""
    stems = {str(ref.get("name") or "").strip().casefold() for ref in (refs if isinstance(refs, list) else [refs])
             if isinstance(ref, dict)}  # fmt: skip
    return [row for row in rows if row.stem.casefold() in stems]
