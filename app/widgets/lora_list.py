"""The LoRA panel's list: a list view over ``LoraListModel`` whose rows in sight (and a few seen last) each have a
``LoraRow`` of controls as their editor, opened as they scroll into sight. A row of widgets per LoRA made 2,000
LoRAs take 8 s of the Qt thread to make and lay out; rows out of sight now cost a height each."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QModelIndex, QObject, QPersistentModelIndex, QPoint, QSize, Qt, Signal
from PySide6.QtGui import QKeyEvent, QPainter, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)  # fmt: skip

from app.lora_entry import LoraEntry
from app.lora_model import EntryRole, Index, LoraListModel
from app.lora_state import LoraState
from app.widgets.lora_row import LoraRow

GAP = 6  # between two rows, as the rows' layout had them
# Rows out of sight whose controls are kept (those seen last): scrolling back a little makes none anew, and a
# row a caller holds (``LoraList.editor``) stays while a few others are asked for.
SPARE_EDITORS = 16


class _RowHeights:
    """The height of a row's controls at a width, measured on hidden rows of each kind (with and without the
    "Text" strength), its info line set to the entry's (it wraps): the list needs every row's height to lay them
    out, and a row of widgets for each would cost what the list saves. Kept by (width, kind, info line)."""

    def __init__(self, state: LoraState, parent: QWidget) -> None:
        def probe(encoders: tuple[str, ...]) -> LoraRow:
            row = LoraRow(state, LoraEntry(Path("probe.safetensors"), "probe", text_encoders=encoders), parent)
            row.setVisible(False)
            row.ensurePolished()
            return row

        self._probes = {False: probe(()), True: probe(("text_encoder",))}
        self._known: dict[tuple[int, bool, str], int] = {}

    def of(self, entry: LoraEntry, width: int) -> int:
        key = (width, bool(entry.text_encoders), entry.info_line)
        height = self._known.get(key)
        if height is None:
            probe = self._probes[key[1]]
            probe.info.setText(entry.info_line)
            height = probe.heightForWidth(width) if probe.hasHeightForWidth() else -1
            self._known[key] = height = height if height > 0 else probe.sizeHint().height()
        return height

    def minimum_width(self) -> int:
        """The narrowest a row can be (one with a "Text" strength, the wider kind)."""
        return self._probes[True].minimumSizeHint().width()

    def forget(self) -> None:
        """Heights measured in another font or style are wrong now."""
        self._known.clear()


class _LoraDelegate(QStyledItemDelegate):
    """Each row's editor is its ``LoraRow``, which sets the state itself; the row is as tall as its controls."""

    def __init__(self, view: LoraList) -> None:
        super().__init__(view)
        self._view = view

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:  # noqa: ARG002
        width = self._view.viewport().width()
        return QSize(width, self._view.row_height(index.data(EntryRole), width) + GAP)

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: Index) -> QWidget:  # noqa: ARG002
        row = LoraRow(self._view.state, index.data(EntryRole), parent)
        row.said.connect(self._view.said)
        return row

    def setEditorData(self, editor: QWidget, index: Index) -> None:  # noqa: ARG002
        editor.show_entry()

    def setModelData(self, editor: QWidget, model: object, index: Index) -> None:
        pass  # the row's controls set the state as they change

    def updateEditorGeometry(self, editor: QWidget, option: QStyleOptionViewItem, index: Index) -> None:  # noqa: ARG002
        editor.setGeometry(option.rect.adjusted(0, GAP // 2, 0, -(GAP - GAP // 2)))

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        pass  # every row in sight has its controls over it

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: ARG002
        # An item delegate takes Tab, Enter and Esc from its editors to end editing (the rows' focus went to the
        # list on Enter in the trigger words): here they are the controls' own, and the editors stay.
        return False


class LoraList(QListView):
    """The LoRA rows: one column as wide as the list (never scrolled sideways), scrolled by the pixel, not a Tab
    stop of its own (the controls of its rows are). ``editors_changed`` says rows' controls were made or dropped
    (the panel's Tab chain follows); ``emptied`` that the last row went while its controls had the focus; ``said``
    a row's passing word for the status bar (``LoraRow.said``)."""

    editors_changed = Signal()
    emptied = Signal()
    said = Signal(str)

    def __init__(self, state: LoraState) -> None:
        super().__init__()
        self.state = state
        self.model_ = model = LoraListModel(state, self)
        self._heights = _RowHeights(state, self)
        self._open: list[QPersistentModelIndex] = []  # rows with controls, the last wanted last
        self._syncing = False
        self._shapes: dict[int, tuple[bool, str]] = {}  # id(entry) -> what its height was measured for
        self._focus_at: tuple[int, str] | None = None  # (row, ``LoraRow.STOPS`` role) of the focus, while its row goes
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setResizeMode(QListView.ResizeMode.Adjust)  # heights follow the width (info lines wrap)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.viewport().setBackgroundRole(QPalette.ColorRole.Window)  # as the panel around it
        self.setItemDelegate(_LoraDelegate(self))
        self.setModel(model)
        model.dataChanged.connect(self._data_changed)
        model.rowsRemoved.connect(self._rows_removed)
        self.verticalScrollBar().valueChanged.connect(lambda _value: self.sync_editors())

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Keys are the rows' controls' alone. One a control does not take (Space or a letter on a slider, Down in
        the trigger words, End on a check box) came on to the list, which moved its current row, scrolling the
        row being edited away, searched the rows' names for the letter, or switched the current row on at Space."""
        event.ignore()  # on to the panel around the list, as any key a widget does not take

    def keyboardSearch(self, search: str) -> None:
        """No search by typing (see ``keyPressEvent``): the letters typed belong to a row's control."""

    def row_height(self, entry: LoraEntry, width: int) -> int:
        self._shapes[id(entry)] = (bool(entry.text_encoders), entry.info_line)
        return self._heights.of(entry, width)

    def minimum_width(self) -> int:
        """Wide enough for a row's controls at their narrowest, beside the scroll bar."""
        return self._heights.minimum_width() + 2 * self.frameWidth() + self.verticalScrollBar().sizeHint().width()

    # ---- the rows' controls ----------------------------------------------------------------------------------

    def doItemsLayout(self) -> None:
        super().doItemsLayout()
        self.sync_editors()  # rows laid out anew (added, removed, another width): those in sight now

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        # The viewport's size: a list laid out top to bottom lays its rows out again only when its height changes,
        # but here their heights follow the width, and the rows are as wide as the list (a scroll bar that came
        # up left them wider than it, the ✕ cut off).
        if event.size().width() != event.oldSize().width():
            self.scheduleDelayedItemsLayout()

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._heights.forget()
            self.scheduleDelayedItemsLayout()

    def rows_in_sight(self) -> range:
        """The rows the viewport shows, whole or in part."""
        count = self.model_.rowCount()
        if not count:
            return range(0)
        top = self.indexAt(QPoint(1, 0))
        bottom = self.indexAt(QPoint(1, self.viewport().height() - 1))
        return range(top.row() if top.isValid() else 0, bottom.row() + 1 if bottom.isValid() else count)

    def sync_editors(self, *wanted_too: int) -> None:
        """Controls for the rows in sight, the row the focus is in and ``wanted_too``; those of the other rows
        dropped, but for the ``SPARE_EDITORS`` wanted last. A row whose file now has a CLIP/T5 part (or no longer)
        gets new controls: its "Text" strength comes or goes."""
        if self._syncing:
            return
        self._syncing = True
        try:
            self.executeDelayedItemsLayout()
            changed = self._sync(self._wanted(wanted_too))
        finally:
            self._syncing = False
        if changed:
            self.editors_changed.emit()

    def _wanted(self, wanted_too: tuple[int, ...]) -> list[int]:
        wanted = [*self.rows_in_sight(), *wanted_too]
        focused = self.focus_stop()
        if focused is not None:
            wanted.append(focused[0])
        return wanted

    def _sync(self, wanted: list[int]) -> bool:
        model, changed = self.model_, False
        rows = {p.row(): p for p in self._open if p.isValid()}
        focus, refocus = self.focus_stop(), None
        for row, index in list(rows.items()):
            editor = self.indexWidget(index)
            if editor is None or editor.text_encoders != model.entry(row).text_encoders:
                if editor is not None and focus is not None and focus[0] == row:
                    # Its file gained or lost a CLIP/T5 part: the focus stays on the same control of the new row,
                    # not wherever Qt's chain of widgets leads from the one closed.
                    refocus = (row, editor.stop_role(editor.focus_chain[focus[1]]))
                self.closePersistentEditor(index)
                del rows[row]
                changed = True
        for row in dict.fromkeys(wanted):  # the last wanted last
            index = rows.pop(row, None)
            if index is None:
                index = QPersistentModelIndex(model.index(row))
                self.openPersistentEditor(index)
                changed = True
            rows[row] = index
        order = list(rows.values())
        spare = max(0, len(order) - len(set(wanted)) - SPARE_EDITORS)
        for index in order[:spare]:
            self.closePersistentEditor(index)
        self._open = order[spare:]
        if refocus is not None:
            self.indexWidget(model.index(refocus[0])).stop_near(refocus[1]).setFocus(Qt.FocusReason.OtherFocusReason)
        return changed or spare > 0

    def editors(self) -> list[LoraRow]:
        """The rows' controls (rows in sight, and a few seen last), in the rows' order."""
        self.sync_editors()
        return [self.indexWidget(p) for p in sorted((p for p in self._open if p.isValid()), key=lambda p: p.row())]

    def editor(self, row: int) -> LoraRow:
        """The controls of ``row``, scrolled into sight (made if they were not)."""
        self.executeDelayedItemsLayout()
        self.scrollTo(self.model_.index(row), QAbstractItemView.ScrollHint.EnsureVisible)
        self.sync_editors(row)
        return self.indexWidget(self.model_.index(row))

    def focus_stop(self) -> tuple[int, int] | None:
        """(row, control of its ``focus_chain``) the keyboard focus is in, None when in no row. The window's focus,
        kept while another window is active (the user switched to a browser for trigger words, or to "Skipped
        files…"): the application's is then none or elsewhere, and scrolling dropped the row being typed in, its
        text kept but the focus back at the prompt when the window came back."""
        focused = self.window().focusWidget()
        if focused is None or not self.isAncestorOf(focused):
            return None
        for index in self._open:
            editor = self.indexWidget(index) if index.isValid() else None
            if editor is not None and editor.isAncestorOf(focused):
                stops = editor.focus_chain
                at = next((k for k, w in enumerate(stops) if w is focused or w.isAncestorOf(focused)), 0)
                return index.row(), at
        return None

    # ---- following the model ---------------------------------------------------------------------------------

    def _data_changed(self, first: QModelIndex, last: QModelIndex) -> None:
        """Rows shown anew: laid out again where one's height may differ (its info line, its "Text" strength)."""
        model = self.model_
        for row in range(first.row(), last.row() + 1):
            entry = model.entry(row)
            if self._shapes.get(id(entry), (bool(entry.text_encoders), entry.info_line)) != (
                bool(entry.text_encoders), entry.info_line,
            ):  # fmt: skip
                self.scheduleDelayedItemsLayout()
                return

    def rowsAboutToBeRemoved(self, parent: QModelIndex, start: int, end: int) -> None:
        # The focus in a row that goes (its ✕ clicked, or pressed with Space) goes to the same control of the row
        # that takes its place, not wherever Qt's chain of widgets led: the same kind of control, as rows differ
        # (one with a "Text" strength has two stops more, the first greyed while "same").
        at = self.focus_stop()
        if at is not None and start <= at[0] <= end:
            editor = self.indexWidget(self.model_.index(at[0]))
            self._focus_at = (start, editor.stop_role(editor.focus_chain[at[1]]))
        else:
            self._focus_at = None
        super().rowsAboutToBeRemoved(parent, start, end)

    def _rows_removed(self) -> None:
        at, self._focus_at = self._focus_at, None
        count = self.model_.rowCount()
        if at is None:
            return
        if not count:
            self.emptied.emit()
            return
        self.editor(min(at[0], count - 1)).stop_near(at[1]).setFocus(Qt.FocusReason.OtherFocusReason)
