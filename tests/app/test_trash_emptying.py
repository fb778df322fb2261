"""Empty trash deletes its files on a thread of its own: with tens of thousands of images in the trash, deleting
them on the Qt thread after the confirmation froze the window meanwhile. While it deletes, the window is in use;
Empty trash, Undo and Delete are greyed, and refused with a word when asked for all the same (a delete would move
a picture into the folder being emptied); closing the window stops it, and the next start empties the rest."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import pytest
from PySide6.QtWidgets import QMessageBox

import app.trash_listing
from app.data_dir import DataDir, resolve_data_dir
from tests.app import gui
from tests.app.gui import gallery_images, trash_listing, trash_settled, window_without_engine

if TYPE_CHECKING:
    from app.main_window import MainWindow


class _Held(NamedTuple):
    """Deleting files in the trash, held at the first until ``go`` is set (``reached`` then, by ``deleting``)."""

    reached: threading.Event
    go: threading.Event
    on_gui_thread: list[Path]  # the files of the trash deleted on the GUI thread
    deleting: list[threading.Thread]  # the thread held


@pytest.fixture
def held(monkeypatch) -> _Held:
    """``Path.unlink`` of a file in a trash folder, on a thread other than the GUI's, waits for ``go``."""
    hold = _Held(threading.Event(), threading.Event(), [], [])
    unlink = Path.unlink

    def held_unlink(self: Path, missing_ok: bool = False) -> None:
        if "trash" in self.parts:
            if threading.current_thread() is threading.main_thread():
                hold.on_gui_thread.append(self)
            elif not hold.reached.is_set():
                hold.deleting.append(threading.current_thread())
                hold.reached.set()
                hold.go.wait(60)  # bounded: a failed test must not leave the thread waiting for ever
        unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", held_unlink)
    monkeypatch.setattr(QMessageBox, "exec", lambda box: box.button(QMessageBox.StandardButton.Yes).click())
    return hold


@pytest.fixture
def stepped(monkeypatch) -> threading.Semaphore:
    """``Path.unlink`` of a file in a trash folder, on a thread other than the GUI's, waits for a ``release`` of
    the semaphore returned (one per file); Empty trash's confirmation is answered Yes."""
    steps = threading.Semaphore(0)
    unlink = Path.unlink

    def stepped_unlink(self: Path, missing_ok: bool = False) -> None:
        if "trash" in self.parts and threading.current_thread() is not threading.main_thread():
            steps.acquire(timeout=60)  # bounded: a failed test must not leave the thread waiting for ever
        unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", stepped_unlink)
    monkeypatch.setattr(QMessageBox, "exec", lambda box: box.button(QMessageBox.StandardButton.Yes).click())
    return steps


