"""The wizard's list of unfinished runs in the models folder (their ``.parts`` folders, GiBs each, which nothing
showed nor deleted): what each is, whether the chosen settings resume it, and its deletion, asked first."""

from __future__ import annotations

import json
import os
import threading
import time

from PySide6.QtWidgets import QMessageBox

from app.wording import human_bytes
from gpu.quantizer import QuantizeConfig  # before gpu.streaming.engine, which imported first is circular
from gpu.streaming.parts_folder import parts_dir
from gpu.streaming.run_inputs import resume_key
from tests.app.gui import held, small_run


def _parts(out, manifest: dict, block_bytes: int, modified: float):
    """A stopped run's parts folder for ``out``: its manifest and one finished block."""
    parts = parts_dir(out)
    parts.mkdir(parents=True)
    (parts / "manifest.json").write_text(json.dumps(manifest))
    (parts / "block-0000.safetensors").write_bytes(b"x" * block_bytes)
    for path in (parts / "manifest.json", parts / "block-0000.safetensors", parts):
        os.utime(path, (modified, modified))
    return parts


def test_unfinished_runs_are_listed_and_one_is_deleted_when_confirmed(qtbot, window, monkeypatch):
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    models = window.controller.data.quantized
    config = wizard.config()
    assert isinstance(config, QuantizeConfig)
    key = resume_key("demo", config)
    done = {"transformer_blocks.0": {"file": "block-0000.safetensors", "sha256": "0" * 64}}
    this = _parts(models / "demo-svdquant-int4-r32.safetensors", {"key": key.key, "settings": key.settings,
                                                                  "done": done}, 3000, time.time() - 60)  # fmt: skip
    old = _parts(models / "old.safetensors", {"key": "an older quantizer's", "done": done}, 5000, time.time() - 3600)
    wizard.next()
    wizard.next()  # the calibration page, where the run starts
    page = wizard.calibration_page
    sizes = {p: sum(f.stat().st_size for f in p.iterdir()) for p in (this, old)}
    said = f"2 unfinished runs in the models folder ({human_bytes(sum(sizes.values()))})."
    qtbot.waitUntil(lambda: page.unfinished.text() == said)  # listed on a thread
    page.unfinished_button.click()
    dialog = wizard.unfinished_dialog
    assert dialog is not None and dialog.isVisible()
    table = dialog.table
    qtbot.waitUntil(lambda: table.rowCount() == 2 and dialog.status.text() == "")
    rows = [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]
    # The folder's own date (its files' and its own), in the table's format: a date taken from the clock again
    # differed from it around midnight.
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(this.stat().st_mtime))
    assert [row[:2] + row[3:] for row in rows] == [
        ["demo-svdquant-int4-r32.safetensors", human_bytes(sizes[this]), "1", "resumes"],  # the newest first
        ["old.safetensors", human_bytes(sizes[old]), "1", "starts over (another version of the quantizer)"],
    ]
    assert rows[0][2] == when and not dialog.delete_button.isEnabled()  # nothing selected yet

    asked: list[str] = []

    def answer(button: QMessageBox.StandardButton):
        def exec_(box: QMessageBox) -> int:
            asked.append(box.text())
            box.button(button).click()
            return 0

        monkeypatch.setattr(QMessageBox, "exec", exec_)

    table.selectRow(1)
    answer(QMessageBox.StandardButton.No)
    dialog.delete_button.click()
    assert asked == [f"Delete the unfinished run old.safetensors ({human_bytes(sizes[old])})? Its folder {old}, with "
                     "its 1 finished block, is deleted, and no run can resume from it afterwards."]  # fmt: skip
    assert old.is_dir() and table.rowCount() == 2
    answer(QMessageBox.StandardButton.Yes)
    dialog.delete_button.click()
    said = f"1 unfinished run in the models folder ({human_bytes(sizes[this])})."
    qtbot.waitUntil(lambda: table.rowCount() == 1 and page.unfinished.text() == said)  # deleted, then listed again
    assert not old.exists() and this.is_dir()
    assert table.item(0, 0).text() == "demo-svdquant-int4-r32.safetensors"
    table.selectRow(0)
    dialog.delete_button.click()
    qtbot.waitUntil(lambda: page.unfinished.text() == "None in the models folder." and table.rowCount() == 0)
    assert not this.exists() and not page.unfinished_button.isEnabled()
    dialog.close()


