"""Prompts removed from the history with the Delete key are gone for good: no question, no word, no undo. Clear asks
first ("Forget every prompt in the history?") as it cannot be undone, and the gallery's Delete says what went and
Ctrl+Z there brings it back; in the history list, Ctrl+A (to copy the prompts with Ctrl+C) then a stray Delete
forgot the whole history, use counts included, with nothing on screen to say so or to get it back."""

from __future__ import annotations

from PySide6.QtCore import Qt


def _history_in_focus(window, prompts: tuple[str, ...]) -> tuple[object, object, list[str]]:
    """(the history, its list, what the status bar said) with ``prompts`` used in order, the list in focus."""
    history, view = window.controller.history, window.history_panel.view
    for prompt in prompts:
        history.add(prompt, "")
    said: list[str] = []
    window.controller.status_message.connect(said.append)
    window.activateWindow()
    view.setFocus()
    return history, view, said


def test_prompts_removed_from_the_history_with_the_delete_key_can_be_brought_back(qtbot, bare_window):
    history, view, said = _history_in_focus(bare_window, ("a red fox", "an owl at night", "a cat", "a cat"))
    before = [(history.record(r).prompt, history.record(r).uses) for r in range(history.rowCount())]
    assert before == [("a cat", 2), ("an owl at night", 1), ("a red fox", 1)]
    qtbot.keyClick(view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    assert history.rowCount() == 0  # removed, as asked
    assert said  # was: nothing said (the gallery's Delete says "3 images moved to the trash (Undo … brings them back)")
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    # was: the history stayed empty, in the database too
    assert [(history.record(r).prompt, history.record(r).uses) for r in range(history.rowCount())] == before
    assert [(r.prompt, r.uses) for r in bare_window.controller.store.prompts()] == before


def test_prompts_brought_back_that_the_search_hides_are_said_hidden(qtbot, bare_window):
    """Ctrl+Z brought prompts back out of the search's sight with "2 prompts brought back to the history.", the list
    unchanged: as the gallery's Undo delete, it says how many the search hides."""
    history, view, said = _history_in_focus(bare_window, ("a red fox", "an owl at night", "a cat"))
    qtbot.keyClick(view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    history.set_search("fox")
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert said[-1] == "3 prompts brought back to the history (2 hidden by the search)."
    assert [history.record(r).prompt for r in range(history.rowCount())] == ["a red fox"]
    qtbot.keyClick(view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(view, Qt.Key.Key_Delete)
    qtbot.keyClick(view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert said[-1] == "1 prompt brought back to the history."
