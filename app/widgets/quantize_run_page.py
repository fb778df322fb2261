"""The quantize wizard's run page: the progress of a run, its log, and what a failed or stopped run left."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QLabel, QPlainTextEdit, QProgressBar, QPushButton, QVBoxLayout, QWizardPage

from app.engine_errors import EngineError
from app.quantize_run_state import FAILED, FINISHED
from app.quantize_worker import QuantizeProgress
from app.widgets.quantize_labels import message_label, problem_label
from app.wording import sentence

if TYPE_CHECKING:
    from app.quantize_run_state import QuantizeRunState
    from app.quantize_run_turns import QuantizeRunTurns


class RunPage(QWizardPage):
    """A run under way (``run``, the wizard's, started and cancelled by ``turns``): its progress bar, time left, log
    and Stop; what a failed or stopped run left."""
    def __init__(self, run: QuantizeRunState, turns: QuantizeRunTurns) -> None:
        super().__init__()
        self.setTitle("Quantizing")
        self.turns = turns
        self.bar = QProgressBar()
        self.eta = QLabel("")
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(5000)
        # "Stop", not a second "Cancel" beside the wizard's (which closes the wizard, the run stopped too)
        self.cancel_button = QPushButton("Stop")
        self.cancel_button.setToolTip("Stop the run: its finished blocks are kept, and a run with the same settings "
                                      "resumes from them")  # fmt: skip
        self.cancel_button.clicked.connect(turns.cancel)
        turns.cancel_taken.connect(lambda: self.cancel_button.setEnabled(False))
        self.error = problem_label()  # the engine's own words for a failed run, on the page, not only in a dialog
        self.error.hide()
        # What a run that ended unfinished left in its parts folder, on the page: said only in the log, among
        # hundreds of lines, the user's files kept there went unseen.
        self.note = message_label("palette(text)")
        self.note.hide()
        layout = QVBoxLayout(self)
        layout.addWidget(self.bar)
        layout.addWidget(self.eta)
        layout.addWidget(self.error)
        layout.addWidget(self.note)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.cancel_button)
        self.ok = False
        run.logged.connect(self.log.appendPlainText)
        run.left.connect(self.left)
        run.ended.connect(self.end)
        run.failed.connect(self.failed)

    def initializePage(self) -> None:
        """Shown: the page starts empty, and the run starts."""
        self.ok = False
        self.error.hide()
        self.note.hide()
        self.cancel_button.setEnabled(True)
        self.log.clear()
        self.bar.setRange(0, 0)
        self.turns.start()

    def isComplete(self) -> bool:
        """Next is offered once the run finished with a model."""
        return self.ok

    def on_progress(self, event: QuantizeProgress) -> None:
        """Shows a progress ``event`` of the worker: the bar, the time left, and its message in the log."""
        if event.total:
            self.bar.setRange(0, event.total)
            self.bar.setValue(event.index)
        # Only the layers carry a time left: any other event starts a stage the layers' estimate is not of (the
        # writing of the model, the comparison renders), where "About 0 min 0 s left" stayed for minutes.
        eta = event.eta_s
        self.eta.setText(f"About {int(eta) // 60} min {int(eta) % 60} s left" if eta is not None else "")
        if event.message:
            self.log.appendPlainText(event.message)

    def end(self, how: str, ok: bool) -> None:
        """The run ended (``QuantizeRunState.ended``): the bar stops (full once finished; as it was after a
        failure), and Next is offered when it left a model (``ok``)."""
        if how != FAILED:
            self.bar.setRange(0, 1)
        if how == FINISHED:
            self.bar.setValue(1)
        self.ok = ok
        self.cancel_button.setEnabled(False)
        self.eta.setText("")  # "About 0 min 5 s left" stayed after a cancel or a failure
        self.completeChanged.emit()

    def failed(self, error: EngineError, settings_can_fix: bool) -> None:
        """``settings_can_fix``: False for what no page of the wizard changes (the models folder, an internal
        error), where "Go back to change the settings" sent the user looking for a setting there is not."""
        hint = f" {sentence(error.hint)}" if error.hint else ""
        back = " Go back to change the settings." if settings_can_fix else ""
        self.error.setText(f"The run failed: {sentence(error.message, capital=False)}{hint}{back}")
        self.error.show()

    def left(self, note: str) -> None:
        """Shows ``note``, what a run that ended unfinished left for the next one (``QuantizeRunState.left_note``)."""
        self.note.setText(note)
        self.note.setVisible(bool(note))
