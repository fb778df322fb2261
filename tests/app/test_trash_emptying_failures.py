"""Empty trash when files cannot be deleted (open in another program on Windows, read-only): each failure was
logged one line at a time on the Qt thread at the end, tens of thousands of lines freezing the window meanwhile (one
line sums them up now; the message shown is unchanged), and each kept the deletion's frame."""

from __future__ import annotations

import gc
import logging
import threading
import weakref
from pathlib import Path

from app.data_dir import resolve_data_dir
from app.trash_listing import TrashEmptied, delete_listed, list_trash
from tests.app.gui import gallery_images, trash_listing, window_without_engine

_FAILING = 200


def test_many_files_that_could_not_be_deleted_are_logged_in_one_line(qtbot, data_root, monkeypatch, caplog):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["emu"])
    left = data.trash / "left"  # files without a row, as a quit during Empty trash leaves them: it deletes them
    left.mkdir()
    for i in range(_FAILING):
        (left / f"{i}.png").write_bytes(b"png")
    window = window_without_engine(qtbot, data)
    controller, gallery = window.controller, window.controller.gallery
    errors: list = []
    controller.error.connect(errors.append)
    unlink = Path.unlink

    def in_use(self: Path, missing_ok: bool = False) -> None:  # as Windows refuses a file open in another program
        if "trash" in self.parts and threading.current_thread() is not threading.main_thread():
            raise PermissionError(13, "in use by another program", str(self))
        unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", in_use)
    caplog.set_level(logging.ERROR, logger="app.controller")
    with qtbot.waitSignal(gallery.trash_emptied, timeout=30000) as ended:
        assert controller.empty_trash(trash_listing(qtbot, gallery))
    failures = ended.args[0].failures
    assert len(failures) == _FAILING
    logged = [r.getMessage() for r in caplog.records if r.name == "app.controller"]
    assert len(logged) == 1, logged[:3]  # was: one line per file
    first = failures[0][0]
    shown = ", ".join(str(path) for path, _ in failures[:5])
    assert logged[0] == (f"emptying the trash: {_FAILING} files could not be deleted ({shown} and {_FAILING - 5} "
                         f"more); the first: [Errno 13] in use by another program: '{first}'")  # fmt: skip
    assert len(errors) == 1 and errors[0].message.startswith(  # as it was
        f"The trash was only partly emptied: {first} and {_FAILING - 1} other files could not be deleted (in use by "
        "another program). 0 files were deleted")  # fmt: skip


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
