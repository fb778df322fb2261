"""The trash across restarts and crashes: deletions stay undoable, a delete or undo cut short by a crash is
finished at the next start, and no image in the trash is ever replaced by another of the same name."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from PIL import Image

from app.data_dir import resolve_data_dir
from app.image_files import new_image_path, save_new_image
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app import gui
from tests.app.gui import answer_stop, gallery_images, open_window, trash_listing, trash_settled


def _restart(qtbot, window, root):
    gui.open_windows.remove(window)
    window.close()
    return open_window(qtbot, root)


def _shown(window) -> list[tuple[str, str, bool]]:
    gallery = window.controller.gallery
    return sorted((r.path, r.prompt, r.missing) for r in map(gallery.record, range(gallery.rowCount())))


def test_deletions_stay_undoable_after_a_restart(qtbot, data_root):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "cat"])
    window = open_window(qtbot, data_root)
    panel, gallery = window.gallery_panel, window.controller.gallery
    for prompt in ("owl", "fox"):  # two deletions: owl first, then fox
        panel.select_row(next(r for r in range(gallery.rowCount()) if gallery.record(r).prompt == prompt))
        panel.delete_selected()
    window = _restart(qtbot, window, data_root)
    panel, gallery = window.gallery_panel, window.controller.gallery
    assert [p for _, p, _ in _shown(window)] == ["cat"]
    assert panel.undo_button.isEnabled()  # was: disabled, the images reachable only by hand in the trash folder
    panel.undo_button.click()  # the latest deletion comes back first
    assert sorted(p for _, p, _ in _shown(window)) == ["cat", "fox"]
    panel.undo_button.click()
    assert _shown(window) == [("d/0.png", "fox", False), ("d/1.png", "owl", False), ("d/2.png", "cat", False)]
    assert not panel.undo_button.isEnabled() and not list(data.trash.rglob("*.png"))


def test_a_delete_or_undo_cut_short_by_a_crash_is_finished_at_the_next_start(qtbot, data_root):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl"])
    window = open_window(qtbot, data_root)
    window.gallery_panel.select_row(0)
    window.gallery_panel.delete_selected()  # "owl" (d/1.png) to the trash, committed
    gui.open_windows.remove(window)
    window.close()
    # The app dies while undoing "owl": its file is back, its row still says "in the trash" (it was invisible).
    shutil.move(data.trash / "d" / "1.png", data.images / "d" / "1.png")
    # ... and had died while deleting "fox": its file is in the trash, its row never said so (it showed "missing").
    shutil.move(data.images / "d" / "0.png", data.trash / "d" / "0.png")
    window = open_window(qtbot, data_root)
    assert _shown(window) == [("d/0.png", "fox", False), ("d/1.png", "owl", False)]
    assert (data.images / "d" / "0.png").is_file() and not list(data.trash.rglob("*.png"))
    assert window.controller.reconcile_report.repaired == 2
    assert not window.gallery_panel.undo_button.isEnabled()


def test_an_image_in_the_trash_is_never_replaced_by_one_of_the_same_name(qtbot, data_root):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["old fox"])
    window = open_window(qtbot, data_root)
    panel = window.gallery_panel
    panel.select_row(0)
    panel.delete_selected()
    # A new image may not take the trashed one's name (same second, seed and index)...
    when = (data.images / "d").stat().st_mtime
    name = new_image_path(data, 5, 0, when)
    trashed = data.trash / name.relative_to(data.images)
    trashed.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(data.trash / "d" / "0.png", trashed)
    written = save_new_image(data, name, lambda tmp: write_png(tmp, Image.new("RGB", (16, 16)), {"prompt": "new"}))
    assert written.name == name.stem + "-1.png" and not name.exists()
    assert trashed.read_bytes() == (data.trash / "d" / "0.png").read_bytes()
    written.unlink()  # not an image of this test's gallery
    # ... and a file the user copies in under that name is not overwritten by undo (it was: the copy was lost).
    write_png(data.images / "d" / "0.png", Image.new("RGB", (16, 16), "blue"), {"prompt": "new blue"})
    panel.undo_button.click()
    assert Image.open(data.images / "d" / "0.png").getpixel((0, 0)) == (0, 0, 255)
    assert _shown(window) == [("d/0-2.png", "old fox", False)]
    assert Image.open(data.images / "d" / "0-2.png").getpixel((0, 0)) == (0, 0, 0)
    # The same with the app closed in between: both images are in the gallery after the restart and the undo.
    panel.select_row(0)
    panel.delete_selected()
    window = _restart(qtbot, window, data_root)
    shown = _shown(window)
    assert shown == [("d/0.png", "new blue", False)]
    write_png(data.images / "d" / "0-2.png", Image.new("RGB", (16, 16), "green"), {"prompt": "green"})
    window = _restart(qtbot, window, data_root)
    window.gallery_panel.undo_button.click()
    assert _shown(window) == [("d/0-2-2.png", "old fox", False), ("d/0-2.png", "green", False),
                              ("d/0.png", "new blue", False)]


def test_empty_trash_that_cannot_delete_a_file_says_what_did_change(qtbot, data_root, monkeypatch):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "cat"])
    window = open_window(qtbot, data_root)
    panel, gallery, controller = window.gallery_panel, window.controller.gallery, window.controller
    panel.view.selectAll()
    panel.delete_selected()
    assert trash_listing(qtbot, gallery).size[0] == 3 and gallery.undo_count == 1  # one deletion, of three images
    stuck = data.trash / "d" / "1.png"
    unlink = Path.unlink

    def open_elsewhere(self: Path, missing_ok: bool = False) -> None:  # Windows: a file another program has open
        if self == stuck:
            raise PermissionError(13, "The process cannot access the file because it is being used", str(self))
        unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", open_elsewhere)
    with qtbot.waitSignal(gallery.trash_emptied, timeout=30000) as ended:  # deleted on a thread
        assert controller.empty_trash(trash_listing(qtbot, gallery))
    assert ended.args[0].deleted == 2  # the others are deleted all the same
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    text = f"{window.error_dialog.text()} {window.error_dialog.informativeText()}"
    assert "Nothing else was changed" not in text  # was said, though rows and two files were already gone
    assert str(stuck) in text and "2 files were deleted" in text and "no longer be brought back with Undo" in text
    assert "deleted the next time you empty the trash" in text and str(data.trash) in text
    assert sorted(data.trash.rglob("*.png")) == [stuck] and gallery.undo_count == 0
    assert not panel.undo_button.isEnabled()
    window.error_dialog.accept()

    monkeypatch.setattr(Path, "unlink", unlink)  # closed in the other program: the next Empty trash finishes
    with qtbot.waitSignal(gallery.trash_emptied, timeout=30000) as ended:
        assert controller.empty_trash(trash_listing(qtbot, gallery))
    assert ended.args[0].deleted == 1 and not ended.args[0].failures and trash_listing(qtbot, gallery).size == (0, 0)
    assert window.statusBar().currentMessage() == "The trash was emptied: 1 file deleted (0.0 MiB)."
    assert [p for _, p, _ in _shown(window)] == []


def _hold_open(monkeypatch, held: Path):
    """Moving ``held`` fails as on Windows when another program has it open; returns the real ``os.replace``."""
    replace = os.replace

    def open_elsewhere(src, dst, **kwargs) -> None:
        if Path(src) == held:
            raise PermissionError(13, "The process cannot access the file because it is being used", str(src))
        replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", open_elsewhere)
    return replace


def test_deleting_several_images_that_fails_part_way_says_what_did_change(qtbot, data_root, monkeypatch):
    """Four images deleted at once; the third to be moved is open in another program (Windows refuses the
    rename). The two moved before it are in the trash, so "Nothing else was changed" was false: the message
    says how many were moved and that Undo brings them back, and one Undo restores exactly those."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "cat", "emu"])  # shown newest first: emu, cat, owl, fox; moved bottom up
    window = open_window(qtbot, data_root)
    panel, gallery = window.gallery_panel, window.controller.gallery
    held = data.images / "d" / "2.png"  # "cat": fox and owl go first, emu is not tried
    replace = _hold_open(monkeypatch, held)
    panel.view.selectAll()
    panel.delete_selected()
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    text = f"{window.error_dialog.text()} {window.error_dialog.informativeText()}"
    assert "Nothing else was changed" not in text  # was said, though two images were in the trash already
    assert "Only 2 of the 4 images were moved to the trash" in text and str(held) in text
    assert "It and 1 other image stay in the gallery, unchanged" in text
    assert "Undo delete brings the 2 moved images back" in text
    window.error_dialog.accept()
    assert sorted(p.relative_to(data.trash).as_posix() for p in data.trash.rglob("*.png")) == ["d/0.png", "d/1.png"]
    assert [p for _, p, _ in _shown(window)] == ["cat", "emu"] and held.is_file()
    assert gallery.undo_count == 1 and panel.undo_button.isEnabled()

    monkeypatch.setattr(os, "replace", replace)
    panel.undo_button.click()  # the deletion's two moved images, both
    assert _shown(window) == [("d/0.png", "fox", False), ("d/1.png", "owl", False), ("d/2.png", "cat", False),
                              ("d/3.png", "emu", False)]
    assert not panel.undo_button.isEnabled() and not list(data.trash.rglob("*.png"))
    assert all((data.images / "d" / f"{i}.png").is_file() for i in range(4))


