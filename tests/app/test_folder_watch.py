"""Pictures put in the images folder while the app runs are imported without a restart (``app.folder_watch``): before,
only the next start found them. On the real window, with its engine."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image

from app.data_dir import DataDir, resolve_data_dir
from app.folder_watch import look_at_folder
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import gallery_images, generate_one, open_window

WAIT_MS = 30_000  # generous: CI runs the suite on 2 cores in parallel
LOOK_MS = 1000  # about the time between two looks at the folder (``app.folder_watch.SETTLE_MS``)


def _prompts(window) -> list[str]:
    gallery = window.controller.gallery
    return [gallery.record(row).prompt for row in range(gallery.rowCount())]


def _png_bytes(folder: Path, prompt: str) -> bytes:
    """A PNG with ``prompt`` in its settings, as bytes (a picture from elsewhere); noise: tens of KB, not a few."""
    image = Image.effect_noise((128, 128), 64).convert("RGB")
    return write_png(folder / "picture.png", image, {"prompt": prompt, "seed": 7}).read_bytes()


def _looks_after(qtbot, window, count: int) -> None:
    """Waits until the watch has looked at the folder ``count`` more times."""
    watch = window.controller.folder_watch
    until = watch.looks + count
    qtbot.waitUntil(lambda: watch.looks >= until, timeout=WAIT_MS)


def test_pictures_copied_into_the_images_folder_while_the_app_runs_appear_in_the_gallery(qtbot, data_root, tmp_path):
    window = open_window(qtbot, data_root)
    data = window.controller.data
    assert _prompts(window) == []
    outside = write_png(tmp_path / "from elsewhere.png", Image.new("RGB", (32, 32), "blue"), {"prompt": "a blue sky"})
    shutil.copy(outside, data.images / "copied.png")  # the images folder itself
    (data.images / "holiday").mkdir()  # a folder made by hand, and a picture in it
    shutil.copy(outside, data.images / "holiday" / "beach.png")
    # was: found only at the next start
    qtbot.waitUntil(lambda: len(_prompts(window)) == 2, timeout=WAIT_MS)
    assert _prompts(window) == ["a blue sky", "a blue sky"]
    assert {window.controller.gallery.record(row).path for row in range(2)} == {"copied.png", "holiday/beach.png"}
    assert window.import_label.text() == "2 images imported from the images folder."
    # a picture put later into the folder made by hand: that folder is watched too
    shutil.copy(outside, data.images / "holiday" / "sea.png")
    qtbot.waitUntil(lambda: len(_prompts(window)) == 3, timeout=WAIT_MS)
    assert window.controller.gallery.record(0).path == "holiday/sea.png"  # the newest on top
    assert window.error_dialog is None


def test_a_picture_still_being_written_is_imported_once_it_is_whole_never_half_written(qtbot, data_root, tmp_path):
    window = open_window(qtbot, data_root)
    data = window.controller.data
    whole = _png_bytes(tmp_path, "written slowly")
    target = data.images / "slow.png"
    with open(target, "wb") as f:  # a copy under way: the file grows, then stops growing a while before its end
        for part in range(4):
            f.write(whole[part * len(whole) // 8 : (part + 1) * len(whole) // 8])
            f.flush()
            qtbot.wait(LOOK_MS // 2)
        _looks_after(qtbot, window, 3)  # unchanged across looks, but no whole PNG yet
        watch = window.controller.folder_watch
        assert watch.waiting == ["slow.png"]
        # was (a watch on the size alone): imported half-written, shown as an unreadable picture
        assert _prompts(window) == [] and window.controller.store.images() == []
        assert window.error_dialog is None  # never said to be damaged
        f.write(whole[4 * len(whole) // 8 :])
    qtbot.waitUntil(lambda: _prompts(window) == ["written slowly"], timeout=WAIT_MS)
    gallery = window.controller.gallery
    assert gallery.record(0).settings["seed"] == 7 and watch.waiting == []
    assert window.error_dialog is None


def test_the_apps_own_pictures_are_not_imported_a_second_time(qtbot, data_root):
    window = open_window(qtbot, data_root)
    controller = window.controller
    looks = controller.folder_watch.looks
    saved = generate_one(qtbot, controller)
    qtbot.waitUntil(lambda: controller.folder_watch.looks > looks, timeout=WAIT_MS)  # the folder changed: looked at
    qtbot.wait(3 * LOOK_MS)  # a picture found without its entry would be imported at the next look
    assert controller.folder_watch.waiting == []
    assert [r.path for r in controller.store.images()] == [saved.path]
    assert _prompts(window) == ["a red circle"]
    assert not controller.folder_import.running and controller.folder_import.status == ""


def _starred_owl(data):
    """A starred picture of the gallery in the data folder ``data`` (d/0.png), its record."""
    gallery_images(data, ["a starred owl"])
    store = Store(data.database)
    owl = store.images()[0]
    store.set_favorites([owl.id], True)
    store.close()
    return owl


def test_a_picture_renamed_while_the_app_runs_keeps_its_entry_and_its_star(qtbot, data_root):
    data = resolve_data_dir(data_root)
    owl = _starred_owl(data)
    window = open_window(qtbot, data_root)
    gallery = window.controller.gallery
    shown_missing = []  # the entry never shows as missing meanwhile: its new name's file was still settling
    gallery.dataChanged.connect(lambda first, _last: shown_missing.append(gallery.record(first.row()).missing))
    (data.images / "d" / "0.png").rename(data.images / "owl by the lake.png")
    # was: the file imported as a second entry, without the star; the first flagged missing at the next start
    qtbot.waitUntil(lambda: gallery.record(0).path == "owl by the lake.png", timeout=WAIT_MS)
    assert not any(shown_missing)
    assert gallery.rowCount() == 1
    record = gallery.record(0)
    assert (record.id, record.favorite, record.missing) == (owl.id, True, False)
    assert [r.path for r in window.controller.store.images()] == ["owl by the lake.png"]


def _record_at(gallery, path: str):
    return next(gallery.record(row) for row in range(gallery.rowCount()) if gallery.record(row).path == path)


def test_a_missing_entrys_picture_put_back_while_the_app_runs_shows_again_once_whole(qtbot, data_root, tmp_path):
    data = resolve_data_dir(data_root)
    owl = _starred_owl(data)
    picture = data.images / "d" / "0.png"
    picture.unlink()  # away at the start: flagged missing
    window = open_window(qtbot, data_root)
    gallery, watch = window.controller.gallery, window.controller.folder_watch
    assert gallery.record(0).missing
    whole = _png_bytes(tmp_path, "a starred owl")
    with open(picture, "wb") as f:  # copied back: half of it, then it stops growing a while
        f.write(whole[: len(whole) // 2])
        f.flush()
        _looks_after(qtbot, window, 3)
        assert watch.waiting == ["d/0.png"] and gallery.record(0).missing  # no whole PNG yet: not its picture yet
        f.write(whole[len(whole) // 2 :])
    # was: flagged missing until the next start
    qtbot.waitUntil(lambda: not gallery.record(0).missing, timeout=WAIT_MS)
    record = gallery.record(0)
    assert (gallery.rowCount(), record.id, record.favorite) == (1, owl.id, True)  # its entry, no second one
    assert [(r.path, r.missing) for r in window.controller.store.images()] == [("d/0.png", False)]
    assert watch.waiting == [] and not window.controller.folder_import.running
    assert window.error_dialog is None


def test_a_picture_deleted_by_hand_while_the_app_runs_is_flagged_missing_at_once(qtbot, data_root):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["an owl", "a cat"])
    window = open_window(qtbot, data_root)
    gallery, store = window.controller.gallery, window.controller.store
    owl = data.images / "d" / "0.png"
    kept = owl.read_bytes()
    owl.unlink()  # deleted in a file manager
    # was: shown as if there until the next start
    qtbot.waitUntil(lambda: _record_at(gallery, "d/0.png").missing, timeout=WAIT_MS)
    assert not _record_at(gallery, "d/1.png").missing
    assert {r.path: r.missing for r in store.images()} == {"d/0.png": True, "d/1.png": False}
    owl.write_bytes(kept)  # and put back
    qtbot.waitUntil(lambda: not _record_at(gallery, "d/0.png").missing, timeout=WAIT_MS)
    assert gallery.rowCount() == 2 and store.images_at(["d/0.png"])[0].missing is False
    assert window.error_dialog is None


def test_a_look_at_an_images_folder_that_cannot_be_listed_finds_no_picture_gone(tmp_path):
    """A drive unplugged, the folder gone: the look says nothing of each picture, and no entry is flagged missing."""
    entries = {"d/0.png", "d/1.png"}
    assert look_at_folder(DataDir(tmp_path / "unplugged"), entries, set(), {}).gone == frozenset()
    (tmp_path / "emptied" / "images").mkdir(parents=True)
    assert look_at_folder(DataDir(tmp_path / "emptied"), entries, set(), {}).gone == entries  # listed: they are gone



def test_folders_the_system_will_not_watch_are_looked_at_every_while_instead(qtbot, data_root, tmp_path, monkeypatch,
                                                                            caplog):  # fmt: skip
    """The system refuses to watch a folder once its limit of watched folders is reached (Linux's inotify
    ``max_user_watches``): Qt's ``addPaths`` returns it. Nothing looked at such a folder again: the pictures put in
    it were found at the next start only. It is looked at every ``POLL_MS`` (30 s) instead, which the log says once
    per folder."""
    from PySide6.QtCore import QFileSystemWatcher

    from app import folder_watch

    data = resolve_data_dir(data_root)
    images = str(data.images)
    real = QFileSystemWatcher.addPaths

    def add_paths(watcher, paths):  # the images folder and those in it refused, as at the system's limit
        refused = [p for p in paths if p == images or p.startswith(images + "/")]
        others = [p for p in paths if p not in refused]
        return refused + (real(watcher, others) if others else [])

    monkeypatch.setattr(QFileSystemWatcher, "addPaths", add_paths)
    monkeypatch.setattr(folder_watch, "POLL_MS", 2 * LOOK_MS)
    caplog.set_level("INFO", logger="app.folder_watch")
    window = open_window(qtbot, data_root)
    watch = window.controller.folder_watch
    qtbot.waitUntil(lambda: watch.looks >= 1, timeout=WAIT_MS)  # the first look, at the start, made as before
    outside = write_png(tmp_path / "from elsewhere.png", Image.new("RGB", (32, 32), "blue"), {"prompt": "a blue sky"})
    shutil.copy(outside, data.images / "copied.png")
    # was: found at the next start only
    qtbot.waitUntil(lambda: _prompts(window) == ["a blue sky"], timeout=WAIT_MS)
    (data.images / "holiday").mkdir()
    shutil.copy(outside, data.images / "holiday" / "beach.png")
    qtbot.waitUntil(lambda: len(_prompts(window)) == 2, timeout=WAIT_MS)
    _looks_after(qtbot, window, 3)
    said = [r.getMessage() for r in caplog.records if "cannot be watched" in r.getMessage()]
    assert said == [f"the folder {folder} cannot be watched (the system's limit of watched folders reached?): it is "
                    "looked at every 2 s instead" for folder in (images, os.path.join(images, "holiday"))]



def test_the_images_folder_removed_and_made_again_is_watched_again(qtbot, data_root, tmp_path):
    window = open_window(qtbot, data_root)
    data = window.controller.data
    outside = write_png(tmp_path / "from elsewhere.png", Image.new("RGB", (32, 32), "blue"), {"prompt": "a blue sky"})
    shutil.rmtree(data.images)  # removed while the app runs
    _looks_after(qtbot, window, 1)
    looks = window.controller.folder_watch.looks
    qtbot.wait(3 * LOOK_MS)
    assert window.controller.folder_watch.looks <= looks + 1  # not looked at over and over meanwhile
    assert window.error_dialog is None
    data.images.mkdir()  # made again by hand (a backup put back), where new jobs save again
    (data.images / "holiday").mkdir()
    shutil.copy(outside, data.images / "holiday" / "beach.png")
    # Was: never imported (until the next start): the folder's watch ended with the folder
    qtbot.waitUntil(lambda: _prompts(window) == ["a blue sky"], timeout=WAIT_MS)
    assert window.controller.gallery.record(0).path == "holiday/beach.png"
    shutil.copy(outside, data.images / "holiday" / "sea.png")  # and its folders watched as before
    qtbot.waitUntil(lambda: len(_prompts(window)) == 2, timeout=WAIT_MS)
    assert window.error_dialog is None


def test_a_look_that_fails_is_made_again_and_imports_the_pictures_put_in_meanwhile(qtbot, data_root, tmp_path,
                                                                                  monkeypatch):  # fmt: skip
    """A look that fails (an error on its thread) was made again only at the folder's next change: the picture
    whose copy had the folder looked at stayed out of the gallery until something else changed, or the next start."""
    from app import folder_watch

    window = open_window(qtbot, data_root)
    data, watch = window.controller.data, window.controller.folder_watch
    qtbot.waitUntil(lambda: watch.looks >= 1, timeout=WAIT_MS)  # the start's first look
    real, failed = folder_watch.look_at_folder, []

    def fails_once(*args):
        if not failed:
            failed.append(True)
            raise RuntimeError("a look cut short")
        return real(*args)

    monkeypatch.setattr(folder_watch, "look_at_folder", fails_once)
    outside = write_png(tmp_path / "from elsewhere.png", Image.new("RGB", (32, 32), "blue"), {"prompt": "a blue sky"})
    shutil.copy(outside, data.images / "copied.png")
    qtbot.waitUntil(lambda: bool(failed), timeout=WAIT_MS)
    # was: not imported (no further change in the folder told of it)
    qtbot.waitUntil(lambda: _prompts(window) == ["a blue sky"], timeout=WAIT_MS)
    assert window.error_dialog is None


def test_the_images_folder_made_again_after_a_failed_database_read_is_watched_again(qtbot, data_root, tmp_path,
                                                                                     monkeypatch):  # fmt: skip
    """While the images folder is away no watch tells of anything: a look skipped for a failed read of the database
    (locked a moment) ended its looks every 5 s, and the folder made again was never watched (until the next start)."""
    import sqlite3

    window = open_window(qtbot, data_root)
    data, store, watch = window.controller.data, window.controller.store, window.controller.folder_watch
    qtbot.waitUntil(lambda: watch.looks >= 1, timeout=WAIT_MS)
    shutil.rmtree(data.images)
    _looks_after(qtbot, window, 1)  # the look that finds it away
    real, failed = store.watched_paths, []

    def fails_once():
        if not failed:
            failed.append(True)
            raise sqlite3.OperationalError("database is locked")
        return real()

    monkeypatch.setattr(store, "watched_paths", fails_once)
    qtbot.waitUntil(lambda: bool(failed), timeout=WAIT_MS)
    outside = write_png(tmp_path / "from elsewhere.png", Image.new("RGB", (32, 32), "blue"), {"prompt": "a blue sky"})
    data.images.mkdir()
    shutil.copy(outside, data.images / "beach.png")
    # was: never imported (until the next start)
    qtbot.waitUntil(lambda: _prompts(window) == ["a blue sky"], timeout=WAIT_MS)
    assert window.error_dialog is None


def test_a_picture_found_when_flagging_a_deleted_one_fails_is_still_imported(qtbot, data_root, tmp_path, monkeypatch):
    """A look that found a new picture and a picture deleted by hand: flagging the deleted one's entry failing (the
    database locked a moment) lost the new one, taken as handed to the import, until it changed or the next start;
    and the deleted one was flagged at the folder's next change only."""
    import sqlite3

    data = resolve_data_dir(data_root)
    gallery_images(data, ["an owl"])
    window = open_window(qtbot, data_root)
    gallery, store, watch = window.controller.gallery, window.controller.store, window.controller.folder_watch
    qtbot.waitUntil(lambda: watch.looks >= 1, timeout=WAIT_MS)
    real, failed = store.set_missing, []

    def fails_once(ids, missing):
        if not failed:
            failed.append(True)
            raise sqlite3.OperationalError("database is locked")
        return real(ids, missing)

    monkeypatch.setattr(store, "set_missing", fails_once)
    (data.images / "d" / "0.png").unlink()  # deleted in a file manager, and another picture copied in
    (data.images / "copied.png").write_bytes(_png_bytes(tmp_path, "a blue sky"))
    qtbot.waitUntil(lambda: bool(failed), timeout=WAIT_MS)
    # was: never imported (until it changed, or the next start)
    qtbot.waitUntil(lambda: "a blue sky" in _prompts(window), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: _record_at(gallery, "d/0.png").missing, timeout=WAIT_MS)
    assert window.error_dialog is None


