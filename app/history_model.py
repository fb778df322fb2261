"""Prompt history: every submitted prompt, newest first, de-duplicated with a use count, searchable."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from app.store import PromptRecord, Store

PromptRole = Qt.ItemDataRole.UserRole + 1


class HistoryModel(QAbstractListModel):
    def __init__(self, store: Store, parent: Any = None) -> None:
        super().__init__(parent)
        self._store = store
        self._search = ""
        self._rows: list[PromptRecord] = []
        self.reload()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        record = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            text = record.prompt.replace("\n", " ")
            return f"{text}   ×{record.uses}" if record.uses > 1 else text
        if role == Qt.ItemDataRole.ToolTipRole:
            neg = f"\n\nNegative: {record.negative_prompt}" if record.negative_prompt else ""
            return f"{record.prompt}{neg}\n\nUsed {record.uses}×"
        if role == PromptRole:
            return record
        return None

    def record(self, row: int) -> PromptRecord:
        return self._rows[row]

    def set_search(self, text: str) -> None:
        self._search = text
        self.reload()

    def add(self, prompt: str, negative_prompt: str) -> None:
        self._store.record_prompt(prompt, negative_prompt)
        self.reload()

    def remove(self, rows: list[int]) -> None:
        self._store.remove_prompts([self._rows[r].id for r in rows])
        self.reload()

    def clear(self) -> None:
        self._store.clear_prompts()
        self.reload()

    def reload(self) -> None:
        self.beginResetModel()
        self._rows = self._store.prompts(self._search)
        self.endResetModel()
