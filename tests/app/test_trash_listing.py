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
