"""One LoRA's controls in the LoRA panel: on/off with its name, remove, strength slider, the "Text" strength of a
file with a CLIP or T5 part, trigger words, and the info line (format, rank, what it changes, or what is wrong
with it). The panel's list makes one only for each row in sight (``app/widgets/lora_list.py``)."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QPalette, QResizeEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDoubleSpinBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSlider,
    QStyle,
    QStyleOptionButton,
    QVBoxLayout,
    QWidget,
)  # fmt: skip

from app.lora_entry import LoraEntry, strength_text
from app.lora_state import LoraState
from app.plain_text import plain_button_text, plain_label, plain_tooltip
from app.theme import WARNING_COLOR
from app.widgets.decimal_spin_box import DecimalSpinBox
from app.widgets.wheel_when_focused import WheelWhenFocused
from app.wording import clamped_note
from gpu.lora.metadata import MAX_STRENGTH


class NameCheckBox(QCheckBox):
    """A check box whose text is cut short with "…" where its row is narrower than the name (the whole name is
    its tooltip's first line): a long LoRA name made the rows, and so the dock, wider than a half-screen window.
    The name is shown as written, '&' too (``plain_button_text``): ``text()`` is the escaped text shown now."""

    def __init__(self, text: str) -> None:
        super().__init__(plain_button_text(text))
        self._full = text
        self._shown = text  # the part of the name shown now, unescaped, as the widths below are measured
        # Shrinkable (a check box is not, by default): its minimum is then minimumSizeHint, not its text's width.
        self.setSizePolicy(QSizePolicy.Policy.Preferred, self.sizePolicy().verticalPolicy())
        self.setAccessibleName(text)  # the whole name, not the one cut short

    def full_text(self) -> str:
        return self._full

    def set_full_text(self, text: str) -> None:
        """Another name (a row of the same name came or went: ``LoraEntry.label``), cut short to the room there is."""
        self._full = text
        self.setAccessibleName(text)
        self._elide()
        self.updateGeometry()

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
        return QSize(hint.width() + metrics.horizontalAdvance(self._full) - metrics.horizontalAdvance(self._shown),
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
        self._elide()

    def _elide(self) -> None:
        # The name is cut short, then escaped: cut after, "&&" could lose one '&' and make a shortcut again.
        self._shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, self._room())
        self.setText(plain_button_text(self._shown))


class StrengthSlider(WheelWhenFocused, QSlider):
    """A row's strength slider (see ``WheelWhenFocused``)."""


# The decimals a "Text" strength box holds: Qt's most (DBL_MAX_10_EXP + DBL_DIG), so that it holds a strength as it
# is used. At six, a strength of 1e-07 (applied: only 0 is left out) was held, and shown, as 0.
_HELD_DECIMALS = 323


class StrengthBox(WheelWhenFocused, DecimalSpinBox):
    """A row's "Text" strength (see ``WheelWhenFocused``), either decimal mark taken (``DecimalSpinBox``), held and
    shown as it is used (``strength_text``: to six decimals, two at least, 1e-07 as it is). At two decimals 0.333 was
    shown as 0.33, and taken so at the next edit. A strength typed past ±``MAX_STRENGTH`` is brought to it once
    typing ends (``ClampsTyped``): "2.5" stood as 2 without a word, "-3" was refused after its sign."""

    def __init__(self) -> None:
        super().__init__()
        self.setDecimals(_HELD_DECIMALS)

    def textFromValue(self, value: float) -> str:
        # Qt's own sizeHint measures the range's ends by this too: the box is as wide as at two decimals
        return strength_text(value).replace(".", self.locale().decimalPoint())


class LoraRow(QFrame):
    """The controls of one entry, bound to the state: each edit goes to ``state`` at once, and ``show_entry``
    shows the entry as it is now. Each control's accessible name says whose it is ("Strength of ink style"): a
    screen reader read every row's slider as the same "slider"."""

    said = Signal(str)  # a passing word for the status bar: a strength typed past its limit was set to it

    # The attributes of its Tab stops, in the order Tab goes; the "Text" two only for a file with a CLIP/T5 part.
    STOPS = ("enabled", "remove_button", "slider", "text_value", "text_same", "triggers")
    _TEXT_STOPS = ("text_value", "text_same")

    def __init__(self, state: LoraState, entry: LoraEntry, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.entry = entry
        name = entry.label
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)  # over the list's own painting
        self.setBackgroundRole(QPalette.ColorRole.Window)
        self.enabled = NameCheckBox(name)
        self.enabled.setChecked(entry.enabled)
        self.enabled.toggled.connect(lambda v: state.set_enabled(entry, v))
        self.slider = StrengthSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(-round(MAX_STRENGTH * 100), round(MAX_STRENGTH * 100))
        self.slider.setValue(round(entry.strength * 100))
        self.value = QLabel(strength_text(entry.strength))
        self.value.setMinimumWidth(36)
        self.slider.valueChanged.connect(self._strength)
        self.text_row, self.text_value, self.text_same = self._text_strength(state)
        self.text_encoders = entry.text_encoders  # the "Text" field is made for these (``show_entry``)
        self.triggers = QLineEdit(entry.trigger_words)
        self.triggers.setPlaceholderText("trigger words")
        self.triggers.textChanged.connect(lambda t: state.set_trigger_words(entry, t))
        self.remove_button = remove = QPushButton("✕")
        remove.setToolTip("Remove this LoRA from the list")
        remove.setFixedWidth(28)
        remove.clicked.connect(lambda: state.remove(entry))
        self._name_controls(name)
        self.focus_chain = [getattr(self, stop) for stop in self._stops()]  # Tab follows the layout
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
        # format, rank, what the LoRA changes (or what is wrong with it, naming files), after why the selected
        # model cannot take it, if so
        self.info = info = plain_label(entry.info_line)
        info.setWordWrap(True)  # a long format line wraps rather than widening the row
        _small(info)
        self._show_fit()  # grey, or the warning colour
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 4, 6, 4)
        lay.addLayout(top)
        lay.addLayout(mid)
        lay.addWidget(self.text_row)
        lay.addWidget(self.triggers)
        lay.addWidget(info)

    def _name_controls(self, name: str) -> None:
        """Each control's accessible name says whose it is, by the row's name as shown (``LoraEntry.label``)."""
        for widget, said in ((self.slider, f"Strength of {name}"), (self.triggers, f"Trigger words of {name}"),
                             (self.remove_button, f"Remove {name}"), (self.text_value, f"Text strength of {name}"),
                             (self.text_same, f"Text strength of {name} the same as its strength")):  # fmt: skip
            widget.setAccessibleName(said)

    def _stops(self) -> tuple[str, ...]:
        """``STOPS`` this row has (hidden controls are no stops): as it was made, also once its file gained or lost
        a CLIP/T5 part (the row made anew then asks this one where its focus was)."""
        return tuple(s for s in self.STOPS if self.text_encoders or s not in self._TEXT_STOPS)

    def stop_role(self, widget: QWidget) -> str:
        """The ``STOPS`` attribute of the control of ``focus_chain`` that is or holds ``widget`` (the first one,
        for none)."""
        stops = self._stops()
        return next((s for s, w in zip(stops, self.focus_chain, strict=True) if w is widget or w.isAncestorOf(widget)),
                    stops[0])  # fmt: skip

    def stop_near(self, role: str) -> QWidget:
        """The control of ``role`` (a ``STOPS`` attribute) where this row has it and it takes the focus; else the
        next such one in Tab order, or the one before past the last: the focus in a removed row goes to the same
        kind of control of the row taking its place (by place in the chain, the trigger words of a row without a
        "Text" strength went to the greyed "Text" strength of one with it, which took no focus)."""
        at = self.STOPS.index(role)
        stops = {s: w for s, w in zip(self._stops(), self.focus_chain, strict=True) if w.isEnabled()}
        order = [*self.STOPS[at:], *reversed(self.STOPS[:at])]
        return next((stops[s] for s in order if s in stops), self.enabled)

    def _text_strength(self, state: LoraState) -> tuple[QWidget, QDoubleSpinBox, QCheckBox]:
        """The "Text" strength of the file's CLIP/T5 parts: a number of its own, or "same" (its strength, which
        the box then shows). Hidden for a file without such parts, where it would change nothing."""
        entry = self.entry
        parts = entry.text_parts
        value = StrengthBox()
        value.setRange(-MAX_STRENGTH, MAX_STRENGTH)
        value.setSingleStep(0.05)
        value.setValue(entry.strength if entry.text_strength is None else entry.text_strength)
        value.setEnabled(entry.text_strength is not None)
        value.setToolTip(f"Strength of this LoRA's {parts} part (ComfyUI's strength_clip, A1111's te=)")
        value.valueChanged.connect(lambda v: state.set_text_strength(entry, v))
        value.clamped.connect(self._say_clamped)
        same = QCheckBox("same")
        same.setChecked(entry.text_strength is None)
        same.setToolTip(f"Apply the Strength above to this LoRA's {parts} part too")

        def follow(checked: bool) -> None:
            # given a value of its own, the strength it followed, as it is (the box holds it as it is)
            state.set_text_strength(entry, None if checked else entry.strength)
            value.setEnabled(not checked)
            if checked:
                self._show_text_strength()

        same.toggled.connect(follow)
        # A child of the row from the start: one without a parent that was shown was a window of its own, for a
        # moment (until the row's layout took it), made as a row with a "Text" strength scrolled into sight; it
        # flashed and took the activation, and with it the focus from the row being typed in.
        row = QWidget(self)
        box = QHBoxLayout(row)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(QLabel("Text"))
        box.addWidget(value, 1)
        box.addWidget(same)
        row.setVisible(bool(entry.text_encoders))
        return row, value, same

    def _say_clamped(self, typed: str, shown: str) -> None:
        """The "Text" strength brought a number typed past its limit to it (``ClampsTyped``): said, naming the row."""
        takes = f"{-MAX_STRENGTH:g} to {MAX_STRENGTH:g}"
        self.said.emit(clamped_note(self.text_value.accessibleName(), takes, typed, shown))

    def _show_text_strength(self) -> None:
        """While "same", the text box shows the strength (without taking it as one of its own)."""
        self.text_value.blockSignals(True)
        self.text_value.setValue(self.entry.strength)
        self.text_value.blockSignals(False)

    def show_entry(self) -> None:
        """Shows the entry as it is now (changed by a reused image, or its file by ``LoraState.refresh``), in place.
        Signals are blocked: the widgets follow the entry here, and a slider's step would round its strength, a
        text box take "same" away."""
        entry = self.entry
        text_strength = entry.strength if entry.text_strength is None else entry.text_strength
        for widget, now, wanted, set_to in (
            (self.enabled, self.enabled.isChecked(), entry.enabled, self.enabled.setChecked),
            (self.slider, self.slider.value(), round(entry.strength * 100), self.slider.setValue),
            (self.text_value, self.text_value.value(), text_strength, self.text_value.setValue),
            (self.text_same, self.text_same.isChecked(), entry.text_strength is None, self.text_same.setChecked),
        ):
            if now != wanted:  # only what changed
                widget.blockSignals(True)
                set_to(wanted)
                widget.blockSignals(False)
        if self.enabled.full_text() != entry.label:  # a row of its name came or went
            self.enabled.set_full_text(entry.label)
            self._name_controls(entry.label)
        if self.text_value.isEnabled() != (entry.text_strength is not None):
            self.text_value.setEnabled(entry.text_strength is not None)
        for label, text in ((self.value, strength_text(entry.strength)), (self.info, entry.info_line)):
            if label.text() != text:
                label.setText(text)
        self._show_fit()
        if self.triggers.text() != entry.trigger_words:  # setText moves the cursor of one being typed in
            self.triggers.setText(entry.trigger_words)

    def _show_fit(self) -> None:
        """The info line grey, but in the warning colour while a job would refuse the LoRA (``LoraEntry.warning``:
        the selected model cannot take it, or a row of the same LoRA is switched on too; the line says why first),
        and why in its name's tooltip too. Its controls stay usable: it may be switched off, or kept for a model it
        fits."""
        entry = self.entry
        color = QColor(WARNING_COLOR) if entry.warning else QColor(Qt.GlobalColor.gray)
        if self.info.palette().color(QPalette.ColorRole.WindowText) != color:
            palette = self.info.palette()
            palette.setColor(QPalette.ColorRole.WindowText, color)
            self.info.setPalette(palette)
        tip = plain_tooltip("\n".join(line for line in (entry.label, str(entry.path), entry.warning) if line))
        if self.enabled.toolTip() != tip:
            self.enabled.setToolTip(tip)

    def _strength(self, v: int) -> None:
        self.state.set_strength(self.entry, v / 100)
        self.value.setText(strength_text(v / 100))
        if self.entry.text_strength is None:
            self._show_text_strength()


def _small(label: QLabel) -> None:
    """The info line's size: small. A font (and a palette for its colour: ``LoraRow._show_fit``) rather than a style
    sheet, which made each row's label a styled widget of its own (slower to make as rows scroll into sight)."""
    font = label.font()
    font.setPixelSize(10)
    label.setFont(font)
