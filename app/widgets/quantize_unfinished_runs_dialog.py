"""The quantize wizard's Unfinished runs dialog: the parts folders of runs that did not finish, listed, and
one deleted when asked."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from app.background import Lookup
from app.engine_errors import classify
from app.plain_text import plain_label, plain_tooltip
from app.widgets.error_dialog import show_error
from app.wording import counted, human_bytes

if TYPE_CHECKING:
    from app.quantize_unfinished_runs import UnfinishedRuns
    from app.widgets.quantize_wizard import QuantizeWizard


class UnfinishedRunsDialog(QDialog):
    """The unfinished runs in the models folder (their ``.parts`` folders: finished blocks and samples, GiBs each):
    name, size, when last written, finished blocks, and whether the wizard's settings resume it (``unfinished``,
    the wizard's). Delete… asks first, naming the run and its size."""

    COLUMNS = ("Model file", "Size", "Last written", "Finished blocks", "With these settings")

    def __init__(self, wizard: QuantizeWizard, unfinished: UnfinishedRuns) -> None:
        super().__init__(wizard)
        self.setWindowTitle("Unfinished runs")
        self.wiz = wizard
        self.unfinished = unfinished
        self.runs: list[Any] = []  # gpu.streaming.unfinished.UnfinishedRun, as the table shows them
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        why = plain_label(f"Runs that were stopped or failed keep their finished work in {unfinished.folder}, "
                          "so that a run with the same settings resumes from it. Delete the ones you will not resume.")
        why.setWordWrap(True)
        self.status = plain_label()  # what is under way: the runs being read, one being deleted
        self.status.setWordWrap(True)
        self._listing: Lookup | None = None  # the runs being read, while it runs (an older one's end is dropped)
        unfinished.lookups.ended.connect(self._on_listed)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.clicked.connect(self.delete_selected)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.addButton(self.delete_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(why)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.resize(760, 320)
        self.refresh()

    def refresh(self) -> None:
        """Reads the unfinished runs again, on a thread (with the settings, the source is read and hashed); the
        table shows them once read (``_on_listed``)."""
        self._listing = self.unfinished.list_runs(with_settings=True)
        self._show_status()

    def _show_status(self) -> None:
        deleting = self.unfinished.deleting
        self.status.setText(f"Deleting {deleting.run.parts}…" if deleting is not None else
                            "Reading the unfinished runs…" if self._listing is not None else "")  # fmt: skip
        self._selection_changed()

    def done(self, result: int) -> None:
        """Closes the dialog, dropping a listing still under way."""
        # Closed: a listing still under way is dropped, and none reaches it any more (each opening makes a new
        # dialog; a closed one went on taking its late listing, and popped a failed one's error over nothing).
        self.unfinished.lookups.ended.disconnect(self._on_listed)
        self._listing = None
        super().done(result)

    def _on_listed(self, lookup: Lookup) -> None:
        if lookup is not self._listing:  # another dialog's, or read again since
            return
        self._listing = None
        if lookup.error is not None:
            self.runs = []
            self.wiz.error_dialog = show_error(self, classify(lookup.error))
        else:
            self.runs = lookup.result
        self._fill()

    def _fill(self) -> None:
        self.table.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            resumes = ("resumes" if run.resumes else "–" if run.resumes is None else
                       f"starts over ({run.differs})")  # fmt: skip
            cells = (run.output.name, human_bytes(run.size_bytes),
                     time.strftime("%Y-%m-%d %H:%M", time.localtime(run.modified)), str(run.blocks_done), resumes)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(plain_tooltip(str(run.parts) if col == 0 else text))
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self._show_status()

    def _selection_changed(self) -> None:
        idle = self._listing is None and self.unfinished.deleting is None
        self.delete_button.setEnabled(idle and bool(self.table.selectionModel().selectedRows()))

    def delete_selected(self) -> None:
        """Deletes the selected run once the user confirms it, naming it and its size."""
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        run = self.runs[rows[0].row()]
        blocks = f", with its {counted(run.blocks_done, 'finished block')}," if run.blocks_done else ""
        box = QMessageBox(QMessageBox.Icon.Question, "Delete unfinished run?",
                          f"Delete the unfinished run {run.output.name} ({human_bytes(run.size_bytes)})? Its folder "
                          f"{run.parts}{blocks} is deleted, and no run can resume from it afterwards.",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)  # fmt: skip
        box.setTextFormat(Qt.TextFormat.PlainText)  # it names the run's files: never drawn as HTML (app.plain_text)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.exec()
        if box.clickedButton() is not box.button(QMessageBox.StandardButton.Yes):
            return
        self.unfinished.delete(run)  # on a thread (GiBs); the list is read again once it is done
        self._show_status()
