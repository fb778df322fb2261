"""The LoRA panel's rows as a Qt list model over ``LoraState.entries``: the panel's list view shows them, making
widgets only for the rows in sight (2,000 rows of widgets took 8 s to make and lay out, the window frozen)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from app.lora_entry import LoraEntry
from app.lora_state import LoraState
from app.plain_text import plain_tooltip

Index = QModelIndex | QPersistentModelIndex

EntryRole = Qt.ItemDataRole.UserRole + 1  # the row's LoraEntry


class LoraListModel(QAbstractListModel):
    """One row per entry, in the state's order. The state changes its list and then says so (``changed``): the
    model then tells views the rows removed, the rows added at the end and that the others may show something
    else now (a reused image, a file read again), rather than a reset, which closed the rows' editors and lost
    the keyboard focus in them. A row's own setting (``edited``) is that row's data changed."""

    def __init__(self, state: LoraState, parent: Any = None) -> None:
        super().__init__(parent)
        self.state = state
        self._rows: list[LoraEntry] = list(state.entries)
        self._row_of: dict[int, int] = {}  # id(entry) -> its row; None of it until asked after a change
        state.changed.connect(self._follow)
        state.edited.connect(self._edited)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's own default)
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        entry = self._rows[index.row()]
        if role == EntryRole:
            return entry
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return entry.label
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tooltip(f"{entry.label}\n{entry.path}")
        if role == Qt.ItemDataRole.AccessibleDescriptionRole:
            return entry.info_line
        if role == Qt.ItemDataRole.CheckStateRole:
            return Qt.CheckState.Checked if entry.enabled else Qt.CheckState.Unchecked
        return None

    def flags(self, index: Index) -> Qt.ItemFlag:
        # Not ItemIsUserCheckable: each row's own check box switches it. With the flag, the view's delegate
        # switched the view's current row (set by a click on a row's label) at a Space no control took, a row
        # perhaps out of sight, which the next image then used. The check state is still the row's data.
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsEditable

    def entry(self, row: int) -> LoraEntry:
        return self._rows[row]

    def row_of(self, entry: LoraEntry) -> int:
        """The entry's row, -1 when it has none."""
        if not self._row_of:
            self._row_of = {id(e): row for row, e in enumerate(self._rows)}
        return self._row_of.get(id(entry), -1)

    def _edited(self, entry: LoraEntry) -> None:
        row = self.row_of(entry)
        if row >= 0:
            self.dataChanged.emit(self.index(row), self.index(row))

    def _follow(self) -> None:
        """The rows made like the state's entries: those gone removed (in runs, from the end), those added at the
        end inserted, the others said changed; any other change (never made now: the state only appends and
        removes) resets the model."""
        self._row_of = {}
        entries = self.state.entries
        kept = {id(e) for e in entries}
        end = len(self._rows)
        while end > 0:
            if id(self._rows[end - 1]) in kept:
                end -= 1
                continue
            start = end - 1
            while start > 0 and id(self._rows[start - 1]) not in kept:
                start -= 1
            self.beginRemoveRows(QModelIndex(), start, end - 1)
            del self._rows[start:end]
            self.endRemoveRows()
            end = start
        count = len(self._rows)
        if any(a is not b for a, b in zip(self._rows, entries, strict=False)) or len(entries) < count:
            self.beginResetModel()
            self._rows = list(entries)
            self.endResetModel()
            return
        if count:  # shown anew: a reused image's strengths, a file read again at Generate
            self.dataChanged.emit(self.index(0), self.index(count - 1))
        if len(entries) > count:
            self.beginInsertRows(QModelIndex(), count, len(entries) - 1)
            self._rows = list(entries)
            self.endInsertRows()
