"""Why a write failed and what to do, in the user's words, from the OS error behind it: raised as such, or as
safetensors reports one in its text ("(os error 28)"; on Windows a system error code, mapped to its errno)."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path

from gpu.errors import OutputError
from gpu.output_folders import LinkLeadsNowhere

# Windows system error codes (winerror.h). safetensors reports them as "(os error N)" there, instead of an errno.
_WIN_ACCESS_DENIED, _WIN_SHARING_VIOLATION, _WIN_LOCK_VIOLATION = 5, 32, 33
_SHARING_VIOLATIONS = (_WIN_SHARING_VIOLATION, _WIN_LOCK_VIOLATION)  # another program has the file open
_WINDOWS_ERRNO = {112: errno.ENOSPC, 39: errno.ENOSPC, _WIN_ACCESS_DENIED: errno.EACCES, 19: errno.EROFS,
                  **dict.fromkeys(_SHARING_VIOLATIONS, errno.EACCES)}  # disk full (112, 39), write-protected (19)

# Windows refuses a rename onto a file another program has open for a moment (antivirus, the search indexer,
# a thumbnailer reading a file just written): access denied or sharing violation. Retried briefly there
# (``gpu.atomic.replace_file``).
BUSY_WINERRORS = (_WIN_ACCESS_DENIED, *_SHARING_VIOLATIONS)

_HINTS = {
    errno.ENOSPC: "free some disk space or choose another folder",
    errno.EDQUOT: "free some disk space or choose another folder",
    errno.EROFS: "choose a folder you can write to",
    errno.EACCES: "choose a folder you can write to",
    errno.EPERM: "choose a folder you can write to",
    errno.ENAMETOOLONG: "choose a shorter name, or a folder with a shorter path",
}


def own_remedy(err: OSError) -> tuple[str, str] | None:
    """Why a write failed and what to do, for a failure that lies in neither the folder's permissions nor its
    disk, whose remedy is another than a writable folder: another program has the file open, a link leads
    nowhere. None for any other failure."""
    if getattr(err, "winerror", None) in _SHARING_VIOLATIONS:  # EACCES on Windows, but no folder problem
        return "the file is open in another program", "close the program that has it open, then try again"
    if isinstance(err, LinkLeadsNowhere):
        return err.strerror, err.hint
    return None


def output_error(target: Path, err: OSError) -> OutputError:
    """The ``OutputError`` for a write of ``target`` that failed with ``err``: "cannot write <target>: <why>", with
    what to do (``own_remedy``, else a hint for the errno)."""
    reason, hint = own_remedy(err) or (err.strerror or str(err), _HINTS.get(err.errno or 0, ""))
    return OutputError(f"cannot write {target}: {reason}", hint)


def os_error_of(exc: BaseException, windows: bool = os.name == "nt") -> OSError | None:
    """The OS error behind ``exc``: itself, or one that safetensors reports as text ("... (os error 28)"; on
    Windows the number is a system error code, mapped here to its errno)."""
    if isinstance(exc, OutputError):
        return None
    if isinstance(exc, OSError):
        return exc
    match = re.search(r"\(os error (\d+)\)", str(exc))
    if type(exc).__name__ != "SafetensorError" or not match:
        return None
    code = int(match.group(1))
    if not windows:
        return OSError(code, os.strerror(code))
    mapped = _WINDOWS_ERRNO.get(code)
    err = OSError(mapped or 0, os.strerror(mapped) if mapped else f"Windows error {code}")
    err.winerror = code  # type: ignore[attr-defined]  # as Python's own OSError has it on Windows
    return err