def test_the_models_folder_is_read_and_written_off_the_qt_thread(qtbot, window, monkeypatch):
    """The output's name (``resume_key`` reads and hashes MiBs of a multi-GiB source), the unfinished runs' listing
    and the deletion of one (GiBs) ran on the Qt thread: the wizard froze meanwhile. They run on threads, here held
    until released: meanwhile the page or dialog says what is under way, Delete and Quantize wait, and a run
    cancelled while its name is chosen starts nothing once the name comes."""
    from PySide6.QtWidgets import QWizard

    import gpu.streaming.run_inputs as run_inputs
    import gpu.streaming.unfinished as unfinished

    on_qt_thread: list[str] = []
    release = threading.Event()

    for module, name in ((run_inputs, "resume_key"), (unfinished, "unfinished_runs"),
                         (unfinished, "delete_unfinished_run")):  # fmt: skip
        monkeypatch.setattr(module, name, held(getattr(module, name), release, on_qt_thread))

    def released(until) -> None:
        release.set()
        qtbot.waitUntil(until)
        release.clear()

    models = window.controller.data.quantized
    done = {"transformer_blocks.0": {"file": "block-0000.safetensors", "sha256": "0" * 64}}
    old = _parts(models / "old.safetensors", {"key": "an older quantizer's", "done": done}, 5000, time.time())
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    quantize = wizard.button(QWizard.WizardButton.NextButton)
    wizard.next()
    wizard.next()  # the calibration page: its count of unfinished runs
    page = wizard.calibration_page
    assert page.unfinished.text() == "Looking for unfinished runs in the models folder…"
    assert not page.unfinished_button.isEnabled()
    released(lambda: page.unfinished.text().startswith("1 unfinished run in the models folder"))
    page.unfinished_button.click()
    dialog = wizard.unfinished_dialog
    assert dialog.status.text() == "Reading the unfinished runs…" and dialog.table.rowCount() == 0
    released(lambda: dialog.table.rowCount() == 1 and dialog.status.text() == "")

    monkeypatch.setattr(QMessageBox, "exec", lambda box: box.button(QMessageBox.StandardButton.Yes).click())
    dialog.table.selectRow(0)
    dialog.delete_button.click()
    assert dialog.status.text() == f"Deleting {old}…" and not dialog.delete_button.isEnabled()
    assert page.unfinished.text() == "Deleting the unfinished run old.safetensors…" and not quantize.isEnabled()
    wizard.next()  # refused while it deletes (a run could take that name)
    assert wizard.currentPage() is page and old.is_dir()
    released(lambda: dialog.table.rowCount() == 0 and page.unfinished.text() == "None in the models folder.")
    assert not old.exists() and quantize.isEnabled()
    dialog.close()

    wizard.next()  # the run, its output still to be named
    log = wizard.run_page.log
    assert wizard.run_state.running and wizard.run_state.job is None
    assert "choosing the output's name…" in log.toPlainText()
    wizard.cancel()
    assert not wizard.run_state.running and "Stopped. Nothing was added." in log.toPlainText()
    with qtbot.waitSignal(wizard.turns.lookups.ended, timeout=60000):  # the name comes, and is dropped
        release.set()
    assert wizard.run_state.job is None and wizard.run_state.out_path is None and "→" not in log.toPlainText()
    assert list(models.iterdir()) == [] and on_qt_thread == []


