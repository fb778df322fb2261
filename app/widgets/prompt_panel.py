"""Prompt panel: prompt, negative prompt, seed, steps, guidance, size, batch; Generate / Cancel; progress.

Dropping a PNG (ours, A1111 ``parameters`` or ComfyUI) anywhere on the panel restores its settings.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.bindings import bind
from app.controller import AppController
from app.generation_state import (
    BATCH_MAX,
    BATCH_MIN,
    GUIDANCE_MAX,
    GUIDANCE_MIN,
    RANDOM_SEED_MAX,
    SEED_MAX,
    SEED_MIN,
    SIDE_MAX,
    SIDE_MIN,
    SIDE_STEP,
    SIZE_PRESETS,
    STEPS_MAX,
    STEPS_MIN,
)
from app.widgets.integer_edit import IntegerEdit


def _png_paths(event: QDragEnterEvent | QDropEvent) -> list[Path]:
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    return [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile() and u.toLocalFile().lower().endswith(".png")]


class ImageLabel(QLabel):
    """An image scaled to the label's size, aspect ratio kept, again whenever the label is resized (a fixed
    192 px was cut off in an area of 160, and left room unused in a tall one)."""

    def __init__(self) -> None:
        super().__init__(alignment=Qt.AlignmentFlag.AlignCenter)
        self._source = QPixmap()
        # The layout sizes the label, never the pixmap: a pixmap set at the label's size would otherwise make
        # that its size hint, and the area could only grow.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)

    def set_image(self, image: QImage | None) -> None:
        self._source = QPixmap() if image is None or image.isNull() else QPixmap.fromImage(image)
        self._rescale()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._source.isNull():
            self.clear()
            return
        self.setPixmap(self._source.scaled(self.contentsRect().size(), Qt.AspectRatioMode.KeepAspectRatio,
                                           Qt.TransformationMode.SmoothTransformation))


class SeedRow(QWidget):
    """The seed field with its buttons beside it, or below it when the three do not fit side by side.

    In one row they were wider than the dock at 1000x700: the panel scrolled sideways, Lock out of view. Always
    two rows would have narrowed the dock at its usual size too (its preferred width came from this row), the
    prompt's placeholder wrapping and the LoRA panel below scrolling. So the row asks for one row's width and
    needs only the wider of the field and the buttons, and wraps whenever it is given less than one row."""

    def __init__(self, field: QWidget, buttons: list[QWidget]) -> None:
        super().__init__()
        self._field = field
        self._buttons = QWidget()
        row = QHBoxLayout(self._buttons)
        row.setContentsMargins(0, 0, 0, 0)
        for button in buttons:
            row.addWidget(button)
        row.addStretch(1)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setColumnStretch(0, 1)  # the field takes what room there is: more digits in view
        self._grid.addWidget(field, 0, 0)
        self._wrapped: bool | None = None
        self._arrange(wrapped=False)

    @property
    def wrapped(self) -> bool:
        return bool(self._wrapped)

    def _field_minimum(self) -> int:
        return max(self._field.minimumWidth(), self._field.minimumSizeHint().width())  # its room for a whole seed

    def _one_row_width(self) -> int:
        return self._field_minimum() + self._grid.horizontalSpacing() + self._buttons.sizeHint().width()

    def _arrange(self, wrapped: bool) -> None:
        if wrapped == self._wrapped:
            return
        self._wrapped = wrapped
        self._grid.removeWidget(self._buttons)
        self._grid.addWidget(self._buttons, *((1, 0) if wrapped else (0, 1)))

    def minimumSizeHint(self) -> QSize:
        # Never one row's width, whichever way it is laid out now: the panel's minimum would then hold the dock
        # at that width (scrolled sideways), and the row would never be given less, so never wrap.
        width = max(self._field_minimum(), self._buttons.minimumSizeHint().width())
        return QSize(width, super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        one_row = self._field.sizeHint().width() + self._grid.horizontalSpacing() + self._buttons.sizeHint().width()
        return QSize(max(hint.width(), one_row), hint.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        # Its height follows (two rows' minimum): the form makes room, the dock scrolls up and down if it must.
        self._arrange(wrapped=event.size().width() < self._one_row_width())


class PromptPanel(QWidget):
    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("promptPanel")
        self.controller = controller
        state = controller.prompt
        self.setAcceptDrops(True)

        self.prompt_edit = QPlainTextEdit(placeholderText="Describe the image… (Ctrl+Enter to generate)")
        self.negative_edit = QPlainTextEdit(placeholderText="Negative prompt (what to avoid)")
        self.negative_edit.setMaximumHeight(60)
        for edit in (self.prompt_edit, self.negative_edit):
            edit.setAcceptDrops(False)  # a dropped PNG should restore settings, not paste its path
            # Tab moves on, as in every other field: a tab character means nothing to the text encoders, and
            # typing it trapped keyboard users in the prompt box.
            edit.setTabChangesFocus(True)
        bind(state, "prompt", self.prompt_edit)
        bind(state, "negative_prompt", self.negative_edit)

        self.seed_edit = IntegerEdit(SEED_MIN, SEED_MAX)  # the engine's full 64-bit range, beyond a QSpinBox
        self.seed_edit.setToolTip(f"{SEED_MIN} to {SEED_MAX}")
        # Room for a whole random seed (+16: frame and text margins): a narrow dock cut its first digits off,
        # showing another number.
        self.seed_edit.setMinimumWidth(self.seed_edit.fontMetrics().horizontalAdvance(str(RANDOM_SEED_MAX)) + 16)
        bind(state, "seed", self.seed_edit)
        self.seed_lock = QCheckBox("Lock")
        self.seed_lock.setToolTip("Locked: every job uses this seed. Unlocked: a new random seed per job.")
        bind(state, "seed_locked", self.seed_lock)
        self.seed_random = QPushButton("Random")
        self.seed_random.setToolTip("New random seed")
        self.seed_random.clicked.connect(self._randomize_seed)
        self.seed_row = SeedRow(self.seed_edit, [self.seed_random, self.seed_lock])

        self.steps_spin = QSpinBox(minimum=STEPS_MIN, maximum=STEPS_MAX)
        bind(state, "steps", self.steps_spin)
        self.guidance_spin = QDoubleSpinBox(minimum=GUIDANCE_MIN, maximum=GUIDANCE_MAX, singleStep=0.5, decimals=1)
        bind(state, "guidance", self.guidance_spin)

        self.size_preset = QComboBox()
        self.size_preset.addItem("Custom", None)
        for label, w, h in SIZE_PRESETS:
            self.size_preset.addItem(label, (w, h))
        self.size_preset.activated.connect(self._apply_preset)
        self.width_spin = QSpinBox(minimum=SIDE_MIN, maximum=SIDE_MAX, singleStep=SIDE_STEP, suffix=" px")
        self.height_spin = QSpinBox(minimum=SIDE_MIN, maximum=SIDE_MAX, singleStep=SIDE_STEP, suffix=" px")
        for spin in (self.width_spin, self.height_spin):
            spin.setStepType(QSpinBox.StepType.DefaultStepType)
        bind(state, "width", self.width_spin)
        bind(state, "height", self.height_spin)
        state.width_changed.connect(self._sync_preset)
        state.height_changed.connect(self._sync_preset)
        size_row = QHBoxLayout()
        size_row.addWidget(self.width_spin)
        size_row.addWidget(QLabel("×"))
        size_row.addWidget(self.height_spin)

        self.batch_spin = QSpinBox(minimum=BATCH_MIN, maximum=BATCH_MAX)
        bind(state, "batch_count", self.batch_spin)

        form = QFormLayout()
        form.addRow("Seed", self.seed_row)
        form.addRow("Steps", self.steps_spin)
        form.addRow("Guidance", self.guidance_spin)
        form.addRow("Size", self.size_preset)
        form.addRow("", size_row)
        form.addRow("Images", self.batch_spin)

        self.generate_button = QPushButton("Generate")
        self.generate_button.setToolTip("Ctrl+Enter")
        self.generate_button.setDefault(True)
        self.generate_button.clicked.connect(controller.generate)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Esc: stops at the next step")
        self.cancel_button.clicked.connect(controller.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.cancel_button, 1)

        job = controller.job
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.status = QLabel(job.status)
        self.status.setWordWrap(True)
        self.preview = ImageLabel()
        self.preview.setMinimumHeight(160)
        job.status_changed.connect(self.status.setText)
        job.step_changed.connect(self._update_progress)
        job.total_steps_changed.connect(self._update_progress)
        job.busy_changed.connect(self._busy)
        job.preview_changed.connect(self._show_preview)
        self._busy(job.busy)

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Prompt"))
        layout.addWidget(self.prompt_edit, 2)
        layout.addWidget(self.negative_edit)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.preview, 1)
        self._sync_preset()

    def _randomize_seed(self) -> None:
        locked = self.controller.prompt.seed_locked
        self.controller.prompt.seed_locked = False
        self.controller.prompt.next_seed()
        self.controller.prompt.seed_locked = locked

    def _apply_preset(self, index: int) -> None:
        size = self.size_preset.itemData(index)
        if size:
            self.controller.prompt.width, self.controller.prompt.height = size

    def _sync_preset(self, *_: object) -> None:
        size = (self.controller.prompt.width, self.controller.prompt.height)
        index = self.size_preset.findData(size)
        self.size_preset.setCurrentIndex(max(index, 0))

    def _update_progress(self, *_: object) -> None:
        job = self.controller.job
        self.progress.setRange(0, max(job.total_steps, 1))
        self.progress.setValue(job.step)

    def _busy(self, busy: bool) -> None:
        self.cancel_button.setEnabled(bool(busy))
        if not busy:
            self.progress.setValue(0)

    def _show_preview(self, image: QImage | None) -> None:
        self.preview.set_image(image)

    # ---- drag and drop of PNGs ----------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _png_paths(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = _png_paths(event)
        if paths:
            self.controller.restore_from_file(paths[0])
            event.acceptProposedAction()
