"""LoRA panel: add LoRA files or folders, enable each, set its strength (-2..2) and trigger words; a LoRA whose
file also changes the CLIP or T5 text encoder gets a "Text" strength for those parts ("same": its strength).
A folder (with its subfolders) is read on a thread of its own: a line under the buttons says how far it is, with
a Cancel, and its FLUX.1 LoRAs come when it ends; the line then says what it skipped, by kind, and "Skipped
files…" lists them.

The rows are a list view (``app/widgets/lora_list.py``): only the rows in sight have their controls, so a folder
of 2,000 LoRAs is listed at once. Tab goes through the rows' controls in order, scrolling the list.

Enabled LoRAs go with every generation request; the engine applies them without reloading the model (see
``gpu/lora``). "Insert trigger words" appends the enabled LoRAs' trigger words to the prompt."""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)  # fmt: skip

from app.lora_folder_scan import LoraFolderScan
from app.lora_state import LoraState
from app.widgets.file_filters import safetensors_filter
from app.widgets.lora_list import LoraList
from app.widgets.lora_row import LoraRow
from app.widgets.wrap_grid import WrapGrid
from app.widgets.wrapped_label import WrappedLabel

if TYPE_CHECKING:
    from app.controller import AppController

# A place in the panel's Tab order: ("button", index in ``_before`` or -1 for Insert trigger words), or ("row",
# row, index in its ``focus_chain``: -1 for the last).
Stop = tuple[str, int] | tuple[str, int, int]


