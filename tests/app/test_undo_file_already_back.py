"""Undo delete of an image whose file is already back in the images folder, under its own name, while its entry is
still in the trash: the user moved it back from the trash folder by hand, or an Undo whose commit failed (a full
disk) could not move it back into the trash (a viewer or a virus scanner holding the file). Start-up takes such a
file for its entry's picture (``app.reconcile.finish_interrupted_moves``), and a delete takes a file a failed
delete left in the trash as its entry's (``in_trash_already``); Undo did neither: the entry came back "without a
picture", marked missing, under another name, while its picture stayed at its own name with no entry, imported at
the next start as a second entry without the star. On the model and the store (no window), as
test_trash_failures."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from PIL import Image

import app.gallery_trash
from app.data_dir import DataDir, resolve_data_dir
from app.gallery_model import GalleryModel
from app.image_files import file_fingerprint
from app.reconcile import reconcile
from app.store import Store
from app.trash_actions import TrashActions
from gpu.generation.png_metadata import write_png
from tests.app.gallery_pictures import five_picture_gallery, picture_colour


def _entries_after_a_restart(store: Store, data: DataDir) -> list[tuple[str, str, bool, bool]]:
    store.close()
    restarted = Store(data.database)
    reconcile(restarted, data)  # as the next start does
    try:
        return sorted((r.path, r.prompt, r.missing, r.favorite) for r in restarted.images())
    finally:
        restarted.close()


def test_undo_of_an_image_moved_back_from_the_trash_by_hand_keeps_its_picture_and_star(qtbot, data_root):
    gallery, store, data = five_picture_gallery(data_root)
    gallery.set_favorite([0], True)  # d/4.png, "p4"
    gallery.delete([0])
    (data.trash / "d/4.png").rename(data.images / "d/4.png")  # back by hand, in a file manager
    said: list = []
    gallery.notice.connect(said.append)
    assert gallery.undo_delete()
    [p4] = [r for r in store.images() if r.prompt == "p4"]
    # was: ("d/4-2.png", missing), and "The file of 'p4' was no longer in the trash folder ...; its entry is back in
    # the gallery without a picture" while the picture was at d/4.png
    assert (p4.path, p4.missing, p4.favorite) == ("d/4.png", False, True)
    assert picture_colour(data.images / "d/4.png") == (200, 0, 0) and said == []
    gallery.stop()
    # was: d/4.png imported as a second entry without the star, beside the missing d/4-2.png starred
    assert _entries_after_a_restart(store, data) == [
        ("d/0.png", "p0", False, False), ("d/1.png", "p1", False, False), ("d/2.png", "p2", False, False),
        ("d/3.png", "p3", False, False), ("d/4.png", "p4", False, True)]


def test_an_undo_whose_commit_failed_and_whose_file_stayed_back_is_said_and_finished_by_the_next_undo(
        qtbot, data_root, monkeypatch):
    gallery, store, data = five_picture_gallery(data_root)
    gallery.set_favorite([0], True)  # d/4.png, "p4"
    gallery.delete([0])
    said: list = []
    actions = TrashActions(gallery, data, store.path, said.append, lambda _text: None)
    real_replace = os.replace

    def held_open(source, target):  # into the trash: the file is open in another program (Windows)
        if Path(target).is_relative_to(data.trash):
            raise PermissionError(13, "in use by another program", str(source))
        return real_replace(source, target)

    def disk_full(*_args, **_kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    with monkeypatch.context() as failing:
        failing.setattr(store, "set_trashed_many", disk_full)
        failing.setattr(app.gallery_trash.os, "replace", held_open)
        actions.undo_delete()
    assert (data.images / "d/4.png").is_file() and not (data.trash / "d/4.png").exists()
    [error] = said
    # was: "An image could not be brought back from the trash folder: database or disk is full (...). Nothing else
    # was changed. ... then try again."
    assert "Nothing else was changed" not in error.message + error.hint
    assert str(data.images / "d/4.png") in error.message + error.hint
    said.clear()
    actions.undo_delete()  # the disk has room again: the Undo the message asks for
    [p4] = [r for r in store.images() if r.prompt == "p4"]
    assert (p4.path, p4.missing, p4.favorite) == ("d/4.png", False, True)  # was: d/4-2.png, missing
    assert said == []
    gallery.stop()
    assert [entry for entry in _entries_after_a_restart(store, data) if entry[0].startswith("d/4")] == [
        ("d/4.png", "p4", False, True)]  # was: a second entry for d/4.png, without the star


def test_undo_takes_the_file_at_its_name_only_when_it_is_not_known_to_be_anotherpicture_colour(qtbot, data_root):
    """Taken: the entry's own picture, the size and bytes its row stored. Not taken: a file copied in under its name
    since, with the same settings but other bytes (another seed, say): the entry comes back marked missing under a
    free name, as before, and that file is left where it is, untouched."""
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    for i in range(2):
        path = data.images / "d" / f"{i}.png"
        write_png(path, Image.new("RGB", (4, 4), (i * 50, 0, 0)), {"prompt": "the same"})
        size, sha = file_fingerprint(path)
        store.add_image(f"d/{i}.png", {"prompt": "the same"}, created=float(i), file_size=size, file_sha256=sha)
    gallery = GalleryModel(store, data)
    gallery.delete([0, 1])
    (data.trash / "d/1.png").rename(data.images / "d/1.png")  # its own, back by hand
    (data.trash / "d/0.png").unlink()
    write_png(data.images / "d/0.png", Image.new("RGB", (4, 4), (0, 0, 99)), {"prompt": "the same"})  # another
    assert gallery.undo_delete()
    assert sorted((r.path, r.missing) for r in store.images()) == [("d/0-2.png", True), ("d/1.png", False)]
    assert picture_colour(data.images / "d/0.png") == (0, 0, 99)
    assert picture_colour(data.images / "d/1.png") == (50, 0, 0)
    gallery.stop()


def test_an_undo_of_several_images_whose_files_are_back_reads_every_row_once_at_most(qtbot, data_root, monkeypatch):
    """The rows' paths (for another spelling of a name) are read once for the Undo: read once per image whose file
    was back, an Undo of thousands of them read every row thousands of times."""
    gallery, store, data = five_picture_gallery(data_root)
    gallery.delete([0, 1, 2, 3, 4])
    for i in range(5):
        (data.trash / f"d/{i}.png").rename(data.images / f"d/{i}.png")  # all back by hand
    reads: list[None] = []
    real_all_paths = store.all_paths

    def counted_all_paths() -> dict[str, tuple[int, bool, bool]]:
        reads.append(None)
        return real_all_paths()

    monkeypatch.setattr(store, "all_paths", counted_all_paths)
    assert len(gallery.undo_delete()) == 5
    assert len(reads) <= 1  # was: 5
    assert sorted((r.path, r.missing) for r in store.images()) == [(f"d/{i}.png", False) for i in range(5)]
    gallery.stop()


def test_start_up_takes_a_trashed_entrys_file_back_in_images_only_when_it_is_not_known_to_be_another_picture(
        qtbot, data_root):
    """The rule of Undo at start-up too: a trashed entry whose own picture (the size and bytes its row stored) is
    back under its name is taken out of the trash, an interrupted Undo finished. One whose name in the images
    folder holds another picture, copied in by hand while the app was closed (its file gone from the trash), stays
    in the trash with its prompt and star under a free name, and that file is imported as an entry of its own."""
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    for i in range(2):
        path = data.images / "d" / f"{i}.png"
        write_png(path, Image.new("RGB", (4, 4), (i * 50, 0, 0)), {"prompt": f"p{i}"})
        size, sha = file_fingerprint(path)
        store.add_image(f"d/{i}.png", {"prompt": f"p{i}"}, created=float(i), file_size=size, file_sha256=sha)
    gallery = GalleryModel(store, data)
    gallery.set_favorite([0, 1], True)
    gallery.delete([0, 1])
    gallery.stop()
    store.close()  # the app closed; then, by hand:
    (data.trash / "d/1.png").rename(data.images / "d/1.png")  # its own, as an interrupted Undo leaves it
    (data.trash / "d/0.png").unlink()
    write_png(data.images / "d/0.png", Image.new("RGB", (4, 4), (0, 0, 99)), {"prompt": "copied in"})
    restarted = Store(data.database)
    reconcile(restarted, data)
    assert sorted((r.path, r.prompt, r.missing, r.favorite) for r in restarted.images()) == [
        ("d/0.png", "copied in", False, False), ("d/1.png", "p1", False, True)]  # was: d/0.png as "p0", starred
    assert [(r.path, r.prompt, r.favorite) for batch in restarted.trash_batches() for r in batch] == [
        ("d/0-2.png", "p0", True)]
    assert picture_colour(data.images / "d/0.png") == (0, 0, 99)
    assert picture_colour(data.images / "d/1.png") == (50, 0, 0)
    restarted.close()
