"""SVDQ files this process verified whole (sizes and checksum), so that one just verified is not read again.

The quantizer verifies its output before it throws its parts away, and adding that file to the library verified it
once more: gigabytes read twice within seconds (about 4 s for a 6.4 GiB FLUX.1-dev model from the page cache, far
longer from a slow disk), which held up the app's quit when the add was left to it. A verification is remembered
only with the file's identity (device, inode, size, modification and change times) taken before the read and
found unchanged after it, and is taken again only while that identity is the file's: any write, a rename over the
path, a copy put in its place changes it. Only a file of this process's own verifications is trusted; nothing
is kept on disk."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from gpu.paths import resolved

# resolved path -> the identity the file had, unchanged, all through its verification
_verified: dict[str, tuple[int, ...]] = {}
_lock = threading.Lock()  # the quantizer's thread records, the engine's (or the quitting GUI) thread reads


def _identity(path: Path) -> tuple[int, ...] | None:
    """What makes the file at ``path`` the one that was read: None when it cannot be told (no such file)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    # ctime too: it changes with any write and cannot be set back, where the modification time can (a tool that
    # restores it, a write within one tick of a coarse clock).
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def verify_checkpoint_once(path: Path | str) -> None:
    """``gpu.checkpoint.format.verify_checkpoint(path)`` (raises ``CheckpointError``), skipped when this process
    verified the very same file, unchanged since; a verification during which the file did not change is
    remembered."""
    from gpu.checkpoint.format import verify_checkpoint

    path = Path(path)
    key = str(resolved(path))
    before = _identity(path)
    with _lock:
        if before is not None and _verified.get(key) == before:
            return
    verify_checkpoint(path)
    if before is not None and _identity(path) == before:
        with _lock:
            _verified[key] = before


def forget_verified() -> None:
    """Forgets every verification (tests)."""
    with _lock:
        _verified.clear()
