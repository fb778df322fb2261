"""The data folder moved, renamed or removed while the app runs: nothing is written at its old path (which split
images from their database), and the job, delete or undo that would have is refused in words that say what
happened and what to do."""

from __future__ import annotations

import errno
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from app.data_dir import DataDir, DataDirMoved
from app.gallery_model import GalleryModel
from app.image_files import images_folder, move_to_trash, new_image_path, restore_from_trash
from app.store import Store
from app.trash_listing import list_trash
from gpu.generation.png_metadata import write_png


@pytest.fixture
def moved(tmp_path) -> tuple[DataDir, DataDir]:
    """A data folder as the app opened it, with one image in the gallery's folder and one in the trash, then
    renamed (as in a file manager): the DataDir the app holds, and the folder where the data is now."""
    data = DataDir(tmp_path / "nibble").create()
    for folder in (data.images, data.trash):
        write_png(folder / "d" / "x.png", Image.new("RGB", (8, 8)), {"prompt": "fox"})
    data.root.rename(tmp_path / "nibble-moved")
    return data, DataDir(tmp_path / "nibble-moved")


def test_no_write_makes_the_old_folder_again(moved):
    data, now = moved
    for write in (lambda: new_image_path(data, 7, 0), lambda: move_to_trash(data, "d/x.png"),
                  lambda: restore_from_trash(data, "d/x.png")):  # fmt: skip
        with pytest.raises(DataDirMoved) as refused:
            write()
        assert not data.root.exists()  # was: images/YYYY-MM-DD (or trash/d, images/d) made again under it
        assert f"The data folder {data.root} was moved or removed while Nibble Studio ran" in str(refused.value)
        assert "--data-dir" in str(refused.value)
    refused = pytest.raises(DataDirMoved, new_image_path, data, 7, 0)
    assert "The picture just generated was not saved." in str(refused.value)
    assert (now.images / "d" / "x.png").is_file() and (now.trash / "d" / "x.png").is_file()  # nothing moved

    data.root.mkdir()  # another folder made at the old path (by another program, or by hand): not the one opened
    with pytest.raises(DataDirMoved):
        images_folder(data)
    assert list(data.root.iterdir()) == []
    assert images_folder(DataDir(data.root).create()).is_dir()  # a restart on it uses it


def test_a_job_after_the_data_folder_was_renamed_is_refused(qtbot, window):
    controller = window.controller
    controller.prompt.prompt = "a yellow star"
    errors: list = []
    controller.error.connect(errors.append)  # emitted on the GUI thread (the controller's)
    root = controller.data.root
    root.rename(root.with_name("data-moved"))
    try:
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: bool(errors) or controller.gallery.rowCount() > 0, timeout=60000)
        qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
        # was: the job ran, made images/<day>/ again under the old path and saved its PNG there, its row in the
        # moved database: a restart there showed one image and no history, the moved folder lacked the image
        assert not root.exists()
        assert len(errors) == 1 and errors[0].kind == "user"
        assert f"The data folder {root} was moved or removed" in errors[0].message
        assert "--data-dir NEW_PATH" in errors[0].message and controller.gallery.rowCount() == 0
    finally:
        if not root.exists():
            root.with_name("data-moved").rename(root)  # moved back: the window closes on it (saving its settings)
    assert time.strftime("%Y-%m-%d") not in {p.name for p in controller.data.images.iterdir()}


def test_empty_trash_after_the_data_folder_moved_changes_nothing(qtbot, moved):
    """Empty trash forgot every trashed row of the database open in the moved folder, and left the files of its
    trash without a row: it is refused as delete and undo are, from its listing on (which found nothing at the old
    path, and said "The trash is empty."), and so is a deletion given a listing made before the move."""
    data, now = moved
    store = Store(now.database)
    store.add_images([("d/x.png", {"prompt": "fox"}, 1.0, None, None)])
    store.set_trashed_many([(1, None, None)], True, when=1.0)
    gallery = GalleryModel(store, data)
    notices: list = []
    listed: list = []
    gallery.notice.connect(notices.append)
    gallery.list_trash_to_empty(listed.append)
    qtbot.waitUntil(lambda: not gallery.listing_trash, timeout=30000)
    assert listed == [] and gallery.has_trash  # nothing to confirm, and not called empty
    assert [n.message.startswith(f"The data folder {data.root} was moved or removed") for n in notices] == [True]
    listing = replace(list_trash(now.trash), version=gallery._trash._version)  # as listed before the move
    with pytest.raises(DataDirMoved):
        gallery.empty_trash(listing)
    assert store.all_paths()["d/x.png"][2] and (now.trash / "d" / "x.png").is_file()  # still undoable there
    store.close()