def _select(window, prompts: list[str]) -> None:
    """Selects the gallery's images of these prompts (a multi-select, as with Ctrl+click)."""
    from PySide6.QtCore import QItemSelectionModel

    panel, gallery = window.gallery_panel, window.controller.gallery
    panel.view.clearSelection()
    for row in range(gallery.rowCount()):
        if gallery.record(row).prompt in prompts:
            panel.view.selectionModel().select(gallery.index(row), QItemSelectionModel.SelectionFlag.Select)
    assert sorted(gallery.record(r).prompt for r in panel.selected_rows()) == sorted(prompts)


def test_one_undo_brings_back_the_whole_last_delete_also_after_a_restart(qtbot, data_root):
    """Undo brought back one image per click, so after deleting three at once the user had to click three
    times, and a single click left the gallery in a state that no action of theirs had made."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "cat", "emu", "yak"])
    window = open_window(qtbot, data_root)
    panel = window.gallery_panel
    _select(window, ["owl"])
    panel.delete_selected()  # the first deletion: one image
    _select(window, ["fox", "cat", "yak"])
    panel.delete_selected()  # the second: three at once
    assert [p for _, p, _ in _shown(window)] == ["emu"]
    panel.undo_button.click()
    assert sorted(p for _, p, _ in _shown(window)) == ["cat", "emu", "fox", "yak"]  # all three, owl not
    assert panel.undo_button.isEnabled() and sorted(data.trash.rglob("*.png")) == [data.trash / "d" / "1.png"]
    panel.undo_button.click()
    assert [p for _, p, _ in _shown(window)] == ["fox", "owl", "cat", "emu", "yak"]
    assert not panel.undo_button.isEnabled()

    # The same after a restart: the deletions are told apart by the database alone.
    _select(window, ["emu"])
    panel.delete_selected()
    _select(window, ["owl", "cat"])
    panel.delete_selected()
    window = _restart(qtbot, window, data_root)
    panel = window.gallery_panel
    assert window.controller.gallery.undo_count == 2
    panel.undo_button.click()
    assert sorted(p for _, p, _ in _shown(window)) == ["cat", "fox", "owl", "yak"]
    panel.undo_button.click()
    assert len(_shown(window)) == 5 and not panel.undo_button.isEnabled()


def test_an_undo_that_fails_part_way_says_what_came_back_and_the_next_undo_finishes_it(qtbot, data_root,
                                                                                     monkeypatch):
    """Three images deleted at once; on Undo, the second to come back is open in another program (Windows
    refuses the rename). The one before it is back; the message says so and names the file; the next Undo
    brings back exactly the two left, and nothing of an earlier deletion."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "cat", "emu"])
    window = open_window(qtbot, data_root)
    panel, gallery = window.gallery_panel, window.controller.gallery
    _select(window, ["fox"])
    panel.delete_selected()
    _select(window, ["owl", "cat", "emu"])
    panel.delete_selected()
    held = data.trash / "d" / "2.png"  # cat: emu comes back first (the last moved), then cat fails
    replace = _hold_open(monkeypatch, held)
    (data.trash / "d" / "3.png").unlink()  # and emu's file was removed from the trash by hand
    errors = []
    window.controller.error.connect(errors.append)
    panel.undo_button.click()
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    text = f"{window.error_dialog.text()} {window.error_dialog.informativeText()}"
    assert "Only 1 of the 3 images was brought back from the trash" in text and str(held) in text
    assert "It and 1 other image stay in the trash" in text and "Undo delete again" in text
    # One message, which also says that the one back came without its file (was: a second dialog for it).
    assert len(errors) == 1 and "The file of 'emu' was no longer in the trash folder" in text
    assert f"Put the file back as {data.images / 'd' / '3.png'}" in text
    window.error_dialog.accept()
    assert [(p, missing) for _, p, missing in _shown(window)] == [("emu", True)]
    assert held.is_file() and gallery.undo_count == 2 and panel.undo_button.isEnabled()

    monkeypatch.setattr(os, "replace", replace)  # closed in the other program: the next Undo finishes this one
    panel.undo_button.click()
    assert [p for _, p, _ in _shown(window)] == ["owl", "cat", "emu"]
    assert gallery.undo_count == 1 and sorted(data.trash.rglob("*.png")) == [data.trash / "d" / "0.png"]


