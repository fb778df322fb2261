"""The images folder's troubles while the app runs or starts (``app.folder_watch``, ``app.reconcile``): a folder in
it that cannot be read, the images folder gone, a backup copied back, a lasting failure's log. On the real window,
with its engine and the demo model.

The tests run as root, whom a folder without read permission does not stop: ``os.scandir`` and ``os.stat`` refuse
that folder's listing and what is in it as the system refuses them to another user (``_refused``)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from app.data_dir import resolve_data_dir
from tests.app.gui import gallery_images, generate_one, open_window, saved_as

WAIT_MS = 30_000  # generous: CI runs the suite on 2 cores in parallel


def _refused(monkeypatch, folder: Path) -> None:
    """``folder`` refused from now on as a folder whose permissions were taken away (chmod 000) is to another user
    than root: its listing (EACCES), and the ``os.stat`` of anything in it."""
    scandir, stat = os.scandir, os.stat
    inside = os.fspath(folder) + os.sep

    def refused(path) -> OSError:
        return OSError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))

    def refusing_scandir(path="."):
        if not isinstance(path, int) and Path(path) == folder:
            raise refused(path)
        return scandir(path)

    def refusing_stat(path, *args, **kwargs):
        if not isinstance(path, int) and os.fspath(path).startswith(inside):
            raise refused(path)
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", refusing_scandir)
    monkeypatch.setattr(os, "stat", refusing_stat)


def _missing(window) -> dict[str, bool]:
    return {r.path: r.missing for r in window.controller.store.images()}


def _looks_after(qtbot, watch, count: int) -> None:
    """Waits until the watch has looked at the folder ``count`` more times."""
    until = watch.looks + count
    qtbot.waitUntil(lambda: watch.looks >= until, timeout=WAIT_MS)


def test_a_folder_that_cannot_be_read_at_the_start_keeps_its_entries_and_is_said(qtbot, data_root, monkeypatch):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["an owl", "a cat"])  # d/0.png, d/1.png
    _refused(monkeypatch, data.images / "d")
    window = open_window(qtbot, data_root)
    # was: both flagged missing, as if deleted, with "Gallery check: 2 missing files flagged."
    assert _missing(window) == {"d/0.png": False, "d/1.png": False}
    gallery = window.controller.gallery
    assert [gallery.record(row).missing for row in range(gallery.rowCount())] == [False, False]
    said = [n.message for n in window.notices if "could not be read" in n.message]
    assert said and str(data.images / "d") in said[0] and os.strerror(errno.EACCES) in said[0]


def test_a_folder_that_becomes_unreadable_while_the_app_runs_keeps_its_entries(qtbot, data_root, monkeypatch,
                                                                              caplog):  # fmt: skip
    data = resolve_data_dir(data_root)
    gallery_images(data, ["an owl", "a cat"])
    window = open_window(qtbot, data_root)
    watch = window.controller.folder_watch
    qtbot.waitUntil(lambda: watch.looks >= 1, timeout=WAIT_MS)
    caplog.set_level("INFO", logger="app.folder_watch")
    _refused(monkeypatch, data.images / "d")
    (data.images / "elsewhere").mkdir()  # a change: the folder is looked at
    _looks_after(qtbot, watch, 1)
    qtbot.wait(2500)  # about two looks' time more: a missing flag would have come by now
    # was: both flagged missing at the look after the change
    assert _missing(window) == {"d/0.png": False, "d/1.png": False}
    said = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(said) == 1 and str(data.images / "d") in said[0]  # said once, not at each look
    monkeypatch.undo()  # readable again: said once, and a picture deleted there is flagged as before
    (data.images / "d" / "0.png").unlink()
    qtbot.waitUntil(lambda: _missing(window)["d/0.png"], timeout=WAIT_MS)
    assert any("can be read again" in r.getMessage() for r in caplog.records)
    assert window.error_dialog is None


def test_the_images_folder_gone_is_said_in_the_window_until_it_is_back(qtbot, data_root):
    window = open_window(qtbot, data_root)
    data, watch = window.controller.data, window.controller.folder_watch
    line = window.gallery_panel.folder_away
    qtbot.waitUntil(lambda: watch.looks >= 1, timeout=WAIT_MS)
    assert not line.isVisibleTo(window)
    data.images.rename(data.images.with_name("images moved"))  # renamed in a file manager
    # was: the log alone said it, and the next job was refused
    qtbot.waitUntil(lambda: line.isVisibleTo(window), timeout=WAIT_MS)
    said = line.text()
    assert f"The images folder {data.images} was moved or removed" in said
    assert "no picture is saved in it" in said and "every 5 s" in said and "Move it back" in said
    assert window.error_dialog is None  # a line that lasts, not a dialog
    data.images.with_name("images moved").rename(data.images)  # moved back
    qtbot.waitUntil(lambda: not line.isVisibleTo(window), timeout=WAIT_MS)
    assert window.statusBar().currentMessage() == (f"The images folder {data.images} is back: watched again, new "
                                                   "pictures are saved in it.")  # fmt: skip
    assert watch.away == ""


def test_an_images_folder_that_cannot_be_listed_but_written_says_pictures_are_still_saved(qtbot, data_root,
                                                                                          monkeypatch):  # fmt: skip
    """Its permissions 300 (write and enter, no read): the line above the grid said "so no picture is saved in it",
    while each picture made was saved there. Root reads any folder: its listing is refused through ``os.scandir``
    alone, as the system refuses it to another user; writing in it goes on as for that user."""
    window = open_window(qtbot, data_root)
    controller = window.controller
    data, watch, line = controller.data, controller.folder_watch, window.gallery_panel.folder_away
    qtbot.waitUntil(lambda: watch.looks >= 1, timeout=WAIT_MS)
    scandir = os.scandir

    def refusing_scandir(path="."):
        if not isinstance(path, int) and Path(path) == data.images:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing_scandir)
    (data.images / "elsewhere").mkdir()  # a change: the folder is looked at
    qtbot.waitUntil(lambda: line.isVisibleTo(window), timeout=WAIT_MS)
    said = line.text()
    assert f"The images folder {data.images} cannot be listed ({os.strerror(errno.EACCES)})" in said
    assert "no picture is saved" not in said and "new pictures are still saved in it" in said
    assert "permission to read" in said
    saved = generate_one(qtbot, controller)  # as said: saved there
    assert (data.images / saved.path).is_file()
    monkeypatch.undo()
    qtbot.waitUntil(lambda: not line.isVisibleTo(window), timeout=WAIT_MS)


def test_a_backup_copied_back_file_by_file_shows_no_entry_missing_meanwhile(qtbot, data_root):
    import shutil

    data = resolve_data_dir(data_root)
    gallery_images(data, ["an owl", "a cat", "a fox"])
    backup = data.images.with_name("backup")
    shutil.copytree(data.images, backup)
    window = open_window(qtbot, data_root)
    gallery, watch = window.controller.gallery, window.controller.folder_watch
    qtbot.waitUntil(lambda: watch.looks >= 1, timeout=WAIT_MS)
    shutil.rmtree(data.images)  # lost (a disk replaced), and put back from the backup, a file at a time
    _looks_after(qtbot, watch, 1)  # found away
    shown_missing = []
    gallery.dataChanged.connect(lambda first, _last: shown_missing.append(gallery.record(first.row()).path)
                                if gallery.record(first.row()).missing else None)  # fmt: skip
    (data.images / "d").mkdir(parents=True)
    for name in ("0.png", "1.png", "2.png"):  # a slow copy: a file between two looks
        shutil.copy2(backup / "d" / name, data.images / "d" / name)
        _looks_after(qtbot, watch, 1)
    qtbot.wait(2500)  # about two looks' time: one missing flag would have come by now
    # was: the pictures not copied yet flagged missing, each un-flagged once its copy came
    assert shown_missing == []
    assert _missing(window) == {"d/0.png": False, "d/1.png": False, "d/2.png": False}
    (data.images / "d" / "1.png").unlink()  # one deleted by hand afterwards: flagged as before
    qtbot.waitUntil(lambda: _missing(window)["d/1.png"], timeout=WAIT_MS)


def _watch_lines(caplog) -> list[str]:
    """What the watch (and the thread of its looks) logged."""
    return [r.getMessage() for r in caplog.records if r.name in ("app.folder_watch", "app.background")]


def test_a_lasting_failure_is_logged_when_it_starts_changes_and_ends_not_at_each_try(qtbot, data_root, monkeypatch,
                                                                                    caplog):  # fmt: skip
    from app import folder_watch

    monkeypatch.setattr(folder_watch, "AWAY_MS", 200)  # the tries come every 0.2 s, not 5 s
    window = open_window(qtbot, data_root)
    data, watch = window.controller.data, window.controller.folder_watch
    qtbot.waitUntil(lambda: watch.looks >= 1, timeout=WAIT_MS)
    caplog.set_level("INFO")
    data.images.rename(data.images.with_name("images moved"))
    _looks_after(qtbot, watch, 6)
    assert len(_watch_lines(caplog)) == 1 and "cannot be listed" in _watch_lines(caplog)[0]
    real = folder_watch.look_at_folder

    def failing(*args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(folder_watch, "look_at_folder", failing)  # a failure of another kind
    _looks_after(qtbot, watch, 6)
    # was: a warning and a traceback at each try
    assert len(_watch_lines(caplog)) == 2 and "could not be looked at" in _watch_lines(caplog)[1]
    data.images.with_name("images moved").rename(data.images)  # back first: no try finds it away again
    monkeypatch.setattr(folder_watch, "look_at_folder", real)
    qtbot.waitUntil(lambda: watch.away == "", timeout=WAIT_MS)
    _looks_after(qtbot, watch, 1)
    assert len(_watch_lines(caplog)) == 3 and "as before" in _watch_lines(caplog)[2]  # its end, once


def test_a_file_put_in_a_new_folder_before_its_watch_was_set_is_imported(qtbot, data_root, tmp_path, monkeypatch):
    import shutil

    from PIL import Image

    from app import folder_watch
    from gpu.generation.png_metadata import write_png

    window = open_window(qtbot, data_root)
    data, watch = window.controller.data, window.controller.folder_watch
    qtbot.waitUntil(lambda: watch.looks >= 1, timeout=WAIT_MS)
    outside = write_png(tmp_path / "from elsewhere.png", Image.new("RGB", (32, 32), "blue"), {"prompt": "a blue sky"})
    holiday = data.images / "holiday"
    real = folder_watch.look_at_folder

    def copied_after_the_listing(*args):  # the copy lands between the look's listing and the new folder's watch
        look = real(*args)
        if os.fspath(holiday) in look.folders and not (holiday / "beach.png").exists():
            shutil.copy(outside, holiday / "beach.png")
        return look

    monkeypatch.setattr(folder_watch, "look_at_folder", copied_after_the_listing)
    holiday.mkdir()
    # was: not imported until the next change in that folder, or the next start
    gallery = window.controller.gallery
    qtbot.waitUntil(lambda: gallery.rowCount() == 1, timeout=WAIT_MS)
    assert gallery.record(0).path == "holiday/beach.png"


def test_the_repairs_after_the_old_trash_is_gathered_flag_nothing_under_a_folder_not_read(data_root, monkeypatch):
    """The old trash of another drive is gathered after the window shows, and the entries whose picture did not come
    back are flagged missing then (``repair_after_gather``): not those of a folder that could not be read."""
    from app.reconcile import list_folders, repair_after_gather
    from app.store import Store

    data = resolve_data_dir(data_root)
    gallery_images(data, ["an owl", "a cat"])
    _refused(monkeypatch, data.images / "d")
    store = Store(data.database)
    try:
        listed = list_folders(data)
        assert listed.images == {}
        assert repair_after_gather(store, data, listed) == (False, [])  # was: both flagged missing
        assert [r.missing for r in store.images()] == [False, False]
        assert listed.unreadable == {"d/": os.strerror(errno.EACCES)}
    finally:
        store.close()


def test_the_empty_mount_point_of_a_drive_unmounted_is_said_away_and_flags_nothing(qtbot, tmp_path, monkeypatch,
                                                                                   demo_model):  # fmt: skip
    """The images folder a drive (images/ linking to it): unmounted, its empty mount point is left at the path, on
    another device, which a job refuses (``DataDir.check_in_place``). The watch listed it as the images folder."""
    from tests.app.test_data_folder_moved import remount

    drive, root = tmp_path / "drive", tmp_path / "data"
    drive.mkdir()
    root.mkdir()
    (root / "images").symlink_to(drive, target_is_directory=True)
    monkeypatch.setenv("NIBBLE_DATA_DIR", str(root))
    data = resolve_data_dir(root)
    gallery_images(data, ["an owl", "a cat"])
    window = open_window(qtbot, root)
    watch, line = window.controller.folder_watch, window.gallery_panel.folder_away
    qtbot.waitUntil(lambda: watch.looks >= 1, timeout=WAIT_MS)
    drive.rename(drive.with_name("mounted"))
    drive.mkdir()  # the mount point left: empty, another device
    with monkeypatch.context() as unmounted:
        remount(unmounted, data.images)
        (root / "poked").touch()  # a change beside it (the database's next write; the unmount tells its watch)
        qtbot.waitUntil(lambda: line.isVisibleTo(window), timeout=WAIT_MS)
        refused = window.controller.data.images_away()
        assert refused is not None and line.text().startswith(f"{refused} Nibble Studio looks for it every 5 s")
        assert "is no longer the folder Nibble Studio opened: it is empty" in line.text()
        _looks_after(qtbot, watch, 2)
        # was: no line, and both flagged missing as if deleted (every picture of the drive, at 30,000)
        assert _missing(window) == {"d/0.png": False, "d/1.png": False}
        drive.rmdir()
        drive.with_name("mounted").rename(drive)  # mounted again
    qtbot.waitUntil(lambda: not line.isVisibleTo(window), timeout=WAIT_MS)
    qtbot.wait(2500)  # about two looks' time: a missing flag would have come by now
    assert _missing(window) == {"d/0.png": False, "d/1.png": False}


def test_save_as_and_copy_while_the_images_folder_is_away_say_it_is_away(qtbot, data_root, tmp_path):
    """Save as (and Copy) read the picture's file: the images folder away, each said its file missing, with "Put
    the picture back at that place", which would make a new images folder there, the old one still away."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["an owl"])
    window = open_window(qtbot, data_root)
    controller = window.controller
    watch, line = controller.folder_watch, window.gallery_panel.folder_away
    qtbot.waitUntil(lambda: watch.looks >= 1, timeout=WAIT_MS)
    data.images.rename(data.images.with_name("images moved"))
    qtbot.waitUntil(lambda: line.isVisibleTo(window), timeout=WAIT_MS)
    errors: list = []
    controller.error.connect(errors.append)
    record = controller.gallery.record(0)
    assert saved_as(qtbot, controller, record, tmp_path / "kept.png") is None
    controller.copy_image(record)
    qtbot.waitUntil(lambda: len(errors) == 2, timeout=WAIT_MS)
    away = f"The images folder {data.images} was moved or removed while Nibble Studio ran"
    saved, copied = errors
    # was: "its file …/images/d/0.png is missing", "Put the picture back at that place, then save it again."
    assert saved.message.startswith(f"The image 0.png could not be saved as {tmp_path / 'kept.png'}: the images "
                                    "folder holding it is away.") and away in saved.message  # fmt: skip
    assert copied.message.startswith(f"The image {data.images / 'd' / '0.png'} could not be copied: the images "
                                     "folder holding it is away.") and away in copied.message  # fmt: skip
    for said in (saved, copied):
        assert "Put the picture back" not in said.hint and "Move it back" in said.hint
    assert not (tmp_path / "kept.png").exists() and not data.images.exists()


