"""One count of the files Empty trash deletes, from the confirmation to the end, a broken link in the trash
included."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from app.data_dir import resolve_data_dir
from tests.app import test_trash_emptying as emptying
from tests.app.gui import gallery_images, trash_settled, window_without_engine
from tests.app.test_trash_emptying import _start_emptying, _three_in_the_trash

held = emptying.held  # the fixture: the first file's deletion held until ``go``


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

