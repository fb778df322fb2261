"""LoRA panel: add LoRA files or folders, enable each, set its strength (-2..2) and trigger words; a LoRA whose
file also changes the CLIP or T5 text encoder gets a "Text" strength for those parts ("same": its strength).
A folder (with its subfolders) is read on a thread of its own: a line under the buttons says how far it is, with
a Cancel, and its rows come when it ends.

Enabled LoRAs go with every generation request; the engine applies them without reloading the model (see
``gpu/lora``). "Insert trigger words" appends the enabled LoRAs' trigger words to the prompt."""

from __future__ import annotations

import sys
from itertools import pairwise

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QSlider,
    QStyle,
    QStyleOptionButton,
    QVBoxLayout,
    QWidget,
)  # fmt: skip

from app.bindings import bind
from app.lora_state import LoraEntry, LoraState
from app.widgets.wrap_grid import WrapGrid
from gpu.lora.metadata import MAX_STRENGTH


def lora_file_filter() -> str:
    """The "Add LoRA…" dialog's name filters: LoRA files, ``.safetensors`` in any case, then all files. Qt's own
    dialog matches without case, but GTK's (and the desktop portal's) match a pattern as written: "*.safetensors"
    hid ``Style.SafeTensors`` on Linux. So there each letter is a class of both cases; Windows' and macOS' dialogs
    match without case, and would read such a class as letters."""
    if sys.platform in ("win32", "darwin"):
        pattern = "*.safetensors"
    else:
        pattern = "*." + "".join(f"[{c}{c.upper()}]" for c in "safetensors")
    return f"LoRA files ({pattern});;All files (*)"


class NameCheckBox(QCheckBox):
    """A check box whose text is cut short with "…" where its row is narrower than the name (the whole name is
    its tooltip's first line): a long LoRA name made the rows, and so the dock, wider than a half-screen window."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._full = text
        # Shrinkable (a check box is not, by default): its minimum is then minimumSizeHint, not its text's width.
        self.setSizePolicy(QSizePolicy.Policy.Preferred, self.sizePolicy().verticalPolicy())

    def full_text(self) -> str:
        return self._full

    def _room(self) -> int:
        """The width its text has: all but the indicator and the gap after it. (pixelMetric with no style option
        corrupted None's reference count in PySide6 and crashed it.)"""
        option = QStyleOptionButton()
        self.initStyleOption(option)
        contents = self.style().subElementRect(QStyle.SubElement.SE_CheckBoxContents, option, self)
        return contents.width() - 4  # Fusion's focus frame around the text

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()  # of the text shown now
        metrics = self.fontMetrics()
        return QSize(hint.width() + metrics.horizontalAdvance(self._full) - metrics.horizontalAdvance(self.text()),
                     hint.height())  # fmt: skip

    def minimumSizeHint(self) -> QSize:
        # From the whole name's hint, whatever is shown now: a minimum that followed the shown text changed with
        # each resize, which cut the text again, and so on without end.
        hint = self.sizeHint()
        metrics = self.fontMetrics()
        shortest = min(metrics.horizontalAdvance(self._full[:6] + "…"), metrics.horizontalAdvance(self._full))
        return QSize(hint.width() - metrics.horizontalAdvance(self._full) + shortest, hint.height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, self._room()))


