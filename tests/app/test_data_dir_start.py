"""The data folder the app is started with, as the user named it: a link that leads nowhere, ``~``, a blank name.

The windowed app has no console: what is wrong with the folder it was given is said in a dialog before any window
opens, and nothing is made where the user did not mean."""

from __future__ import annotations

import errno
import os
import sys

import pytest
from PySide6.QtWidgets import QApplication

from app.data_dir import resolve_data_dir
from app.main_window import run_app
from gpu.output_folders import LinkLeadsNowhere
from tests.app.gui import accept_dialog_later


@pytest.mark.skipif(os.name == "nt", reason="links need a privilege on Windows")
def test_a_data_folder_under_a_link_that_leads_nowhere_is_named_and_its_target_never_made(qtbot, tmp_path):
    """``resolve_data_dir`` resolved the folder through the link and made the link's target: on the system disk,
    where the link led to a drive that was not mounted."""
    link, gone = tmp_path / "drive", tmp_path / "unplugged"
    link.symlink_to(gone)
    why = f"{link} is a link to {gone}, which is not there"
    with pytest.raises(OSError, match=why):  # first: where it is not refused, run_app opens the window and waits
        resolve_data_dir(link / "data")
    seen: list[str] = []
    accept_dialog_later(seen)
    assert run_app(["nibble-studio"], link / "data") == 1  # a dialog, then a clean exit: no traceback
    # The data folder asked for is named, then the link (it named the link as the data folder, and said it twice),
    # with the link's own hint (it was "use a writable data folder", the drive not mentioned)
    assert seen == [f"Nibble Studio cannot start\nThe data folder {link / 'data'} cannot be used: {why}: the drive it "
                    "is on may be unplugged or unmounted, or the folder moved or removed.\nPlug in or mount the drive "
                    "the link leads to, or make the folder it names, or choose another folder."], seen  # fmt: skip
    assert sorted(tmp_path.iterdir()) == [link]


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_windowed_app_given_a_data_dir_that_names_no_folder_says_so_in_a_dialog(qtbot, tmp_path, monkeypatch,
                                                                                   blank,
                                                                                   a_gui_can_be_seen):  # fmt: skip
    """The windowed executable (no console: ``sys.stderr`` is None) started with ``--data-dir ""`` exited 2 and
    printed its reason to no one; nothing showed. It says it in a dialog, and still opens no window."""
    from main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stderr", None)
    seen: list[str] = []
    accept_dialog_later(seen)
    assert main(["--data-dir", blank]) == 2
    name = "only spaces" if blank else "empty"
    assert seen == [f'Nibble Studio cannot start\n--data-dir "{blank}": the folder name is {name}.\nGive a folder, '
                    "e.g. --data-dir ~/nibble-data, or leave --data-dir out for the default one."]  # fmt: skip
    assert [w for w in QApplication.topLevelWidgets() if w.isVisible()] == [] and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name == "nt", reason="links need a privilege on Windows")
def test_an_images_folder_that_is_a_link_loop_or_leads_nowhere_is_said_as_such_by_the_one_rule(qtbot, tmp_path):
    """``DataDir.create`` had a check of its own for images/ beside ``gpu.output_folders.broken_link``: a loop of links
    there was said as "a link to …, which is not there". It makes images/ as every folder is made
    (``make_folders``): a loop said as one, a link that leads nowhere named with its target and the hint."""
    from app.data_dir import DataDir

    root = tmp_path / "data"
    root.mkdir()
    (root / "images").symlink_to(root / "images")
    with pytest.raises(OSError) as loop:
        DataDir(root).create()
    assert loop.value.errno == errno.ELOOP and "not there" not in str(loop.value), loop.value
    (root / "images").unlink()
    (root / "images").symlink_to(tmp_path / "unplugged")
    with pytest.raises(LinkLeadsNowhere) as gone:
        DataDir(root).create()
    assert gone.value.strerror.startswith(f"{root / 'images'} is a link to {tmp_path / 'unplugged'}, which is not")
    seen: list[str] = []
    accept_dialog_later(seen)
    assert run_app(["nibble-studio"], root) == 1  # the data folder named, then images/ as the link
    assert len(seen) == 1 and f"The data folder {root} cannot be used: {gone.value.strerror}." in seen[0], seen
    assert "\nPlug in or mount the drive the link leads to" in seen[0], seen
    assert sorted(tmp_path.iterdir()) == [root] and sorted(root.iterdir()) == [root / "images"]


@pytest.mark.skipif(os.name == "nt", reason="links need a privilege on Windows")
def test_a_trash_folder_that_is_a_link_leading_nowhere_is_named_with_the_plug_in_hint(qtbot, tmp_path):
    """trash/ was made by a plain mkdir: a link to an unplugged drive there was said as "File exists", with the
    advice to use a writable data folder. It is made as images/ is (``make_folders``), and refuses the start: the
    gallery's deletes go through it. (A models folder there does not: ``test_models_folder_away``.)"""
    name = "trash"
    root, gone = tmp_path / "data", tmp_path / "usbdrive" / name
    root.mkdir()
    (root / name).symlink_to(gone)
    seen: list[str] = []
    accept_dialog_later(seen)
    assert run_app(["nibble-studio"], root) == 1
    assert seen == [f"Nibble Studio cannot start\nThe data folder {root} cannot be used: {root / name} is a link to "
                    f"{gone}, which is not there: the drive it is on may be unplugged or unmounted, or the folder "
                    "moved or removed.\nPlug in or mount the drive the link leads to, or make the folder it names, "
                    "or choose another folder."], seen  # fmt: skip
    assert not gone.parent.exists()


@pytest.mark.parametrize("blank", ["", "  "])
def test_the_app_started_on_its_own_refuses_a_data_dir_that_names_no_folder(qtbot, tmp_path, monkeypatch, blank):
    """``python -m app.main_window --data-dir ""`` read the flag as a Path: "" was the current folder, and user
    data was made wherever the app was started. It is read as main.py reads it, and refused in the same words."""
    from app.main_window import parse_args

    monkeypatch.chdir(tmp_path)
    # first: where it is not refused, run_app makes the data folder here, opens the window and waits
    assert parse_args(["nibble-studio", "--data-dir", blank]).data_dir == blank
    seen: list[str] = []
    accept_dialog_later(seen)
    assert run_app(["nibble-studio", "--data-dir", blank]) == 2
    name = "only spaces" if blank else "empty"
    assert seen == [f'Nibble Studio cannot start\n--data-dir "{blank}": the folder name is {name}.\nGive a folder, '
                    "e.g. --data-dir ~/nibble-data, or leave --data-dir out for the default one."]  # fmt: skip
    assert [w for w in QApplication.topLevelWidgets() if w.isVisible()] == [] and list(tmp_path.iterdir()) == []


def test_an_images_file_in_the_data_folder_is_said_as_a_file_where_a_folder_goes(qtbot, tmp_path):
    """A file named images in the data folder was said "The data folder R cannot be used: R/images: File exists",
    mkdir's words; it is said as the file it is, in place of the folder the app keeps its pictures in."""
    root = tmp_path / "data"
    root.mkdir()
    (root / "images").write_bytes(b"not a folder")
    seen: list[str] = []
    accept_dialog_later(seen)
    assert run_app(["nibble-studio"], root) == 1
    assert len(seen) == 1 and f"cannot be used: {root / 'images'} is a file, not a folder." in seen[0], seen
    assert (root / "images").read_bytes() == b"not a folder"
