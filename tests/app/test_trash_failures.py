"""The gallery's delete and Undo when a write fails or the app is killed half-way: no picture is lost, and none is
shown under another image's entry. On the model and the store (no window): each test takes milliseconds."""

from __future__ import annotations

import shutil
import sqlite3

import pytest
from PIL import Image

import app.gallery_trash
from app.gallery_errors import DeleteNotSaved
from app.reconcile import reconcile
from app.store import Store
from tests.app.gallery_pictures import five_picture_gallery, picture_colour
from tests.app.gui import trash_listing, trash_settled


def _disk_full(*_args, **_kwargs) -> None:
    raise sqlite3.OperationalError("database or disk is full")


def _in_use(*_args, **_kwargs) -> str:
    raise PermissionError(13, "in use by another program")


def test_a_file_a_failed_delete_could_not_move_back_is_named_and_kept_as_its_entrys(qtbot, data_root, monkeypatch):
    """The delete's commit fails (a full disk) and the file cannot be moved back either: it stays in the trash
    under its entry's name, the entry shown. The message said "Nothing else was changed"; deleting the entry
    again renamed its own file in the trash as another's (4.png -> 4-2.png), leaving the picture without an entry:
    Undo brought the entry back missing, and Empty trash deleted the picture."""
    gallery, store, data = five_picture_gallery(data_root)
    assert gallery.record(0).path == "d/4.png"

    with monkeypatch.context() as failing:
        failing.setattr(store, "set_trashed_many", _disk_full)
        failing.setattr(app.gallery_trash, "restore_from_trash", _in_use)
        with pytest.raises(DeleteNotSaved) as raised:
            gallery.delete([0])
    error = raised.value.error
    assert str(data.trash / "d/4.png") in error.message and "Nothing else" not in error.message + error.hint
    assert str(data.images / "d/4.png") in error.hint  # where to put it back
    assert gallery.record(0).path == "d/4.png" and (data.trash / "d/4.png").is_file()

    gallery.delete([0])  # the entry, without a picture, deleted again: its file is in the trash already
    assert sorted(p.name for p in data.trash.rglob("*.png")) == ["4.png"]  # was: 4-2.png
    assert gallery.undo_delete()
    record = gallery.record(0)
    assert (record.path, record.missing) == ("d/4.png", False)
    assert picture_colour(data.images / "d/4.png") == (200, 0, 0)
    assert not list(data.trash.rglob("*.png"))


class _Killed(BaseException):
    """The app killed: nothing after this point runs."""


def test_an_undo_killed_before_its_commit_never_shows_another_file_as_the_image(qtbot, data_root, monkeypatch):
    """A file copied in under the name of an image in the trash: Undo brings the image back under another name
    (d/3-2.png), which only the commit after the moves recorded. Killed before it, start-up took the row out of
    the trash at its old path, showing the other file as the image, and imported its own file as a second entry.
    The row gets its new name (committed) before its file moves now."""
    gallery, store, data = five_picture_gallery(data_root)
    gallery.delete([1])  # d/3.png, "p3"
    shutil.copy(data.images / "d/0.png", data.images / "d/3.png")  # another picture takes its name

    def killed(_back) -> None:
        raise _Killed  # the files are back, their rows not yet

    monkeypatch.setattr(gallery._trash, "_untrash", killed)
    with pytest.raises(_Killed):
        gallery.undo_delete()
    store.close()

    restarted = Store(data.database)
    reconcile(restarted, data)  # as the next start does
    shown = {r.prompt: r.path for r in restarted.images()}
    assert picture_colour(data.images / shown["p3"]) == (150, 0, 0)  # its own picture (was: the copy of d/0.png)
    assert shown["p3"] != "d/3.png" and picture_colour(data.images / "d/3.png") == (0, 0, 0)
    assert sorted(shown.values()) == sorted(p.relative_to(data.images).as_posix()
                                            for p in data.images.rglob("*.png"))  # fmt: skip
    assert len(shown) == 6 and not list(data.trash.rglob("*.png"))  # the copy imported as its own entry, once
    restarted.close()


def test_the_window_says_which_file_a_failed_delete_left_in_the_trash(window, monkeypatch):
    """The gallery's own words reach the user: the controller's generic handler said "Nothing else was changed"
    of a delete that had left a file in the trash."""
    controller = window.controller
    data, store = controller.data, controller.store
    (data.images / "d").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4)).save(data.images / "d" / "kept.png")
    store.add_images([("d/kept.png", {"prompt": "kept"}, 1.0, None, None)])
    controller.gallery.reload()
    errors = []
    controller.error.connect(errors.append)
    with monkeypatch.context() as failing:
        failing.setattr(store, "set_trashed_many", _disk_full)
        failing.setattr(app.gallery_trash, "restore_from_trash", _in_use)
        controller.delete_images([0])
    [error] = errors
    assert str(data.trash / "d/kept.png") in error.message and "Nothing else" not in error.message + error.hint


