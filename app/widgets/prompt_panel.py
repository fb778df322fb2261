"""Prompt panel: prompt, negative prompt, seed, steps, guidance, size, batch; Generate / Cancel; progress.

Dropping an image anywhere on the panel restores its settings: a PNG (ours, A1111 ``parameters`` or ComfyUI), a JPEG
or WebP (A1111/Forge EXIF). Any local file or folder is taken, whatever its name: its content says what it is, and
one that holds no settings is named with why (the drag is not refused without a word); an image dragged from a web
browser, which is only its web address, is taken to say that it must be saved first. What could not be restored
as saved is said, naming the file: the values the form could not take as they were (a seed outside its range, a
size the model cannot make), the other images of a drop of several.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QKeyEvent, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from app.bindings import bind, bind_typed
from app.controller import AppController
from app.file_urls import local_path
from app.generation_state import (
    BATCH_MAX,
    BATCH_MIN,
    FIELD_RANGES,
    GUIDANCE_DECIMALS,
    GUIDANCE_MAX,
    GUIDANCE_MIN,
    SIDE_MAX,
    SIDE_MIN,
    SIDE_STEP,
    SIZE_PRESETS,
    STEPS_MAX,
    STEPS_MIN,
    snap16,
)
from app.prompt_length_state import PromptLengthState
from app.theme import WARNING_COLOR
from app.widgets.clamping_spin_box import ClampingSpinBox
from app.widgets.decimal_spin_box import DecimalSpinBox
from app.widgets.seed_edit import SeedEdit
from app.widgets.wheel_when_focused import WheelWhenFocused
from app.widgets.wrap_grid import FormGrid, WrapGrid, button_box
from app.widgets.wrapped_label import WrappedLabel
from app.wording import clamped_note


def _dropped(event: QDragEnterEvent | QDropEvent) -> tuple[list[Path], list[str]]:
    """(the local files and folders dragged, whatever their names; the web addresses). Taken by name (``*.png``),
    a JPEG from Forge or a PNG saved as ``.jpg`` was refused by the drag without a word, and so was a text file
    dropped by mistake; an image dragged from a web browser, which carries its address only, still was. A name that is
    not UTF-8 (Linux) is read as its bytes (``local_path``): decoded as UTF-8, it named a file that does not exist."""
    mime = event.mimeData()
    urls = mime.urls() if mime.hasUrls() else []
    return [local_path(u) for u in urls if u.isLocalFile()], [u.toString() for u in urls if not u.isLocalFile()]


class TokenCounter(WrappedLabel):
    """How many of the model's tokens a prompt takes, bound to its ``PromptLengthState``: past the model's limit,
    the end the model ignores, in the warning colour. Word-wrapped (``WrappedLabel``): up to three lines past the
    limit, never squeezed in a short dock."""

    def __init__(self, length: PromptLengthState) -> None:
        super().__init__()
        bind(length, "text", self)
        length.over_changed.connect(self.warn)  # a method: disconnected when the label goes
        self.warn(length.over)

    def warn(self, over: bool) -> None:
        self.setStyleSheet(f"color: {WARNING_COLOR}" if over else "")


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
                                           Qt.TransformationMode.SmoothTransformation))  # fmt: skip


class FieldSpinBox(WheelWhenFocused, ClampingSpinBox):
    """A whole-number field of the panel (Steps, Images): the wheel over it scrolls the dock unless it has the focus
    (``WheelWhenFocused``); a number typed past its maximum is brought down to it once typing ends
    (``ClampingSpinBox``)."""


class GuidanceSpinBox(WheelWhenFocused, DecimalSpinBox):
    """The Guidance field: either decimal mark (``DecimalSpinBox``), the wheel and a number past the maximum as
    ``FieldSpinBox``."""


class SizePresetBox(WheelWhenFocused, QComboBox):
    """The size presets: the wheel over them scrolls the dock unless they have the focus (``WheelWhenFocused``); it
    jumped to another size, which the next job made."""


class SideSpinBox(FieldSpinBox):
    """A size field on the latent grid (multiples of ``SIDE_STEP``): a side typed off it snaps when editing
    finishes (``snap16``, as the request does), and the arrows go from one multiple to the next. Unsnapped, 100
    stayed on screen while a 96 px image was made, and the arrows went 100 -> 116, off the grid for good."""

    def __init__(self) -> None:
        super().__init__(minimum=SIDE_MIN, maximum=SIDE_MAX, singleStep=SIDE_STEP, suffix=" px")
        self.editingFinished.connect(lambda: self.setValue(snap16(self.value())))

    def stepBy(self, steps: int) -> None:
        self.interpretText()  # what is typed so far is where a step starts
        value = self.value()
        # From the multiple behind it in the step's direction: from 100, up is 112 and down is 96.
        behind = value // SIDE_STEP if steps > 0 else -(-value // SIDE_STEP)
        self.setValue((behind + steps) * SIDE_STEP)


class OncePerPressButton(QPushButton):
    """A push button Enter clicks once per press: held down, the key repeats the system sends do nothing. A default
    button clicks on each Enter it gets, and Enter held on Generate queued a job per repeat (seven for a short hold,
    each with a new random seed). Space clicks once already (on its release)."""

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.isAutoRepeat() and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            event.accept()
            return
        super().keyPressEvent(event)


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
            edit.setAcceptDrops(False)  # a dropped image should restore settings, not paste its path
            # Tab moves on, as in every other field: a tab character means nothing to the text encoders, and
            # typing it trapped keyboard users in the prompt box.
            edit.setTabChangesFocus(True)
        bind(state, "prompt", self.prompt_edit)
        bind(state, "negative_prompt", self.negative_edit)
        # How many of the model's tokens the prompt takes; past its limit, the end the model ignores (a warning).
        # The negative prompt's too, under its box: its end past the limit was ignored in the app without a word.
        self.token_count = TokenCounter(controller.prompt_length)
        self.token_count.setObjectName("tokenCount")
        self.negative_token_count = TokenCounter(controller.negative_length)
        self.negative_token_count.setObjectName("negativeTokenCount")

        self.seed_edit = SeedEdit()  # the engine's full 64-bit range, always shown whole
        bind(state, "seed", self.seed_edit)
        # A seed typed in is one the user wants: locked, as restoring an image's seed locks it (unlocked, the next
        # job threw it away for a random one). Only the user's typing (setValue from the state is no edit), and only
        # a whole number: a field cleared and left shows the old seed again, which is no seed chosen.
        self.seed_edit.textEdited.connect(
            lambda text: self.seed_edit.value_in(text) is not None and setattr(state, "seed_locked", True))
        self.seed_lock = QCheckBox("Lock")
        self.seed_lock.setToolTip("Locked: every job uses this seed (typing a seed locks it). Unlocked: a new "
                                  "random seed per job.")
        bind(state, "seed_locked", self.seed_lock)
        self.seed_random = QPushButton("Random")
        self.seed_random.setToolTip("New random seed")
        self.seed_random.clicked.connect(self.controller.prompt.random_seed)
        # Random and Lock beside the field, or below it in a narrow dock (in one row they were wider than the dock
        # at 1000x700). Always below would have narrowed the dock at the usual size too (its preferred width came
        # from this row), the prompt's placeholder wrapping and the LoRA panel below scrolling.
        self.seed_row = WrapGrid([self.seed_edit, button_box([self.seed_random, self.seed_lock])], (2, 1),
                                 stretch_first=True)  # fmt: skip

        # The wheel over these fields scrolls the dock unless the field has the focus (``WheelWhenFocused``).
        self.steps_spin = FieldSpinBox(minimum=STEPS_MIN, maximum=STEPS_MAX)
        bind(state, "steps", self.steps_spin)
        self.guidance_spin = GuidanceSpinBox(decimals=GUIDANCE_DECIMALS, minimum=GUIDANCE_MIN, maximum=GUIDANCE_MAX,
                                             singleStep=0.1)  # fmt: skip
        bind(state, "guidance", self.guidance_spin)

        self.size_preset = SizePresetBox()
        self.size_preset.addItem("Custom", None)
        for label, w, h in SIZE_PRESETS:
            self.size_preset.addItem(label, (w, h))
        self.size_preset.activated.connect(self._apply_preset)
        self.width_spin, self.height_spin = SideSpinBox(), SideSpinBox()
        bind(state, "width", self.width_spin)
        bind(state, "height", self.height_spin)
        state.width_changed.connect(self._sync_preset)
        state.height_changed.connect(self._sync_preset)
        size_row = QWidget()
        size_box = QHBoxLayout(size_row)
        size_box.setContentsMargins(0, 0, 0, 0)
        size_box.addWidget(self.width_spin)
        size_box.addWidget(QLabel("×"))
        size_box.addWidget(self.height_spin)

        self.batch_spin = FieldSpinBox(minimum=BATCH_MIN, maximum=BATCH_MAX)
        bind(state, "batch_count", self.batch_spin)

        # Text that is no value a field takes, kept until the field is left: Generate refuses it, named. A number
        # past a field's maximum is brought down to it once the field is left (``ClampsTyped``), which the status
        # bar says: the field's name and range, as the refusal names them (``_say_clamped``).
        self._spin_names = {self.steps_spin: "steps", self.guidance_spin: "guidance", self.width_spin: "width",
                            self.height_spin: "height", self.batch_spin: "batch_count"}  # fmt: skip
        bind_typed(state, "seed", self.seed_edit)
        for field, name in self._spin_names.items():
            bind_typed(state, name, field)
            field.clamped.connect(self._say_clamped)

        # A field wider than the room beside its label goes below it (the size presets, in a half-screen window)
        # rather than making the panel wider than its dock.
        form = FormGrid()
        for label, field in (("Seed", self.seed_row), ("Steps", self.steps_spin), ("Guidance", self.guidance_spin),
                             ("Size", self.size_preset), ("", size_row), ("Images", self.batch_spin)):  # fmt: skip
            form.add_row(label, field)
        self.form = form

        self.generate_button = OncePerPressButton("Generate")
        self.generate_button.setToolTip("Ctrl+Enter")
        self.generate_button.setDefault(True)  # Enter on the focused button clicks it, as Space does
        # Reached with Tab, not taken by a click: the field being typed in keeps its focus and its text, so a click
        # refuses "30" in Width (64 to 2048) as Ctrl+Enter does. Taking the focus, the click made the field put back
        # the value it held, and that one ran.
        self.generate_button.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        self.generate_button.clicked.connect(controller.generate)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Esc: stops the running job at its next step; the queued jobs go on "
                                      "(Shift+Esc cancels them too)")
        self.cancel_button.clicked.connect(controller.cancel)
        buttons = QHBoxLayout()
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.cancel_button, 1)

        job = controller.job
        self.progress = QProgressBar()
        self.progress.setTextVisible(False)
        self.status = WrappedLabel(job.status)  # it names the model
        self.preview = ImageLabel()
        self.preview.setMinimumHeight(160)
        job.status_changed.connect(self._show_status)  # a method of the panel: gone with it (``WrappedLabel``)
        job.step_changed.connect(self._update_progress)
        job.total_steps_changed.connect(self._update_progress)
        job.busy_changed.connect(self._busy)
        job.checking_changed.connect(self._busy)  # a Generate waiting for the LoRA files: Cancel drops it
        job.preview_changed.connect(self._show_preview)
        self._busy()

        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Prompt"))
        layout.addWidget(self.prompt_edit, 2)
        layout.addWidget(self.token_count)
        layout.addWidget(self.negative_edit)
        layout.addWidget(self.negative_token_count)
        layout.addWidget(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.preview, 1)
        self._sync_preset()

    def _say_clamped(self, typed: str, shown: str) -> None:
        """A number field brought a number typed past its limit to it (``ClampsTyped``): said in the status bar."""
        label, takes = FIELD_RANGES[self._spin_names[self.sender()]]
        self.controller.status_message.emit(clamped_note(label, takes, typed, shown))

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

    def _show_status(self, text: str) -> None:
        self.status.setText(text)

    def _busy(self, *_: object) -> None:
        """Cancel usable while a job is queued or running, or a Generate waits for the LoRA files (``HeldClicks``)."""
        job = self.controller.job
        self.cancel_button.setEnabled(bool(job.busy or job.checking))
        if not job.busy:
            self.progress.setValue(0)

    def _show_preview(self, image: QImage | None) -> None:
        self.preview.set_image(image)

    # ---- drag and drop of images ----------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(_dropped(event)):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths, web_addresses = _dropped(event)
        if paths or web_addresses:
            event.acceptProposedAction()
            self.restore_from_files(paths, web_addresses)

    def restore_from_files(self, paths: list[Path], web_addresses: list[str] | None = None) -> None:
        """Dropped files: the controller restores the first with settings and says what it could not (a web
        address alone: that the image must be saved first)."""
        self.controller.restore_from_files(paths, web_addresses)