def test_an_undo_without_its_file_never_takes_the_name_of_a_file_put_there_since(qtbot, data_root):
    """Two deleted images' files are removed from the trash by hand, and another picture is copied into the images
    folder under one's old name. Undo brings both entries back, marked missing, the first under a free name: given
    the old one, the next start found a file there and showed the stranger's picture with this entry's prompt and
    star. The notice names where each file would have to be put back (it said "under their old names")."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "emu"])
    window = open_window(qtbot, data_root)
    _select(window, ["fox", "owl"])
    window.gallery_panel.delete_selected()
    (data.trash / "d" / "0.png").unlink()
    (data.trash / "d" / "1.png").unlink()
    write_png(data.images / "d" / "0.png", Image.new("RGB", (16, 16), (9, 9, 9)), {"prompt": "stranger"})
    errors = []
    window.controller.error.connect(errors.append)
    window.gallery_panel.undo_button.click()
    back = {prompt: (path, missing) for path, prompt, missing in _shown(window) if prompt in ("fox", "owl")}
    assert back["owl"] == ("d/1.png", True)
    fox_path, fox_missing = back["fox"]
    assert fox_missing and fox_path != "d/0.png" and not (data.images / fox_path).exists()
    assert [e.kind for e in errors] == ["notice"]
    assert str(data.images / fox_path) in errors[0].hint and str(data.images / "d" / "1.png") in errors[0].hint
    window = _restart(qtbot, window, data_root)
    shown = sorted((p, missing) for _, p, missing in _shown(window))
    assert shown == [("emu", False), ("fox", True), ("owl", True), ("stranger", False)]


def test_an_undo_without_its_file_never_takes_the_name_of_a_missing_entry(qtbot, data_root):
    """The free name an entry without its file comes back under is also free in the gallery database: one a
    missing image's row held made that Undo fail on the database's unique paths, every time it was tried."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox"])
    store = Store(data.database)
    store.add_image("d/0-2.png", {"prompt": "gone"}, created=5.0)  # no file: flagged missing at start-up
    store.close()
    window = open_window(qtbot, data_root)
    _select(window, ["fox"])
    window.gallery_panel.delete_selected()
    (data.trash / "d" / "0.png").unlink()
    write_png(data.images / "d" / "0.png", Image.new("RGB", (16, 16), (9, 9, 9)), {"prompt": "stranger"})
    errors = []
    window.controller.error.connect(errors.append)
    window.gallery_panel.undo_button.click()
    assert [e.kind for e in errors] == ["notice"], [e.message for e in errors]
    shown = {prompt: (path, missing) for path, prompt, missing in _shown(window)}
    assert shown["fox"][1] and shown["fox"][0] not in ("d/0.png", "d/0-2.png")
    assert shown["gone"] == ("d/0-2.png", True) and window.controller.gallery.undo_count == 0