@pytest.mark.parametrize("said", [None, errno.EIO], ids=["gone", "drive-gone"])
def test_the_data_folder_moved_while_the_trash_is_listed_is_said_as_moved(qtbot, tmp_path, monkeypatch, caplog,
                                                                          said):  # fmt: skip
    """Moved while the listing walked the trash: a folder of the trash gone with it (None: the system's own
    FileNotFoundError), or a network drive gone away (EIO), failed the listing, said as a trash folder that could
    not be read ("try again"), with a traceback logged, not as the move no retry helps."""
    data = DataDir(tmp_path / "nibble").create()
    for sub in ("a", "b"):
        write_png(data.trash / sub / "x.png", Image.new("RGB", (8, 8)), {"prompt": "fox"})
    store = Store(data.database)
    gallery = GalleryModel(store, data)
    qtbot.waitUntil(lambda: not gallery.listing_trash, timeout=30000)
    scandir = os.scandir

    def moved_meanwhile(path="."):
        if str(path).startswith(f"{data.trash}{os.sep}") and data.root.exists():  # a folder in the trash
            data.root.rename(tmp_path / "moved-away")  # the user moves the data folder now
            if said is not None:
                raise OSError(said, os.strerror(said), str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", moved_meanwhile)
    notices: list = []
    listed: list = []
    gallery.notice.connect(notices.append)
    gallery.list_trash_to_empty(listed.append)
    qtbot.waitUntil(lambda: not gallery.listing_trash, timeout=30000)
    monkeypatch.setattr(os, "scandir", scandir)
    assert not data.root.exists() and listed == [] and gallery.has_trash  # moved meanwhile; not called empty
    assert [n.message for n in notices] == [  # was: "The trash folder … could not be read, so it was not emptied."
        f"The data folder {data.root} was moved or removed while Nibble Studio ran, so nothing more is saved in it: "
        "quit Nibble Studio and start it again (with --data-dir NEW_PATH if the folder was moved)."]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]  # was: the listing's traceback
    store.close()


@pytest.fixture
def linked(tmp_path) -> tuple[DataDir, Path]:
    """A data folder whose images/ links to a drive's folder holding a day's folder, as the app opened it."""
    drive = tmp_path / "drive"
    (drive / "2026-01-01").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "images").symlink_to(drive, target_is_directory=True)
    return DataDir(tmp_path / "data").create(), drive


def test_no_picture_is_saved_on_the_mount_point_of_an_unmounted_drive(linked, monkeypatch):
    """The drive unmounted: its empty mount point is still there, and new pictures went onto the system disk,
    hidden once the drive was mounted again. Mounted again, saving works without a restart."""
    data, drive = linked
    drive.rename(drive.with_name("mounted"))
    drive.mkdir()  # the mount point left: another folder, empty, on the system disk (another device)
    with monkeypatch.context() as unmounted:
        remount(unmounted, data.images)  # another device number; its own, other inode
        with pytest.raises(DataDirMoved) as refused:
            images_folder(data)
        assert f"The images folder {data.images} is no longer the folder Nibble Studio opened: it is empty" in str(
            refused.value)  # fmt: skip
        assert "Mount or plug in that drive again" in refused.value.hint and list(drive.iterdir()) == []
        pytest.raises(DataDirMoved, move_to_trash, data, "2026-01-01/x.png")
    drive.rmdir()
    drive.with_name("mounted").rename(drive)  # mounted again
    assert images_folder(data).parent == data.images


def remount(monkeypatch, *folders: Path, field: int = 2) -> None:
    """``os.stat`` of each of ``folders`` as once its network drive (NFS, SMB) is mounted again: the same inode
    number, another device number (``field`` 2, st_dev; 1, st_ino: a new inode on the same device, as FAT gives a
    folder read back into the cache). Only those paths, as ``DataDir`` names them, are changed."""
    real_stat = os.stat
    remounted = {os.fspath(folder) for folder in folders}

    def stat(path, *args, **kwargs):
        now = real_stat(path, *args, **kwargs)
        if args or kwargs or not isinstance(path, (str, os.PathLike)) or os.fspath(path) not in remounted:
            return now
        fields = list(now)[:10]
        fields[field] += 1
        return os.stat_result(fields)

    monkeypatch.setattr(os, "stat", stat)