class LoraRow(QFrame):
    def __init__(self, state: LoraState, entry: LoraEntry) -> None:
        super().__init__()
        self.state = state
        self.entry = entry
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.enabled = NameCheckBox(entry.name)
        self.enabled.setChecked(entry.enabled)
        self.enabled.setToolTip(f"{entry.name}\n{entry.path}")
        self.enabled.toggled.connect(lambda v: state.set_enabled(entry, v))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(-round(MAX_STRENGTH * 100), round(MAX_STRENGTH * 100))
        self.slider.setValue(round(entry.strength * 100))
        self.value = QLabel(f"{entry.strength:.2f}")
        self.value.setMinimumWidth(36)
        self.slider.valueChanged.connect(self._strength)
        self.text_row, self.text_value, self.text_same = self._text_strength(state)
        self.text_encoders = entry.text_encoders  # the "Text" field is made for these (``show_entry``)
        self.triggers = QLineEdit(entry.trigger_words)
        self.triggers.setPlaceholderText("trigger words")
        self.triggers.textChanged.connect(lambda t: state.set_trigger_words(entry, t))
        remove = QPushButton("✕")
        remove.setToolTip("Remove this LoRA from the list")
        remove.setFixedWidth(28)
        remove.clicked.connect(lambda: state.remove(entry))
        text_stops = [self.text_value, self.text_same] if entry.text_encoders else []  # hidden ones are no stops
        self.focus_chain = [self.enabled, remove, self.slider, *text_stops, self.triggers]  # Tab follows the layout
        top = QHBoxLayout()
        top.addWidget(self.enabled, 1)
        top.addWidget(remove)
        mid = QHBoxLayout()
        self.strength_label = label = QLabel("Strength")
        if not entry.text_encoders:  # why there is no "Text" strength beside it
            label.setToolTip('No "Text" strength: this LoRA\'s file has no CLIP or T5 part (or cannot be read now).')
        mid.addWidget(label)
        mid.addWidget(self.slider, 1)
        mid.addWidget(self.value)
        self.info = info = QLabel(entry.info)  # format, rank, what the LoRA changes (or what is wrong with it)
        info.setWordWrap(True)  # a long format line wraps rather than widening the row
        info.setStyleSheet("color: gray; font-size: 10px")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.addLayout(top)
        lay.addLayout(mid)
        lay.addWidget(self.text_row)
        lay.addWidget(self.triggers)
        lay.addWidget(info)

    def _text_strength(self, state: LoraState) -> tuple[QWidget, QDoubleSpinBox, QCheckBox]:
        """The "Text" strength of the file's CLIP/T5 parts: a number of its own, or "same" (its strength, which
        the box then shows). Hidden for a file without such parts, where it would change nothing."""
        entry = self.entry
        parts = entry.text_parts
        value = QDoubleSpinBox()
        value.setRange(-MAX_STRENGTH, MAX_STRENGTH)
        value.setSingleStep(0.05)
        value.setDecimals(2)
        value.setValue(entry.strength if entry.text_strength is None else entry.text_strength)
        value.setEnabled(entry.text_strength is not None)
        value.setToolTip(f"Strength of this LoRA's {parts} part (ComfyUI's strength_clip, A1111's te=)")
        value.valueChanged.connect(lambda v: state.set_text_strength(entry, v))
        same = QCheckBox("same")
        same.setChecked(entry.text_strength is None)
        same.setToolTip(f"Apply the Strength above to this LoRA's {parts} part too")

        def follow(checked: bool) -> None:
            state.set_text_strength(entry, None if checked else value.value())
            value.setEnabled(not checked)
            if checked:
                self._show_text_strength()

        same.toggled.connect(follow)
        row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(QLabel("Text"))
        box.addWidget(value, 1)
        box.addWidget(same)
        row.setVisible(bool(entry.text_encoders))
        return row, value, same

    def _show_text_strength(self) -> None:
        """While "same", the text box shows the strength (without taking it as one of its own)."""
        self.text_value.blockSignals(True)
        self.text_value.setValue(self.entry.strength)
        self.text_value.blockSignals(False)

    def show_entry(self) -> None:
        """Shows the entry as it is now (changed by a reused image, or its file by ``LoraState.refresh``), in place:
        rebuilding every row at each ``changed`` took 0.4 s with 200 LoRAs. Signals are blocked: the widgets
        follow the entry here, and a slider's step would round its strength, a text box take "same" away."""
        entry = self.entry
        text_strength = entry.strength if entry.text_strength is None else entry.text_strength
        for widget, now, wanted, set_to in (
            (self.enabled, self.enabled.isChecked(), entry.enabled, self.enabled.setChecked),
            (self.slider, self.slider.value(), round(entry.strength * 100), self.slider.setValue),
            (self.text_value, self.text_value.value(), round(text_strength, 2), self.text_value.setValue),
            (self.text_same, self.text_same.isChecked(), entry.text_strength is None, self.text_same.setChecked),
        ):
            if now != wanted:  # only what changed: the rows of 200 LoRAs are looked at for one reused image
                widget.blockSignals(True)
                set_to(wanted)
                widget.blockSignals(False)
        if self.text_value.isEnabled() != (entry.text_strength is not None):
            self.text_value.setEnabled(entry.text_strength is not None)
        for label, text in ((self.value, f"{entry.strength:.2f}"), (self.info, entry.info)):
            if label.text() != text:
                label.setText(text)
        if self.triggers.text() != entry.trigger_words:  # setText moves the cursor of one being typed in
            self.triggers.setText(entry.trigger_words)

    def _strength(self, v: int) -> None:
        self.state.set_strength(self.entry, v / 100)
        self.value.setText(f"{v / 100:.2f}")
        if self.entry.text_strength is None:
            self._show_text_strength()


