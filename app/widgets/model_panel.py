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

from app.bindings import bind
from app.controller import AppController
from app.engine_worker import EngineStatus
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


def info_text(info: Any) -> str:
    rows = [
        ("Model", getattr(info, "name", "?")),
        ("Kind", getattr(info, "kind", "?")),
        ("Architecture", getattr(info, "architecture", "?")),
        ("Precision", getattr(info, "precision", "?")),
        ("Size on disk", human_bytes(getattr(info, "size_bytes", None))),
        memory_row(info),
    ]
    return "\n".join(f"{k}: {v}" for k, v in rows)


def memory_row(info: Any) -> tuple[str, str]:
    """What the model needs, as the memory plan below it says (one source: its peak): GPU memory, or without a GPU
    the system memory it runs in (a VRAM figure there would be no one's need)."""
    ram = getattr(info, "est_ram_bytes", None)
    if getattr(info, "est_vram_bytes", None) is None and ram:
        return "Estimated RAM", f"{human_bytes(ram)} (no GPU: VRAM n/a)"
    return "Estimated VRAM", human_bytes(getattr(info, "est_vram_bytes", None))


def unusable_word(entry: Any) -> str:
    """What the list says of a library entry that cannot be used: "missing" only when nothing is at its path (put
    back, it works again); "cannot be used" for a file there that is not usable (a newer format, a damaged copy,
    one that cannot be read), where putting it back is no remedy."""
    return "missing" if getattr(entry, "missing", True) else "cannot be used"


class ModelPanel(QWidget):
    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("modelPanel")
        self.controller = controller
        self.list = QListWidget()
        # The highlighted row is the model of the next jobs, however it was reached: a click, the arrow keys (they
        # moved the highlight alone, and jobs ran on another model than the one shown), Enter or a double click.
        self._marking = False  # the list itself is being set (``set_entries``, ``_mark_current``): no pick
        self._rows: list[tuple[str, str, str]] = []  # (text, model name, tooltip) of the rows shown
        self.list.currentItemChanged.connect(self._moved)
        self.list.itemClicked.connect(self._picked)  # the highlighted row clicked again: its file looked at again
        self.list.itemActivated.connect(self._picked)
        self.details = WrappedLabel("Starting the engine…")
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # The path alone; the engine's reasons (why no fused kernel runs it, a LoRA's notes) are its tooltip.
        # In the details they ran to five lines, and in a dock of usual height the label was cut off mid-line.
        self.runs_on = WrappedLabel()
        self.runs_on.setObjectName("runsOn")
        self.runs_on.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
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
        layout.addWidget(self.details)
        layout.addWidget(self.runs_on)
        layout.addWidget(self.gpu)
        layout.addWidget(self.memory)
        controller.library_changed.connect(self.set_entries)
        controller.model_info_changed.connect(self.show_info)
        controller.engine_ready.connect(self._ready)
        controller.prompt.model_changed.connect(self._mark_current)

    def show_info(self, info: Any) -> None:
        self.details.setText(info_text(info))
        # The engine gives the path alone and the whole text (with why and its notes): no parsing of its wording.
        path, summary = info.execution_path, info.execution_summary
        self.runs_on.setText(f"Runs on: {summary}")
        self.runs_on.setToolTip(path if summary != path else "")
        self.runs_on.show()

    def _details(self, text: str) -> None:
        """A passing state instead of a model's facts ("Reading model…", a model refused)."""
        self.details.setText(text)
        self.runs_on.hide()

    def _ready(self, status: EngineStatus) -> None:
        self.gpu.setText(gpu_text(status.gpu))

    def set_entries(self, entries: list[Any]) -> None:
        current = self.list.currentItem()
        highlighted = current.data(Qt.ItemDataRole.UserRole) if current is not None else None
        rows = []
        for entry in entries:
            unusable = getattr(entry, "facts", None) is None  # its file moved, deleted or changed since it was added
            label = entry.name + ("  (built-in)" if getattr(entry, "builtin", False) else "")
            tip = getattr(entry, "problem_text", "") if unusable else str(getattr(entry, "path", ""))
            rows.append((label + (f"  ({unusable_word(entry)})" if unusable else ""), entry.name, tip))
        if rows != self._rows:  # the same list again (each answer of the engine sends it) keeps its rows: a row
            self._rows = rows  # pressed and not yet released was replaced, and the click was lost
            self._marking = True
            self.list.clear()
            for text, name, tip in rows:
                item = QListWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, name)
                item.setToolTip(tip)
                self.list.addItem(item)
            self._marking = False
        self._mark_current(self.controller.prompt.model)
        # An unusable entry the user highlighted (picked and refused, its file looked at again) stays so: Remove
        # takes it off.
        refused = next((e for e in entries if e.name == highlighted and getattr(e, "facts", None) is None), None)
        if refused is not None and refused.name != self.controller.prompt.model:
            self._mark_current(refused.name)
            self._details(self._unusable_text(refused.name))

    def _mark_current(self, name: str) -> None:
        for row in range(self.list.count()):
            item = self.list.item(row)
            if item.data(Qt.ItemDataRole.UserRole) == name:
                self._marking = True
                self.list.setCurrentItem(item)
                self._marking = False
        builtin = {e.name for e in self.controller.entries if getattr(e, "builtin", False)}
        self.remove_button.setEnabled(bool(name) and name not in builtin)

    def _entry(self, name: str) -> Any | None:
        """The library entry of the row named ``name`` (None where the list changed since)."""
        return next((e for e in self.controller.entries if e.name == name), None)

    def _unusable_text(self, name: str) -> str:
        return f"{name}: {unusable_word(self._entry(name))}. New images use {self.controller.prompt.model}. Press " \
            "Enter to look at its file again."  # fmt: skip

    def _moved(self, item: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        """The user moved the highlight (the arrow keys, a click, typing a name): that model is picked, if it can be
        used. One that cannot is only shown: its file is looked at again (and refused with a dialog) on Enter, a
        click or a double click, not as the keys pass over it, where the dialog took the next key press."""
        if item is None or self._marking:
            return
        name = item.data(Qt.ItemDataRole.UserRole)
        entry = self._entry(name)
        if entry is not None and getattr(entry, "facts", None) is None:
            self.controller.drop_recheck()
            self._details(self._unusable_text(name))
            self.remove_button.setEnabled(True)
            return
        self._picked(item)

    def _picked(self, item: QListWidgetItem) -> None:
        name = item.data(Qt.ItemDataRole.UserRole)
        # Picked again (the release of the press that highlighted it, Enter, a double click): reading it again reset
        # size, steps and guidance, and a second pick of a model whose file is being looked at refused it at once
        if self.controller.is_current(name):
            self.controller.drop_recheck()  # back to the model in use: a re-check of one passed decides nothing
            info = self.controller.model_info
            if info is not None and getattr(info, "name", None) == name:
                self.show_info(info)  # its facts again, not those of the model passed over
            self._mark_current(name)  # and Remove as for it (a built-in one cannot be removed)
            return
        if self.controller.is_rechecking(name):
            return
        if self.controller.select_model(name):
            self._details("Reading model…")
            return
        # Refused (its file is gone; the controller says why), or its file being looked at again first (a drive
        # back: then it is selected). It stays highlighted so Remove can take it off.
        looking = self.controller.is_rechecking(name)
        self._details(f"{name}: looking at its file again…" if looking else self._unusable_text(name))
        self.remove_button.setEnabled(True)

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
        item = self.list.currentItem()
        if item:
            self.controller.remove_model(item.data(Qt.ItemDataRole.UserRole))
