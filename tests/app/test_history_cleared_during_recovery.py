"""A lost or damaged gallery database: the images are imported again while the window is in use, and each one's
prompt goes back into the prompt history unless the history read back from the old database has it
(``FolderImport._recovered``). History entries the user forgets meanwhile (Clear, or Remove of an entry the user does
not want kept, a password typed into a prompt) came back as the rest of the import was committed, shown once it
ended, and at the next start too if the import was cut short: the import goes on with what it was to give back,
not with what the user has since forgotten."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox

from app.data_dir import resolve_data_dir
from app.store import PromptRecord, Store
from tests.app import test_startup_import
from tests.app.gui import window_without_engine
from tests.app.test_startup_import import BATCH, COUNT

disk = test_startup_import.disk  # its fixture: COUNT new pictures "p0".."p24" on a slow disk, read BATCH at a time


def test_a_history_cleared_while_a_lost_database_is_rebuilt_stays_cleared(qtbot, data_root, disk, monkeypatch):
    data = resolve_data_dir(data_root)
    assert not data.database.exists()  # pictures made before, no database beside them: a lost one
    window = window_without_engine(qtbot, data)
    assert window.notices and "No gallery database was found" in window.notices[0].message
    controller = window.controller
    controller.folder_import.start()
    qtbot.waitUntil(lambda: controller.gallery.rowCount() == BATCH)  # the first batch in, the rest still to read
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *_a, **_k: QMessageBox.StandardButton.Yes))
    window.history_panel.clear_button.click()  # "Forget every prompt in the history?" Yes
    assert controller.history.rowCount() == 0 and controller.store.prompts() == []
    disk.allow(COUNT)
    qtbot.waitUntil(lambda: not controller.folder_import.running)
    assert controller.gallery.rowCount() == COUNT  # every image back in the gallery
    # was: the prompts of the 15 images imported after the Clear, p14 to p0, back in the history
    assert [r.prompt for r in controller.store.prompts()] == []
    assert controller.history.rowCount() == 0


def test_prompts_forgotten_during_a_recovery_stay_forgotten_after_a_restart(tmp_path):
    """A quit or a crash during the import: the next start goes on with it, and with what the user forgot."""
    path = tmp_path / "gallery.sqlite3"
    store = Store(path, ([PromptRecord(0, "read back", "", 2, 1.0)], set()))  # a lost database's history

    def image(prompt: str) -> PromptRecord:
        return PromptRecord(0, prompt, "", 1, 2.0)

    store.add_images([("a.png", {"prompt": "a password"}, 2.0, 1, None)],
                     prompts=store.prompts_to_recover([image("a password")]))  # fmt: skip
    store.remove_prompts([p.id for p in store.prompts() if p.prompt == "a password"])
    store.close()
    store = Store(path)  # the next start
    assert store.recovery() is not None
    assert store.prompts_to_recover([image("read back"), image("a password"), image("a cat")]) == [image("a cat")]
    store.clear_prompts()
    store.close()
    store = Store(path)
    assert store.prompts_to_recover([image("a cat")]) == []
    store.end_recovery()
    assert store.recovery() is None
    store.close()