def test_a_drive_mounted_again_is_no_false_alarm(tmp_path, monkeypatch):
    """A network drive mounted again gives the same folders another device number: refusing every save of a user
    whose folder never moved would be worse than what the check guards against. An images folder still empty (a
    new user) was refused for every save until a restart."""
    (tmp_path / "data").mkdir()
    Store(tmp_path / "data" / "nibble.sqlite3").close()
    data = DataDir(tmp_path / "data").create()
    remount(monkeypatch, data.root, data.images)
    data.check_in_place()
    assert images_folder(data).is_dir()  # was: DataDirMoved, "it is empty"


def test_a_copy_of_the_data_folder_in_its_place_is_refused(linked, tmp_path):
    """The data folder moved to another disk while the app ran (a copy, then the original deleted) and linked
    back, or restored from a backup: saves went on, their rows into the deleted database SQLite still had open,
    and the database on disk kept only the rows from before. Holding a database is no proof of being the folder
    opened: a copy has other inode numbers."""
    data, _drive = linked
    store = Store(data.database)
    shutil.copytree(data.root, tmp_path / "data-copy", symlinks=True)
    shutil.rmtree(data.root)
    (tmp_path / "data-copy").rename(data.root)  # restored from a backup
    with pytest.raises(DataDirMoved, match="was moved or removed while Nibble Studio ran"):
        data.check_in_place()  # was: accepted, as it held a nibble.sqlite3
    store.close()


def test_an_images_folder_with_a_new_inode_on_its_own_drive_is_no_false_alarm(linked, tmp_path, monkeypatch):
    """FAT, exFAT and many FUSE file systems give a folder a new inode number each time it is read back into the
    cache: the images folder on such a USB drive was refused as "another folder" for every save, the picture just
    made lost, though nothing moved. A copy in its place on the same drive takes the pictures as well."""
    data, drive = linked
    (drive / "2026-01-01").rmdir()  # empty too: a new user's
    remount(monkeypatch, data.images, field=1)  # images/ read back with another inode number, on the same device
    assert images_folder(data).is_dir()
    monkeypatch.undo()
    shutil.copytree(drive, tmp_path / "copy")
    shutil.rmtree(drive)
    (tmp_path / "copy").rename(drive)
    assert images_folder(data).is_dir()


def test_a_link_to_a_folder_that_is_gone_is_said_so(linked):
    """images/ links to a drive that was unplugged: saving said "…: File exists", and so did start-up (which names
    images/ as the link, ``gpu.output_folders.LinkLeadsNowhere``: tests/app/test_data_dir_start.py)."""
    data, drive = linked
    drive.rename(drive.with_name("unplugged"))
    for refused in (pytest.raises(DataDirMoved, images_folder, data),
                    pytest.raises(OSError, DataDir(data.root).create)):  # fmt: skip
        assert f"a link to {drive}, which is not there: the drive it is on may be unplugged" in str(refused.value)
        assert "File exists" not in str(refused.value)
    assert not drive.exists()


def test_an_images_folder_out_of_reach_is_said_as_it_is(tmp_path, monkeypatch):
    """Every failure to look at images/ was "a link …, which is not there" (images/ no link at all) or "moved or
    removed": a network drive that stopped answering is neither."""
    data = DataDir(tmp_path / "data").create()
    data.images.rename(tmp_path / "pictures")
    with pytest.raises(DataDirMoved) as refused:
        images_folder(data)
    assert f"The images folder {data.images} was moved or removed while Nibble Studio ran" in str(refused.value)
    assert "which is not there" not in str(refused.value)
    assert f"make {data.images} a link to where it is now" in refused.value.hint
    data.images.symlink_to(tmp_path / "pictures", target_is_directory=True)  # as the hint says: saving works
    assert images_folder(data).is_dir()

    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if not args and not kwargs and isinstance(path, Path) and path == data.images:
            raise OSError(errno.ENOTCONN, os.strerror(errno.ENOTCONN), str(path))  # a dead network mount
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    message = str(pytest.raises(DataDirMoved, images_folder, data).value)
    assert f"The images folder {data.images} cannot be reached ({os.strerror(errno.ENOTCONN)})" in message
    assert "which is not there" not in message and "moved or removed" not in message
