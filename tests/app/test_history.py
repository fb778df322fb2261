"""Prompt history: single entries can be removed, and the history (and favorites) survive a damaged database."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import QPersistentModelIndex, Qt

from app.data_dir import resolve_data_dir
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app import gui
from tests.app.gui import open_window


def test_history_entries_can_be_removed_one_by_one(qtbot, data_root):
    window = open_window(qtbot, data_root)
    history, panel = window.controller.history, window.history_panel
    for prompt in ("a fox", "my password is hunter2", "a cat"):
        history.add(prompt, "")
    panel.view.setCurrentIndex(history.index(1))  # newest first: the mistyped one
    panel.remove_button.click()  # was: only "Clear", which forgot every prompt
    assert [history.record(r).prompt for r in range(history.rowCount())] == ["a cat", "a fox"]
    gui.open_windows.remove(window)
    window.close()
    window = open_window(qtbot, data_root)
    history = window.controller.history
    assert [history.record(r).prompt for r in range(history.rowCount())] == ["a cat", "a fox"]


def damage(store: Store) -> None:
    """Closes ``store`` damaged in one page, as a failing disk leaves it: what is in the other pages (the history,
    the favorites' rows) can still be read back."""
    for i in range(400):  # rows in many pages, one of which gets damaged
        store.add_image(f"bulk/{i}.png", {"prompt": "x" * 200}, created=10 + i)
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    with open(store.path, "r+b") as f:
        f.seek(30 * 4096)
        f.write(b"\xff" * 12)  # an images page's header: "database disk image is malformed"


def test_history_and_favorites_survive_a_damaged_database(qtbot, data_root):
    data = resolve_data_dir(data_root)
    write_png(data.images / "d" / "0.png", Image.new("RGB", (16, 16)),
              {"prompt": "a red fox", "negative_prompt": "blurry"})
    write_png(data.images / "d" / "1.png", Image.new("RGB", (16, 16)), {"prompt": "a blue owl"})
    store = Store(data.database)
    store.record_prompt("never made an image", "", when=1)
    store.record_prompt("a red fox", "blurry", when=2)
    store.set_favorites([store.add_image("d/0.png", {"prompt": "a red fox", "negative_prompt": "blurry"}, 3).id], True)
    damage(store)
    window = open_window(qtbot, data_root)
    assert window.notices and "damaged" in window.notices[0].message
    history, gallery = window.controller.history, window.controller.gallery
    # was: an empty history ("could not be recovered") and no favorites
    assert {(history.record(r).prompt, history.record(r).negative_prompt) for r in range(history.rowCount())} == {
        ("never made an image", ""), ("a red fox", "blurry"), ("a blue owl", "")}
    assert [gallery.record(r).path for r in range(gallery.rowCount()) if gallery.record(r).favorite] == ["d/0.png"]
    assert "the 1 favorite and the 2 prompts of the history read back" in window.notices[0].message


def test_a_click_selects_a_history_entry_and_reusing_one_can_be_undone(qtbot, window):
    history, view, edit = window.controller.history, window.history_panel.view, window.prompt_panel.prompt_edit
    for prompt in ("a fox", "a cat"):
        history.add(prompt, "")
    window.activateWindow()
    edit.setFocus()
    qtbot.keyClicks(edit, "a dog in the")
    # Was: a single click replaced the prompt being typed, and setPlainText left nothing for Ctrl+Z to undo.
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(history.index(1)).center())
    assert edit.toPlainText() == "a dog in the" and view.currentIndex().row() == 1
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(history.index(1)).center())
    assert edit.toPlainText() == window.controller.prompt.prompt == "a fox"
    qtbot.keyClick(view, Qt.Key.Key_Up)
    qtbot.keyClick(view, Qt.Key.Key_Return)
    assert window.controller.prompt.prompt == "a cat"
    assert edit.textCursor().position() == len("a cat")  # typing goes on after the prompt, not before it
    edit.setFocus()
    qtbot.keyClick(edit, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert edit.toPlainText() == "a fox"
    qtbot.keyClick(edit, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert edit.toPlainText() == window.controller.prompt.prompt == "a dog in the"


def test_a_prompt_used_again_moves_its_one_entry_without_reloading_the_history(qtbot, tmp_path):
    """Each Generate reloaded the whole history (70-300 ms with 20,000 prompts) and reset the list, losing its
    selection. The one entry is moved, or inserted, where a reload would put it; a search keeps its rules."""
    from app.history_model import HistoryModel

    store = Store(tmp_path / "history.sqlite3")
    for i, prompt in enumerate(("a fox", "a cat", "an owl")):
        store.record_prompt(prompt, "", when=i)
    history = HistoryModel(store)
    resets: list[None] = []
    history.modelReset.connect(lambda: resets.append(None))
    selected = QPersistentModelIndex(history.index(2))  # "a fox"

    def shown() -> list[tuple[str, str, int]]:
        return [(r.prompt, r.negative_prompt, r.uses) for r in (history.record(i) for i in range(history.rowCount()))]

    def stored(search: str = "") -> list[tuple[str, str, int]]:
        return [(r.prompt, r.negative_prompt, r.uses) for r in store.prompts(search)]

    history.add("a fox ", "")  # the same entry (spaces at the ends make none)
    assert shown() == stored() == [("a fox", "", 2), ("an owl", "", 1), ("a cat", "", 1)]
    assert selected.row() == 0
    history.add("a dog", "blurry")
    history.add("a fox", "")
    history.add("   ", "")  # no entry
    assert shown() == stored() and shown()[:2] == [("a fox", "", 3), ("a dog", "blurry", 1)]
    history.set_search("CAT")
    resets.clear()
    history.add("a bird", "")  # not found by the search: not shown
    history.add("a cat in a hat", "")  # found: shown at the top
    history.add("a dog", "no cats")  # found by its negative prompt; its entry is new
    history.add("a cat", "")
    assert shown() == stored("cat") and shown()[0] == ("a cat", "", 2) and resets == []
