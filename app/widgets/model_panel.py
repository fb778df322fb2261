"""Model library panel: built-in and user-added models, what each needs, and which code path will run it."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.bindings import bind, bind_enabled
from app.controller import AppController
from app.engine_worker import EngineStatus
from app.model_list_state import ModelRow
from app.plain_text import plain_tooltip
from app.theme import WARNING_COLOR
from app.widgets.file_filters import safetensors_filter
from app.widgets.wrap_grid import WrapGrid
from app.widgets.wrapped_label import WrappedLabel
from app.wording import human_bytes


def gpu_text(gpu: Any) -> str:
    if gpu is None:
        return "GPU: none detected: models run on the CPU (slow but works)."
    sm = getattr(gpu, "sm", None)
    sm_text = f" (sm_{sm})" if sm else ""
    return (
        f"GPU: {gpu.name}{sm_text}, {human_bytes(getattr(gpu, 'free_bytes', None))} free of "
        f"{human_bytes(getattr(gpu, 'total_bytes', None))}"
    )


class ModelPanel(QWidget):
    """The Models list, its buttons and the details under it, bound to the library's ``ModelListState``, which
    decides what a pick or a move of the highlight does."""

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelPanel")
        self.controller = controller
        self.state = controller.library.list_state
        self.list = QListWidget()
        # The highlighted row is the model of the next jobs, however it was reached: a click, the arrow keys (they
        # moved the highlight alone, and jobs ran on another model than the one shown), Enter or a double click.
        self._marking = False  # the list is being set from the state (``_show_rows``, ``_show_highlighted``): no pick
        self.list.currentItemChanged.connect(self._moved)
        self.list.itemClicked.connect(self._picked)  # the highlighted row clicked again: its file looked at again
        self.list.itemActivated.connect(self._picked)
        self.details = WrappedLabel()
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # The path alone; the engine's reasons (why no fused kernel runs it, a LoRA's notes) are its tooltip.
        # In the details they ran to five lines, and in a dock of usual height the label was cut off mid-line.
        self.runs_on = WrappedLabel()
        self.runs_on.setObjectName("runsOn")
        self.runs_on.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # What a Remove or an add waits for (the jobs queued before it): under the buttons, whichever row is
        # highlighted.
        self.removing = WrappedLabel()
        self.removing.setObjectName("removing")
        self.adding = WrappedLabel()
        self.adding.setObjectName("adding")
        self.gpu = WrappedLabel("GPU: detecting…")
        self.memory = WrappedLabel()  # the memory plan for the selected model on this machine
        self.memory.setObjectName("memoryPlan")
        self.memory.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bind(controller.memory, "text", self.memory)
        # a plan that exceeds the GPU says so in words; the colour makes it hard to miss
        controller.memory.fits_changed.connect(
            lambda ok: self.memory.setStyleSheet("" if ok else f"color: {WARNING_COLOR};")
        )
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.setToolTip("A diffusers model folder (with model_index.json)")
        self.add_file_button = QPushButton("Add SVDQ file…")
        self.add_file_button.setToolTip(
            "A 4-bit SVDQuant model file (.safetensors), such as the Quantize wizard makes"
        )
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip("Take the selected model off the list (its file stays where it is)")
        self.add_folder_button.clicked.connect(self._add_folder)
        self.add_file_button.clicked.connect(self._add_file)
        self.remove_button.clicked.connect(self._remove)
        # The adding ones side by side and Remove (which acts on the selected model) below, or all three below
        # each other in a narrow dock: side by side they set the window's minimum width past a half-screen one.
        self.button_grid = WrapGrid([self.add_folder_button, self.add_file_button, self.remove_button], (2, 1))
        layout = QVBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.button_grid)
        layout.addWidget(self.removing)
        layout.addWidget(self.adding)
        layout.addWidget(self.details)
        layout.addWidget(self.runs_on)
        layout.addWidget(self.gpu)
        layout.addWidget(self.memory)
        self._show_rows(self.state.rows)
        self.state.rows_changed.connect(self._show_rows)
        self.state.highlighted_changed.connect(self._show_highlighted)
        bind_enabled(self.state, "removable", self.remove_button)
        bind(self.state, "details", self.details)
        for label, name in ((self.runs_on, "runs_on"), (self.removing, "removing"), (self.adding, "adding")):
            self._show_line(label, getattr(self.state, name))
            getattr(self.state, f"{name}_changed").connect(lambda text, label=label: self._show_line(label, text))
        self._show_runs_on_tip(self.state.runs_on_tip)
        self.state.runs_on_tip_changed.connect(self._show_runs_on_tip)
        controller.engine_ready.connect(self._ready)

    def _show_runs_on_tip(self, tip: str) -> None:
        self.runs_on.setToolTip(plain_tooltip(tip))  # its reasons name models and LoRAs: never drawn as HTML

    def _ready(self, status: EngineStatus) -> None:
        self.gpu.setText(gpu_text(status.gpu))

    def _show_rows(self, rows: tuple[ModelRow, ...]) -> None:
        """The list's items made again for ``rows`` (the state sends only rows that changed), the highlight kept."""
        self._marking = True
        self.list.clear()
        for text, name, tip in rows:
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, name)
            item.setToolTip(plain_tooltip(tip))
            self.list.addItem(item)
        self._marking = False
        self._show_highlighted(self.state.highlighted)

    def _show_highlighted(self, name: str) -> None:
        """The row of the model ``name`` made the list's current one (none where it is not listed)."""
        row = next((r for r in range(self.list.count())
                    if self.list.item(r).data(Qt.ItemDataRole.UserRole) == name), -1)  # fmt: skip
        self._marking = True
        self.list.setCurrentRow(row)
        self._marking = False

    @staticmethod
    def _show_line(label: WrappedLabel, text: str) -> None:
        """``label`` says ``text``, hidden while it is empty (a line that is not always there)."""
        label.setText(text)
        label.setVisible(bool(text))

    def _moved(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        """The user moved the highlight (``ModelListState.highlight``); not the list being set from the state."""
        if item is not None and not self._marking:
            self.state.highlight(item.data(Qt.ItemDataRole.UserRole))

    def _picked(self, item: QListWidgetItem) -> None:
        """A row clicked, double-clicked or Enter on it (``ModelListState.pick``)."""
        self.state.pick(item.data(Qt.ItemDataRole.UserRole))

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a diffusers model folder")
        if folder:
            self.controller.add_model(folder)

    def _add_file(self) -> None:
        # .safetensors in any case: GTK's dialog hid MINE.SAFETENSORS, which the library takes
        path, _ = QFileDialog.getOpenFileName(self, "Add an SVDQ model file", "", safetensors_filter("SVDQ models"))
        if path:
            self.controller.add_model(path)

    def _remove(self) -> None:
        self.state.remove()
