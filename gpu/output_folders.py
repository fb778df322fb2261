"""Output folders: making the ones a write needs (one level at a time, and taking back the empty ones a failed write
made), checking that a file can be made in one, and saying why one cannot be made or used (a file in its place, a
link that leads nowhere, a loop of links) in the user's terms."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from gpu.errors import OutputError
from gpu.paths import resolved


def missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its ancestors that do not exist yet, deepest first: what a ``mkdir(parents=True)``
    of it is about to create, for ``remove_empty_folders`` to take back."""
    missing = []
    while not _exists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _exists(path: Path) -> bool:
    """``path.exists()``, False too for a name or path too long to exist (which it raises for)."""
    try:
        return path.exists()
    except OSError as err:
        if err.errno != errno.ENAMETOOLONG:
            raise
        return False


def make_folders(missing: list[Path]) -> None:
    """Creates ``missing`` (``missing_folders``' list, deepest first) from the top down, one level at a time:
    ``Path.mkdir(parents=True)`` recurses once per level and raised RecursionError under a thousand of them
    (``--out d/d/…/d/a.png``), after the image was made. A link in the way is said as what it is
    (``broken_link``), not as mkdir's "File exists"."""
    for folder in reversed(missing):
        try:
            folder.mkdir(exist_ok=True)
        except FileExistsError as exists:
            raise broken_link(folder) or exists from None


class LinkLeadsNowhere(FileNotFoundError):
    """A folder to make or to use is a link (a symbolic link, a Windows junction) whose target is not there: mkdir
    says "File exists" at its name, and following it would make its target, on the system disk where the link
    led to an unmounted drive. ``strerror`` names the link and its target; ``filename`` is the link."""

    hint = "plug in or mount the drive the link leads to, or make the folder it names, or choose another folder"

    def __init__(self, link: Path) -> None:
        super().__init__(errno.ENOENT, f"{link} is {link_to_nothing(link)}", str(link))


def link_to_nothing(link: Path) -> str:
    """Why the link (or Windows junction) ``link`` leads nowhere, as a phrase: "a link to <target>, which is not
    there: …". A relative target is shown joined onto the link's folder ("../elsewhere/gone" said nothing of where
    that is), and where the target is a link too, where the chain ends: "a link to <target>, which leads on to
    <end>, which is not there"."""
    hops: list[str] = []
    here = os.fspath(link)
    while len(hops) < _MAX_HOPS:  # a loop is said as one (broken_link), not here; bounded all the same
        try:
            target = os.readlink(here)
        except OSError:  # not a link (the end of the chain), or not one this system reads
            break
        # the folder that holds the link exists, and is where the system starts a relative target from
        here = os.path.normpath(os.path.join(os.path.realpath(os.path.dirname(here)), target))
        hops.append(here)
    where = f" to {hops[0]}" if hops else ""
    if len(hops) > 1:
        where += f", which leads on to {hops[-1]}"
    return (f"a link{where}, which is not there: the drive it is on may be unplugged or unmounted, or the folder "
            "moved or removed")  # fmt: skip


_MAX_HOPS = 40  # as many links as Linux follows in one path


def broken_link(folder: Path) -> OSError | None:
    """Why ``folder``, which ``missing_folders`` takes for missing, cannot be made though something has its name:
    a link that leads nowhere (``LinkLeadsNowhere``), or a loop of links, said as the system says it ("Too many
    levels of symbolic links") as mkdir(parents=True) said it; None for anything else."""
    if not os.path.lexists(folder):
        return None
    try:
        os.stat(folder)
    except OSError as err:
        if err.errno == errno.ELOOP:
            return OSError(err.errno, err.strerror, str(folder))
        if err.errno in (errno.ENOENT, errno.ENOTDIR):
            return LinkLeadsNowhere(folder)
    return None


def check_folder_writable(folder: Path) -> None:
    """Raises ``OSError`` (its ``filename`` ``folder``, its ``strerror`` a phrase such as "no file can be created
    in it: Permission denied") unless a file can be made in the existing ``folder``. A file is actually created
    and removed: ``os.access`` answers yes to root whatever the permission bits, and yes for /proc, /sys and some
    network and read-only mounts, where creating a file then fails."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-test-", dir=folder)
    except OSError as err:
        raise OSError(err.errno, f"no file can be created in it: {err.strerror or err}", str(folder)) from err
    os.close(fd)
    try:
        os.unlink(probe)
    except OSError as err:  # replacing or deleting any file there would fail the same way, later
        raise OSError(
            err.errno, f"a file can be created in it but not removed ({Path(probe).name}): {err.strerror or err}",
            str(folder),
        ) from err


def folder_problem(folder: Path, err: OSError) -> str:
    """Why ``folder`` could not be created or written in, in the user's terms. mkdir's own words mislead in two
    cases: a file at that name is "File exists", a file in place of a parent folder is "Not a directory" on the
    folder; and "Too many levels of symbolic links" is said as the loop of links it is. A link that leads nowhere
    is said by ``LinkLeadsNowhere``'s own words, which name it."""
    if isinstance(err, LinkLeadsNowhere):
        return err.strerror
    if folder.exists() and not folder.is_dir():
        return "it is a file, not a folder"
    if isinstance(err, NotADirectoryError):
        for parent in folder.absolute().parents:
            if parent.exists() and not parent.is_dir():
                return f"{parent} is a file, not a folder"
    named = Path(err.filename) if isinstance(err, FileExistsError) and err.filename else None
    if named is not None and named.exists() and not named.is_dir():  # a folder to make inside it (the data's images/)
        return f"{named} is a file, not a folder"
    # resolved(), not Path.resolve(): that raises RuntimeError on a link loop (Python < 3.13)
    where = f"{err.filename}: " if err.filename and resolved(err.filename) != resolved(folder) else ""
    return f"{where}{'a symbolic link loop' if err.errno == errno.ELOOP else err.strerror or err}"


def make_output_folder(folder: Path | str, what: str = "the results into",
                       hint: str = "give --out a folder you can write to (a missing one is made)") -> Path:  # fmt: skip
    """Creates ``folder`` (and its parents) for a command that writes its results into it at the end of a long
    run (the benchmarks, the images of ``main.py generate``), and checks that a file can be made there: an
    OutputError "cannot write <what> <folder>: <why>", with ``hint``, comes now rather than after the run."""
    folder = Path(folder)
    try:
        make_folders(missing_folders(folder))
        check_folder_writable(folder)
    except OSError as err:
        raise OutputError(f"cannot write {what} {folder}: {folder_problem(folder, err)}", hint) from None
    return folder


def remove_empty_folders(folders: list[Path]) -> None:
    """Removes ``folders`` (deepest first) while they are empty, and stops at the first that is not: one that
    holds a file (written since, or put there by another process) stays, and so do its ancestors. One that is not
    there is passed over: ``make_folders`` stopped below the ones it made (a name too long, a full disk), and
    stopping there left those (``a/b`` of ``a/b/<300 characters>/c``)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            if os.path.lexists(folder):  # False too where it cannot be looked at (a name too long to exist)
                return
