"""The quantize wizard's source page: a library pipeline, a pipeline folder, or a single-file checkpoint with
its base pipeline, bound to ``QuantizeSource``."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
    QWizardPage,
)

from app.bindings import bind
from app.controller import AppController
from app.plain_text import plain_label
from app.quantize_source import QuantizeSource
from app.widgets.file_filters import safetensors_filter
from app.widgets.quantize_labels import problem_label, select_quietly, warning_label


class SourcePage(QWizardPage):
    """A library pipeline, a pipeline folder, or a single .safetensors file with its base pipeline; the checks
    and the choice itself live in ``QuantizeSource``."""

    def __init__(self, controller: AppController, state: QuantizeSource) -> None:
        super().__init__()
        self.setTitle("Source model")
        self.setSubTitle("Pick the full-precision model to make a 4-bit copy of: a library model, a diffusers "
                         "folder, or a single FLUX.1 .safetensors file (as used by ComfyUI and Forge).")
        self.state = state
        self.controller = controller
        self.source = QComboBox()
        self.source.setEditable(False)
        self._fill_sources()  # state.choose below
        self.source.currentIndexChanged.connect(lambda _: state.choose(self.source.currentData() or ""))
        # The library as it changes: opened while the engine started, the wizard listed no library model for good
        # (and checked "" as a folder); a pipeline added meanwhile was not offered either.
        controller.library_changed.connect(self._library_changed)
        self._following = True  # till the wizard closes (``stop_following_library``)
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
        self.description = plain_label()  # it names the source's files
        self.description.setWordWrap(True)
        self.relisted = warning_label()  # the chosen library model's name now stands for another folder
        self.problem = problem_label()
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
        self.base_problem = problem_label()
        self.base_warning = warning_label()  # a dev-style file with a schnell-style base, or the reverse
        base_layout = QVBoxLayout(self.base_box)
        base_layout.setContentsMargins(0, 8, 0, 0)
        base_layout.addLayout(base_row)
        base_layout.addWidget(why)
        base_layout.addWidget(self.base_problem)
        base_layout.addWidget(self.base_warning)

        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(self.description)
        layout.addWidget(self.relisted)
        layout.addWidget(self.checking)
        layout.addWidget(self.problem)
        layout.addWidget(self.base_box)
        layout.addStretch(1)

        bind(state, "description", self.description)
        bind(state, "problem", self.problem)
        bind(state, "base_problem", self.base_problem)
        bind(state, "base_warning", self.base_warning)
        bind(state, "relisted", self.relisted)
        for name, label in (("description", self.description), ("problem", self.problem),
                            ("base_problem", self.base_problem), ("base_warning", self.base_warning),
                            ("relisted", self.relisted)):  # fmt: skip
            self._show(label, getattr(state, name))
            getattr(state, f"{name}_changed").connect(lambda text, label=label: self._show(label, text))
        state.checking_changed.connect(self.checking.setVisible)
        self.checking.setVisible(state.checking)
        state.needs_base_changed.connect(self.base_box.setVisible)
        self.base_box.setVisible(state.needs_base)
        state.bases_changed.connect(self._fill_bases)
        state.base_changed.connect(lambda value: select_quietly(self.base, value))
        state.ready_changed.connect(lambda _: self.completeChanged.emit())
        self._fill_bases()
        state.choose(self.source.currentData() or "")

    def _fill_sources(self) -> None:
        """The sources the state offers (``QuantizeSource.sources``): the library's pipelines, then the folders and
        files picked. The source chosen stays chosen, a library pipeline removed since too (listed as such;
        ``QuantizeSource.set_library`` says it cannot be used); with none chosen yet, "Quantize this model" takes
        the model selected in the Models panel when it is one that can be quantized (it was always the library's
        first, so a user who picked their own model quantized the demo instead), else the first. Fills the list
        without choosing: callers choose."""
        current = self.state.source or self.source.currentData()  # the state's: a library change may have moved it
        self.source.blockSignals(True)
        self.source.clear()
        for label, value, where in self.state.sources():
            self.source.addItem(label, value)
            self.source.setItemData(self.source.count() - 1, where, Qt.ItemDataRole.ToolTipRole)
        if current:
            self.source.setCurrentIndex(_kept(self.source, current))
        else:
            self.source.setCurrentIndex(max(0, self.source.findData(self.controller.prompt.model)))
        self.source.blockSignals(False)

    def _library_changed(self, entries: list[Any]) -> None:
        """The library's list changed (``AppController.library_changed``): the sources and bases it offers are
        listed anew; the source chosen stays chosen, said to be gone when it left the library."""
        self.state.set_library(entries)
        self._fill_sources()
        value = self.source.currentData() or ""
        if value != self.state.source or not value:
            self.state.choose(value)

    def stop_following_library(self) -> None:
        """The wizard closed: its lists no longer follow the library (a closed wizard stays alive while its run may
        stop, and is never shown again: "Quantize this model…" opens a new one, which lists the library as it is
        then)."""
        if self._following:
            self._following = False
            self.controller.library_changed.disconnect(self._library_changed)

    @staticmethod
    def _show(label: QLabel, text: str) -> None:
        label.setVisible(bool(text))  # an empty label would still take a line

    def _fill_bases(self) -> None:
        self.base.blockSignals(True)
        self.base.clear()
        self.base.addItem("Choose the base pipeline…", "")
        for label, value, _folder in self.state.bases:
            self.base.addItem(label, value)
        if self.state.base:
            _kept(self.base, self.state.base)
        self.base.blockSignals(False)
        select_quietly(self.base, self.state.base)

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
        value = self.state.pick(path)  # a library pipeline's folder is that pipeline
        self._fill_sources()  # a new one listed after the others; chosen below
        index = self.source.findData(value)
        if index == self.source.currentIndex():
            self.state.choose(value)  # picked again: checked again (the file may have been replaced)
        self.source.setCurrentIndex(index)

    def isComplete(self) -> bool:
        """Next is offered once the source (and its base) can be quantized."""
        return self.state.ready

    def validatePage(self) -> bool:
        """Next goes on only from a source that can be quantized."""
        return self.state.ready  # QWizard.next() asks only this, not isComplete (which greys the button)

    def value(self) -> str:
        """The chosen source: a library name, a folder or a file."""
        return self.state.source


def _kept(combo: QComboBox, value: str) -> int:
    """The index of ``value`` in ``combo``, added at its end when it is not listed: a library pipeline chosen as the
    source or base that left the library since, which stays chosen (its problem says why it cannot be used)."""
    index = combo.findData(value)
    if index >= 0:
        return index
    combo.addItem(f"{value} (no longer in the library)", value)
    return combo.count() - 1