def _three_in_the_trash(qtbot, data_root) -> tuple[DataDir, MainWindow]:
    """The window on a gallery of fox, owl, cat and emu, the first three deleted (three deletions): emu is left."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "cat", "emu"])  # shown newest first: emu, cat, owl, fox
    window = window_without_engine(qtbot, data)
    for _ in range(3):
        window.gallery_panel.select_row(1)
        window.gallery_panel.delete_selected()
    trash_settled(qtbot, window.controller.gallery)
    return data, window


def _start_emptying(qtbot, window: MainWindow, hold: _Held) -> None:
    """Empty trash clicked and confirmed; returns once its deletion is held at its first file."""
    window.gallery_panel.empty_trash_button.click()  # listed on a thread, then confirmed (Yes)
    qtbot.waitUntil(lambda: hold.reached.is_set() or bool(hold.on_gui_thread), timeout=30000)
    assert hold.on_gui_thread == []  # was: every file deleted on the GUI thread, the window frozen meanwhile


def _trash_files(data: DataDir) -> list[Path]:
    return [p for p in data.trash.rglob("*") if p.is_file()]


def test_the_window_is_in_use_while_the_trash_is_emptied(qtbot, data_root, held):
    data, window = _three_in_the_trash(qtbot, data_root)
    panel, gallery, controller = window.gallery_panel, window.controller.gallery, window.controller
    _start_emptying(qtbot, window, held)

    assert gallery.emptying and window.statusBar().currentMessage() == "Emptying the trash: 0 of 3 files deleted…"
    panel.select_row(0)  # emu: the selection works, Delete is greyed all the same
    assert not panel.empty_trash_button.isEnabled() and not panel.undo_button.isEnabled()
    assert not panel.delete_button.isEnabled() and panel.favorite_button.isEnabled()
    notices: list = []
    controller.error.connect(notices.append)
    panel.delete_selected()  # the Delete key
    controller.undo_delete()  # Ctrl+Z
    assert [(n.message, n.hint) for n in notices] == [
        ("Delete cannot be done while the trash is being emptied (0 of 3 files deleted so far).",
         "Try Delete again once Empty trash has ended; nothing was changed."),
        # was: "Try Undo delete again once the status bar says the trash was emptied", after which Undo did
        # nothing: the undo list went with the rows Empty trash forgot
        ("Undo delete cannot bring back the images in the trash: Empty trash is deleting them for good (0 of 3 "
         "files deleted so far).", "Nothing was changed; once Empty trash has begun, its images cannot be brought "
         "back."),
    ]  # fmt: skip
    assert [gallery.record(r).prompt for r in range(gallery.rowCount())] == ["emu"]
    assert (data.images / "d" / "3.png").is_file() and len(_trash_files(data)) == 3
    listings: list = []
    gallery.list_trash_to_empty(listings.append)  # listed once the deletion ended, not counting what it deletes
    assert not listings

    with qtbot.waitSignal(gallery.trash_emptied, timeout=30000) as ended:
        held.go.set()
    assert ended.args[0].deleted == 3 and not ended.args[0].failures and not gallery.emptying
    assert window.statusBar().currentMessage() == "The trash was emptied: 3 files deleted (0.0 MiB)."
    qtbot.waitUntil(lambda: bool(listings), timeout=30000)
    assert listings[0].size == (0, 0) and _trash_files(data) == []
    trash_settled(qtbot, gallery)
    assert not panel.empty_trash_button.isEnabled() and panel.delete_button.isEnabled()
    panel.delete_selected()  # deleting works again, and Undo
    assert gallery.rowCount() == 0 and panel.undo_button.isEnabled()
    panel.undo_button.click()
    assert [gallery.record(r).prompt for r in range(gallery.rowCount())] == ["emu"]
    assert held.on_gui_thread == []


def test_closing_the_window_while_the_trash_is_emptied_leaves_the_rest_for_the_next_start(qtbot, data_root, held):
    data, window = _three_in_the_trash(qtbot, data_root)
    _start_emptying(qtbot, window, held)
    gui.open_windows.remove(window)
    window.close()  # the rows of the trash are forgotten already; the deletion stops before its next file
    [deleting] = held.deleting
    held.go.set()
    deleting.join(30)
    assert not deleting.is_alive()
    assert len(_trash_files(data)) == 2 and (data.images / "d" / "3.png").is_file()  # the file under way only

    window = window_without_engine(qtbot, data)
    panel, gallery = window.gallery_panel, window.controller.gallery
    trash_settled(qtbot, gallery)
    assert [gallery.record(r).prompt for r in range(gallery.rowCount())] == ["emu"]
    assert gallery.undo_count == 0 and panel.empty_trash_button.isEnabled()  # the files left, without rows
    with qtbot.waitSignal(gallery.trash_emptied, timeout=30000) as ended:  # not held: the first file was reached
        assert window.controller.empty_trash(trash_listing(qtbot, gallery))
    assert ended.args[0].deleted == 2 and _trash_files(data) == []
    assert [gallery.record(r).prompt for r in range(gallery.rowCount())] == ["emu"]
    assert (data.images / "d" / "3.png").is_file() and held.on_gui_thread == []


def test_the_status_bar_says_how_far_the_deletion_got(qtbot, data_root, stepped, monkeypatch):
    """Told after each file here (``PROGRESS_EVERY_S`` 0), each file let go one at a time: the status bar and a
    refusal count the files deleted so far, not the 0 of the start."""
    monkeypatch.setattr(app.trash_listing, "PROGRESS_EVERY_S", 0.0)
    data, window = _three_in_the_trash(qtbot, data_root)
    panel, gallery, controller = window.gallery_panel, window.controller.gallery, window.controller
    status = window.statusBar().currentMessage
    panel.empty_trash_button.click()  # listed on a thread, then confirmed (Yes)
    qtbot.waitUntil(lambda: gallery.emptying, timeout=30000)
    assert status() == "Emptying the trash: 0 of 3 files deleted…"
    for deleted in (1, 2):
        stepped.release()
        said = f"Emptying the trash: {deleted} of 3 files deleted…"
        qtbot.waitUntil(lambda said=said: status() == said, timeout=30000)
        assert len(_trash_files(data)) == 3 - deleted
    notices: list = []
    controller.error.connect(notices.append)
    panel.select_row(0)
    panel.delete_selected()
    assert [n.message for n in notices] == ["Delete cannot be done while the trash is being emptied (2 of 3 files "
                                            "deleted so far)."]  # fmt: skip
    with qtbot.waitSignal(gallery.trash_emptied, timeout=30000) as ended:
        stepped.release()
    assert ended.args[0].deleted == 3 and status() == "The trash was emptied: 3 files deleted (0.0 MiB)."
