"""Prompt history list: newest first, de-duplicated with use counts; double-click or Enter to reuse (the prompt box's
Ctrl+Z brings back what it held), search, remove (Ctrl+Z in the list brings the entries back), clear."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QModelIndex, QSize, Qt
from PySide6.QtGui import QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QStyle,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.controller import AppController
from app.widgets.search_field import connect_search
from app.widgets.selection import selected_rows
from app.widgets.shortcuts import local_shortcuts
from app.widgets.wrap_grid import WrapGrid, button_box


class PromptList(QTableView):
    """The history's entries, one line each, newest first: a table of one column shown as a list.

    Not a QListView: on every row inserted (each Generate adds one) a QListView lays out all its rows again and
    asks the model for each row's index, a call into Python per row: 60-90 ms with 20,000 prompts. A table's
    rows are sections of its (hidden) row header, all one height: an insert shifts them in C++ and asks the model
    only for the rows it paints. Rows are as wide as the list, their text cut with "…" at its edge: sized to
    their text, a long prompt's row was thousands of pixels wide and the narrow dock scrolled sideways (the
    tooltip shows more of it)."""

    def __init__(self) -> None:
        super().__init__()
        self.horizontalHeader().hide()
        self.horizontalHeader().setStretchLastSection(True)
        self.verticalHeader().hide()
        self.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setTabKeyNavigation(False)  # Tab leaves the list, as it leaves the other panels' lists
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._fit_rows()

    def _fit_rows(self) -> None:
        """Every row the height of one line of text in an item, as the style draws it (a list's row height)."""
        option = QStyleOptionViewItem()
        option.initFrom(self)
        option.features = QStyleOptionViewItem.ViewItemFeature.HasDisplay
        option.text = "Ag"
        height = self.style().sizeFromContents(QStyle.ContentsType.CT_ItemViewItem, option, QSize(), self).height()
        self.verticalHeader().setMinimumSectionSize(height)
        self.verticalHeader().setDefaultSectionSize(height)

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._fit_rows()

    def moveCursor(
        self, cursorAction: QAbstractItemView.CursorAction, modifiers: Qt.KeyboardModifier
    ) -> QModelIndex:
        """Home and End go to the newest and the oldest entry, as in a list: a table moves them along the row,
        and in one column they did nothing."""
        if cursorAction in (QAbstractItemView.CursorAction.MoveHome, QAbstractItemView.CursorAction.MoveEnd):
            modifiers |= Qt.KeyboardModifier.ControlModifier
        return super().moveCursor(cursorAction, modifiers)


class HistoryPanel(QWidget):
    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.search = QLineEdit(placeholderText="Search prompts…", clearButtonEnabled=True)
        connect_search(self.search, controller.history.set_search)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Forget the selected prompts (Delete; Ctrl+Z in the list brings them back)")
        self.remove_button.clicked.connect(self.remove_selected)
        self.clear_button = QPushButton("Clear")
        self.clear_button.clicked.connect(self._clear)
        # The buttons below the search field in a narrow dock (beside it, the dock scrolled sideways under 1000 px).
        top = WrapGrid([self.search, button_box([self.remove_button, self.clear_button])], (2, 1), stretch_first=True)
        self.view = PromptList()
        # Read out as a table of one column otherwise: the name and description say what it holds.
        self.view.setAccessibleName("Prompt history")
        self.view.setAccessibleDescription(
            "Earlier prompts, newest first. Enter or double-click puts one in the prompt box."
        )
        self.view.setModel(controller.history)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        # A click only selects (to remove, or to look): reused on a click, an entry replaced the prompt being
        # typed. Double-click or Enter puts it in the prompt box, as in file managers and other apps' histories.
        self.view.doubleClicked.connect(self.reuse)
        # The keys act only while the list has the focus: window-wide, Delete clashed with the gallery's (Qt then
        # runs neither), and Ctrl+Z in the gallery brings back its images. Ctrl+C copies the whole prompts: the
        # list's own Ctrl+C copied the line shown, cut with "…" and its use count after it.
        local_shortcuts(self.view, ((QKeySequence(Qt.Key.Key_Return), self._reuse_current),
                                    (QKeySequence(Qt.Key.Key_Enter), self._reuse_current),
                                    (QKeySequence(QKeySequence.StandardKey.Delete), self.remove_selected),
                                    (QKeySequence(QKeySequence.StandardKey.Undo), controller.bring_back_prompts),
                                    (QKeySequence(QKeySequence.StandardKey.Copy), self.copy_selected)))  # fmt: skip
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

    def selected_rows(self) -> list[int]:
        return selected_rows(self.view)

    def remove_selected(self) -> None:
        if rows := self.selected_rows():
            self.controller.forget_prompts(rows)

    def copy_selected(self) -> None:
        """The selected entries' prompts, whole, one after the other in the list's order."""
        if rows := self.selected_rows():
            history = self.controller.history
            QGuiApplication.clipboard().setText("\n".join(history.record(row).prompt for row in rows))

    def _clear(self) -> None:
        answer = QMessageBox.question(self, "Clear prompt history", "Forget every prompt in the history?")
        if answer == QMessageBox.StandardButton.Yes:
            self.controller.clear_history()  # which says why, if the database refuses it
