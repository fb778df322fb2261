"""The quantize wizard's result page: original and quantized images side by side with PSNR/SSIM, and the
new model's Add to library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QVBoxLayout, QWidget, QWizardPage

from app.bindings import bind
from app.plain_text import plain_label
from app.quantize_worker import Comparison
from app.widgets.quantize_labels import warning_label

if TYPE_CHECKING:
    from app.quantize_run_state import QuantizeRunState
    from app.widgets.quantize_wizard import QuantizeWizard

# What Add to library says at each step of the result's add (``QuantizeRunState.add_step``)
ADD_BUTTON_TEXT = {"": "Add to library", "adding": "Adding…", "added": "Added"}


class ResultPage(QWizardPage):
    """The finished run (``run``, the wizard's): its comparison images and scores, and Add to library."""
    def __init__(self, wizard: QuantizeWizard, run: QuantizeRunState) -> None:
        super().__init__()
        self.setTitle("Result")
        self.summary = plain_label()  # it names the model's file
        self.summary.setWordWrap(True)
        bind(run, "summary", self.summary)
        self.parts_left = warning_label()  # the run's parts folder, kept with the user's files in it (the engine's)
        self.parts_left.hide()
        run.parts_left_changed.connect(self._show_parts_left)
        self.grid = QGridLayout()
        self.add_button = QPushButton("Add to library")
        self.add_button.clicked.connect(wizard.add_to_library)
        run.add_step_changed.connect(self._show_add_step)
        run.compared.connect(self.show_comparisons)
        run.started_over.connect(self.clear)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.parts_left)
        holder = QWidget()
        holder.setLayout(self.grid)
        layout.addWidget(holder, 1)
        layout.addWidget(self.add_button)

    def _show_parts_left(self, text: str) -> None:
        self.parts_left.setText(text)
        self.parts_left.setVisible(bool(text))

    def _show_add_step(self, step: str) -> None:
        self.add_button.setEnabled(step == "")
        self.add_button.setText(ADD_BUTTON_TEXT[step])

    def clear(self) -> None:
        """Back to an empty grid for a new run: the images of an earlier run in this wizard (Back from the result
        page, then run again) would otherwise stay beside or under the new ones (the words are the run's)."""
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().deleteLater()

    def show_comparisons(self, items: list[Comparison]) -> None:
        """Lays out ``items`` (prompt, 16-bit and quantized images, PSNR/SSIM; the run sums them up)."""
        with_original = any(item.original is not None for item in items)
        titles = ("Prompt", "Original", "Quantized", "PSNR / SSIM") if with_original else ("Prompt", "Quantized")
        for col, title in enumerate(titles):
            self.grid.addWidget(QLabel(f"<b>{title}</b>"), 0, col)
        for row, item in enumerate(items, start=1):
            prompt = plain_label(item.prompt)  # a calibration prompt, from the model's own file
            prompt.setWordWrap(True)
            self.grid.addWidget(prompt, row, 0)
            images = ((1, item.original), (2, item.quantized)) if with_original else ((1, item.quantized),)
            for col, image in images:
                if image is None:
                    continue
                label = QLabel()
                label.setPixmap(QPixmap.fromImage(image).scaled(
                    128, 128, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))
                self.grid.addWidget(label, row, col)
            if item.psnr is not None and item.ssim is not None:
                self.grid.addWidget(QLabel(f"{item.psnr:.1f} dB / {item.ssim:.3f}"), row, 3)