def test_undo_never_renames_into_the_name_of_an_entry_whose_file_is_missing(qtbot, data_root):
    """Undo of an image whose name another file took renames it in the trash first: the new name was chosen without
    the rows whose file is missing, so it could be one of theirs (d/3-2.png), the database refused it, and Undo
    failed every time, the picture left in the trash for Empty trash to delete."""
    gallery, store, data = five_picture_gallery(data_root)
    store.add_images([("d/3-2.png", {"prompt": "moved away"}, 10.0, None, None)])  # shown as missing
    gallery.reload()
    gallery.delete([next(r for r in range(gallery.rowCount()) if gallery.record(r).path == "d/3.png")])
    shutil.copy(data.images / "d/0.png", data.images / "d/3.png")  # another file takes its name
    assert gallery.undo_delete()
    back = {r.prompt: r.path for r in store.images()}
    assert back["p3"] not in ("d/3.png", "d/3-2.png") and picture_colour(data.images / back["p3"]) == (150, 0, 0)
    assert not list(data.trash.rglob("*.png"))


def test_empty_trash_never_deletes_the_picture_a_failed_delete_left_in_the_trash(qtbot, data_root, monkeypatch):
    """A starred image deleted while the disk is full: the commit fails and so does moving the file back, and the
    user is told it comes back at the next start. Empty trash, still enabled by another deleted image, deleted
    every file in the trash folder, that picture too: after a restart its entry was missing for good. Only the
    files of images in the trash (and files no row has) are deleted now, and the picture is moved back first."""
    gallery, store, data = five_picture_gallery(data_root)
    gallery.set_favorite([0], True)  # d/4.png, "p4"
    gallery.delete([1])  # d/3.png, really in the trash: deleted for good below
    (data.trash / "old").mkdir()
    (data.trash / "old" / "no-row.png").write_bytes(b"x")  # a file whose row a repaired database lost: deleted
    with monkeypatch.context() as failing:
        failing.setattr(store, "set_trashed_many", _disk_full)
        failing.setattr(app.gallery_trash, "restore_from_trash", _in_use)
        with pytest.raises(DeleteNotSaved):
            gallery.delete([0])
    assert (data.trash / "d/4.png").is_file() and gallery.has_trash

    listing = trash_listing(qtbot, gallery)
    assert listing.size[0] == 2  # what the confirmation counts: d/3.png and no-row.png, not d/4.png
    with qtbot.waitSignal(gallery.trash_emptied, timeout=30000) as ended:  # deleted on a thread
        assert gallery.empty_trash(listing)
    assert ended.args[0].deleted == 2 and not ended.args[0].failures
    trash_settled(qtbot, gallery)
    assert not [p for p in data.trash.rglob("*") if p.is_file()] and not gallery.has_trash
    record = gallery.record(0)
    assert (record.path, record.favorite, record.missing) == ("d/4.png", True, False)
    assert picture_colour(data.images / "d/4.png") == (200, 0, 0) and not (data.images / "d/3.png").exists()
    store.close()

    restarted = Store(data.database)
    reconcile(restarted, data)  # as the next start does: nothing missing, nothing imported again
    assert {(r.path, r.favorite, r.missing) for r in restarted.images()} == {
        ("d/4.png", True, False), ("d/2.png", False, False), ("d/1.png", False, False), ("d/0.png", False, False)}
    restarted.close()


def test_empty_trash_moving_a_picture_back_deletes_the_trashed_file_a_copy_took_the_name_of(qtbot, data_root,
                                                                                           monkeypatch):  # fmt: skip
    """Empty trash moves the picture a failed delete left in the trash back first, with start-up's repairs
    (``finish_interrupted_moves``): one of them renamed the file of an image in the trash out of the way of a
    picture copied into the images folder under its name (d/3.png -> d/3-2.png). Empty trash then found its file
    "gone", left it in the trash for the next one, and the copy got no entry until the next start. Now the trashed
    file is deleted under its name and the copy is imported, as the next start would."""
    gallery, store, data = five_picture_gallery(data_root)
    gallery.delete([1])  # d/3.png, "p3", in the trash
    with monkeypatch.context() as failing:
        failing.setattr(store, "set_trashed_many", _disk_full)
        failing.setattr(app.gallery_trash, "restore_from_trash", _in_use)
        with pytest.raises(DeleteNotSaved):
            gallery.delete([0])  # d/4.png left in the trash, its entry shown
    shutil.copy(data.images / "d/0.png", data.images / "d/3.png")  # copied in by hand, under p3's name

    listing = trash_listing(qtbot, gallery)
    with qtbot.waitSignal(gallery.trash_emptied, timeout=30000) as ended:
        assert gallery.empty_trash(listing)
    emptied = ended.args[0]
    assert (emptied.deleted, emptied.gone, emptied.imported) == (1, 0, 1)  # was: (0, 1), d/3-2.png kept
    trash_settled(qtbot, gallery)
    assert not [p for p in data.trash.rglob("*") if p.is_file()] and not gallery.has_trash
    shown = {gallery.record(r).path: gallery.record(r).prompt for r in range(gallery.rowCount())}
    assert shown == {"d/4.png": "p4", "d/3.png": "", "d/2.png": "p2", "d/1.png": "p1", "d/0.png": "p0"}
    assert picture_colour(data.images / "d/3.png") == (0, 0, 0) and picture_colour(data.images / "d/4.png") == (
        200, 0, 0)  # fmt: skip
    store.close()
