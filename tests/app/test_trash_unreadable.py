"""A trash folder that cannot be read all through (a folder in it without read permission, a drive's read error):
``Path.rglob`` skipped what it could not read, so the listing found nothing there and Empty trash said "The trash is
empty." (greyed at start) while the files stayed. Its listing fails now, which names the folder.

The tests run as root, whom a folder without read permission does not stop: ``os.scandir`` refuses that one
folder as the system refuses it to another user."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from pathlib import Path

import pytest

from app.data_dir import resolve_data_dir
from app.trash_listing import list_trash
from tests.app.gui import gallery_images, trash_settled, window_without_engine


def _refused(monkeypatch, folder: Path, code: int = errno.EACCES) -> None:
    """``os.scandir`` refuses ``folder`` from now on with the error ``code``, as for a folder the user may not read
    (EACCES: a ``PermissionError``), or one on a failing drive (EIO)."""
    scandir = os.scandir

    def refusing(path="."):
        if not isinstance(path, int) and Path(path) == folder:  # (shutil.rmtree lists by file descriptor)
            raise OSError(code, os.strerror(code), str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)


def test_a_folder_of_the_trash_that_cannot_be_read_fails_the_listing(tmp_path, monkeypatch):
    trash = tmp_path / "trash"
    (trash / "kept" / "inner").mkdir(parents=True)
    (trash / "kept" / "inner" / "x.png").write_bytes(b"png")
    (trash / "y.png").write_bytes(b"png")
    _refused(monkeypatch, trash / "kept" / "inner")
    with pytest.raises(PermissionError) as refused:
        list_trash(trash)  # was: the files it could read (y.png), as if they were all
    assert refused.value.filename == str(trash / "kept" / "inner")


def test_a_folder_of_the_trash_gone_while_it_is_listed_holds_nothing_to_list(tmp_path, monkeypatch):
    trash = tmp_path / "trash"
    for name in ("a", "b"):
        (trash / name).mkdir(parents=True)
        (trash / name / "x.png").write_bytes(b"png")
    scandir = os.scandir

    def removing_the_other(path="."):  # another program deletes one folder while the other is listed
        if not isinstance(path, int) and Path(path).parent == trash:
            shutil.rmtree(trash / ("b" if Path(path).name == "a" else "a"), ignore_errors=True)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", removing_the_other)
    listing = list_trash(trash)
    assert len(listing.files) == 1 and len(listing.folders) == 2  # the folder gone is deleted as gone (rmdir)


def test_empty_trash_of_a_trash_that_cannot_be_read_says_which_folder_not_that_it_is_empty(qtbot, data_root,
                                                                                            monkeypatch):  # fmt: skip
    data = resolve_data_dir(data_root)
    left = data.trash / "left"  # files without a row, as a quit during Empty trash leaves them
    left.mkdir(parents=True)
    (left / "0.png").write_bytes(b"png")
    _refused(monkeypatch, left)
    window = window_without_engine(qtbot, data)
    panel, gallery = window.gallery_panel, window.controller.gallery
    errors: list = []
    window.controller.error.connect(errors.append)
    trash_settled(qtbot, gallery)
    assert panel.empty_trash_button.isEnabled()  # was: greyed, the trash listed as empty
    panel.empty_trash_button.click()
    trash_settled(qtbot, gallery)
    assert [error.message for error in errors] == [  # was: "The trash is empty."
        f"The trash folder {data.trash} could not be read ({left}: Permission denied), so it was not emptied."]
    assert panel.empty_trash_button.isEnabled() and (left / "0.png").is_file()


def test_a_trash_that_stays_unreadable_is_logged_once_per_reason_in_one_line(qtbot, data_root, monkeypatch, caplog):
    """The trash is listed again on a thread after each undo that leaves nothing to undo (and at start, and after
    Empty trash): a folder of it that stayed unreadable logged the listing's whole traceback every time. One line
    names the trash folder and why, once per reason this session; Empty trash still says it cannot be read."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red fox"])
    left = data.trash / "left"
    left.mkdir(parents=True)
    (left / "0.png").write_bytes(b"png")
    _refused(monkeypatch, left)
    caplog.set_level(logging.INFO, logger="app.trash_emptier")
    window = window_without_engine(qtbot, data)
    gallery = window.controller.gallery
    trash_settled(qtbot, gallery)  # the listing at start

    def delete_and_undo() -> None:  # the undo empties Undo's list: the trash is listed again, in the background
        assert gallery.delete([0])
        trash_settled(qtbot, gallery)
        assert gallery.undo_delete() and gallery.rowCount() == 1
        trash_settled(qtbot, gallery)

    delete_and_undo()
    delete_and_undo()
    _refused(monkeypatch, left, errno.EIO)  # another reason: said once more
    delete_and_undo()
    delete_and_undo()
    logged = [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records if "trash folder" in r.getMessage()]
    assert logged == [  # was: its traceback at each of the five listings
        (logging.WARNING, f"the trash folder {data.trash} cannot be read ({left}: Permission denied)", None),
        (logging.WARNING, f"the trash folder {data.trash} cannot be read ({left}: Input/output error)", None),
    ], logged
    assert window.gallery_panel.empty_trash_button.isEnabled()  # not greyed as an empty trash is