def test_closed_dialogs_and_wizards_take_no_late_lookup_and_a_later_run_says_it_waits_for_a_deletion(
        qtbot, window, monkeypatch, caplog):  # fmt: skip
    """A closed Unfinished runs dialog (each opening makes a new one) went on taking its late listing, and a closed
    wizard its deletion's end: a failed one popped an error box over no window. A run of a wizard opened after the
    one that started a deletion (closed since) knew nothing of it, and stood silent until the deletion (GiBs) was
    done: it says it waits for it. The failure of that deletion was then only logged, the user never told that the
    GiBs were still there: the main window's error dialog says it, with the folder and what to do."""
    import gpu.streaming.unfinished as unfinished
    listing, deleting = threading.Event(), threading.Event()  # held on their threads until set
    monkeypatch.setattr(unfinished, "unfinished_runs", held(unfinished.unfinished_runs, listing))
    monkeypatch.setattr(unfinished, "delete_unfinished_run", held(unfinished.delete_unfinished_run, deleting))
    monkeypatch.setattr(QMessageBox, "exec", lambda box: box.button(QMessageBox.StandardButton.Yes).click())
    done = {"transformer_blocks.0": {"file": "block-0000.safetensors", "sha256": "0" * 64}}
    old = _parts(window.controller.data.quantized / "old.safetensors", {"key": "k", "done": done}, 5000, time.time())
    window.quantize_panel.open_wizard()
    first = window.quantize_panel.wizard
    first.next()
    first.next()  # the calibration page, its count of unfinished runs
    page = first.calibration_page
    listing.set()
    qtbot.waitUntil(lambda: page.unfinished.text().startswith("1 unfinished run in the models folder"))
    listing.clear()
    page.unfinished_button.click()
    closed = first.unfinished_dialog
    closed.close()  # its listing still under way
    page.unfinished_button.click()
    dialog = first.unfinished_dialog
    ended: list = []
    first.unfinished_runs.lookups.ended.connect(ended.append)
    listing.set()
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1 and len(ended) == 2)  # the closed dialog's listing too
    assert closed.table.rowCount() == 0 and closed.status.text() == "Reading the unfinished runs…"

    dialog.table.selectRow(0)
    size = human_bytes(dialog.runs[0].size_bytes)
    dialog.delete_button.click()  # held: its deletion ends after the wizard is closed
    (old / "notes.txt").write_text("mine")  # which makes it fail: the user's file is not deleted with the folder
    first.close()
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    assert wizard is not first
    small_run(wizard, alpha_points=2)
    wizard.next()  # Quantize
    log = wizard.run_page.log
    try:
        qtbot.waitUntil(lambda: f"Waiting for the deletion of the unfinished run {old.name} to end…" in
                        log.toPlainText(), timeout=60000)  # fmt: skip
        wizard.cancel()
    finally:
        deleting.set()
    qtbot.waitUntil(lambda: first.unfinished_runs.deleting is None and not wizard.run_state.running, timeout=60000)
    assert first.error_dialog is None and "Stopped. Nothing was added." in log.toPlainText()
    assert f"deleting the unfinished run {old} failed after its wizard was closed" in caplog.text
    assert old.is_dir() and (old / "notes.txt").is_file()
    box = window.error_dialog  # the main window's, over the window the user is at
    assert box is not None and box.isVisible() and box.parent() is window
    assert box.text() == (f"The unfinished quantize run old.safetensors was not deleted: {old} holds files the "
                          f"quantizer did not write (notes.txt). Its folder {old} ({size}) is still "
                          "there.")  # fmt: skip
    assert box.informativeText() == ("Move them elsewhere first, then delete it again with Unfinished runs… on the "
                                     "calibration page of Quantize this model…, or delete the folder yourself.")


def test_a_deletion_the_models_folder_refuses_says_so_and_what_to_do(qtbot, window, monkeypatch):
    """The models folder on a drive mounted read-only: Delete on an unfinished run said only "Cannot write
    <model>.safetensors: Read-only file system. Choose a folder you can write to.": the user wrote nothing, asked
    to delete a .parts folder, the wizard has no folder to choose, and nothing said the run was not deleted. (R51)"""
    import errno

    import gpu.output_lock as output_lock

    done = {"transformer_blocks.0": {"file": "block-0000.safetensors", "sha256": "0" * 64}}
    models = window.controller.data.quantized
    old = _parts(models / "old.safetensors", {"key": "k", "done": done}, 5000, time.time())
    opened = os.open

    def read_only(path, flags, *args, **kwargs):  # what a read-only drive answers a file being made
        if flags & os.O_CREAT and str(path).startswith(str(models)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return opened(path, flags, *args, **kwargs)

    monkeypatch.setattr(output_lock.os, "open", read_only)
    monkeypatch.setattr(QMessageBox, "exec", lambda box: box.button(QMessageBox.StandardButton.Yes).click())
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.next()
    wizard.next()
    page = wizard.calibration_page
    qtbot.waitUntil(lambda: page.unfinished.text().startswith("1 unfinished run in the models folder"))
    page.unfinished_button.click()
    dialog = wizard.unfinished_dialog
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 1)
    size = human_bytes(dialog.runs[0].size_bytes)
    dialog.table.selectRow(0)
    dialog.delete_button.click()
    qtbot.waitUntil(lambda: wizard.error_dialog is not None, timeout=30000)
    box = wizard.error_dialog
    assert box.text() == (f"The unfinished quantize run old.safetensors was not deleted: {models} cannot be changed: "
                          f"{os.strerror(errno.EROFS)}. Its folder {old} ({size}) is still there.")
    assert box.informativeText() == (
        "Make it a folder you can write to (a drive mounted read-only: mount it writable again; or its permissions), "
        "then delete it again with Unfinished runs… on the calibration page of Quantize this model…, or delete the "
        "folder yourself.")  # fmt: skip
    assert old.is_dir()
    box.accept()
    dialog.close()
    wizard.close()
