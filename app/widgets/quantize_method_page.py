"""The quantize wizard's method and precision page: the method, the precision, and the settings of the
methods that have them (rank, alpha search, shared smoothing)."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QWizardPage

from app.widgets.clamping_spin_box import ClampingSpinBox
from gpu.quantize_defaults import (
    DEFAULT_ALPHA_POINTS,
    DEFAULT_RANK,
    MAX_ALPHA_POINTS,
    MAX_RANK,
    unused_fields,
)

PRECISIONS = [("INT4 (W4A4, recommended)", "int4"), ("NVFP4 (Blackwell GPUs)", "nvfp4"), ("INT8 (W8A8)", "int8")]
METHODS = [
    ("SVDQuant (low-rank + smoothing)", "svdquant"),
    ("Baseline: round-to-nearest", "naive"),
    ("Baseline: SmoothQuant", "smoothquant"),
    ("Baseline: low-rank only (SVD)", "svd"),
    ("Baseline: LoRC", "lorc"),
    ("Baseline: NF4 weights only", "nf4"),
]


class MethodPage(QWizardPage):
    """The method and precision, with the rank, alpha search and shared smoothing of the methods that use them."""
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
        # From 1: without its branch a low-rank method makes the model of another (RANK_ZERO_SAME_AS), which the
        # engine refuses under the second name; the tooltip names the baseline to pick instead.
        self.rank = ClampingSpinBox(minimum=1, maximum=MAX_RANK, value=DEFAULT_RANK, singleStep=8)
        # The rank the user set, which a smaller source's limit brings down in the field (``show_rank_limit``) and a
        # larger one's gives back: it stayed at the smaller source's limit once that source was left
        self._asked_rank = DEFAULT_RANK
        self._bounding = False
        self.rank.valueChanged.connect(self._rank_set)
        self.show_rank_limit(0)
        self.alpha_points = ClampingSpinBox(minimum=2, maximum=MAX_ALPHA_POINTS, value=DEFAULT_ALPHA_POINTS)
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

    def show_rank_limit(self, limit: int) -> None:
        """Bounds the rank by the chosen source's ``limit`` (``QuantizeSource.rank_limit``; 0: not known): a larger
        branch would hold more numbers than the layer's own 16-bit weight, and the run refuses it. A rank set before
        beyond it is brought down to it, which the field shows, and given back where a later source takes it; one
        typed beyond it is brought down to it as typing ends (``ClampingSpinBox``)."""
        self._bounding = True
        try:
            self.rank.setMaximum(min(limit, MAX_RANK) if limit else MAX_RANK)
            self.rank.setValue(min(self._asked_rank, self.rank.maximum()))
        finally:
            self._bounding = False
        bound = (f" This model's smallest layers take at most {limit}: a larger branch would hold more numbers than "
                 "the layer's own 16-bit weight." if limit and limit < MAX_RANK else "")  # fmt: skip
        self.rank.setToolTip(
            f"Size of the 16-bit low-rank branch that absorbs outliers ({DEFAULT_RANK} is the paper's default). "
            "For no branch at all, pick the SmoothQuant baseline (SVDQuant without its branch) or round-to-nearest "
            f"(SVD and LoRC without theirs).{bound}"
        )

    def _rank_set(self, value: int) -> None:
        if not self._bounding:  # the user's, not the bound's
            self._asked_rank = value

    def _method_changed(self) -> None:
        # The precision, the rank, the alpha search and the shared smoothing exist only for the methods that use
        # them: greyed out otherwise, where they change nothing (NF4's weights are NF4 whatever the precision).
        unused = unused_fields(self.method.currentData())  # what the command line says it ignores, too
        for name in ("precision", "rank", "alpha_points", "shared_smoothing"):
            getattr(self, name).setEnabled(name not in unused)