def test_an_image_without_its_file_in_the_trash_comes_back_from_undo_also_after_a_restart(qtbot, data_root,
                                                                                          monkeypatch):
    """After a restart, Undo brought back only the images of a deletion whose file was in the trash: one whose file
    was removed from the trash meanwhile, or one already missing when it was deleted, stayed in the trash for good
    (its prompt and settings with it), without a word, while the delete had said it would come back. Now they come
    back marked missing, as within a session, and the notice names the one whose file left the trash; Empty trash
    still forgets such an entry for good."""
    from PySide6.QtWidgets import QMessageBox

    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "cat", "emu"])
    (data.images / "d" / "3.png").unlink()  # "emu"'s file removed by hand: its entry shows missing
    window = open_window(qtbot, data_root)
    _select(window, ["fox", "owl", "emu"])
    window.gallery_panel.delete_selected()
    # "emu" had no file to move (was: "3 images moved to the trash")
    assert window.statusBar().currentMessage() == "2 images moved to the trash, and 1 whose file was not found in " \
        "the images folder put there without it (Undo delete brings them back)."  # fmt: skip
    gui.open_windows.remove(window)
    window.close()
    (data.trash / "d" / "1.png").unlink()  # "owl"'s file removed from the trash by hand (or by a cleaner)

    window = open_window(qtbot, data_root)
    panel, gallery = window.gallery_panel, window.controller.gallery
    assert gallery.undo_count == 1 and panel.undo_button.isEnabled()
    errors = []
    window.controller.error.connect(errors.append)
    panel.undo_button.click()
    assert _shown(window) == [("d/0.png", "fox", False), ("d/1.png", "owl", True), ("d/2.png", "cat", False),
                              ("d/3.png", "emu", True)]  # fmt: skip
    assert [e.kind for e in errors] == ["notice"]  # "emu" had no file before its delete: nothing new to say
    assert "The file of 'owl' was no longer in the trash folder" in errors[0].message
    assert str(data.images / "d" / "1.png") in errors[0].hint and "emu" not in errors[0].message
    rows = window.controller.store.all_paths().values()
    assert gallery.undo_count == 0 and not any(trashed for _, _, trashed in rows)  # none left in the trash for good

    # Deleted again with one whose file is in the trash: Empty trash forgets both for good, after a restart too.
    _select(window, ["owl", "cat"])
    panel.delete_selected()
    window = _restart(qtbot, window, data_root)
    panel, gallery = window.gallery_panel, window.controller.gallery
    assert gallery.undo_count == 1
    trash_settled(qtbot, gallery)
    monkeypatch.setattr(QMessageBox, "exec", lambda box: box.button(QMessageBox.StandardButton.Yes).click())
    panel.empty_trash_button.click()
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("The trash was emptied"), timeout=30000)
    # "owl", without its file, counted too (it went uncounted)
    assert window.statusBar().currentMessage() == "The trash was emptied: 1 file deleted (0.0 MiB); 1 image " \
        "without a file was removed too."  # fmt: skip
    assert sorted(p for _, p, _ in _shown(window)) == ["emu", "fox"] and gallery.undo_count == 0
    assert sorted(window.controller.store.all_paths()) == ["d/0.png", "d/3.png"]


def test_empty_trash_is_enabled_only_while_the_trash_holds_something(qtbot, data_root, monkeypatch):
    """"Empty trash…" was enabled with nothing in the trash, and then only said "The trash is empty."."""
    from PySide6.QtWidgets import QMessageBox

    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl"])
    window = open_window(qtbot, data_root)
    panel = window.gallery_panel
    assert not panel.empty_trash_button.isEnabled()
    panel.select_row(0)
    panel.delete_selected()
    assert panel.empty_trash_button.isEnabled()
    panel.undo_button.click()
    trash_settled(qtbot, window.controller.gallery)  # the trash looked at, for files without a row
    assert not panel.empty_trash_button.isEnabled()  # back in the gallery: nothing left to delete for good
    panel.select_row(0)
    panel.delete_selected()
    monkeypatch.setattr(QMessageBox, "exec", lambda box: box.button(QMessageBox.StandardButton.Yes).click())
    panel.empty_trash_button.click()  # the trash is listed, then the confirmation asks
    # os.walk, not Path.rglob: the emptying thread removes folders while this looks, and rglob (Python < 3.13)
    # raises for a folder gone between its listing and its scan; os.walk skips it
    qtbot.waitUntil(lambda: not [f for _, _, files in os.walk(data.trash) for f in files if f.endswith(".png")])
    trash_settled(qtbot, window.controller.gallery)
    assert not panel.empty_trash_button.isEnabled()

    (data.trash / "old").mkdir(parents=True, exist_ok=True)
    (data.trash / "old" / "lost-row.png").write_bytes(b"x")  # a trashed file whose row a repair lost
    window = _restart(qtbot, window, data_root)
    trash_settled(qtbot, window.controller.gallery)
    assert window.gallery_panel.empty_trash_button.isEnabled() and window.controller.gallery.undo_count == 0


