"""A prompt added to a long history costs what it changes, not what the history holds: each Generate adds one, and
with 20,000 prompts the list laid out every row again (60-90 ms, a hitch at every click). Counted here (calls
from the list into the model), not timed, so that a slow machine cannot fail it."""

from __future__ import annotations

from PySide6.QtCore import QPersistentModelIndex
from PySide6.QtWidgets import QApplication

from app.data_dir import resolve_data_dir
from app.history_model import HistoryModel
from app.store import PromptRecord, Store
from tests.app.gui import window_without_engine
from tests.app.scale import calls_into, methods

_COUNT = 2000


def test_adding_a_prompt_to_a_long_history_leaves_the_other_rows_alone(qtbot, data_root):
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    store.add_images([], prompts=[PromptRecord(0, f"prompt {i}", "", 1, float(i)) for i in range(_COUNT)])
    store.close()
    window = window_without_engine(qtbot, data)
    history, view = window.controller.history, window.history_panel.view
    qtbot.waitUntil(lambda: view.viewport().isVisible())
    view.setCurrentIndex(history.index(5))
    selected = QPersistentModelIndex(history.index(5))
    resets: list[None] = []
    history.modelReset.connect(lambda: resets.append(None))

    def add(prompt: str) -> None:
        history.add(prompt, "")
        QApplication.processEvents()  # the list lays its rows out and paints

    # was: 2 calls of rowCount per row of the history (the QListView laid every row out again, asking the model
    # for each one's index); now the rows painted, whatever the history's length
    for prompt in ("a new prompt", "prompt 7"):  # a new entry, then one used again (moved to the top)
        assert calls_into(methods(HistoryModel), lambda p=prompt: add(p)) < _COUNT / 10
    # No entry is searched for in the store (a search reads every entry: 7-14 ms with 20,000 prompts): it hands
    # back the entry it counted. (A new one was looked up there, for its id.)
    assert calls_into([Store.prompts], lambda: add("prompt 7")) == 0
    assert calls_into([Store.prompts], lambda: add("another new prompt")) == 0
    assert resets == []
    shown = [(history.record(r).prompt, history.record(r).uses) for r in range(history.rowCount())]
    assert shown[:4] == [("another new prompt", 1), ("prompt 7", 3), ("a new prompt", 1), (f"prompt {_COUNT - 1}", 1)]
    assert shown == [(r.prompt, r.uses) for r in window.controller.store.prompts()]  # as a reload would show it
    # the selection stays on its entry, below the three at the top now
    assert selected.row() == view.currentIndex().row() == 8 and history.record(8).prompt == f"prompt {_COUNT - 6}"
    assert view.visualRect(history.index(0)).height() == view.visualRect(history.index(1)).height() > 0
    assert view.visualRect(history.index(0)).width() == view.viewport().width()  # rows as wide as the list


def test_recording_a_prompt_hands_back_its_entry_as_counted(data_root):
    """``record_prompt`` returns the entry it counted, read by its texts (as ``prompts`` lists it), or None for an
    empty prompt, which it does not record."""
    store = Store(resolve_data_dir(data_root).database)
    first = store.record_prompt(" a cat\n", "blurry ", when=1.0)
    again = store.record_prompt("a cat", "blurry", when=2.0)
    other = store.record_prompt("a cat", "", when=3.0)
    assert first == PromptRecord(first.id, "a cat", "blurry", 1, 1.0)
    assert again == PromptRecord(first.id, "a cat", "blurry", 2, 2.0) and other.id != first.id
    assert store.prompts() == [other, again]
    assert store.record_prompt(" \n ") is None and len(store.prompts()) == 2
    store.close()
