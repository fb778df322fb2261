"""The trash is listed off the Qt thread: "Empty trash…" listed the images folder (30,000 pictures) and the trash
on the Qt thread, and so did the gallery, for whether Empty trash has anything to delete, after each undo that
left the undo list empty: the window froze meanwhile."""

from __future__ import annotations

import os
import threading

from PySide6.QtWidgets import QMessageBox

from app.data_dir import resolve_data_dir
from tests.app.gui import gallery_images, trash_settled, window_without_engine


def _listings_on_the_gui_thread(monkeypatch, data) -> list[str]:
    """The folders under the images folder or the trash that ``os.scandir`` lists on the GUI thread from now on
    (``pathlib``'s ``rglob`` and ``png_paths`` both list through it)."""
    listed: list[str] = []
    real = os.scandir
    watched = (str(data.images), str(data.trash))

    def scandir(path="."):
        if threading.current_thread() is threading.main_thread() and str(path).startswith(watched):
            listed.append(str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    return listed


def test_empty_trash_and_undo_list_no_folder_on_the_gui_thread(qtbot, data_root, monkeypatch):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "cat"])
    window = window_without_engine(qtbot, data)
    panel, gallery = window.gallery_panel, window.controller.gallery
    trash_settled(qtbot, gallery)
    listed = _listings_on_the_gui_thread(monkeypatch, data)

    panel.select_row(0)
    panel.delete_selected()
    panel.undo_button.click()  # the undo list empty: the trash is looked at for files without a row
    trash_settled(qtbot, gallery)
    assert not panel.empty_trash_button.isEnabled()
    assert listed == []

    panel.select_row(0)
    panel.delete_selected()  # "cat" (d/2.png): deleted for good below
    # A delete whose commit failed and whose file could not be moved back left the picture of "owl" in the trash:
    # Empty trash moves it back, listing the images folder for that
    (data.trash / "d").mkdir(parents=True, exist_ok=True)
    os.replace(data.images / "d/1.png", data.trash / "d/1.png")
    asked: list[str] = []

    def yes(box: QMessageBox) -> None:
        asked.append(box.text())
        box.button(QMessageBox.StandardButton.Yes).click()

    monkeypatch.setattr(QMessageBox, "exec", yes)
    panel.empty_trash_button.click()
    assert not panel.empty_trash_button.isEnabled()  # greyed while the trash is listed
    qtbot.waitUntil(lambda: bool(asked), timeout=30000)
    trash_settled(qtbot, gallery)
    assert asked == ["Delete the 1 file in the trash (0.0 MiB) for good?"]
    assert listed == []
    assert not [p for p in data.trash.rglob("*") if p.is_file()] and (data.images / "d/1.png").is_file()
    assert sorted(gallery.record(r).prompt for r in range(gallery.rowCount())) == ["fox", "owl"]
    assert not panel.empty_trash_button.isEnabled()


def test_a_listing_older_than_an_undo_deletes_nothing(qtbot, data_root, monkeypatch):
    """Empty trash lists the trash, then asks; an image brought back meanwhile (undo) would be among the files the
    listing names: the listing is refused as out of date, nothing is deleted, and the user is told."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "cat"])
    window = window_without_engine(qtbot, data)
    panel, gallery = window.gallery_panel, window.controller.gallery
    trash_settled(qtbot, gallery)
    for _ in range(2):  # "cat", then "owl" (the newest first)
        panel.select_row(0)
        panel.delete_selected()
    trash_settled(qtbot, gallery)
    listings: list = []
    gallery.list_trash_to_empty(listings.append)
    qtbot.waitUntil(lambda: bool(listings), timeout=30000)
    assert len(listings[0].deleted) == 2
    panel.undo_button.click()  # "owl" back in the gallery, its picture back in images/
    notices: list = []
    gallery.notice.connect(notices.append)
    assert not gallery.empty_trash(listings[0])
    assert len(notices) == 1 and notices[0].message.startswith("Nothing was deleted: the trash changed")
    assert (data.images / "d/1.png").is_file() and (data.trash / "d/2.png").is_file()
    assert sorted(gallery.record(r).prompt for r in range(gallery.rowCount())) == ["fox", "owl"]


def test_a_junction_in_the_trash_is_listed_as_itself_never_what_its_target_holds(tmp_path, monkeypatch):
    """A Windows junction is a folder to ``DirEntry.is_dir`` and ``lstat`` (not a link): the listing walked into it,
    and Empty trash deleted the files of its target, a folder of the user's elsewhere. It is listed as a folder to
    remove (``rmdir`` removes a junction itself), not walked into. Simulated here: lstat reports the tag Windows
    gives a junction at that folder; a OneDrive folder's tag (files on demand) is an ordinary folder, walked."""
    from pathlib import Path
    from types import SimpleNamespace

    from app.trash_listing import TrashEmptied, delete_listed, list_trash

    trash = tmp_path / "trash"
    (trash / "junction").mkdir(parents=True)
    (trash / "junction" / "elsewhere.png").write_bytes(b"the user's")
    (trash / "onedrive").mkdir()
    (trash / "onedrive" / "in-trash.png").write_bytes(b"deleted")
    tags = {trash / "junction": 0xA0000003, trash / "onedrive": 0x9000601A}
    real_lstat = Path.lstat

    def lstat(path: Path):
        status = real_lstat(path)
        return SimpleNamespace(st_mode=status.st_mode, st_reparse_tag=tags[path]) if path in tags else status

    monkeypatch.setattr(Path, "lstat", lstat)
    listing = list_trash(trash)
    assert set(listing.files) == {"onedrive/in-trash.png"}
    assert set(listing.folders) == {trash / "junction", trash / "onedrive"}
    delete_listed(listing, threading.Event(), lambda _: None, TrashEmptied())
    assert (trash / "junction" / "elsewhere.png").read_bytes() == b"the user's"
    assert not (trash / "onedrive").exists()