def test_a_delete_says_how_many_images_went_to_the_trash(qtbot, data_root):
    """A delete gave no sign but Undo becoming enabled."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "cat", "emu"])
    window = open_window(qtbot, data_root)
    panel = window.gallery_panel
    panel.select_row(0)
    panel.delete_selected()
    assert window.statusBar().currentMessage() == "1 image moved to the trash (Undo delete brings it back)."
    panel.view.selectAll()
    panel.delete_selected()
    assert window.statusBar().currentMessage() == "3 images moved to the trash (Undo delete brings them back)."


def test_empty_trash_removes_images_in_the_trash_whose_file_is_gone_and_counts_them(qtbot, data_root, monkeypatch):
    """With only images whose file was gone in the trash (one missing when it was deleted, one whose trashed file
    was removed by hand), Empty trash said "The trash is empty." and did nothing, while Undo delete brought them
    back; with files beside them, its question and its end counted the files alone, and they went uncounted. Now
    it asks about them in words, removes them for good, and says so (meanwhile without "0 of 0 files deleted")."""
    from PySide6.QtWidgets import QMessageBox

    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "cat"])
    (data.images / "d" / "1.png").unlink()  # "owl" is missing before its delete
    window = gui.window_without_engine(qtbot, data)
    panel, gallery = window.gallery_panel, window.controller.gallery
    qtbot.waitUntil(lambda: not window.controller.folder_import.running, timeout=30000)
    _select(window, ["owl", "cat"])
    panel.delete_selected()
    (data.trash / "d" / "2.png").unlink()  # "cat"'s file removed from the trash by hand
    trash_settled(qtbot, gallery)
    assert panel.empty_trash_button.isEnabled() and panel.undo_button.isEnabled()

    errors, asked, shown = [], [], []
    window.controller.error.connect(errors.append)
    window.statusBar().messageChanged.connect(shown.append)
    answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, asked)
    panel.empty_trash_button.click()  # the trash listed on its thread, then asked about
    qtbot.waitUntil(lambda: bool(asked or errors), timeout=30000)
    assert [e.message for e in errors] == [] and asked == [
        "Remove the 2 images in the trash for good? Their files are already gone."]
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("The trash was emptied"), timeout=30000)
    assert window.statusBar().currentMessage() == "The trash was emptied: 2 images whose file was already gone " \
        "were removed."  # fmt: skip
    assert [m for m in shown if m.startswith("Emptying")] == ["Emptying the trash…"]  # not "0 of 0 files deleted"
    trash_settled(qtbot, gallery)
    assert gallery.undo_count == 0 and not panel.undo_button.isEnabled() and not panel.empty_trash_button.isEnabled()
    assert sorted(window.controller.store.all_paths()) == ["d/0.png"]  # gone for good, after a restart too


def test_empty_trash_after_a_restart_removes_a_deleted_image_whose_file_was_already_gone(qtbot, data_root,
                                                                                       monkeypatch):  # fmt: skip
    """An image deleted while its file was already missing, then the app restarted: Empty trash said "The trash is
    empty." and could not forget it, while Undo delete brought it back. Now it asks about it and removes it for
    good, as within the session it was deleted in."""
    from PySide6.QtWidgets import QMessageBox

    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl"])
    (data.images / "d" / "1.png").unlink()  # "owl"'s file gone: its entry shows missing
    window = gui.window_without_engine(qtbot, data)
    qtbot.waitUntil(lambda: not window.controller.folder_import.running, timeout=30000)
    _select(window, ["owl"])
    window.gallery_panel.delete_selected()  # the user clears the broken entry away
    gui.open_windows.remove(window)
    window.close()

    window = gui.window_without_engine(qtbot, data)
    qtbot.waitUntil(lambda: not window.controller.folder_import.running, timeout=30000)
    panel, gallery = window.gallery_panel, window.controller.gallery
    trash_settled(qtbot, gallery)
    assert gallery.undo_count == 1 and panel.empty_trash_button.isEnabled()
    errors, asked = [], []
    window.controller.error.connect(errors.append)
    answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, asked)
    panel.empty_trash_button.click()
    qtbot.waitUntil(lambda: bool(asked or errors), timeout=30000)
    assert [e.message for e in errors] == [] and asked == [
        "Remove the 1 image in the trash for good? Its file is already gone."]
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("The trash was emptied"), timeout=30000)
    trash_settled(qtbot, gallery)
    assert gallery.undo_count == 0 and not panel.undo_button.isEnabled() and not panel.empty_trash_button.isEnabled()
    assert sorted(window.controller.store.all_paths()) == ["d/0.png"]  # "owl" forgotten for good


def test_deleting_an_entry_whose_file_was_renamed_says_the_file_was_not_found(qtbot, data_root):
    """An entry whose PNG was renamed by hand (in the file manager) during the session, deleted: the delete said "1
    image moved to the trash" though nothing moved, and its Undo then said the file "was no longer in the trash
    folder", where it had never been, with a hint to put it back there. Now the delete says the file was not found
    and the entry went to the trash without it, and the Undo that the entry came back without a file."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "cat"])
    window = gui.window_without_engine(qtbot, data)
    qtbot.waitUntil(lambda: not window.controller.folder_import.running, timeout=30000)
    panel = window.gallery_panel
    said, errors = [], []
    window.controller.status_message.connect(said.append)
    window.controller.error.connect(errors.append)
    (data.images / "d" / "1.png").rename(data.images / "d" / "owl at night.png")  # by hand, the app running

    _select(window, ["owl"])
    panel.delete_selected()
    assert said == ["1 image put in the trash without its file, which was not found in the images folder (Undo "
                    "delete brings it back)."]  # fmt: skip
    assert not list(data.trash.rglob("*.png")) and errors == []
    said.clear()
    panel.undo_button.click()
    # was: "The file of 'owl' was no longer in the trash folder …; put the file back as …/d/1.png"
    assert [e.message for e in errors] == []
    assert said == ["1 image brought back from the trash; it has no file and shows as missing."]
    assert _shown(window) == [("d/0.png", "fox", False), ("d/1.png", "owl", True), ("d/2.png", "cat", False)]

    # with an image whose file is there: each said for what it is
    said.clear()
    _select(window, ["fox", "owl"])
    panel.delete_selected()
    assert said == ["1 image moved to the trash, and 1 whose file was not found in the images folder put there "
                    "without it (Undo delete brings them back)."]  # fmt: skip
    said.clear()
    panel.undo_button.click()
    assert [e.message for e in errors] == []
    assert said == ["2 images brought back from the trash; 1 of them has no file and shows as missing."]
    assert _shown(window) == [("d/0.png", "fox", False), ("d/1.png", "owl", True), ("d/2.png", "cat", False)]
    assert (data.images / "d" / "owl at night.png").is_file()  # the renamed picture, untouched


def test_empty_trash_shows_a_picture_put_in_the_images_folder_under_the_name_of_an_image_in_the_trash(
        qtbot, data_root, monkeypatch):  # fmt: skip
    """A picture copied by hand into the images folder under the name of an image in the trash got no gallery entry
    when Empty trash removed that image (only at the next start), and an image in the trash whose own picture was
    moved back by hand was removed with its star, its picture left without an entry. Now Empty trash does what the
    next start would: the copy is imported and shown, the image whose picture is back stays in the gallery, and the
    end says both."""
    from PySide6.QtWidgets import QMessageBox

    from app.reconcile import reconcile

    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "cat"])
    window = gui.window_without_engine(qtbot, data)
    qtbot.waitUntil(lambda: not window.controller.folder_import.running, timeout=30000)
    panel, gallery = window.gallery_panel, window.controller.gallery
    gallery.set_favorite([gallery.row_of(3)], True)  # "cat"
    _select(window, ["owl", "cat"])
    panel.delete_selected()
    write_png(data.images / "d" / "1.png", Image.new("RGB", (16, 16), (9, 9, 9)), {"prompt": "a stranger"})  # copied in
    shutil.move(data.trash / "d" / "2.png", data.images / "d" / "2.png")  # "cat"'s own picture, moved back by hand
    trash_settled(qtbot, gallery)

    errors, asked = [], []
    window.controller.error.connect(errors.append)
    answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, asked)
    panel.empty_trash_button.click()
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("The trash was emptied"), timeout=30000)
    assert [e.message for e in errors] == []
    # was: "…for good, and remove the 1 image in it whose file is already gone?" of "cat", which stays (R61)
    assert asked == ["Delete the 1 file in the trash (0.0 MiB) for good? 1 image whose picture is back in the "
                     "images folder stays in the gallery; 1 picture put in the images folder under the name of an "
                     "image in the trash is added to the gallery."]  # fmt: skip
    assert window.statusBar().currentMessage() == (
        "The trash was emptied: 1 file deleted (0.0 MiB); 1 image whose picture was back in the images folder stays "
        "in the gallery; 1 picture put in the images folder under the name of an image in the trash was added to "
        "the gallery.")  # fmt: skip
    assert _shown(window) == [("d/0.png", "fox", False), ("d/1.png", "a stranger", False), ("d/2.png", "cat", False)]
    assert [gallery.record(r).favorite for r in range(gallery.rowCount()) if gallery.record(r).prompt == "cat"] == [
        True]  # fmt: skip
    trash_settled(qtbot, gallery)
    assert not [f for _, _, files in os.walk(data.trash) for f in files] and not panel.empty_trash_button.isEnabled()
    gui.open_windows.remove(window)
    window.close()
    store = Store(data.database)
    assert reconcile(store, data).imported == 0  # the next start has nothing left to import
    store.close()


