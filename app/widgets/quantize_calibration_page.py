"""The quantize wizard's calibration and memory page: the prompts and steps a run calibrates with, the GPU
and RAM budgets, and the unfinished runs in the models folder."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QWizard,
    QWizardPage,
)

from app.bindings import bind, bind_enabled
from app.quantize_outputs import default_ram_budget_gib, installed_ram_bytes
from app.quantize_source import CalibrationSet
from app.widgets.clamping_spin_box import ClampingSpinBox
from app.widgets.decimal_spin_box import DecimalSpinBox
from app.widgets.quantize_labels import warning_label
from app.wording import sentence
from gpu.quantize_defaults import DEFAULT_CALIB_PROMPTS, DEFAULT_GPU_BUDGET_GIB

if TYPE_CHECKING:
    from app.quantize_unfinished_runs import UnfinishedRuns

# The wizard's most prompts (a run takes minutes per 100 with FLUX); fewer where the chosen source's set has fewer
MAX_PROMPTS = 512


class CalibrationPage(QWizardPage):
    """Calibration prompts and steps, the GPU and RAM budgets, and the unfinished runs in the models folder;
    Next here is Quantize, which starts the run."""
    def __init__(self, unfinished_runs: UnfinishedRuns | None = None,
                 source_still_ready: Callable[[], bool] | None = None) -> None:  # fmt: skip
        """``unfinished_runs``: the wizard's, which the page's words on them and Quantize go by (none: a page on its
        own, which says nothing of them). ``source_still_ready``: the wizard's check as Quantize is pressed (none:
        a page on its own, which starts from any source)."""
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
        self.count = ClampingSpinBox(minimum=1, maximum=MAX_PROMPTS, value=DEFAULT_CALIB_PROMPTS)
        self._wanted = DEFAULT_CALIB_PROMPTS  # the count asked for, kept while a smaller set caps the field
        self.count.valueChanged.connect(self._count_changed)
        self.steps = ClampingSpinBox(minimum=0, maximum=50, value=0)
        self.show_calibration(None)
        # Not 0, which read as "no GPU" and was taken silently like any other budget.
        self.gpu_gib = DecimalSpinBox(minimum=1.0, maximum=192.0, value=DEFAULT_GPU_BUDGET_GIB, suffix=" GiB")
        self.installed_ram = installed_ram_bytes()
        self.ram_gib = DecimalSpinBox(minimum=1.0, maximum=1024.0, value=default_ram_budget_gib(self.installed_ram),
                                     suffix=" GiB")  # fmt: skip
        self.ram_warning = warning_label()
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
        self._unfinished_runs = unfinished_runs
        self._source_still_ready = source_still_ready
        if unfinished_runs is not None:
            bind(unfinished_runs, "summary", self.unfinished)
            bind_enabled(unfinished_runs, "openable", self.unfinished_button)
            unfinished_runs.deleting_changed.connect(lambda _deleting: self.completeChanged.emit())
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
        """Whether the wizard is deleting an unfinished run (``UnfinishedRuns.deleting``): Quantize waits for it."""
        return self._unfinished_runs is not None and self._unfinished_runs.deleting is not None

    def isComplete(self) -> bool:
        """Quantize is greyed while an unfinished run is being deleted."""
        return not self._deleting()

    def validatePage(self) -> bool:
        """Quantize waits for a deletion under way, and starts only from a source that can still be quantized
        (``QuantizeWizard.source_still_ready``, which shows the source page when it cannot)."""
        # A run started meanwhile could take the name of the folder being deleted, whose lock the deletion holds.
        if self._deleting():  # QWizard.next() asks only this, not isComplete (which greys the button)
            return False
        return self._source_still_ready is None or self._source_still_ready()

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

    def show_gpu(self, gpu: object | None) -> None:
        """The engine found ``gpu`` (a ``GpuInfo``), or none: a run then works on the CPU, and the GPU budget, which
        it would not read, is greyed (shown and editable, it read as a setting of that run)."""
        self.gpu_gib.setEnabled(gpu is not None)
        self.gpu_gib.setToolTip("" if gpu is not None else "No CUDA GPU was found: the run works on the CPU, within "
                                "the RAM budget")  # fmt: skip

    def laptop_preset(self) -> None:
        """Budgets for a 16 GB laptop: GPU 14 GiB, RAM 12 GiB."""
        self.gpu_gib.setValue(14.0)
        self.ram_gib.setValue(12.0)