class LoraPanel(QWidget):
    def __init__(self, controller: AppController) -> None:
        super().__init__()
        self.setObjectName("loraPanel")
        self.controller = controller
        self.state: LoraState = controller.loras
        self.scan: LoraFolderScan = self.state.folder_scan
        self.add_button = add = QPushButton("Add LoRA…")
        add.clicked.connect(self._add_files)
        self.add_folder_button = folder = QPushButton("Add folder…")
        folder.clicked.connect(self._add_folder)
        self.insert_button = insert = QPushButton("Insert trigger words")
        insert.setToolTip("Append the enabled LoRAs' trigger words to the prompt")
        insert.clicked.connect(self.insert_triggers)
        buttons = WrapGrid([add, folder], (2, 1))  # one below the other in a narrow dock
        scan = self._scan_row()
        self.view = view = LoraList(self.state)
        view.setAccessibleName("LoRAs")
        view.setAccessibleDescription("The LoRA files added, each with its on/off, strength and trigger words.")
        # The dock is never narrower than the rows (they were cut off at its right edge).
        view.setMinimumWidth(view.minimum_width())
        view.editors_changed.connect(self._chain_tabs)
        view.emptied.connect(lambda: add.setFocus(Qt.FocusReason.OtherFocusReason))
        view.said.connect(controller.status_message)
        self.empty = QLabel("No LoRAs yet: add .safetensors files made for FLUX.1.")
        self.empty.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(buttons)
        lay.addWidget(scan)
        lay.addWidget(self.empty)
        lay.addWidget(view, 1)
        self.cost = WrappedLabel()  # it names LoRAs
        self.state.cost_changed.connect(self._show_cost)  # a method of the panel: gone with it (``WrappedLabel``)
        lay.addWidget(self.cost)
        lay.addWidget(insert)
        self.skipped_dialog: QMessageBox | None = None
        self._tab_chain: list[QWidget] = []
        # The state's signals go to this panel's methods (or its widgets' slots): Qt drops those connections with
        # the panel. A function holding a widget was called after its window closed (the scan's words cleared
        # 15 s later) and raised on the deleted widget.
        self.state.changed.connect(self._show_empty)
        self._show_empty()
        view.sync_editors()

    def _scan_row(self) -> QWidget:
        """How far the folder being read is ("Reading LoRAs… 340/2000") with its Cancel, then how it ended, for a
        while, with "Skipped files…" where it skipped some; hidden when there is nothing to say. "Add folder…"
        waits meanwhile: one folder at a time."""
        self.scan_label = label = WrappedLabel()  # it names the folder
        self.cancel_scan_button = cancel = QPushButton("Cancel")
        cancel.setToolTip("Stop reading the folder; none of its LoRAs are added")
        cancel.clicked.connect(self.scan.cancel_scan)
        self.skipped_button = skipped = QPushButton("Skipped files…")
        skipped.setToolTip("List the files of the folder that are no FLUX.1 LoRA, and why")
        skipped.clicked.connect(self.show_skipped)
        self.scan_row = row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(label, 1)
        box.addWidget(cancel)
        box.addWidget(skipped)
        self.scan.scan_status_changed.connect(self._show_scan_status)
        self.scan.scanning_changed.connect(self._show_scanning)
        self.scan.scan_skipped_changed.connect(self._show_skipped_button)
        self._show_scan_status(self.scan.scan_status)
        self._show_skipped_button(self.scan.scan_skipped)
        self._show_scanning(self.scan.scanning)
        return row

    def _show_scan_status(self, text: str) -> None:
        self.scan_label.setText(text)
        self.scan_row.setVisible(bool(text))

    def _show_skipped_button(self, skipped: tuple) -> None:
        self.skipped_button.setVisible(bool(skipped))

    def _show_scanning(self, scanning: bool) -> None:
        # Cancel there before "Add folder…" greys, and the other way round at the end: the focus on the one that
        # goes moves to the other (``_focus_off_gone``). Cancel's row too (the state says the scan's words next).
        if scanning:
            self.scan_row.setVisible(True)
            self.cancel_scan_button.setVisible(True)
            self.add_folder_button.setEnabled(False)
        else:
            self.add_folder_button.setEnabled(True)
            self.cancel_scan_button.setVisible(False)
        self.add_folder_button.setToolTip("A folder of LoRAs is being read: wait for it, or cancel it" if scanning
                                          else "Add the FLUX.1 LoRAs of a folder and its subfolders")  # fmt: skip

    def show_skipped(self) -> None:
        """The files the last folder read skipped, by kind, each with why (a dialog of its own, the window in use
        meanwhile). One dialog, shown again with the last folder's files: a new one each time hid the one before,
        which stayed, with its list of files, as long as the panel."""
        box = self.skipped_dialog
        if box is None:
            close = QMessageBox.StandardButton.Close
            self.skipped_dialog = box = QMessageBox(QMessageBox.Icon.Information, "Skipped files", "", close, self)
            box.setInformativeText("These files were not added to the LoRA list. The details name each one and why.")
            box.setModal(False)
            box.setTextFormat(Qt.TextFormat.PlainText)  # it names the folder: never drawn as HTML (app.plain_text)
        box.setText(self.scan.scan_status)
        box.setDetailedText(self.scan.skipped_text())
        box.show()
        box.raise_()
        box.activateWindow()
        self.scan.skipped_seen()

    def _show_cost(self, text: str) -> None:
        self.cost.setText(text)

    def _show_empty(self) -> None:
        self.empty.setVisible(not self.state.entries)

    @property
    def rows(self) -> list[LoraRow]:
        """The rows' controls there are now: those in sight, and a few seen last (``LoraList.editors``)."""
        return self.view.editors()

    def row_for(self, name: str) -> LoraRow:
        """The controls of the LoRA named ``name`` (its name, or its name as shown: "style — a"), its row scrolled
        into sight."""
        return self.view.editor(next(i for i, e in enumerate(self.state.entries) if name in (e.name, e.label)))

    # ---- keyboard --------------------------------------------------------------------------------------------

    def _before(self) -> list[QWidget]:
        """The panel's Tab stops before the rows."""
        return [self.add_button, self.add_folder_button, self.cancel_scan_button, self.skipped_button]

    def tab_chain(self) -> list[QWidget]:
        """The panel's Tab stops in layout order as far as there are widgets for them: the add buttons, the Cancel
        of a folder being read and "Skipped files…" (stops only while they show), the controls of the rows that
        have them, Insert trigger words."""
        return [*self._before(), *(w for row in self.rows for w in row.focus_chain), self.insert_button]

    def _chain_tabs(self) -> None:
        """Qt's own Tab order through the panel as ``tab_chain`` (rows' controls are made after "Insert trigger
        words", and Tab went there first); ``focusNextPrevChild`` goes on to the rows without controls yet."""
        chain = self.tab_chain()
        if chain != self._tab_chain:
            self._tab_chain = chain
            for first, second in pairwise(chain):
                QWidget.setTabOrder(first, second)

    def focusNextPrevChild(self, next: bool) -> bool:  # noqa: A002 (Qt's name)
        """Tab and Shift+Tab from a stop of the panel go to the next one in its order, through every row in turn,
        scrolling it into sight (the rows out of sight have no controls for Qt's own order to go to); past the
        first or last stop, on to the panels around it. Qt asks this too, not for Tab, for a place for the focus
        of a widget being hidden or greyed: see ``_focus_off_gone``."""
        focused = QApplication.focusWidget()
        if focused is not None and not (focused.isVisible() and focused.isEnabled()):
            return self._focus_off_gone(focused, next)
        at = self._stop_of(focused)
        while at is not None:
            at = self._step(at, 1 if next else -1)
            widget = None if at is None else self._widget(at)
            if widget is not None and widget.isEnabled() and widget.isVisibleTo(self):
                reason = Qt.FocusReason.TabFocusReason if next else Qt.FocusReason.BacktabFocusReason
                widget.setFocus(reason)
                return True
        return super().focusNextPrevChild(next)

    def _focus_off_gone(self, focused: QWidget, next: bool) -> bool:  # noqa: A002 (Qt's name)
        """The focus of a button of the panel's top being hidden or greyed goes to the next one there that shows,
        else the one before: from "Add folder…" to the Cancel of the folder it reads, from Cancel as the reading
        ends or "Skipped files…" as its words go to "Add folder…". The panel's order went on to row 0, scrolling
        the list to the top of a user looking further down it. Others as Qt does."""
        buttons = self._before()
        if focused not in buttons:
            return super().focusNextPrevChild(next)
        at = buttons.index(focused)
        for button in [*buttons[at + 1 :], *reversed(buttons[:at])]:
            if button.isEnabled() and button.isVisibleTo(self):
                button.setFocus(Qt.FocusReason.OtherFocusReason)
                return True
        return super().focusNextPrevChild(next)

    def _stop_of(self, widget: QWidget | None) -> Stop | None:
        if widget is None:
            return None
        if widget is self.insert_button:
            return ("button", -1)
        if widget in self._before():
            return ("button", self._before().index(widget))
        at = self.view.focus_stop()
        return None if at is None else ("row", *at)

    def _step(self, at: Stop, step: int) -> Stop | None:
        """The place after (``step`` 1) or before (-1) ``at`` in the panel's Tab order; None past its ends."""
        count, before = len(self.state.entries), len(self._before())
        if at[0] == "button" and at[1] < 0:  # Insert trigger words, after the rows
            if step > 0:
                return None
            return ("row", count - 1, -1) if count else ("button", before - 1)
        if at[0] == "button":
            index = at[1] + step
            if index < 0:
                return None
            if index < before:
                return ("button", index)
            return ("row", 0, 0) if count else ("button", -1)
        row, control = at[1], at[2]
        stops = len(self.view.editor(row).focus_chain)
        control = control % stops + step
        if 0 <= control < stops:
            return ("row", row, control)
        if 0 <= row + step < count:
            return ("row", row + step, 0 if step > 0 else -1)
        return ("button", -1) if step > 0 else ("button", before - 1)

    def _widget(self, at: Stop) -> QWidget:
        if at[0] == "button":
            return self.insert_button if at[1] < 0 else self._before()[at[1]]
        return self.view.editor(at[1]).focus_chain[at[2]]

    # ---- actions ---------------------------------------------------------------------------------------------

    def insert_triggers(self) -> None:
        self.controller.prompt.add_words(self.state.trigger_text())

    def _add_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add LoRA files", "", safetensors_filter("LoRA files"),
                                                options=QFileDialog.Option.HideNameFilterDetails)  # fmt: skip
        if files:
            self.controller.add_loras(files)

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of LoRAs")
        if folder:
            self.controller.add_lora_folder(folder)