def test_the_images_folder_moved_away_and_another_put_in_its_place_is_watched(qtbot, data_root, tmp_path):
    """Linux tells nothing to the watch of a folder moved (renamed): the images folder moved away was never looked
    at again, nor was a folder put in its place (a backup moved back in) ever watched: the pictures put in it came in
    at the next start only."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["an owl"])
    backup = data.images.with_name("backup")
    shutil.copytree(data.images, backup)
    window = open_window(qtbot, data_root)
    watch = window.controller.folder_watch
    qtbot.waitUntil(lambda: watch.looks >= 1, timeout=WAIT_MS)
    data.images.rename(data.images.with_name("images.old"))
    backup.rename(data.images)
    outside = write_png(tmp_path / "x.png", Image.new("RGB", (32, 32), "blue"), {"prompt": "a blue sky"})
    shutil.copy(outside, data.images / "d" / "beach.png")  # into a folder of the one put in place
    # was: never imported (until the next start)
    qtbot.waitUntil(lambda: "a blue sky" in _prompts(window), timeout=WAIT_MS)
    data.images.rename(data.images.with_name("images.older"))  # moved away alone, then made again
    _looks_after(qtbot, window, 1)
    data.images.mkdir()
    (data.images / "sea.png").write_bytes(_png_bytes(tmp_path, "a green sea"))  # not beach.png's: no rename of it
    qtbot.waitUntil(lambda: "a green sea" in _prompts(window), timeout=WAIT_MS)
    assert window.error_dialog is None
