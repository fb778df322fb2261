"""Empty trash when files cannot be deleted (open in another program on Windows, read-only): each failure was
logged one line at a time on the Qt thread at the end, tens of thousands of lines freezing the window meanwhile (one
line sums them up now; the message shown is unchanged), and each kept the deletion's frame."""

from __future__ import annotations

import errno
import gc
import logging
import os
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

from app.data_dir import resolve_data_dir
from app.trash_listing import TrashEmptied, delete_listed, list_trash
from tests.app.gui import gallery_images, trash_listing, window_without_engine

_FAILING = 200


def _emptied_failing(qtbot, data_root, monkeypatch, caplog, names: list[str], refused: Callable[[Path], OSError | None]
                     ) -> tuple[TrashEmptied, list[str], list]:  # fmt: skip
    """Empty trash of files ``names`` (and folders: a name ending in "/") left in the trash, each file or folder
    refused ``refused(path)`` (as Windows refuses a file open in another program) unless that is None: what it
    did, the lines it logged and the errors it said."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["emu"])
    left = data.trash / "left"  # files without a row, as a quit during Empty trash leaves them: it deletes them
    for name in names:
        (left / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("/"):
            (left / name).mkdir(exist_ok=True)
        else:
            (left / name).write_bytes(b"png")
    window = window_without_engine(qtbot, data)
    controller, gallery = window.controller, window.controller.gallery
    errors: list = []
    controller.error.connect(errors.append)
    unlink, rmdir = Path.unlink, Path.rmdir

    def refusing(delete: Callable[..., None]) -> Callable[..., None]:
        def deleting(self: Path, *args: object) -> None:
            if "trash" in self.parts and threading.current_thread() is not threading.main_thread():
                if (why := refused(self)) is not None:
                    raise why
            delete(self, *args)

        return deleting

    monkeypatch.setattr(Path, "unlink", refusing(unlink))
    monkeypatch.setattr(Path, "rmdir", refusing(rmdir))
    caplog.set_level(logging.ERROR, logger="app.trash_actions")
    with qtbot.waitSignal(gallery.trash_emptied, timeout=30000) as ended:
        assert controller.empty_trash(trash_listing(qtbot, gallery))
    return ended.args[0], [r.getMessage() for r in caplog.records if r.name == "app.trash_actions"], errors


def test_many_files_that_could_not_be_deleted_are_logged_in_one_line(qtbot, data_root, monkeypatch, caplog):
    def in_use(path: Path) -> OSError:
        return PermissionError(13, "in use by another program", str(path))

    names = [f"{i}.png" for i in range(_FAILING)]
    emptied, logged, errors = _emptied_failing(qtbot, data_root, monkeypatch, caplog, names, in_use)
    failures = emptied.failures
    assert len(failures) == _FAILING
    assert len(logged) == 1, logged[:3]  # was: one line per file
    shown = ", ".join(str(path) for path, _ in failures[:3])
    assert logged[0] == (f"emptying the trash: {_FAILING} files could not be deleted: [Errno 13] in use by another "
                         f"program ({shown} and {_FAILING - 3} more)")  # fmt: skip
    first = failures[0][0]
    assert len(errors) == 1 and errors[0].message.startswith(  # as it was
        f"The trash was only partly emptied: {first} and {_FAILING - 1} other files could not be deleted (in use by "
        "another program). 0 files were deleted")  # fmt: skip


def test_files_and_folders_that_could_not_be_deleted_are_logged_by_reason(qtbot, data_root, monkeypatch, caplog):
    # The line named the first error only: other reasons (one EIO among many EACCES) were logged nowhere, and said
    # nowhere (the message gave the first one's reason for all), and a folder was counted as a file.
    reasons = [errno.EACCES, errno.EBUSY, errno.EIO, errno.EROFS, errno.EPERM, errno.ETXTBSY, errno.ELOOP]
    names = [f"{code}-{i}.png" for n, code in enumerate(reasons) for i in range(len(reasons) - n)]  # 7 EACCES ... 1

    def why(path: Path) -> OSError | None:  # the folder "empty/": refused as the files of the first reason
        code = errno.EACCES if path.name == "empty" else int(path.name.split("-")[0]) if "-" in path.name else None
        return None if code is None else OSError(code, os.strerror(code), str(path))

    emptied, logged, errors = _emptied_failing(qtbot, data_root, monkeypatch, caplog, names + ["empty/"], why)
    assert len(emptied.failures) == len(names) + 1
    assert len(logged) == 7, logged  # the total, five reasons, the other two: a few lines however many
    assert logged[0] == "emptying the trash: 28 files and 1 folder could not be deleted, for 7 reasons:"
    heads = [line.split(" (")[0] for line in logged[1:]]
    assert heads == ["emptying the trash: 7 files and 1 folder: [Errno 13] Permission denied",
                     "emptying the trash: 6 files: [Errno 16] Device or resource busy",
                     "emptying the trash: 5 files: [Errno 5] Input/output error",
                     "emptying the trash: 4 files: [Errno 30] Read-only file system",
                     "emptying the trash: 3 files: [Errno 1] Operation not permitted",
                     "emptying the trash: and 3 files for 2 other reasons, the first: [Errno 26] Text file busy"]
    assert logged[3].endswith(" and 2 more)") and logged[-1].endswith(".png)")  # three named: 5, then 2
    first, exc = emptied.failures[0]
    other = sum(1 for _, each in emptied.failures if each.errno != exc.errno)
    assert [error.message.split(". ")[0] for error in errors] == [
        f"The trash was only partly emptied: {first} and 27 other files and 1 other folder could not be deleted "
        f"({exc.strerror}; {other} of them for other reasons, named in the log file)"]


class _Told:
    """What the deletion tells of its progress (the gallery's, which holds the gallery)."""

    def __call__(self, deleted: int) -> None:
        pass


def test_a_file_that_could_not_be_deleted_is_kept_without_the_deletions_frame(tmp_path, monkeypatch):
    # Its OSError kept its traceback, whose frame held the TrashEmptied it was kept in (a reference cycle, freed by
    # a garbage collection on whatever thread ran it) and ``told``, the gallery's: a Qt object freed with it.
    trash = tmp_path / "trash"
    trash.mkdir()
    (trash / "open.png").write_bytes(b"png")
    listing = list_trash(trash)

    def in_use(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(13, "in use by another program", str(self))

    monkeypatch.setattr(Path, "unlink", in_use)
    told = _Told()
    kept = weakref.ref(told)
    gc.disable()  # no collection meanwhile, which would hide the cycle
    try:
        emptied = delete_listed(listing, threading.Event(), told, TrashEmptied())
        assert [(path.name, exc.errno) for path, exc in emptied.failures] == [("open.png", 13)]
        del told
        assert kept() is None  # was: held by the failure's traceback
    finally:
        gc.enable()