def test_empty_trash_does_not_ask_to_remove_an_image_it_keeps(qtbot, data_root, monkeypatch):
    """An image deleted, its picture then moved back into the images folder by hand (the file manager's "restore"
    of a trash folder). Empty trash asked "Remove the 1 image in the trash for good? Its file is already gone.",
    then kept the image ("1 image whose picture was back in the images folder stays in the gallery"). Now the
    question says it stays, apart from an image whose file is gone (here: another picture, same settings, copied
    in under its name, told apart by its hash, off the window's thread), which goes, that picture added (R61)."""
    import threading

    from PySide6.QtWidgets import QMessageBox

    import app.trash_names
    from app.image_files import file_fingerprint

    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "cat"])
    owl = data.images / "d" / "2.png"
    write_png(owl, Image.new("RGB", (16, 16), (2, 0, 0)), {"prompt": "owl"})
    store = Store(data.database)
    size, sha = file_fingerprint(owl)
    store.add_image("d/2.png", {"prompt": "owl"}, created=2.0, file_size=size, file_sha256=sha)  # its hash stored
    store.close()
    window = gui.window_without_engine(qtbot, data)
    qtbot.waitUntil(lambda: not window.controller.folder_import.running, timeout=30000)
    panel, gallery = window.gallery_panel, window.controller.gallery
    _select(window, ["cat", "owl"])
    panel.delete_selected()
    shutil.move(data.trash / "d" / "1.png", data.images / "d" / "1.png")  # "cat"'s picture moved back by hand
    (data.trash / "d" / "2.png").unlink()
    write_png(owl, Image.new("RGB", (16, 16), (9, 9, 9)), {"prompt": "owl"})  # another picture, owl's settings
    trash_settled(qtbot, gallery)

    hashed_on: list[bool] = []  # per file hashed before the question: whether on the window's thread
    real = app.trash_names.file_fingerprint
    monkeypatch.setattr(app.trash_names, "file_fingerprint", lambda path: hashed_on.append(
        threading.current_thread() is threading.main_thread()) or real(path))  # fmt: skip
    asked: list[tuple[str, list[bool]]] = []

    def answer(box: QMessageBox) -> int:  # Yes, noting the question and the files hashed until then
        asked.append((box.text(), list(hashed_on)))
        box.button(QMessageBox.StandardButton.Yes).click()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", answer)
    panel.empty_trash_button.click()
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("The trash was emptied"), timeout=30000)
    assert asked == [("Remove the 1 image in the trash for good? Its file is already gone. 1 image whose picture "
                      "is back in the images folder stays in the gallery; 1 picture put in the images folder under "
                      "the name of an image in the trash is added to the gallery.",
                      [False, False])]  # cat's and owl's files, looked at on the listing's thread  # fmt: skip
    # was: "Remove the 2 images in the trash for good? Their files are already gone."
    assert window.statusBar().currentMessage() == (
        "The trash was emptied: 1 image whose file was already gone was removed; 1 image whose picture was back in "
        "the images folder stays in the gallery; 1 picture put in the images folder under the name of an image in "
        "the trash was added to the gallery.")  # fmt: skip
    assert _shown(window) == [("d/0.png", "fox", False), ("d/1.png", "cat", False), ("d/2.png", "owl", False)]
    # Nor after Yes: the repair that keeps cat and imports owl's picture (``finish_interrupted_moves``) takes the
    # listing's word for files unchanged since (it hashed both again on the window's thread: [False, False, True,
    # True])
    assert hashed_on == [False, False]


def test_a_picture_changed_while_empty_trash_asks_is_judged_as_it_is_then(qtbot, data_root, monkeypatch):
    """The question is asked of the pictures as the listing found them: cat's own picture, moved back by hand, stays
    in the gallery. Another picture put in its place before the user says Yes (its size, or its times, tell it) is
    not taken for cat's on the listing's word: it is looked at again, and added as a picture of its own, cat
    removed with the trash. The picture changed is hashed on the emptier's thread after Yes (it was hashed on the
    window's thread, the window frozen for as long as a large picture took), with the same outcome."""
    import threading

    from PySide6.QtWidgets import QMessageBox

    import app.trash_names
    from app.image_files import file_fingerprint

    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox"])
    cat = data.images / "d" / "1.png"
    write_png(cat, Image.new("RGB", (16, 16), (1, 0, 0)), {"prompt": "cat"})
    store = Store(data.database)
    size, sha = file_fingerprint(cat)
    cat_id = store.add_image("d/1.png", {"prompt": "cat"}, created=1.0, file_size=size, file_sha256=sha)
    store.close()
    window = gui.window_without_engine(qtbot, data)
    qtbot.waitUntil(lambda: not window.controller.folder_import.running, timeout=30000)
    panel, gallery = window.gallery_panel, window.controller.gallery
    _select(window, ["cat"])
    panel.delete_selected()
    shutil.move(data.trash / "d" / "1.png", cat)  # its picture moved back by hand
    trash_settled(qtbot, gallery)
    asked: list[str] = []
    hashed_on: list[bool] = []  # per file hashed after the question: whether on the window's thread
    real = app.trash_names.file_fingerprint

    def answer(box: QMessageBox) -> int:  # another picture with cat's settings put in its place, then Yes
        asked.append(box.text())
        write_png(cat, Image.new("RGB", (24, 24), (9, 9, 9)), {"prompt": "cat"})
        monkeypatch.setattr(app.trash_names, "file_fingerprint", lambda path: hashed_on.append(
            threading.current_thread() is threading.main_thread()) or real(path))  # fmt: skip
        box.button(QMessageBox.StandardButton.Yes).click()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", answer)
    panel.empty_trash_button.click()
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("The trash was emptied"), timeout=30000)
    assert asked == ["Empty the trash? Nothing in it is deleted: 1 image whose picture is back in the images folder "
                     "stays in the gallery."]  # fmt: skip
    assert window.statusBar().currentMessage() == (
        "The trash was emptied: 1 image whose file was already gone was removed; 1 picture put in the images folder "
        "under the name of an image in the trash was added to the gallery.")  # fmt: skip
    assert _shown(window) == [("d/0.png", "fox", False), ("d/1.png", "cat", False)]
    assert gallery.record(next(r for r in range(2) if gallery.record(r).prompt == "cat")).id != cat_id
    assert hashed_on == [False]  # was: [True]


