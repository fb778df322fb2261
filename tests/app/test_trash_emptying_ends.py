"""How Empty trash's deletion, on its thread, ends when it does not delete every file it listed, and what it says:
an error that stops it part-way, the data folder moved away meanwhile, a thread that cannot start. And one count
of the files from the confirmation to the end, a broken link in the trash included."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from app.data_dir import resolve_data_dir
from tests.app import test_trash_emptying as emptying
from tests.app.gui import gallery_images, trash_listing, trash_settled, window_without_engine
from tests.app.test_trash_emptying import _start_emptying, _three_in_the_trash, _trash_files

held = emptying.held  # the fixture: the first file's deletion held until ``go``


def test_an_error_that_stops_the_deletion_says_how_far_it_got(qtbot, data_root, monkeypatch):
    data, window = _three_in_the_trash(qtbot, data_root)
    panel, gallery, controller = window.gallery_panel, window.controller.gallery, window.controller
    errors: list = []
    controller.error.connect(errors.append)
    unlink = Path.unlink
    deleted: list[Path] = []

    def third_faults(self: Path, missing_ok: bool = False) -> None:  # not an OSError: no failure of one file
        if "trash" in self.parts and threading.current_thread() is not threading.main_thread():
            if len(deleted) == 2:
                raise RuntimeError("boom")
            deleted.append(self)
        unlink(self, missing_ok)

    with monkeypatch.context() as faulty:
        faulty.setattr(Path, "unlink", third_faults)
        with qtbot.waitSignal(gallery.trash_emptied, timeout=30000) as ended:
            assert controller.empty_trash(trash_listing(qtbot, gallery))
    # was: "The trash was only partly emptied: <trash folder> could not be deleted (stopped by an error: boom).
    # 0 files were deleted, ..."
    assert errors[-1].message == ("Empty trash stopped by an error after 2 files were deleted (boom). The images "
                                  "in the trash can no longer be brought back with Undo.")  # fmt: skip
    assert ended.args[0].deleted == 2 and len(_trash_files(data)) == 1 and not gallery.emptying
    trash_settled(qtbot, gallery)
    assert panel.empty_trash_button.isEnabled()  # the file left: the next Empty trash deletes it
    with qtbot.waitSignal(gallery.trash_emptied, timeout=30000) as ended:
        assert controller.empty_trash(trash_listing(qtbot, gallery))
    assert ended.args[0].deleted == 1 and _trash_files(data) == []


def test_the_data_folder_moved_away_meanwhile_is_said_not_the_trash_emptied(qtbot, data_root, held, tmp_path):
    data, window = _three_in_the_trash(qtbot, data_root)
    panel, gallery = window.gallery_panel, window.controller.gallery
    errors: list = []
    window.controller.error.connect(errors.append)
    _start_emptying(qtbot, window, held)
    moved = tmp_path / "moved-away"
    data.root.rename(moved)
    try:
        with qtbot.waitSignal(gallery.trash_emptied, timeout=30000):
            held.go.set()
        trash_settled(qtbot, gallery)
        status = window.statusBar().currentMessage()
        # The end looked at the trash at the old path, found nothing, and greyed Empty trash as for an empty trash;
        # asked for, Empty trash said "The trash is empty.", the files all in the moved folder's trash.
        assert panel.empty_trash_button.isEnabled()
        panel.empty_trash_button.click()
        trash_settled(qtbot, gallery)
        assert panel.empty_trash_button.isEnabled()
    finally:
        moved.rename(data.root)  # the window closes on it (saving its settings)
    # was: "The trash was emptied: 0 files deleted (0.0 MiB)." while all three were in the moved trash
    assert not status.startswith("The trash was emptied") and len(errors) == 2
    assert errors[0].message.startswith(f"The trash was not emptied: 3 files were no longer in the trash folder "
                                        f"{data.trash} (0 files were deleted). The data folder {data.root} was "
                                        "moved or removed while Nibble Studio ran")  # fmt: skip
    assert errors[0].hint.startswith("If the folder was moved, its trash still holds them")
    assert errors[1].message == (  # as a delete or an undo says it
        f"The data folder {data.root} was moved or removed while Nibble Studio ran, so nothing more is saved in it: "
        "quit Nibble Studio and start it again (with --data-dir NEW_PATH if the folder was moved).")
    assert len(_trash_files(data)) == 3
    with qtbot.waitSignal(gallery.trash_emptied, timeout=30000) as ended:  # the folder back: emptied as asked
        panel.empty_trash_button.click()
    assert ended.args[0].deleted == 3 and _trash_files(data) == []


def test_a_deletion_thread_that_cannot_start_leaves_delete_undo_and_empty_trash_usable(qtbot, data_root,
                                                                                        monkeypatch):  # fmt: skip
    data, window = _three_in_the_trash(qtbot, data_root)
    panel, gallery, controller = window.gallery_panel, window.controller.gallery, window.controller
    errors: list = []
    controller.error.connect(errors.append)
    listing = trash_listing(qtbot, gallery)

    def no_thread(what: str, work: object) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as failing:
        failing.setattr(gallery._emptier._deleting, "start", no_thread)
        assert not controller.empty_trash(listing)  # was: the RuntimeError let out, and emptying left set
    assert errors[-1].message.startswith("Empty trash could not start deleting the files (can't start new thread).")
    assert not gallery.emptying and len(_trash_files(data)) == 3
    trash_settled(qtbot, gallery)
    panel.select_row(0)
    assert panel.delete_button.isEnabled() and panel.empty_trash_button.isEnabled()  # the rowless files left
    assert gallery.undo_count == 0  # the rows were forgotten before the thread was asked for
    with qtbot.waitSignal(gallery.trash_emptied, timeout=30000) as ended:
        assert controller.empty_trash(trash_listing(qtbot, gallery))
    assert ended.args[0].deleted == 3 and _trash_files(data) == []


def test_another_runtime_error_is_not_said_as_a_thread_that_could_not_start(qtbot, data_root, monkeypatch):
    # Any RuntimeError (a RecursionError, a deleted Qt object) was taken for a thread that could not start, and the
    # user told the images could no longer be brought back, while nothing had changed.
    data, window = _three_in_the_trash(qtbot, data_root)
    gallery, controller = window.controller.gallery, window.controller
    errors: list = []
    controller.error.connect(errors.append)
    listing = trash_listing(qtbot, gallery)
    undo_before = gallery.undo_count

    def broken(self) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(type(gallery._data), "check_in_place", broken)
    with pytest.raises(RecursionError):
        controller.empty_trash(listing)
    assert errors == [] and gallery.undo_count == undo_before > 0 and len(_trash_files(data)) == 3


def test_a_broken_link_in_the_trash_is_counted_alike_from_the_question_to_the_end(qtbot, data_root, held):
    data, window = _three_in_the_trash(qtbot, data_root)
    gallery = window.controller.gallery
    (data.trash / "d" / "dangling.png").symlink_to(data.root / "nowhere.png")
    totals: list[int] = []
    gallery.emptying_progress.connect(lambda deleted, total: totals.append(total))
    _start_emptying(qtbot, window, held)
    # was: "Delete the 3 files", then "0 of 4 files deleted…" and "4 files deleted"
    assert window.gallery_panel.trash_dialog.text() == "Delete the 4 files in the trash (0.0 MiB) for good?"
    assert window.statusBar().currentMessage() == "Emptying the trash: 0 of 4 files deleted…"
    with qtbot.waitSignal(gallery.trash_emptied, timeout=30000):
        held.go.set()
    assert window.statusBar().currentMessage() == "The trash was emptied: 4 files deleted (0.0 MiB)."
    assert set(totals) == {4} and not any(p.is_symlink() for p in data.trash.rglob("*"))


def test_a_trash_holding_only_a_broken_link_is_not_called_empty(qtbot, data_root, monkeypatch):
    """Empty trash was enabled for it (the listing has a file to delete), then said "The trash is empty." and
    deleted nothing, enabled still."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["emu"])
    (data.trash / "dangling.png").symlink_to(data.root / "nowhere.png")
    monkeypatch.setattr(QMessageBox, "exec", lambda box: box.button(QMessageBox.StandardButton.Yes).click())
    window = window_without_engine(qtbot, data)
    panel, gallery = window.gallery_panel, window.controller.gallery
    trash_settled(qtbot, gallery)
    assert panel.empty_trash_button.isEnabled()
    with qtbot.waitSignal(gallery.trash_emptied, timeout=30000) as ended:
        panel.empty_trash_button.click()  # listed on a thread, then confirmed (Yes)
    assert panel.trash_dialog.text() == "Delete the 1 file in the trash (0.0 MiB) for good?"
    assert ended.args[0].deleted == 1 and not (data.trash / "dangling.png").is_symlink()
    trash_settled(qtbot, gallery)
    assert not panel.empty_trash_button.isEnabled()
