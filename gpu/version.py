"""Application name and version, recorded in checkpoints and image metadata; and the engine's stamp
(``engine_stamp``), which changes whenever its code does."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import uuid
from pathlib import Path

APP_NAME = "NibbleStudio"
__version__ = "0.1.0"


def code_stamp(folder: Path) -> str:
    """A short hash of the ``.py`` files under ``folder`` (their paths and contents) and of the ``.pyc`` files that
    stand for sources (beside them, outside ``__pycache__``: an install compiled and stripped, wholly or in part):
    another edit, another stamp. The caches in ``__pycache__`` are left out: Python writes them as it imports. A
    file that cannot be looked at or read (in a folder that can be listed but not entered, removed meanwhile) counts
    by its name alone, and a link that leads nowhere (an editor's lock link) is passed over: a stamp that raised
    would fail every library save. With no code found at all the stamp is this
    process's own (``engine_stamp`` takes it once per process), so nothing recorded under an unknown engine is taken
    for this one's."""
    files = sorted(p for p in [*folder.rglob("*.py"), *folder.rglob("*.pyc")]
                   if _regular_or_unknown(p) and (p.suffix == ".py" or "__pycache__" not in p.parts))  # fmt: skip
    if not files:
        return f"unknown-{uuid.uuid4().hex[:12]}"
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        try:
            digest.update(path.read_bytes() + b"\0")
        except OSError:
            digest.update(b"unreadable\0")
    return digest.hexdigest()[:12]


def _regular_or_unknown(path: Path) -> bool:
    """Whether ``path`` is a regular file, or cannot be looked at (then counted by its name: ``code_stamp``)."""
    try:
        return path.is_file()
    except OSError:  # its folder listed but not entered: is_file raises rather than answers
        return True


@functools.cache
def engine_stamp() -> str:
    """The version and a stamp of the engine's code, read once per process: what a record that holds under this
    engine only keeps (``gpu.library_found``: a file whose check failed, which a fixed engine checks again). The
    version alone stays the same between releases, over any number of fixes. The stamp is a hash of the ``gpu``
    package's sources (``code_stamp``, some 1 MB: 10 to 50 ms, taken only once such a record is read or written);
    in a frozen bundle (PyInstaller), which need not hold them, the executable's size and modification time, which
    each build writes anew."""
    if getattr(sys, "frozen", False):
        st = os.stat(sys.executable)
        stamp = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:12]
    else:
        stamp = code_stamp(Path(__file__).parent)
    return f"{__version__}+{stamp}"
