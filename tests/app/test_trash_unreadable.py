"""A trash folder that cannot be read all through (a folder in it without read permission, a drive's read error):
``Path.rglob`` skipped what it could not read, so the listing found nothing there and Empty trash said "The trash is
empty." (greyed at start) while the files stayed. Its listing fails now, which names the folder.

The tests run as root, whom a folder without read permission does not stop: ``os.scandir`` refuses that one
folder as the system refuses it to another user."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from app.data_dir import resolve_data_dir
from app.trash_listing import list_trash
from tests.app.gui import trash_settled, window_without_engine


def _refused(monkeypatch, folder: Path) -> None:
    """``os.scandir`` refuses ``folder`` from now on, as for a folder the user may not read."""
    scandir = os.scandir

    def refusing(path="."):
        if not isinstance(path, int) and Path(path) == folder:  # (shutil.rmtree lists by file descriptor)
            raise PermissionError(13, "Permission denied", str(path))
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
