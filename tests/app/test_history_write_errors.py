"""A prompt history the database cannot write is said: Clear on such a database raised out of the panel's slot
(logged only, nothing seen), and Generate dropped its prompt from the history without a word."""

from __future__ import annotations

import sqlite3

from PySide6.QtWidgets import QMessageBox


def _full(*_args, **_kwargs):
    raise sqlite3.OperationalError("database or disk is full")


def test_clear_history_on_a_database_that_cannot_be_written_says_so(qtbot, bare_window, monkeypatch):
    controller = bare_window.controller
    controller.history.add("a prompt worth keeping", "")
    shown: list = []
    controller.error.connect(shown.append)
    monkeypatch.setattr(controller.store, "clear_prompts", _full)
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *_a, **_k: QMessageBox.StandardButton.Yes))
    bare_window.history_panel.clear_button.click()
    assert [e.message for e in shown] == [f"The prompt history in {controller.store.path} could not be changed: "
                                          "database or disk is full."]  # fmt: skip
    assert "disk is not full" in shown[0].hint
    assert [r.prompt for r in controller.store.prompts()] == ["a prompt worth keeping"]


def test_a_prompt_the_history_cannot_record_is_said_and_its_image_still_made(qtbot, window, monkeypatch):
    controller = window.controller
    said: list[str] = []
    controller.status_message.connect(said.append)
    monkeypatch.setattr(controller.store, "record_prompt", _full)
    controller.prompt.prompt = "typed while the disk was full"
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as done:
        controller.generate()
    assert [r.settings["prompt"] for r in done.args[0]] == ["typed while the disk was full"]
    notices = [s for s in said if "history" in s]
    assert notices == [f"The prompt was not added to the prompt history: {controller.store.path} could not be "
                       "written (database or disk is full). The image is made all the same; check that the data "
                       "folder can be written and its disk is not full."]  # fmt: skip
    assert controller.store.prompts() == []
