"""A row of widgets that wraps onto more rows when its dock is too narrow for it (a half-screen window)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import QEvent, QSize, Qt
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QWidget


def button_box(buttons: Sequence[QWidget]) -> QWidget:
    """Buttons side by side at their own width, kept together when a ``WrapGrid`` moves them below a field."""
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(0, 0, 0, 0)
    for button in buttons:
        row.addWidget(button)
    row.addStretch(1)
    return box


def _needed(widget: QWidget) -> int:
    """The width ``widget`` shows all of itself at: its whole text, a whole value."""
    return max(widget.minimumWidth(), widget.minimumSizeHint().width())


class _Refitted(QWidget):
    """A widget that arranges its widgets for its width (``_fit``) whenever it is resized, and whenever one of them
    comes to need another width at the same size (the seed field holding a longer seed: the arrangement that
    fitted before overflowed, the widgets squeezed below their minimum, the seed cut short again)."""

    def _fit(self, width: int) -> None:
        raise NotImplementedError

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit(event.size().width())

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:  # posted when a widget's size hints change
            self._fit(self.width())
        return super().event(event)


class WrapGrid(_Refitted):
    """Widgets in a grid of as many columns as fit (one of ``columns``, most first), filled row by row.

    A row of buttons, or a field with buttons beside it, was wider than its dock in a narrow window: the dock
    scrolled sideways, its right end out of view. This asks for the widest arrangement's width (the usual look
    at the usual size) but needs only the narrowest's, and takes the widest that fits whenever it is resized.
    Its height follows (more rows, a larger minimum): the dock makes room or scrolls up and down.

    ``stretch_first``: the first column takes the room left over (a field: more of its text in view)."""

    def __init__(self, widgets: Sequence[QWidget], columns: Sequence[int], stretch_first: bool = False) -> None:
        super().__init__()
        self._widgets = list(widgets)
        self._columns = sorted(columns, reverse=True)
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._stretch_first = stretch_first
        self._current = 0
        self._arrange(self._columns[0])

    @property
    def columns(self) -> int:
        """How many columns it shows now."""
        return self._current

    @property
    def wrapped(self) -> bool:
        return self._current < self._columns[0]

    def _width(self, columns: int, width_of: Callable[[QWidget], int]) -> int:
        """The width of the arrangement in ``columns``: each column as wide as its widest widget."""
        widths = [0] * columns
        for i, widget in enumerate(self._widgets):
            widths[i % columns] = max(widths[i % columns], width_of(widget))
        return sum(widths) + self._grid.horizontalSpacing() * (columns - 1)

    def _arrange(self, columns: int) -> None:
        if columns == self._current:
            return
        self._current = columns
        for widget in self._widgets:
            self._grid.removeWidget(widget)
        for i, widget in enumerate(self._widgets):
            self._grid.addWidget(widget, i // columns, i % columns)
        if self._stretch_first:
            self._grid.setColumnStretch(0, 1)

    def minimumSizeHint(self) -> QSize:
        # Never the current arrangement's width: the panel's minimum would then hold the dock at that width, and
        # the grid would never be given less, so never wrap.
        return QSize(self._width(self._columns[-1], _needed), super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        # The widest arrangement at the widgets' preferred widths, not at what one needs for now: the seed field
        # holding a long seed widened the prompt dock (the dock follows its panel's hint until the user sizes it),
        # and narrowed it again at the next short seed, the gallery beside it reflowing each time. It wraps instead.
        hint = super().sizeHint()
        widest = self._width(self._columns[0], lambda w: w.sizeHint().width())
        return QSize(max(hint.width(), widest), hint.height())

    def _fit(self, width: int) -> None:
        """The widest arrangement whose widgets all fit in ``width``, else the narrowest."""
        fits = [n for n in self._columns if self._width(n, _needed) <= width]
        self._arrange(fits[0] if fits else self._columns[-1])


class FormGrid(_Refitted):
    """Labelled fields as QFormLayout lays them out, a field going below its label when it does not fit beside it.

    Not QFormLayout's WrapLongRows: its minimum height is that of unwrapped rows (it answers heightForWidth
    instead, which the docks' scroll areas do not ask), so a wrapped row was squeezed to a sliver. Here, as in
    ``WrapGrid``, the minimum width is the narrowest arrangement's and the rows are rearranged when resized."""

    def __init__(self) -> None:
        super().__init__()
        self._rows: list[tuple[QLabel | None, QWidget]] = []
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setColumnStretch(1, 1)
        self._wrapped: list[bool] = []

    def add_row(self, label: str, field: QWidget) -> None:
        """A row; ``label`` "" for a field that belongs to the row above (no label of its own)."""
        text = None
        if label:
            text = QLabel(label)
            text.setBuddy(field)
        self._rows.append((text, field))
        self._arrange(self._wrapped + [False], force=True)

    def wrapped_rows(self) -> list[bool]:
        """For each row, whether its field is below its label now."""
        return list(self._wrapped)

    def _label_width(self) -> int:
        return max((label.sizeHint().width() for label, _ in self._rows if label is not None), default=0)

    def _arrange(self, wrapped: list[bool], force: bool = False) -> None:
        if wrapped == self._wrapped and not force:
            return
        self._wrapped = wrapped
        for label, field in self._rows:
            for widget in (label, field):
                if widget is not None:
                    self._grid.removeWidget(widget)
        row = 0
        align = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        for (label, field), below in zip(self._rows, wrapped, strict=True):
            if below:
                if label is not None:
                    self._grid.addWidget(label, row, 0, 1, 2, align)
                    row += 1
                self._grid.addWidget(field, row, 0, 1, 2)
            else:
                if label is not None:
                    self._grid.addWidget(label, row, 0, align)
                self._grid.addWidget(field, row, 1)
            row += 1

    def minimumSizeHint(self) -> QSize:
        # Every row wrapped: whatever the arrangement now (see WrapGrid.minimumSizeHint).
        widths = [max(_needed(field), label.sizeHint().width() if label else 0) for label, field in self._rows]
        return QSize(max(widths, default=0), super().minimumSizeHint().height())

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        fields = max((max(_needed(f), f.sizeHint().width()) for _, f in self._rows), default=0)
        return QSize(max(hint.width(), self._label_width() + self._grid.horizontalSpacing() + fields), hint.height())

    def _fit(self, width: int) -> None:
        """Each field beside its label where it fits in ``width``, else below it."""
        room = width - self._label_width() - self._grid.horizontalSpacing()
        self._arrange([_needed(field) > room for _, field in self._rows])
