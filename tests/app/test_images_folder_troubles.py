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
from tests.app.gui import gallery_images, open_window

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