def _yes_while_cat_is_judged_again(qtbot, data_root, monkeypatch):
    """fox, owl and cat in the gallery, cat deleted and its picture moved back by hand; Empty trash clicked, another
    picture put in cat's place while it asks, and Yes (to each Empty trash asked). Returns (the window, its data
    folder, an event) once cat's place is judged again on its thread, which waits until the event is set."""
    import threading

    from PySide6.QtWidgets import QMessageBox

    import app.trash_emptier

    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "cat"])
    cat = data.images / "d" / "2.png"
    window = gui.window_without_engine(qtbot, data)
    qtbot.waitUntil(lambda: not window.controller.folder_import.running, timeout=30000)
    panel, gallery = window.gallery_panel, window.controller.gallery
    _select(window, ["cat"])
    panel.delete_selected()
    shutil.move(data.trash / "d" / "2.png", cat)  # its picture moved back by hand
    trash_settled(qtbot, gallery)
    judging, release = threading.Event(), threading.Event()
    real = app.trash_emptier.not_its_picture

    def held(*args):  # the first judging again waits until the test lets it go on
        if not judging.is_set():
            judging.set()
            release.wait(30)
        return real(*args)

    def answer(box: QMessageBox) -> int:  # the first time another picture is put in cat's place; Yes each time
        if not judging.is_set():
            write_png(cat, Image.new("RGB", (24, 24), (9, 9, 9)), {"prompt": "cat"})
            monkeypatch.setattr(app.trash_emptier, "not_its_picture", held)
        box.button(QMessageBox.StandardButton.Yes).click()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", answer)
    panel.empty_trash_button.click()
    qtbot.waitUntil(judging.is_set, timeout=30000)
    return window, data, release


def test_a_delete_while_empty_trash_judges_a_changed_picture_again_leaves_the_trash(qtbot, data_root, monkeypatch):
    """After Yes, the picture changed while Empty trash asked is judged again on a thread, the window usable
    meanwhile (Empty trash greyed). An image deleted then changes the trash that was asked about: nothing is
    deleted, said, and both images stay in the trash for Undo."""
    window, data, release = _yes_while_cat_is_judged_again(qtbot, data_root, monkeypatch)
    panel, gallery = window.gallery_panel, window.controller.gallery
    notices: list[str] = []
    gallery.notice.connect(lambda error: notices.append(error.message))
    assert gallery.listing_trash and not panel.empty_trash_button.isEnabled()
    _select(window, ["owl"])
    panel.delete_selected()  # while cat's place is judged again
    release.set()
    trash_settled(qtbot, gallery)
    assert notices[-1] == "Nothing was deleted: the trash changed while Empty trash asked (an image was deleted or " \
        "brought back meanwhile)."  # fmt: skip
    assert len(list(data.trash.rglob("*.png"))) == 1  # owl's; cat's picture, moved back, is in the images folder
    panel.undo_button.click()
    assert [p for _, p, _ in _shown(window)] == ["fox", "owl"]


def test_empty_trash_of_only_an_image_whose_picture_is_back_says_nothing_is_deleted(qtbot, data_root, monkeypatch):
    """An image deleted, its picture then moved back into the images folder by hand (the file manager's "restore"
    of a trash folder), and nothing else in the trash. Empty trash asked "Remove the 1 image in the trash for good?
    Its file is already gone.", then kept it (R61). Now it says that nothing is deleted and that the image stays."""
    from PySide6.QtWidgets import QMessageBox

    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "cat"])
    window = gui.window_without_engine(qtbot, data)
    qtbot.waitUntil(lambda: not window.controller.folder_import.running, timeout=30000)
    panel, gallery = window.gallery_panel, window.controller.gallery
    _select(window, ["cat"])
    panel.delete_selected()
    shutil.move(data.trash / "d" / "1.png", data.images / "d" / "1.png")  # its picture moved back by hand
    trash_settled(qtbot, gallery)
    asked: list[str] = []
    answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, asked)
    panel.empty_trash_button.click()
    qtbot.waitUntil(lambda: window.statusBar().currentMessage().startswith("The trash was emptied"), timeout=30000)
    assert asked == ["Empty the trash? Nothing in it is deleted: 1 image whose picture is back in the images folder "
                     "stays in the gallery."]  # fmt: skip
    assert window.statusBar().currentMessage() == "The trash was emptied: 1 image whose picture was back in the " \
        "images folder stays in the gallery."  # fmt: skip
    assert _shown(window) == [("d/0.png", "fox", False), ("d/1.png", "cat", False)]


