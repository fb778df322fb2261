"""The "Quantize this model" wizard: source → method/precision → calibration and memory → run → result.

The run page drives ``app.quantize_worker`` on its own thread; the result page shows original vs quantized
images side by side with PSNR/SSIM and adds the new file to the library.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
    QWizard,
    QWizardPage,
)

from app.background import Lookup, Lookups
from app.bindings import bind
from app.controller import AppController
from app.engine_errors import EngineError, classify
from app.quantize_outputs import (
    Deletion,
    Named,
    default_ram_budget_gib,
    delete_unfinished_run,
    installed_ram_bytes,
    kept_note,
    name_run_output,
    not_deleted,
    output_name,
    unfinished_runs,
    unfinished_summary,
)
from app.quantize_source import CalibrationSet, QuantizeSource, no_comparison_reason, output_stem
from app.quantize_worker import Comparison, QuantizeJob, QuantizeProgress, QuantizeThread, release_claim, run_error
from app.widgets.error_dialog import show_error
from app.widgets.file_filters import safetensors_filter
from app.wording import counted, human_bytes, sentence
from gpu.errors import UserError
from gpu.quantize_defaults import (
    DEFAULT_ALPHA_POINTS,
    DEFAULT_CALIB_PROMPTS,
    DEFAULT_GPU_BUDGET_GIB,
    DEFAULT_RANK,
    MAX_ALPHA_POINTS,
    RANK_METHODS,
    SMOOTHING_METHODS,
)

log = logging.getLogger(__name__)


PRECISIONS = [("INT4 (W4A4, recommended)", "int4"), ("NVFP4 (Blackwell GPUs)", "nvfp4"), ("INT8 (W8A8)", "int8")]
METHODS = [
    ("SVDQuant (low-rank + smoothing)", "svdquant"),
    ("Baseline: round-to-nearest", "naive"),
    ("Baseline: SmoothQuant", "smoothquant"),
    ("Baseline: low-rank only (SVD)", "svd"),
    ("Baseline: LoRC", "lorc"),
    ("Baseline: NF4 weights only", "nf4"),
]
# The wizard's most prompts (a run takes minutes per 100 with FLUX); fewer where the chosen source's set has fewer
MAX_PROMPTS = 512
# A run on the GPU while the engine generates (QuantizeWorker.run waits for it; the GPU holds one or the other).
GENERATION_WAIT = ("Waiting for the current generation job to finish (a batch may be several images): the GPU "
                   "cannot hold its model and this run at once. The run starts by itself then; to start it now, "
                   "cancel the job with Esc in the main window. Images you ask for meanwhile wait for this "
                   "run.")  # fmt: skip


def _message_label(color: str) -> QLabel:
    label = QLabel("")
    label.setWordWrap(True)
    label.setStyleSheet(f"color: {color}")
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # a path or tensor name to copy
    return label


def _problem_label() -> QLabel:
    return _message_label("#c0392b")


def _warning_label() -> QLabel:
    """Amber, not red: something the user may want to change, which does not stop them going on."""
    return _message_label("#b9770e")


def _select(combo: QComboBox, value: str) -> None:
    """Shows ``value`` in ``combo`` without reporting it back: the state it came from has it already."""
    combo.blockSignals(True)
    combo.setCurrentIndex(max(0, combo.findData(value)))
    combo.blockSignals(False)


class SourcePage(QWizardPage):
    """A library pipeline, a pipeline folder, or a single .safetensors file with its base pipeline; the checks
    and the choice itself live in ``QuantizeSource``."""

    def __init__(self, controller: AppController, state: QuantizeSource) -> None:
        super().__init__()
        self.setTitle("Source model")
        self.setSubTitle("Pick the full-precision model to make a 4-bit copy of: a library model, a diffusers "
                         "folder, or a single FLUX.1 .safetensors file (as used by ComfyUI and Forge).")
        self.state = state
        self.source = QComboBox()
        self.source.setEditable(False)
        for entry in controller.entries:
            if getattr(entry, "kind", "") == "diffusers":
                self.source.addItem(entry.name, entry.name)
        # "Quantize this model": the model selected in the Models panel, when it is one that can be quantized
        # (was always the library's first, so a user who picked their own model quantized the demo instead).
        self.source.setCurrentIndex(max(0, self.source.findData(controller.prompt.model)))  # state.choose below
        self.source.currentIndexChanged.connect(lambda _: state.choose(self.source.currentData() or ""))
        browse = QPushButton("Other folder…")
        browse.clicked.connect(self._browse)
        pick_file = QPushButton("Single file…")
        pick_file.setToolTip("A FLUX.1 transformer in one .safetensors file: Black Forest Labs' flux1-dev layout "
                             "or a ComfyUI checkpoint (fine-tunes from Civitai are usually one of these)")
        pick_file.clicked.connect(self._browse_file)
        row = QHBoxLayout()
        row.addWidget(self.source, 1)
        row.addWidget(browse)
        row.addWidget(pick_file)
        self.description = QLabel("")
        self.description.setWordWrap(True)
        self.problem = _problem_label()
        self.checking = QLabel("Checking the file…")

        self.base_box = QWidget()
        self.base = QComboBox()
        self.base.currentIndexChanged.connect(lambda _: state.choose_base(self.base.currentData() or ""))
        base_browse = QPushButton("Other folder…")
        base_browse.clicked.connect(self._browse_base)
        base_row = QHBoxLayout()
        base_row.addWidget(QLabel("Base pipeline"))
        base_row.addWidget(self.base, 1)
        base_row.addWidget(base_browse)
        why = QLabel("A single file holds only the transformer. The text encoders, tokenizers and scheduler that "
                     "calibrate it come from this diffusers pipeline, and the quantized model generates with them.")
        why.setWordWrap(True)
        self.base_problem = _problem_label()
        self.base_warning = _warning_label()  # a dev-style file with a schnell-style base, or the reverse
        base_layout = QVBoxLayout(self.base_box)
        base_layout.setContentsMargins(0, 8, 0, 0)
        base_layout.addLayout(base_row)
        base_layout.addWidget(why)
        base_layout.addWidget(self.base_problem)
        base_layout.addWidget(self.base_warning)

        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.description)
        layout.addWidget(self.checking)
        layout.addWidget(self.problem)
        layout.addWidget(self.base_box)
        layout.addStretch(1)

        bind(state, "description", self.description)
        bind(state, "problem", self.problem)
        bind(state, "base_problem", self.base_problem)
        bind(state, "base_warning", self.base_warning)
        for name, label in (("description", self.description), ("problem", self.problem),
                            ("base_problem", self.base_problem), ("base_warning", self.base_warning)):  # fmt: skip
            self._show(label, getattr(state, name))
            getattr(state, f"{name}_changed").connect(lambda text, label=label: self._show(label, text))
        state.checking_changed.connect(self.checking.setVisible)
        self.checking.setVisible(state.checking)
        state.needs_base_changed.connect(self.base_box.setVisible)
        self.base_box.setVisible(state.needs_base)
        state.bases_changed.connect(self._fill_bases)
        state.base_changed.connect(lambda value: _select(self.base, value))
        state.ready_changed.connect(lambda _: self.completeChanged.emit())
        self._fill_bases()
        state.choose(self.source.currentData() or "")

    @staticmethod
    def _show(label: QLabel, text: str) -> None:
        label.setVisible(bool(text))  # an empty label would still take a line

    def _fill_bases(self) -> None:
        self.base.blockSignals(True)
        self.base.clear()
        self.base.addItem("Choose the base pipeline…", "")
        for label, value, _folder in self.state.bases:
            self.base.addItem(label, value)
        self.base.blockSignals(False)
        _select(self.base, self.state.base)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "A diffusers model folder")
        if folder:
            self.use_path(folder)

    def _browse_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A single-file FLUX.1 checkpoint", "",
                                              safetensors_filter("Safetensors files"))  # fmt: skip
        if path:
            self.use_path(path)

    def _browse_base(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "The diffusers FLUX.1 pipeline the file was made for")
        if folder:
            self.state.add_base_folder(folder)

    def use_path(self, path: str) -> None:
        """A folder or file picked in a dialog (or by a test) becomes the source."""
        index = self.source.findData(path)
        if index < 0:
            self.source.addItem(Path(path).name or path, path)
            index = self.source.count() - 1
        if index == self.source.currentIndex():
            self.state.choose(path)  # picked again: checked again (the file may have been replaced)
        self.source.setCurrentIndex(index)

    def isComplete(self) -> bool:
        return self.state.ready

    def validatePage(self) -> bool:
        return self.state.ready  # QWizard.next() asks only this, not isComplete (which greys the button)

    def value(self) -> str:
        return self.state.source


class MethodPage(QWizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Method and precision")
        self.setSubTitle("INT4 with SVDQuant is the right choice for nearly everyone; baselines are for comparison.")
        self.method = QComboBox()
        for label, value in METHODS:
            self.method.addItem(label, value)
        self.precision = QComboBox()
        for label, value in PRECISIONS:
            self.precision.addItem(label, value)
        # 0 is a setting of its own (the engine takes it: no branch at all), said in the field, where a bare 0
        # read as the smallest branch.
        self.rank = QSpinBox(minimum=0, maximum=256, value=DEFAULT_RANK, singleStep=8,
                             specialValueText="0 (no low-rank branch)")  # fmt: skip
        self.rank.setToolTip(
            f"Size of the 16-bit low-rank branch that absorbs outliers ({DEFAULT_RANK} is the paper's default). "
            "0 makes no branch (SVDQuant is then smoothing alone)."
        )
        self.alpha_points = QSpinBox(minimum=2, maximum=MAX_ALPHA_POINTS, value=DEFAULT_ALPHA_POINTS)
        self.alpha_points.setToolTip(
            "How many smoothing strengths (alpha, evenly from 0 to 1) SVDQuant and SmoothQuant try for each layer, "
            f"keeping the one with the smallest error: {DEFAULT_ALPHA_POINTS} tries 0, 0.1, ..., 1. Fewer quantize "
            "faster and may pick a slightly worse alpha; more rarely help."
        )
        self.shared_smoothing = QCheckBox("Smooth Q/K/V together")
        self.shared_smoothing.setChecked(True)
        self.shared_smoothing.setToolTip(
            "One smoothing vector for the attention projections that read the same input, so the GPU runs them as "
            "one fused matrix multiply. Unchecked: each layer smoothed on its own, slightly closer to the original "
            "(demo model: +0.1 to +1 dB PSNR) but slower on GPUs with the fused kernels."
        )
        form = QFormLayout(self)
        form.addRow("Method", self.method)
        form.addRow("Precision", self.precision)
        form.addRow("Low-rank rank", self.rank)
        form.addRow("Alpha search points", self.alpha_points)
        form.addRow("", self.shared_smoothing)
        self.method.currentIndexChanged.connect(self._method_changed)

    def _method_changed(self) -> None:
        # The rank, the alpha search and the shared smoothing exist only for the methods that use them: greyed
        # out otherwise, where they change nothing.
        self.rank.setEnabled(self.method.currentData() in RANK_METHODS)
        smooths = self.method.currentData() in SMOOTHING_METHODS
        self.alpha_points.setEnabled(smooths)
        self.shared_smoothing.setEnabled(smooths)


class CalibrationPage(QWizardPage):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("Calibration and memory")
        self.setSubTitle("Calibration runs the model on a few prompts to see its activations.")
        # Next from here starts the long run (minutes to hours): the button says so. A page's own button text
        # is QWizard's only while the page is shown; the other pages keep "Next >".
        self.setButtonText(QWizard.WizardButton.NextButton, "Quantize")
        self.setButtonText(QWizard.WizardButton.CommitButton, "Quantize")  # while a run works it is a commit page
        # Whose prompts a run of the chosen source calibrates with, and how many there are (``show_calibration``):
        # a "Built-in everyday prompts" choice that did nothing stood here, and the demo model used its own.
        self.prompt_set = QLabel("")
        self.prompt_set.setWordWrap(True)
        self.count = QSpinBox(minimum=1, maximum=MAX_PROMPTS, value=DEFAULT_CALIB_PROMPTS)
        self._wanted = DEFAULT_CALIB_PROMPTS  # the count asked for, kept while a smaller set caps the field
        self.count.valueChanged.connect(self._count_changed)
        self.steps = QSpinBox(minimum=0, maximum=50, value=0)
        self.show_calibration(None)
        # Not 0, which read as "no GPU" and was taken silently like any other budget.
        self.gpu_gib = QDoubleSpinBox(minimum=1.0, maximum=192.0, value=DEFAULT_GPU_BUDGET_GIB, suffix=" GiB")
        self.installed_ram = installed_ram_bytes()
        self.ram_gib = QDoubleSpinBox(minimum=1.0, maximum=1024.0, value=default_ram_budget_gib(self.installed_ram),
                                      suffix=" GiB")  # fmt: skip
        self.ram_warning = _warning_label()
        self.ram_warning.hide()
        self.ram_gib.valueChanged.connect(self._check_ram)
        laptop = QPushButton("16 GB laptop")
        laptop.setToolTip("GPU 14 GiB, RAM 12 GiB: leaves room for the desktop and the browser")
        laptop.clicked.connect(self.laptop_preset)
        form = QFormLayout(self)
        form.addRow("Prompt set", self.prompt_set)
        form.addRow("Prompts", self.count)
        form.addRow("Steps per prompt", self.steps)
        form.addRow("GPU memory budget", self.gpu_gib)
        form.addRow("RAM budget", self.ram_gib)
        form.addRow("", self.ram_warning)
        form.addRow("", laptop)
        # The parts folders of runs that did not finish, GiBs each: the wizard lists them, and deletes one when asked.
        self.unfinished = QLabel("")
        self.unfinished.setWordWrap(True)
        self.unfinished_button = QPushButton("Unfinished runs…")
        row = QHBoxLayout()
        row.addWidget(self.unfinished, 1)
        row.addWidget(self.unfinished_button)
        form.addRow("Unfinished runs", row)

    def show_calibration(self, calibration: CalibrationSet | None) -> None:
        """Shows what a run of the chosen source calibrates with (``QuantizeSource.calibration``; None: not known
        yet): whose prompts and how many, the Prompts field capped to them (a run asking for more used fewer, said
        nowhere), and the steps a run takes by default (the model's, at most 8: the field said "model default")."""
        if calibration is None:
            self.prompt_set.setText("The chosen model's own calibration prompts, else the built-in everyday prompts")
            available, steps, own = MAX_PROMPTS, f"at most {CalibrationSet.STEPS_CAP}", "steps"
        else:
            self.prompt_set.setText(f"{sentence(calibration.prompts)[:-1]} ({calibration.available})")
            available, steps = min(calibration.available, MAX_PROMPTS), str(calibration.default_steps)
            own = f"{calibration.model_steps} steps"
        self.steps.setSpecialValueText(f"default ({steps})")
        self.steps.setToolTip(f"By default the model's own {own}, at most {CalibrationSet.STEPS_CAP}: the calibration "
                              "samples need the timesteps covered, not finished images.")  # fmt: skip
        wanted = self._wanted
        self.count.setMaximum(available)
        self.count.setValue(min(wanted, available))
        self._wanted = wanted  # capped by this set, not asked for: a source with more prompts gets it back

    def _count_changed(self, value: int) -> None:
        self._wanted = value

    def _deleting(self) -> bool:
        """Whether the wizard is deleting an unfinished run (``QuantizeWizard.deleting``): Quantize waits for it."""
        return getattr(self.wizard(), "deleting", None) is not None

    def isComplete(self) -> bool:
        return not self._deleting()

    def validatePage(self) -> bool:
        # A run started meanwhile could take the name of the folder being deleted, whose lock the deletion holds.
        return not self._deleting()  # QWizard.next() asks only this, not isComplete (which greys the button)

    def _check_ram(self) -> None:
        """Warns (a warning: the machine's swap may hold it) when the budget is over the RAM this machine has."""
        installed = self.installed_ram
        over = bool(installed) and self.ram_gib.value() * 2**30 > installed
        self.ram_warning.setVisible(over)
        if over:
            self.ram_warning.setText(
                f"This computer has {installed / 2**30:.1f} GiB of RAM, less than this budget: the activations kept "
                "in RAM would not fit, and the computer would swap or the app be closed. Set the budget to at most "
                f"{default_ram_budget_gib(installed):g} GiB (the activations that do not fit go to disk).")  # fmt: skip

    def laptop_preset(self) -> None:
        self.gpu_gib.setValue(14.0)
        self.ram_gib.setValue(12.0)


class RunPage(QWizardPage):
    def __init__(self, wizard: QuantizeWizard) -> None:
        super().__init__()
        self.setTitle("Quantizing")
        self.wiz = wizard
        self.bar = QProgressBar()
        self.eta = QLabel("")
        self.log = QPlainTextEdit(readOnly=True)
        self.log.setMaximumBlockCount(5000)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(wizard.cancel)
        self.error = _problem_label()  # the engine's own words for a failed run, on the page, not only in a dialog
        self.error.hide()
        # What a run that ended unfinished left in its parts folder, on the page: said only in the log, among
        # hundreds of lines, the user's files kept there went unseen.
        self.note = _message_label("palette(text)")
        self.note.hide()
        layout = QVBoxLayout(self)
        layout.addWidget(self.bar)
        layout.addWidget(self.eta)
        layout.addWidget(self.error)
        layout.addWidget(self.note)
        layout.addWidget(self.log, 1)
        layout.addWidget(self.cancel_button)
        self.ok = False

    def initializePage(self) -> None:
        self.ok = False
        self.error.hide()
        self.note.hide()
        self.cancel_button.setEnabled(True)
        self.log.clear()
        self.bar.setRange(0, 0)
        self.wiz.start()

    def isComplete(self) -> bool:
        return self.ok

    def on_progress(self, event: QuantizeProgress) -> None:
        if event.total:
            self.bar.setRange(0, event.total)
            self.bar.setValue(event.index)
        if event.eta_s is not None:
            self.eta.setText(f"About {int(event.eta_s) // 60} min {int(event.eta_s) % 60} s left")
        if event.message:
            self.log.appendPlainText(event.message)

    def finish(self, ok: bool) -> None:
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
        """Shows ``note``, what a run that ended unfinished left for the next one (``QuantizeWizard.left_note``)."""
        self.note.setText(note)
        self.note.setVisible(bool(note))


class ResultPage(QWizardPage):
    def __init__(self, wizard: QuantizeWizard) -> None:
        super().__init__()
        self.setTitle("Result")
        self.wiz = wizard
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.parts_left = _warning_label()  # the run's parts folder, kept with the user's files in it (the engine's)
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
        with_original = any(item.original is not None for item in items)
        titles = ("Prompt", "Original", "Quantized", "PSNR / SSIM") if with_original else ("Prompt", "Quantized")
        for col, title in enumerate(titles):
            self.grid.addWidget(QLabel(f"<b>{title}</b>"), 0, col)
        for row, item in enumerate(items, start=1):
            prompt = QLabel(item.prompt)
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


class UnfinishedRunsDialog(QDialog):
    """The unfinished runs in the models folder (their ``.parts`` folders: finished blocks and samples, GiBs each):
    name, size, when last written, finished blocks, and whether the wizard's settings resume it. Delete… asks
    first, naming the run and its size."""

    COLUMNS = ("Model file", "Size", "Last written", "Finished blocks", "With these settings")

    def __init__(self, wizard: QuantizeWizard) -> None:
        super().__init__(wizard)
        self.setWindowTitle("Unfinished runs")
        self.wiz = wizard
        self.runs: list[Any] = []  # gpu.streaming.unfinished.UnfinishedRun, as the table shows them
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        why = QLabel(f"Runs that were stopped or failed keep their finished work in {wizard.models_folder()}, so that "
                     "a run with the same settings resumes from it. Delete the ones you will not resume.")
        why.setWordWrap(True)
        self.status = QLabel("")  # what is under way: the runs being read, one being deleted
        self.status.setWordWrap(True)
        self._listing: Lookup | None = None  # the runs being read, while it runs (an older one's end is dropped)
        wizard.lookups.ended.connect(self._on_listed)
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
        self._listing = self.wiz.list_unfinished_runs(with_settings=True)
        self._show_status()

    def _show_status(self) -> None:
        deleting = self.wiz.deleting
        self.status.setText(f"Deleting {deleting.run.parts}…" if deleting is not None else
                            "Reading the unfinished runs…" if self._listing is not None else "")  # fmt: skip
        self._selection_changed()

    def done(self, result: int) -> None:
        # Closed: a listing still under way is dropped, and none reaches it any more (each opening makes a new
        # dialog; a closed one went on taking its late listing, and popped a failed one's error over nothing).
        self.wiz.lookups.ended.disconnect(self._on_listed)
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
                item.setToolTip(str(run.parts) if col == 0 else text)
                self.table.setItem(row, col, item)
        self.table.resizeColumnsToContents()
        self._show_status()

    def _selection_changed(self) -> None:
        idle = self._listing is None and self.wiz.deleting is None
        self.delete_button.setEnabled(idle and bool(self.table.selectionModel().selectedRows()))

    def delete_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return
        run = self.runs[rows[0].row()]
        blocks = f", with its {counted(run.blocks_done, 'finished block')}," if run.blocks_done else ""
        box = QMessageBox(QMessageBox.Icon.Question, "Delete unfinished run?",
                          f"Delete the unfinished run {run.output.name} ({human_bytes(run.size_bytes)})? Its folder "
                          f"{run.parts}{blocks} is deleted, and no run can resume from it afterwards.",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)  # fmt: skip
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.exec()
        if box.clickedButton() is not box.button(QMessageBox.StandardButton.Yes):
            return
        self.wiz.delete_run(run)  # on a thread (GiBs); the list is read again once it is done
        self._show_status()


class QuantizeWizard(QWizard):
    _run = Signal(object)  # queued to the worker thread
    run_ended = Signal()  # the run (or the wait for an earlier wizard's) is over: finished, cancelled or failed
    # A naming dropped by a cancel (``_dropped``) let go of the name it claimed: later wizards' runs wait for it
    naming_let_go = Signal()

    def __init__(self, controller: AppController, parent: QWidget | None = None,
                 earlier: Sequence[QuantizeWizard] = ()) -> None:  # fmt: skip
        """``earlier``: wizards opened before this one, whose runs may still be stopping after they were closed;
        a run here waits for them (two runs would compete for memory, and for the output file's lock when
        they write the same name, which the engine then refuses as "being written by another quantize run")."""
        super().__init__(parent)
        self.setObjectName("quantizeWizard")
        self.setWindowTitle("Quantize this model")
        self.controller = controller
        self.job: QuantizeJob | None = None
        self.out_path: Path | None = None
        self.result_path: str | None = None
        self.added_name: str | None = None  # the library's name for the result (not always its file's stem)
        # The number of the add that handed the result to the library (AppController.add_model), until it ends:
        # only that add's end is this wizard's (not another add's, nor any error, which the controller sends too).
        self._adding: int | None = None
        controller.add_ended.connect(self._on_add_ended)
        self.comparisons: list[Comparison] = []
        self.error_dialog: QMessageBox | None = None
        self.compare_steps: int | None = None  # tests use few steps
        self.running = False  # a job is on the worker thread, or waiting for an earlier wizard's to stop
        self._waiting = False  # ... waiting, not yet handed to the worker
        self._earlier = list(earlier)
        # The models folder is looked at on threads (``Lookups``): the output name of a run (``_naming``),
        # the calibration page's count of unfinished runs (``_summary``), the deletion of one (``deleting``).
        self.lookups = Lookups("Quantize", self)
        self.lookups.ended.connect(self._on_lookup_ended)
        self._naming: Lookup | None = None
        self._name: Callable[[], None] | None = None  # the naming of a run that waits for an earlier wizard's
        # A naming cancelled while it ran: its thread goes on (it cannot be stopped inside a read of the source)
        # and claims a name, which this wizard lets go of once the naming ends. Until then that name (the one a
        # run of these settings resumes) is held, and a run named meanwhile skips it and starts over under the
        # next one: this wizard's next run and later wizards' wait for it (``_name_held``).
        self._dropped: Lookup | None = None
        self._summary: Lookup | None = None
        self.deleting: Deletion | None = None
        for wizard in self._earlier:
            wizard.run_ended.connect(self._start_when_free)
            wizard.naming_let_go.connect(self._start_when_free)
        # The worker thread first: the source page asks it to check a picked file as soon as it exists.
        self._thread = QuantizeThread()
        worker = self._thread.worker
        self.source_state = QuantizeSource(controller.entries)
        self.source_state.check_requested.connect(worker.check_file)  # queued: the worker's thread
        worker.file_checked.connect(self.source_state.engine_checked)
        self.source_page = SourcePage(controller, self.source_state)
        self.method_page = MethodPage()
        self.calibration_page = CalibrationPage()
        self.source_state.calibration_changed.connect(self.calibration_page.show_calibration)
        self.calibration_page.show_calibration(self.source_state.calibration)
        self.run_page = RunPage(self)
        self.result_page = ResultPage(self)
        for page in (self.source_page, self.method_page, self.calibration_page, self.run_page, self.result_page):
            self.addPage(page)
        self.calibration_page.unfinished_button.clicked.connect(self.show_unfinished_runs)
        self.currentIdChanged.connect(self._page_shown)
        self.unfinished_dialog: UnfinishedRunsDialog | None = None
        self._run.connect(worker.run)
        worker.progress.connect(self.run_page.on_progress)
        worker.comparisons.connect(self._on_comparisons)
        worker.quantized.connect(self._on_quantized)
        worker.compare_failed.connect(self._on_compare_failed)
        worker.finished.connect(self._on_finished)
        worker.cancelled.connect(self._on_cancelled)
        worker.failed.connect(self._on_failed)
        worker.unload_asked.connect(self._unload_engine)
        self.resize(760, 600)

    def config(self):  # -> gpu.quantizer.QuantizeConfig
        from gpu.quantizer import QuantizeConfig

        calib = self.calibration_page
        return QuantizeConfig(
            method=self.method_page.method.currentData(), precision=self.method_page.precision.currentData(),
            rank=self.method_page.rank.value(), shared_smoothing=self.method_page.shared_smoothing.isChecked(),
            alpha_points=self.method_page.alpha_points.value(),
            calib_prompts=calib.count.value(),
            calib_steps=calib.steps.value() or None, gpu_budget_gib=calib.gpu_gib.value(),
            ram_budget_gib=calib.ram_gib.value(),
            base=self.source_state.base if self.source_state.is_file else None,
        )

    def models_folder(self) -> Path:
        """Where the wizard's runs write (the app's models folder)."""
        return self.controller.data.quantized

    def list_unfinished_runs(self, with_settings: bool = False) -> Lookup:
        """Lists the unfinished runs in the models folder on a thread (``lookups``; its result: the runs);
        ``with_settings``: each says whether the settings chosen now resume it (which reads the source's files)."""
        folder = self.models_folder()
        # The source and settings as they are now, read on this thread (none: each run's resumes is None).
        settings = (self.source_state.source, self.config()) if with_settings else ()
        return self.lookups.start("listing the unfinished runs", lambda: unfinished_runs(folder, *settings))

    def show_unfinished_summary(self) -> None:
        """The calibration page's count of unfinished runs, read anew (on a thread: each folder is walked)."""
        self._summary = self.list_unfinished_runs()
        if self.deleting is None:
            self.calibration_page.unfinished.setText("Looking for unfinished runs in the models folder…")
        self.calibration_page.unfinished_button.setEnabled(False)

    def _show_summary(self, lookup: Lookup) -> None:
        page = self.calibration_page
        runs = lookup.result or []
        page.unfinished.setText(unfinished_summary(runs, lookup.error))
        page.unfinished_button.setEnabled(bool(runs))

    def delete_run(self, run: Any) -> None:
        """Deletes the unfinished ``run``'s parts folder on a thread (GiBs); meanwhile Quantize waits, and the
        page and the Unfinished runs dialog say so."""
        self.deleting = Deletion(run, self.lookups.start(f"deleting {run.parts}", lambda: delete_unfinished_run(run)))
        page = self.calibration_page
        page.unfinished.setText(f"Deleting the unfinished run {run.output.name}…")
        page.completeChanged.emit()

    def _deleted(self, lookup: Lookup, run: Any) -> None:
        self.calibration_page.completeChanged.emit()
        if not self.isVisible():
            # The wizard was closed meanwhile: none of its boxes pops up again (one did, over no window, minutes
            # later). A failure goes to the main window's error dialog instead (``AppController.error``, as other
            # background failures do): only logged, it left the user believing the GiBs freed.
            if lookup.error is not None:
                log.warning("deleting the unfinished run %s failed after its wizard was closed: %s",
                            run.parts, lookup.error)  # fmt: skip
                self.controller.error.emit(not_deleted(run, classify(lookup.error)))
            return
        dialog = self.unfinished_dialog
        shown = dialog is not None and dialog.isVisible()
        if lookup.error is not None:
            self.error_dialog = show_error(dialog if shown else self, classify(lookup.error))
        if shown:
            dialog.refresh()
        self.show_unfinished_summary()

    def _on_lookup_ended(self, lookup: Lookup) -> None:
        """A lookup of the wizard's ended: used while it is the one asked for last (the dialog takes its own)."""
        if lookup is self._summary:
            self._summary = None
            if self.deleting is None:  # else the page says the deletion, and lists again after it
                self._show_summary(lookup)
        elif self.deleting is not None and lookup is self.deleting.lookup:
            run = self.deleting.run
            self.deleting = None
            self._deleted(lookup, run)
        elif lookup is self._naming:
            self._naming = None
            self._named(lookup)
        elif lookup is self._dropped:  # a naming cancelled while it ran: its name is free again
            self._dropped = None
            if isinstance(lookup.result, Named):
                release_claim(lookup.result.claim)
            self.naming_let_go.emit()  # later wizards' runs that wait for it
            self._start_when_free()  # this wizard's next run, if one waits for it

    def show_unfinished_runs(self) -> None:
        self.unfinished_dialog = UnfinishedRunsDialog(self)
        self.unfinished_dialog.open()

    def _page_shown(self, _page_id: int) -> None:
        if self.currentPage() is self.calibration_page:
            self.show_unfinished_summary()

    def start(self) -> None:
        state = self.source_state
        source = state.source
        config = self.config()
        entry = next((e for e in self.controller.entries if getattr(e, "name", None) == source), None)
        stem = output_name(output_stem(source, Path(entry.path) if entry is not None else Path(source)), config)
        # A run after Back: nothing of the earlier run may pass for this one's (a cancelled run would offer
        # the earlier model as "complete", and the result page would show both runs' images). The earlier
        # model goes into the library first: forgotten here, it stayed unlisted in the hidden models folder.
        self.keep_result()
        self.job, self.out_path = None, None
        self.result_path = None
        self.comparisons = []
        self.result_page.clear()
        try:
            state.recheck_file()
        except UserError as err:
            self._on_failed(classify(err))
            return
        self._set_running(True)
        folder = self.models_folder()

        # As the run was started: the source page may change while the name is chosen (``_named``).
        compare_original = not state.is_file

        name = functools.partial(name_run_output, folder, stem, source, config, compare_original)  # on a thread
        self._name = functools.partial(self._choose_name, source, name)
        if self._name_held():
            # Named once that run stopped: it holds its name until then, and a run this one would resume (the
            # closed run's, reopened to go on with it) is skipped while held; named now, this run started over
            # under the next free name, its parts folder unsaid.
            self._waiting = True
            self.run_page.log.appendPlainText(
                "Waiting for the quantize run of the wizard you closed to stop…" if self._earlier_name_held() else
                "Waiting for the cancelled run to finish choosing its output's name…")  # fmt: skip
            return
        self._start_when_free()

    def _earlier_name_held(self) -> bool:
        """Whether an earlier wizard's run is running, or a naming it dropped still holds its name."""
        return any(w.running or w._dropped is not None for w in self._earlier)

    def _name_held(self) -> bool:
        """Whether a name this wizard's run may take (or resume) is held by a run or a dropped naming that ends
        soon: an earlier wizard's (``_earlier_name_held``), or this wizard's own cancelled naming (``_dropped``)."""
        return self._dropped is not None or self._earlier_name_held()

    def _choose_name(self, source: str, name: Callable[[], Named]) -> None:
        """Chooses and claims the run's output name on a thread (``name``); ``_named`` takes it from there."""
        self.run_page.log.appendPlainText(f"Quantizing {source}: choosing the output's name…")
        self._naming = self.lookups.start("choosing the output's name", name)

    def _named(self, lookup: Lookup) -> None:
        """The run's output is named (``start``): the run goes to the worker, or waits for an earlier wizard's."""
        if lookup.error is not None:  # the models folder cannot be listed (a name is taken only when it can)
            # or the chosen name's lock not taken there (its lock file's place is a folder): said as the run's
            # write errors are, with the remedy the wizard has (no --out, no other folder)
            self._on_failed(run_error(lookup.error, self.models_folder())[0], settings_can_fix=False)
            return
        named: Named = lookup.result
        self.out_path, source = named.claim.target, named.source
        # The claim goes with the job: the worker releases it as the run ends, ``cancel`` if it never starts
        self.job = QuantizeJob(source, self.out_path, named.config, compare_steps=self.compare_steps,
                               compare_original=named.compare_original, claim=named.claim)  # fmt: skip
        for note in named.notes:
            self.run_page.log.appendPlainText(note)
        self.run_page.log.appendPlainText(f"Quantizing {source} → {self.out_path.name}")
        if any(w.running for w in self._earlier):
            self._waiting = True
            self.run_page.log.appendPlainText("Waiting for the quantize run of the wizard you closed to stop…")
            return
        self._hand_over()

    def _start_when_free(self) -> None:
        """Names the run ``start`` began, or hands the named one over, once no earlier wizard's run is running
        and no dropped naming holds a name (``_name_held``)."""
        if self._name_held():
            return  # another earlier run still stopping, or a dropped naming still holding its name
        if self._name is not None:
            name, self._name = self._name, None
            self._waiting = False
            name()
        elif self._waiting:  # not cancelled while waiting, nor started already
            self._hand_over()

    def _hand_over(self) -> None:
        assert self.job is not None
        self._waiting = False
        if self.job.config.base:
            self.run_page.log.appendPlainText(
                f"Text encoders, tokenizers and calibration prompts from {self.job.config.base}")
        self._run.emit(self.job)

    def _unload_engine(self, unloaded: threading.Event, waits: bool, needed: Callable[[], bool]) -> None:
        """The run, started, asks for the memory the generation model holds (``QuantizeWorker.unload_asked``); one
        on the GPU ``waits`` for the job the engine runs to end and the model to be unloaded, which the page says:
        it started at once, and both worked on the GPU together. The model stays loaded if the run no longer
        ``needed`` it by the time the engine gets to it (cancelled or ended)."""
        self.controller.unload_model(unloaded, needed)
        if waits and not unloaded.is_set() and needed():
            self.run_page.log.appendPlainText(GENERATION_WAIT)

    def _set_running(self, running: bool) -> None:
        self.running = running
        # While a run works, Back stays disabled: going back and pressing Next would queue a second job
        # behind it. QWizard greys Back on the page after a commit page, and re-applies that whenever it
        # updates its buttons (which a plain setEnabled(False) would not survive). It updates them after
        # initializePage (which starts the run) and on the run page's completeChanged, which every end of a
        # run emits (RunPage.finish) after this.
        self.calibration_page.setCommitPage(running)
        if not running:
            self.run_ended.emit()

    def back(self) -> None:
        if self.running:  # the button is greyed; callers of the slot itself are refused as well
            return
        super().back()

    def no_original_reason(self) -> str:
        """Why the result page shows no 16-bit images (a single-file source: ``no_comparison_reason``)."""
        job = self.job
        return no_comparison_reason(job.source if job is not None else None,
                                    job.config.base if job is not None else None)  # fmt: skip

    def kept_note(self, if_stopped_now: bool = False) -> str:
        """What a stopped run leaves for the next one, in words (``quantize_outputs.kept_note``; after "Stop
        quantizing?" with ``if_stopped_now``, what stopping the run that still works would leave)."""
        told = self.job.told if self.job is not None else None
        return kept_note(self.result_path, self.out_path, told, if_stopped_now)

    def left_note(self, kept: bool = True) -> str:
        """What the run page says once a run ended unfinished: what it keeps (``kept_note``; not with ``kept``
        False, where the error said it: a full disk), and what stays of a parts folder it deleted, in the engine's
        words (a file of the user's in it: "… is kept: it holds files the quantizer did not write …"), which reached
        only the log."""
        left = self.job.told.parts_left if self.job is not None else ""
        return " ".join(w for w in (self.kept_note() if kept else "", sentence(left)) if w)

    def confirm_stop(self) -> bool:
        """Whether the running run may stop: asked ("Stop quantizing?") when a close (Esc, the window's X, the main
        window's) would end a run that works, which went silently with hours of work. True when nothing runs,
        the run is already stopping, or it only waits for an earlier wizard's run (nothing of it is done)."""
        if self.job is None or not self.running or self.job.cancel.is_set() or self._waiting:
            return True
        # Asked while the run works, which a No lets go on: what stopping it now would leave, not "this run stopped".
        box = QMessageBox(QMessageBox.Icon.Question, "Stop quantizing?",
                          f"Stop quantizing? {self.kept_note(if_stopped_now=True)}",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)  # fmt: skip
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.exec()
        return box.clickedButton() is box.button(QMessageBox.StandardButton.Yes)

    def cancel(self) -> None:
        if self._naming is not None or self._name is not None:  # not named yet: dropped, nothing was started
            # Said cancelled at once, but a naming under way still claims a name: held until it ended (``_dropped``)
            if self._naming is not None:
                assert self._dropped is None  # a run is named only once the earlier dropped naming ended
                self._dropped = self._naming
            self._naming = self._name = None
            self._waiting = False
            self.run_page.cancel_button.setEnabled(False)
            self._on_cancelled()
            return
        if self.job is None or not self.running:
            return  # nothing is running: a finished or failed run's page keeps its words
        self.job.cancel.set()
        self.run_page.cancel_button.setEnabled(False)  # pressed: the run stops at its next check
        if self._waiting:  # never handed to the worker: nothing to stop there, and its name is free again
            self._waiting = False
            release_claim(self.job.claim)
            self._on_cancelled()
            return
        self.run_page.log.appendPlainText("Cancelling…")

    def _on_comparisons(self, items: list[Comparison]) -> None:
        self.comparisons = items
        self.result_page.show_comparisons(items)

    def _on_quantized(self, path: str) -> None:
        self.result_path = path  # from here on the model is the user's, whatever happens to the comparison
        self.run_page.log.appendPlainText(f"Saved {path}; rendering the comparison images…")
        left = self.job.told.parts_left if self.job is not None else ""
        self.result_page.parts_left.setText(sentence(left))  # its parts folder, kept with the user's files in it
        self.result_page.parts_left.setVisible(bool(left))
        if not self.isVisible():
            # Closed while the model was being written (past the run's last cancel check): its close kept no
            # result yet, so the model waited for the app's quit or next start to be listed. Added now, as at a close,
            # but not selected (add_to_library): the user may be at work on another model since.
            self.keep_result()

    def _on_compare_failed(self, error: EngineError) -> None:
        """The model is complete; only its comparison images could not be made (``finished`` follows)."""
        # The engine's hint is for a generation job (a smaller size, fewer images), none of which the wizard has.
        why = sentence(error.message, capital=False)
        if error.kind == "oom":
            why += " The comparison runs the 16-bit model too, which needs about 3.5 times the 4-bit model's memory."
        self.run_page.log.appendPlainText(
            f"Warning: the comparison images could not be rendered: {why} The model is complete "
            f"({self.result_path}); the next page adds it to the library.")  # fmt: skip
        self.result_page.summary.setText(f"Saved to {self.result_path}. No comparison images: {why} The model "
                                         "itself is complete and can be added to the library.")  # fmt: skip

    def _on_finished(self, path: str) -> None:
        self.result_path = path
        self._set_running(False)
        self.run_page.bar.setRange(0, 1)
        self.run_page.bar.setValue(1)
        self.run_page.log.appendPlainText("Done.")
        self.run_page.finish(True)

    def _on_cancelled(self) -> None:
        self._set_running(False)
        self.run_page.bar.setRange(0, 1)
        if self.result_path:  # cancelled during the comparison: the finished model stays offered, not orphaned
            self.run_page.log.appendPlainText(f"Comparison cancelled. The model is complete ({self.result_path}); "
                                              "the next page adds it to the library.")
            self.result_page.summary.setText(f"Saved to {self.result_path}. The comparison was cancelled.")
            self.run_page.finish(True)
            return
        note = self.left_note()
        self.run_page.log.appendPlainText(f"Cancelled. Nothing was added. {note}")
        self.run_page.left(note)
        self.run_page.finish(False)

    def _on_failed(self, error: EngineError, settings_can_fix: bool = True) -> None:
        self._set_running(False)
        self.run_page.log.appendPlainText(f"Failed: {error.text}")
        self.run_page.failed(error, settings_can_fix)
        # Refused before the run looked at its folder, the error says all there is; a full disk's says what is kept
        if self.job is not None and self.job.told.anything:
            # The log has the engine's words of what stays of a replaced folder already: only the kept note goes
            # there; under the error, the whole note
            kept = "" if error.kept_said else self.kept_note()
            if kept:
                self.run_page.log.appendPlainText(kept)
            self.run_page.left(self.left_note(kept=not error.kept_said))
        self.run_page.finish(False)
        if self.isVisible():  # a wizard the user closed mid-run: its run was cancelled, no dialog for it now
            self.error_dialog = show_error(self, error)

    def add_to_library(self) -> None:
        """Hands the result to the library. From the open wizard (Add, Finish, a close) the model is selected, as
        the user is there to use it; from a closed one (its run finished after the close) it is only added, and
        the status bar says so: minutes later, selecting it changed the model and the settings the user had set
        meanwhile, and their next Generate ran the new model."""
        if self.result_path:
            self._adding = self.controller.add_model(self.result_path, select=self.isVisible())
            self.result_page.add_button.setEnabled(False)
            self.result_page.add_button.setText("Adding…")

    def _on_add_ended(self, request: int, outcome: str | EngineError) -> None:
        """An add ended (``AppController.add_ended``): this wizard's own (``_adding``) gives the library's name for
        the result, or the library refused it (e.g. the file was moved meanwhile; the main window's dialog says
        why), and the button offers the add again instead of reading "Added" for a model that is not listed."""
        if request != self._adding:
            return  # another add's (the Models panel's, another wizard's)
        self._adding = None
        if isinstance(outcome, str):
            self.added_name = outcome
            self.result_page.add_button.setText("Added")
        else:
            self.result_page.add_button.setEnabled(True)
            self.result_page.add_button.setText("Add to library")

    def done(self, result: int) -> None:
        # Closed by any route (Cancel, Finish, the window's X, Esc): a running job stops at its next check once the
        # user says so, and the thread ends once idle instead of waiting for the app's exit.
        if not self.confirm_stop():
            return  # the run goes on, and the wizard stays open with it
        self.cancel()
        self.keep_result()
        if self.running:
            # Its thread quits once the run has ended: a thread told to quit drops the calls queued to it, and the
            # run may still be queued there behind the check of a picked file; it would then never run nor end,
            # and a wizard opened next would wait for it for ever.
            self.run_ended.connect(self._thread.thread.quit)
        else:
            self._thread.thread.quit()
        super().done(result)

    def keep_result(self) -> None:
        """A finished model goes into the library however the wizard is left (closed, Back and another run, the
        app quitting): left out, it sat unlisted in the app's hidden models folder (the library's Remove takes it
        off the list, if unwanted)."""
        if self.result_path and self.added_name is None and self._adding is None:
            self.add_to_library()

    def shutdown(self) -> None:
        # Asked of the engine before it stops; an add it never gets to (a job running, the quit queued ahead of it)
        # is made by its stop (app.engine_worker.PendingAdds), and a kill is made good by the next start
        self.keep_result()
        self._thread.stop(self.job)
