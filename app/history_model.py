"""Prompt history: every submitted prompt, newest first, de-duplicated with a use count, searchable."""

from __future__ import annotations

import bisect
import textwrap
from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from app.plain_text import plain_tooltip
from app.store import PromptRecord, Store, found, history_order, search_key, search_terms

PromptRole = Qt.ItemDataRole.UserRole + 1

# A 10,000-character prompt made a list entry tens of thousands of pixels wide (the history list scrolled
# sideways for ever) and a tooltip of one line wider than any screen: lists show a line, tooltips a few lines.
LINE_CHARS = 200
TOOLTIP_COLUMNS = 80
TOOLTIP_CHARS = 1200


def prompt_line(text: str, limit: int = LINE_CHARS) -> str:
    """``text`` on one line (line breaks and runs of spaces one space), cut at ``limit`` characters with "…"."""
    # Lists ask for the line of each visible row on every paint: only the start of a prompt (which may be 10,000
    # characters) is joined. The line of a start is the start of the whole line; runs of white space can make
    # it too short, then a longer start is taken.
    size = 2 * limit
    while True:
        line = " ".join(text[:size].split())
        if len(line) > limit or size >= len(text):
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
        size *= 4


def prompt_tooltip(text: str) -> str:
    """``text`` wrapped at ``TOOLTIP_COLUMNS`` (Qt does not wrap a plain-text tooltip) and cut after
    ``TOOLTIP_CHARS`` characters, saying how much more there is (reusing the prompt gives all of it)."""
    shown = text if len(text) <= TOOLTIP_CHARS else text[:TOOLTIP_CHARS].rstrip() + "…"
    lines = [textwrap.fill(part, TOOLTIP_COLUMNS, break_long_words=True) for part in shown.splitlines()]
    if len(text) > TOOLTIP_CHARS:
        lines.append(f"(and {len(text) - TOOLTIP_CHARS:,} more characters)")
    return "\n".join(lines)


class HistoryModel(QAbstractListModel):
    def __init__(self, store: Store, parent: Any = None) -> None:
        super().__init__(parent)
        self._store = store
        self._search = ""
        self._rows: list[PromptRecord] = []
        self._shown: dict[tuple[str, str], PromptRecord] = {}  # the rows by their texts
        self.reload()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        record = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            text = prompt_line(record.prompt)
            return f"{text}   ×{record.uses}" if record.uses > 1 else text
        if role == Qt.ItemDataRole.ToolTipRole:
            neg = f"\n\nNegative prompt:\n{prompt_tooltip(record.negative_prompt)}" if record.negative_prompt else ""
            return plain_tooltip(f"{prompt_tooltip(record.prompt)}{neg}\n\nUsed {record.uses}×")
        if role == PromptRole:
            return record
        return None

    def record(self, row: int) -> PromptRecord:
        return self._rows[row]

    def set_search(self, text: str) -> None:
        self._search = text
        self.reload()

    def add(self, prompt: str, negative_prompt: str) -> None:
        """Counts a use (``Store.record_prompt``: the same texts, but for spaces at their ends, are one entry) and
        moves that one entry to its place, the top: reloading all of a 20,000-prompt history at each Generate
        took 70-300 ms and reset the list (its scroll position and selection).

        Nothing here goes through all the entries: the store hands back the entry it counted (a new one with its
        id), an entry shown is found by its texts and its row by its place in the order."""
        record = self._store.record_prompt(prompt, negative_prompt)
        if record is None:
            return  # an empty prompt: not recorded
        texts = (record.prompt, record.negative_prompt)
        shown = self._shown.get(texts)
        if shown is None and not self._matches(*texts):
            return  # one out of the current search
        old = None if shown is None else self._row_of(shown)
        self._shown[texts] = record
        rest = self._rows if old is None else self._rows[:old] + self._rows[old + 1 :]
        # where the store's order (newest first, then the latest added) puts it: the top, unless the clock went back
        new = bisect.bisect_left(rest, history_order(record), key=history_order)
        if old is None:
            self.beginInsertRows(QModelIndex(), new, new)
            self._rows.insert(new, record)
            self.endInsertRows()
            return
        if new != old:  # moved: a selected entry stays selected
            self.beginMoveRows(QModelIndex(), old, old, QModelIndex(), new if new < old else new + 1)
            self._rows = rest[:new] + [record] + rest[new:]
            self.endMoveRows()
        else:
            self._rows[old] = record
        self.dataChanged.emit(self.index(new), self.index(new))  # its use count

    def _row_of(self, record: PromptRecord) -> int:
        """The row of ``record``, one of the rows: found by its place in their order (a search of 20,000 rows
        took a few ms)."""
        return bisect.bisect_left(self._rows, history_order(record), key=history_order)

    def _matches(self, prompt: str, negative_prompt: str) -> bool:
        """Whether the current search finds an entry of these texts, as ``Store.prompts`` finds entries: all its
        terms in the search key of the prompt, or all in that of the negative prompt."""
        terms = search_terms(self._search)
        return found(terms, search_key(prompt)) or found(terms, search_key(negative_prompt))

    def hidden(self, records: list[PromptRecord]) -> int:
        """How many of ``records`` the current search hides (brought back, they are in the history, not the list)."""
        return sum(not self._matches(r.prompt, r.negative_prompt) for r in records)

    def remove(self, rows: list[int]) -> list[PromptRecord]:
        """Forgets the entries of ``rows``; returns them as they were stored (``Store.remove_prompts``), for
        ``restore``."""
        removed = self._store.remove_prompts([self._rows[r].id for r in rows])
        self.reload()
        return removed

    def restore(self, records: list[PromptRecord]) -> None:
        """Puts back entries ``remove`` returned (``Store.restore_prompts``)."""
        self._store.restore_prompts(records)
        self.reload()

    def clear(self) -> None:
        self._store.clear_prompts()
        self.reload()

    def reload(self) -> None:
        self.beginResetModel()
        self._rows = self._store.prompts(self._search)
        self._shown = {(r.prompt, r.negative_prompt): r for r in self._rows}
        self.endResetModel()

