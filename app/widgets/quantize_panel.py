"""Quantization panel: explains what quantizing does and opens the "Quantize this model" wizard."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QPushButton, QVBoxLayout, QWidget

from app.controller import AppController
from app.widgets.wrapped_label import WrappedLabel

if TYPE_CHECKING:
    from app.widgets.quantize_wizard import QuantizeWizard


class QuantizePanel(QWidget):
    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.wizard: QuantizeWizard | None = None
        # The wizards open, and those closed whose quantize thread may still be finishing a cancelled job (a QThread
        # destroyed while running aborts the whole app at exit, so shutdown() stops them all). A closed one is let go
        # of once nothing of it works any more (``QuantizeWizard.let_go``): kept, each held its pages and states for
        # the whole session.
        self._wizards: list[QuantizeWizard] = []
        # Never squeezed below its lines (a plain word-wrapped label lost its first and last lines in a short dock).
        text = WrappedLabel(
            "Make a 4-bit copy of a model (SVDQuant): about 3.5× smaller, runs on laptop GPUs, almost the same images."
        )
        self.open_button = QPushButton("Quantize this model…")
        self.open_button.clicked.connect(self.open_wizard)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.open_button)
        layout.addStretch(1)

    def open_wizard(self) -> None:
        from app.widgets.quantize_wizard import QuantizeWizard

        if self.wizard is None or not self.wizard.isVisible():
            # A wizard closed mid-run may still be stopping its run: the new one's run waits for it.
            self.wizard = QuantizeWizard(self.controller, self.window(), earlier=self._wizards)
            self.wizard.let_go.connect(functools.partial(self._let_go, self.wizard))
            self._wizards.append(self.wizard)
        self.wizard.show()
        self.wizard.raise_()

    def _let_go(self, wizard: QuantizeWizard) -> None:
        """Forgets the closed ``wizard`` (``QuantizeWizard.let_go``), which Qt deletes."""
        self._wizards.remove(wizard)
        if self.wizard is wizard:
            self.wizard = None
        wizard.deleteLater()

    def shutdown(self) -> None:
        for wizard in list(self._wizards):  # one stopped here may be let go of
            wizard.shutdown()