def test_a_delete_cut_short_does_not_say_an_image_without_its_file_was_moved(qtbot, data_root):
    """A delete of an entry whose file was renamed by hand says it went to the trash without its file. A delete
    that stops at a later image (here: a file where the trash's folder for it goes) said "Only 1 of the 2 images was
    moved to the trash" and "Undo delete brings the 1 moved image back" of the one whose file was not found, though
    nothing moved (R61). Now it says it as a delete that ends well does."""
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    for i, (folder, prompt) in enumerate((("a", "fox"), ("b", "owl"))):
        write_png(data.images / folder / f"{i}.png", Image.new("RGB", (16, 16), (i, 0, 0)), {"prompt": prompt})
        store.add_image(f"{folder}/{i}.png", {"prompt": prompt}, created=float(i))
    store.close()
    window = gui.window_without_engine(qtbot, data)
    qtbot.waitUntil(lambda: not window.controller.folder_import.running, timeout=30000)
    errors: list = []
    window.controller.error.connect(errors.append)
    (data.images / "a" / "0.png").rename(data.images / "a" / "fox by night.png")  # by hand, the app running
    data.trash.mkdir(parents=True, exist_ok=True)
    (data.trash / "b").write_bytes(b"a file where the trash's folder for owl goes")
    _select(window, ["fox", "owl"])
    window.gallery_panel.delete_selected()  # fox first (the older row), then owl, which cannot move
    [error] = errors
    # was: "Only 1 of the 2 images was moved to the trash.", "Undo delete brings the 1 moved image back."
    assert error.message.startswith("Only 1 of the 2 images went to the trash (1 image put in the trash without its "
                                    "file, which was not found in the images folder). The next could not be "
                                    "moved: "), error.message  # fmt: skip
    assert error.hint.startswith("Undo delete brings that image back. "), error.hint
    assert _shown(window) == [("b/1.png", "owl", False)]  # fox in the trash, owl kept


def test_empty_trash_reads_the_gallerys_paths_only_for_pictures_back_in_the_images_folder(qtbot, data_root,
                                                                                        monkeypatch):  # fmt: skip
    """Empty trash read every row's path (30,000 rows: about 40 ms each on the window's thread) to import the
    pictures under the names of images in the trash even when there were none, and three times when there were
    (the third for what the second had read already). Now not at all without such pictures, twice with them."""
    from PySide6.QtWidgets import QMessageBox

    from app.trash_emptier import TrashEmptier

    reads: list[int] = []
    real_paths, real_empty = Store.all_paths, TrashEmptier.empty_trash
    monkeypatch.setattr(Store, "all_paths", lambda store: reads.append(1) or real_paths(store))

    def empty_trash(emptier, listing) -> bool:  # the reads Empty trash makes once asked, on the window's thread
        reads.clear()
        began = real_empty(emptier, listing)
        said.append(len(reads))
        return began

    monkeypatch.setattr(TrashEmptier, "empty_trash", empty_trash)
    monkeypatch.setattr(QMessageBox, "exec", lambda box: box.button(QMessageBox.StandardButton.Yes).click())
    data = resolve_data_dir(data_root)
    gallery_images(data, ["fox", "owl", "cat"])
    window = gui.window_without_engine(qtbot, data)
    qtbot.waitUntil(lambda: not window.controller.folder_import.running, timeout=30000)
    panel, gallery = window.gallery_panel, window.controller.gallery
    said: list[int] = []
    for emptied, (prompt, back) in enumerate((("owl", False), ("cat", True)), 1):
        _select(window, [prompt])
        panel.delete_selected()
        if back:  # its picture moved back by hand: it stays in the gallery
            shutil.move(data.trash / "d" / "2.png", data.images / "d" / "2.png")
        trash_settled(qtbot, gallery)
        panel.empty_trash_button.click()
        qtbot.waitUntil(lambda n=emptied: len(said) == n, timeout=30000)
        trash_settled(qtbot, gallery)
    assert said == [0, 2]  # was: [1, 3]
    assert _shown(window) == [("d/0.png", "fox", False), ("d/2.png", "cat", False)]


def test_empty_trash_asked_again_while_the_last_one_judges_a_picture_drops_the_last_one(qtbot, data_root,
                                                                                      monkeypatch):  # fmt: skip
    """Yes to Empty trash, a picture changed while it asked judged again on a thread (a large one takes seconds);
    meanwhile an image deleted, which enables Empty trash again, and Empty trash asked and said Yes to once more:
    the trash is emptied. The first one's judging, ending after that, went on with the trash it had asked about and
    said "Nothing was deleted: the trash changed while Empty trash asked … Empty the trash again." (or that Empty
    trash was refused, while the second one deleted), of a trash just emptied as asked. It is dropped, unsaid: the
    last Empty trash asked is the one the user answered."""
    import threading

    window, data, release = _yes_while_cat_is_judged_again(qtbot, data_root, monkeypatch)
    panel, gallery = window.gallery_panel, window.controller.gallery
    said: list[str] = []
    gallery.notice.connect(lambda error: said.append(error.message))
    window.controller.status_message.connect(said.append)
    _select(window, ["owl"])
    panel.delete_selected()  # while cat's place is judged again
    qtbot.waitUntil(panel.empty_trash_button.isEnabled, timeout=30000)  # Undo has owl: enabled at once
    assert not release.is_set()
    del said[:]
    panel.empty_trash_button.click()  # asked again, Yes
    qtbot.waitUntil(lambda: any(text.startswith("The trash was emptied") for text in said), timeout=30000)
    release.set()
    qtbot.waitUntil(lambda: not any("judging again" in thread.name for thread in threading.enumerate()),
                    timeout=30000)  # fmt: skip
    trash_settled(qtbot, gallery)
    qtbot.wait(100)  # its end, posted to the window's thread before the thread ended, handled
    assert [text for text in said if "Nothing was deleted" in text or "refused" in text] == []  # was: said
    assert list(data.trash.rglob("*.png")) == [] and not (data.images / "d" / "1.png").exists()
    assert [p for _, p, _ in _shown(window)] == ["fox", "cat"]  # cat: the other picture in its place, imported