def test_a_folder_not_read_at_the_start_is_not_logged_again_by_the_watch(qtbot, data_root, monkeypatch, caplog):
    """Start-up says the folder it could not read (its notice, and the log); the watch's first look, a second
    later, logged it a second time as new. Its end is still logged once."""
    caplog.set_level("INFO")
    data = resolve_data_dir(data_root)
    gallery_images(data, ["an owl", "a cat"])
    _refused(monkeypatch, data.images / "d")
    window = open_window(qtbot, data_root)
    watch = window.controller.folder_watch
    qtbot.waitUntil(lambda: watch.looks >= 1, timeout=WAIT_MS)
    assert any("could not be read" in n.message for n in window.notices)  # start-up's, logged too
    watched = [r.getMessage() for r in caplog.records if r.name == "app.folder_watch"]
    assert watched == []  # was: "the folder …/d in the images folder cannot be read (Permission denied): …"
    monkeypatch.undo()
    (data.images / "elsewhere").mkdir()  # a change: looked at, the folder read again
    _looks_after(qtbot, watch, 1)
    assert [r.getMessage() for r in caplog.records if r.name == "app.folder_watch"] == [
        f"the folder {data.images / 'd'} in the images folder can be read again"]


def test_a_folder_not_read_at_the_start_is_read_again_without_a_restart_as_said(qtbot, data_root, monkeypatch,
                                                                                caplog):  # fmt: skip
    """Start-up's notice of a folder it could not read said "then start Nibble Studio again"; and nothing looked at
    it again while nothing else changed in the images folder (its permissions given back tell no watch: it has
    none; a drive mounted there again neither)."""
    from app import folder_watch

    monkeypatch.setattr(folder_watch, "POLL_MS", 2000)  # 30 s in use
    caplog.set_level("INFO", logger="app.folder_watch")
    data = resolve_data_dir(data_root)
    gallery_images(data, ["an owl", "a cat"])
    with monkeypatch.context() as refused:
        _refused(refused, data.images / "d")
        window = open_window(qtbot, data_root)
        watch = window.controller.folder_watch
        qtbot.waitUntil(lambda: watch.looks >= 1, timeout=WAIT_MS)  # the first look: "d" still refused
    (data.images / "d" / "0.png").unlink()  # deleted while it could not be read: found once it can
    qtbot.waitUntil(lambda: _missing(window)["d/0.png"], timeout=WAIT_MS)  # was: never, until a change or a restart
    assert any("can be read again" in r.getMessage() for r in caplog.records)
    [notice] = [n for n in window.notices if "could not be read" in n.message]
    assert "start Nibble Studio again" not in notice.hint  # was: the advice to restart
    assert "no restart needed" in notice.hint
