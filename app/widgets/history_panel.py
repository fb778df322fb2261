"""Prompt history list: newest first, de-duplicated with use counts; double-click or Enter to reuse (the prompt box's
Ctrl+Z brings back what it held), search, remove, clear."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLineEdit,
    QListView,
    QMessageBox,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from app.controller import AppController
from app.widgets.search_field import connect_search
from app.widgets.wrap_grid import WrapGrid, button_box


class _OneLine(QStyledItemDelegate):
    """Rows as wide as the list, their text cut with "…" at its edge: sized to their text, a long prompt's row
    was thousands of pixels wide and the narrow dock scrolled sideways (the tooltip shows more of it)."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex) -> QSize:
        return QSize(0, super().sizeHint(option, index).height())


class HistoryPanel(QWidget):
    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.search = QLineEdit(placeholderText="Search prompts…", clearButtonEnabled=True)
        connect_search(self.search, controller.history.set_search)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Forget the selected prompts (Delete)")
        self.remove_button.clicked.connect(self.remove_selected)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self._clear)
        # The buttons below the search field in a narrow dock (beside it, the dock scrolled sideways under 1000 px).
        top = WrapGrid([self.search, button_box([self.remove_button, self.clear_button])], (2, 1), stretch_first=True)
        self.view = QListView()
        self.view.setModel(controller.history)
        self.view.setUniformItemSizes(True)
        self.view.setItemDelegate(_OneLine(self.view))
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        # A click only selects (to remove, or to look): reused on a click, an entry replaced the prompt being
        # typed. Double-click or Enter puts it in the prompt box, as in file managers and other apps' histories.
        self.view.doubleClicked.connect(self.reuse)
        for key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            enter = QShortcut(QKeySequence(key), self.view, self._reuse_current)
            enter.setContext(Qt.ShortcutContext.WidgetShortcut)
        # Only while the list has the focus: window-wide, it clashed with the gallery's Delete (Qt then runs neither).
        delete = QShortcut(QKeySequence.StandardKey.Delete, self.view, self.remove_selected)
        delete.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        layout = QVBoxLayout(self)
        layout.addWidget(top)
        layout.addWidget(self.view)

    def reuse(self, index: QModelIndex) -> None:
        record = self.controller.history.record(index.row())
        self.controller.reuse_prompt(record.prompt, record.negative_prompt)

    def _reuse_current(self) -> None:
        index = self.view.currentIndex()
        if index.isValid():
            self.reuse(index)

    def remove_selected(self) -> None:
        rows = sorted({i.row() for i in self.view.selectionModel().selectedIndexes()})
        if rows:
            self.controller.forget_prompts(rows)

    def _clear(self) -> None:
        answer = QMessageBox.question(self, "Clear prompt history", "Forget every prompt in the history?")
        if answer == QMessageBox.StandardButton.Yes:
            self.controller.history.clear()
