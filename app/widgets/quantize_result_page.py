"""The quantize wizard's result page: original and quantized images side by side with PSNR/SSIM, and the
new model's Add to library."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QVBoxLayout, QWidget, QWizardPage

from app.plain_text import plain_label
from app.quantize_worker import Comparison
from app.widgets.quantize_labels import warning_label

if TYPE_CHECKING:
    from app.widgets.quantize_wizard import QuantizeWizard


class ResultPage(QWizardPage):
    """The finished run: its comparison images and scores, and Add to library."""
    def __init__(self, wizard: QuantizeWizard) -> None:
        super().__init__()
        self.setTitle("Result")
        self.wiz = wizard
        self.summary = plain_label()  # it names the model's file
        self.summary.setWordWrap(True)
        self.parts_left = warning_label()  # the run's parts folder, kept with the user's files in it (the engine's)
        self.parts_left.hide()
        self.grid = QGridLayout()
        self.add_button = QPushButton("Add to library")
        self.add_button.clicked.connect(wizard.add_to_library)
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.parts_left)
        holder = QWidget()
        holder.setLayout(self.grid)
        layout.addWidget(holder, 1)
        layout.addWidget(self.add_button)

    def clear(self) -> None:
        """Back to an empty page for a new run: the images, summary and "Added" of an earlier run in this wizard
        (Back from the result page, then run again) would otherwise stay beside or under the new ones."""
        while self.grid.count():
            item = self.grid.takeAt(0)
            if item is not None and item.widget() is not None:
                item.widget().deleteLater()
        self.summary.setText("")
        self.parts_left.setText("")
        self.parts_left.hide()
        self.add_button.setEnabled(True)
        self.add_button.setText("Add to library")

    def show_comparisons(self, items: list[Comparison]) -> None:
        """Lays out ``items`` (prompt, 16-bit and quantized images, PSNR/SSIM) and sums them up in the summary."""
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
        scored = [i for i in items if i.psnr is not None and i.ssim is not None]
        if scored:
            mean_psnr = sum(i.psnr or 0.0 for i in scored) / len(scored)
            mean_ssim = sum(i.ssim or 0.0 for i in scored) / len(scored)
            self.summary.setText(f"Saved to {self.wiz.out_path}. Mean PSNR {mean_psnr:.1f} dB, "
                                 f"mean SSIM {mean_ssim:.3f} (higher is closer to the original).")
        elif items:
            self.summary.setText(f"Saved to {self.wiz.out_path}. {self.wiz.no_original_reason()}")
