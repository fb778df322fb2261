"""Keeping a damaged user file (database, settings, model library) aside before it is replaced by a fresh one.

The copy is named ``<name>.damaged-<YYYYmmdd-HHMMSS>`` (``-1``, ``-2``… when that exists already) and is
never written over, so every damaged file the user ever had is still there for recovery or a bug report.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)


def _candidates(path: Path, when: float | None, tag: str = "damaged") -> Iterator[Path]:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if when is None else when))
    base = f"{path.name}.{tag}-{stamp}"
    yield path.with_name(base)
    counter = 1
    while True:
        yield path.with_name(f"{base}-{counter}")
        counter += 1


def _move_exclusive(source: Path, target: Path) -> None:
    """Renames ``source`` to ``target``; FileExistsError when ``target`` exists (never replaces it)."""
    try:
        os.link(source, target)  # fails if target exists: the check and the move are one step
    except FileExistsError:
        raise
    except OSError:
        # No hard links here (FAT, some network shares, a folder): a plain rename. On Windows it refuses
        # an existing target by itself; elsewhere the exists() check leaves only a tiny window.
        if target.exists() or target.is_symlink():
            raise FileExistsError(target) from None
        os.rename(source, target)
        return
    source.unlink()


def move_aside(path: Path, companions: tuple[str, ...] = (), when: float | None = None) -> Path:
    """Moves ``path`` to a new ``.damaged-<timestamp>`` name beside it and returns that name.

    ``companions`` are suffixes of files that belong to it (SQLite's ``-wal``, ``-shm``); those that exist move
    along as ``<new name><suffix>`` so the kept copy opens with its own journal. Raises OSError if the move
    is impossible (read-only folder); nothing is deleted either way."""
    path = Path(path)
    for candidate in _candidates(path, when):
        if any(candidate.with_name(candidate.name + s).exists() for s in companions):
            continue
        try:
            _move_exclusive(path, candidate)
        except FileExistsError:
            continue
        for suffix in companions:
            extra = path.with_name(path.name + suffix)
            if extra.exists():
                _move_exclusive(extra, candidate.with_name(candidate.name + suffix))
        log.info("kept the damaged file %s as %s", path, candidate)  # the caller tells the user, in its words
        return candidate
    raise AssertionError("unreachable")  # _candidates never ends


def copy_aside(path: Path, data: bytes, tag: str, when: float | None = None) -> Path:
    """Writes ``data`` (the file's bytes as they were read) to a new ``<name>.<tag>-<timestamp>`` beside ``path``,
    atomically, and returns that name: a copy of a file that is about to be rewritten in a form that loses
    something (a newer version's file rewritten by this one). Never over an existing name; raises OSError or
    UserError when the copy cannot be written."""
    from gpu.atomic import atomic_write_bytes

    path = Path(path)
    for candidate in _candidates(path, when, tag):
        if candidate.exists() or candidate.is_symlink():
            continue
        atomic_write_bytes(candidate, data)
        log.info("kept a copy of %s as %s", path, candidate)
        return candidate
    raise AssertionError("unreachable")  # _candidates never ends