class LoraPanel(QWidget):
    def __init__(self, controller) -> None:
        super().__init__()
        self.setObjectName("loraPanel")
        self.controller = controller
        self.state: LoraState = controller.loras
        self.add_button = add = QPushButton("Add LoRA…")
        add.clicked.connect(self._add_files)
        self.add_folder_button = folder = QPushButton("Add folder…")
        folder.clicked.connect(self._add_folder)
        self.insert_button = insert = QPushButton("Insert trigger words")
        insert.setToolTip("Append the enabled LoRAs' trigger words to the prompt")
        insert.clicked.connect(self.insert_triggers)
        buttons = WrapGrid([add, folder], (2, 1))  # one below the other in a narrow dock
        scan = self._scan_row()
        self.rows_box = QVBoxLayout()
        self.rows_box.addStretch(1)
        inner = QWidget()
        inner.setLayout(self.rows_box)
        self.scroll = scroll = QScrollArea()
        # Not a Tab stop of its own (it was an empty one between "Add folder…" and the rows): the rows in it are.
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        scroll.setWidgetResizable(True)
        scroll.setWidget(inner)
        # The rows shrink with the dock (names cut short, info lines wrapped); they never scroll sideways.
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.empty = QLabel("No LoRAs yet: add .safetensors files made for FLUX.1.")
        self.empty.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addWidget(buttons)
        lay.addWidget(scan)
        lay.addWidget(self.empty)
        lay.addWidget(scroll, 1)
        self.cost = QLabel("")
        self.cost.setWordWrap(True)
        self.state.cost_changed.connect(self.cost.setText)
        lay.addWidget(self.cost)
        lay.addWidget(insert)
        self.rows: list[LoraRow] = []
        self._tab_chain: list[QWidget] = []
        self.state.changed.connect(self.rebuild)
        self.rebuild()

    def _scan_row(self) -> QWidget:
        """How far the folder being read is ("Reading LoRAs… 340/2000") with its Cancel, then how it ended, for a
        while; hidden when there is nothing to say. "Add folder…" waits meanwhile: one folder at a time."""
        self.scan_label = label = QLabel()
        label.setWordWrap(True)
        self.cancel_scan_button = cancel = QPushButton("Cancel")
        cancel.setToolTip("Stop reading the folder; none of its LoRAs are added")
        cancel.clicked.connect(self.state.cancel_scan)
        row = QWidget()
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(label, 1)
        box.addWidget(cancel)
        bind(self.state, "scan_status", label)
        self.state.scan_status_changed.connect(lambda text: row.setVisible(bool(text)))
        self.state.scanning_changed.connect(self._show_scanning)
        row.setVisible(bool(self.state.scan_status))
        self._show_scanning(self.state.scanning)
        return row

    def _show_scanning(self, scanning: bool) -> None:
        self.cancel_scan_button.setVisible(scanning)
        self.add_folder_button.setEnabled(not scanning)
        self.add_folder_button.setToolTip("A folder of LoRAs is being read: wait for it, or cancel it" if scanning
                                          else "Add the LoRA files of a folder and its subfolders")  # fmt: skip

    def rebuild(self) -> None:
        """Rows for the state's entries: a row kept for each entry that had one, shown as the entry is now
        (``LoraRow.show_entry``); rows made only for entries added, and for those whose file changes other parts
        now (its "Text" field is made for them); the rows of entries removed deleted. Rebuilding all 200 rows at
        each ``changed`` (an add, a reused image, a changed file at Generate) took 0.4 s."""
        kept = {id(row.entry): row for row in self.rows}
        rows = []
        for entry in self.state.entries:
            row = kept.pop(id(entry), None)
            if row is not None and row.text_encoders != entry.text_encoders:
                kept[id(entry)] = row  # deleted below, with the rows of entries gone
                row = None
            if row is None:
                row = LoraRow(self.state, entry)
            else:
                row.show_entry()
            rows.append(row)
        for row in kept.values():
            self.rows_box.removeWidget(row)
            row.deleteLater()
        for i, row in enumerate(rows):
            if (at := self.rows_box.indexOf(row)) != i:  # a new row (kept rows keep their order)
                if at >= 0:
                    self.rows_box.removeWidget(row)
                self.rows_box.insertWidget(i, row)
        self.rows = rows
        self.empty.setVisible(not self.rows)
        # A scroll area's minimum is a few pixels whatever its content: at the rows' minimum width, so that the
        # dock is never narrower than the rows (they were cut off at its right edge).
        inner = self.scroll.widget()
        frame = 2 * self.scroll.frameWidth() + self.scroll.verticalScrollBar().sizeHint().width()
        self.scroll.setMinimumWidth(inner.layout().minimumSize().width() + frame)
        # Rows are made after "Insert trigger words", so Tab reached them after it: put them between the add
        # buttons and it, as they are laid out. (The panel's place among the others is the main window's.)
        chain = self.tab_chain()
        if chain != self._tab_chain:  # rows added or removed (setting 1,200 stops anew took tens of ms)
            self._tab_chain = chain
            for first, second in pairwise(chain):
                QWidget.setTabOrder(first, second)

    def tab_chain(self) -> list[QWidget]:
        """The panel's Tab stops in layout order: the add buttons, the Cancel of a folder being read (a stop only
        while it shows), each row's controls, Insert trigger words."""
        return [self.add_button, self.add_folder_button, self.cancel_scan_button,
                *(w for row in self.rows for w in row.focus_chain), self.insert_button]  # fmt: skip

    def row_for(self, name: str) -> LoraRow:
        return next(r for r in self.rows if r.entry.name == name)

    def insert_triggers(self) -> None:
        words = self.state.trigger_text()
        prompt = self.controller.prompt
        if words and words not in prompt.prompt:
            prompt.prompt = f"{prompt.prompt.rstrip()}, {words}" if prompt.prompt.strip() else words

    def _add_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Add LoRA files", "", lora_file_filter(),
                                                options=QFileDialog.Option.HideNameFilterDetails)  # fmt: skip
        if files:
            self.controller.add_loras(files)

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of LoRAs")
        if folder:
            self.controller.add_lora_folder(folder)
