"""The full-size viewer: a window of its own over the main one, bound to ``ImageViewerState``.

Double-click or Enter on a gallery image opens it, fit to the window; 1 shows the picture at 100% and 0 fits it again
(or the buttons), + and - (or Ctrl+wheel, about the pointer) zoom, dragging or the wheel moves a picture larger than
the window; Left/Right (PageUp/PageDown, Home/End) step through the gallery as the grid lists it, whose selection
follows; Delete deletes as the gallery does (Ctrl+Z brings it back), one image a press; Esc closes. A window of its
own, not a layer over the gallery: the main window's Esc cancels the running job, and its keys stay theirs.

A scale is the screen's pixels per picture pixel, whatever the desktop's scaling: 100% is one for one on a screen at
200% too (``QT_SCALE_FACTOR=2``, a 4K laptop's), and a picture scaled down is smoothed at the screen's resolution.
In the widget's own units, which the desktop's scaling sets, the picture is its size in screen pixels divided by
the device pixel ratio: drawn at the desktop's units, 100% showed each picture pixel as 2x2 screen pixels, and a fit
picture was smoothed to half the screen's resolution, then stretched."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QEvent, QPointF, QRectF, QSize, QSizeF, Qt, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPixmap,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.image_viewer_state import ImageViewerState

ZOOM_STEP = 1.25  # one + or - press, one wheel notch with Ctrl
_KEYS_SAID = "←/→ previous/next · 1: 100% · 0: fit · +/−: zoom · Delete · Esc: close"


def _placed(at: float, length: float, room: int) -> float:
    """Where a picture ``length`` long starts along a side of the canvas ``room`` long, asked to start ``at``: centred
    when it fits, else no farther than to bring its end (or its start) to the canvas's edge."""
    if length <= room:
        return (room - length) / 2
    return min(0.0, max(float(room - length), at))


class ImageCanvas(QWidget):
    """Paints the state's picture at its scale, or its message; drag (or the wheel) moves a picture larger than the
    canvas, Ctrl+wheel zooms about the pointer. Where the picture lies (``offset``) is this widget's alone."""

    scaled = Signal()  # the picture's scale may have changed (fit to a canvas resized, another picture)

    def __init__(self, state: ImageViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self._pixmap: QPixmap | None = None
        self._scaled: QPixmap | None = None  # the picture smoothed to a scale below 100%, made once per scale
        self.offset = QPointF()  # the picture's top left corner in the canvas
        self._shown_scale = 1.0  # the widget's units per picture pixel (``_units_scale``) ``offset`` was placed for
        self._anchor: QPointF | None = None  # the point a zoom keeps in place (the pointer's), else the centre
        self._dragged_from: QPointF | None = None
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(QSize(200, 150))
        state.image_changed.connect(self._set_image)
        state.message_changed.connect(self.update)
        state.fit_changed.connect(self._rescale)
        state.zoom_changed.connect(self._rescale)

    def scale(self) -> float:
        """The picture's scale now, in screen pixels per picture pixel (1.0: 100%): the state's zoom, or fit to the
        canvas (``fit_scale``)."""
        if self._pixmap is None or not self._state.fit:
            return self._state.zoom
        return self.fit_scale()

    def fit_scale(self) -> float:
        """The scale that fits the picture to the canvas's screen pixels (a smaller picture at 100%)."""
        if self._pixmap is None:
            return 1.0
        width, height, ratio = self._pixmap.width(), self._pixmap.height(), self.devicePixelRatioF()
        return min(1.0, self.width() * ratio / max(width, 1), self.height() * ratio / max(height, 1))

    def _units_scale(self) -> float:
        """The scale in the widget's own units (which the desktop's scaling sets) per picture pixel."""
        return self.scale() / self.devicePixelRatioF()

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """The scale multiplied by ``factor``, the canvas point ``anchor`` (else its centre) kept in place; zooming
        out goes no smaller than the state's least zoom, or the fit where that is smaller (a panorama)."""
        self._anchor = anchor
        self._state.set_zoom(self.scale() * factor, least=self.fit_scale())
        self._anchor = None

    def _set_image(self, image: QImage | None) -> None:
        self._pixmap = None if image is None else QPixmap.fromImage(image)
        self._scaled = None
        self._shown_scale = self._units_scale()
        size = self._picture_size()
        self.offset = QPointF((self.width() - size.width()) / 2, (self.height() - size.height()) / 2)
        self._place()
        self.scaled.emit()

    def _screen_size(self) -> QSize:
        """The picture's size as shown, in screen pixels."""
        if self._pixmap is None:
            return QSize()
        scale = self.scale()
        return QSize(max(1, round(self._pixmap.width() * scale)), max(1, round(self._pixmap.height() * scale)))

    def _picture_size(self) -> QSizeF:
        """The picture's size as shown, in the widget's units."""
        return self._screen_size().toSizeF() / self.devicePixelRatioF()

    def _rescale(self, *_: object) -> None:
        """The scale changed (or the screen's pixels per unit: the window moved to another screen): the picture
        scaled about the anchor, then kept in view."""
        scale = self._units_scale()
        anchor = self._anchor or QPointF(self.width() / 2, self.height() / 2)
        self.offset = anchor - (anchor - self.offset) * (scale / self._shown_scale)
        self._shown_scale = scale
        self._place()
        self.scaled.emit()

    def _place(self) -> None:
        """``offset`` kept so that a picture smaller than the canvas is centred, and a larger one fills it."""
        size = self._picture_size()
        self.offset = QPointF(_placed(self.offset.x(), size.width(), self.width()),
                              _placed(self.offset.y(), size.height(), self.height()))  # fmt: skip
        self.update()

    def _move_by(self, delta: QPointF) -> None:
        self.offset = self.offset + delta  # a new point: one handed out earlier stays as it was
        self._place()

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(32, 32, 32))
        message = self._state.message
        if self._pixmap is None or message:
            painter.setPen(QColor(220, 220, 220))
            painter.drawText(self.rect().adjusted(24, 24, -24, -24),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, message)  # fmt: skip
            return
        ratio = self.devicePixelRatioF()
        # On a screen pixel's edge: at 100% a picture pixel half on two screen pixels showed them as one
        at = QPointF(round(self.offset.x() * ratio) / ratio, round(self.offset.y() * ratio) / ratio)
        if self.scale() < 1:  # smoothed once per scale: a large picture smoothed at each paint lagged
            size = self._screen_size()
            if self._scaled is None or self._scaled.size() != size or self._scaled.devicePixelRatio() != ratio:
                self._scaled = self._pixmap.scaled(size, Qt.AspectRatioMode.IgnoreAspectRatio,
                                                   Qt.TransformationMode.SmoothTransformation)  # fmt: skip
                self._scaled.setDevicePixelRatio(ratio)  # drawn one pixel per screen pixel
            painter.drawPixmap(at, self._scaled)
        else:  # 100% and above: each pixel a square, to look at it
            painter.drawPixmap(QRectF(at, self._picture_size()), self._pixmap, QRectF(self._pixmap.rect()))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._rescale()

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.DevicePixelRatioChange:  # another screen: the fit, the units per pixel
            self._rescale()
        return super().event(event)

    def wheelEvent(self, event: QWheelEvent) -> None:
        notches = event.angleDelta().y() / 120
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(ZOOM_STEP**notches, event.position())
        else:
            self._move_by(QPointF(event.angleDelta().x(), event.angleDelta().y()) / 2)
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._dragged_from = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._dragged_from is not None:
            self._move_by(event.position() - self._dragged_from)
            self._dragged_from = event.position()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton:
            self._dragged_from = None
            self.unsetCursor()


class ImageViewer(QWidget):
    """The viewer's window: the canvas, and a bar with the image's place, name, size and scale and the scale's
    buttons. Shown while the state is ``open``; closing it closes the state."""

    def __init__(self, state: ImageViewerState, undo: Callable[[], object], parent: QWidget | None = None) -> None:
        """``undo``: the gallery's Undo delete (Ctrl+Z here, as in the gallery)."""
        super().__init__(parent, Qt.WindowType.Window)
        self.setObjectName("imageViewer")
        self.state = state
        self._undo = undo
        self.canvas = ImageCanvas(state)
        self.info = QLabel()
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
        self.fit_button = QPushButton("Fit")
        self.actual_button = QPushButton("100%")
        for button, tip in ((self.fit_button, "Fit the picture to the window (0)"),
                            (self.actual_button, "Show the picture at its own size (1)")):  # fmt: skip
            button.setCheckable(True)
            button.setToolTip(tip)
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys stay the canvas's
        self.fit_button.clicked.connect(lambda: state.fit_to_window())
        self.actual_button.clicked.connect(lambda: state.set_zoom(1.0))
        bar = QHBoxLayout()
        bar.addWidget(self.info, 1)
        bar.addWidget(self.fit_button)
        bar.addWidget(self.actual_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 6)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(bar)
        for signal in (state.record_changed, state.place_changed, state.message_changed, state.fit_changed,
                       self.canvas.scaled):  # fmt: skip
            signal.connect(self._say)
        state.open_changed.connect(self._open_changed)
        self._sized = False

    def _open_changed(self, open_: bool) -> None:
        if not open_:
            self.hide()
            return
        if not self._sized:  # most of the main window's screen at first; as the user leaves it after
            self._sized = True
            area = (self.parentWidget() or self).screen().availableGeometry()
            self.resize(area.size() * 0.8)
            self.move(area.center() - self.rect().center())
        self.show()
        self.raise_()
        self.activateWindow()
        self.canvas.setFocus()

    def _say(self, *_: object) -> None:
        """The bar's text and buttons, and the window's title, as the state is now."""
        state = self.state
        record = state.record
        name = "" if record is None else record.path.rsplit("/", 1)[-1]
        self.setWindowTitle(f"{name} — Nibble Studio" if name else "Nibble Studio")
        parts = [state.place, name]
        if state.image is not None:
            parts += [f"{state.image.width()}×{state.image.height()}", f"{round(self.canvas.scale() * 100)}%"]
        self.info.setText("   ".join(p for p in parts if p) + f"      {_KEYS_SAID}")
        self.fit_button.setChecked(state.fit)
        self.actual_button.setChecked(not state.fit and state.zoom == 1.0)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, state = event.key(), self.state
        ctrl = bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        steps = {Qt.Key.Key_Left: -1, Qt.Key.Key_PageUp: -1, Qt.Key.Key_Right: 1, Qt.Key.Key_PageDown: 1}
        if key in steps:
            state.step(steps[key])
        elif key in (Qt.Key.Key_Home, Qt.Key.Key_End):
            state.to_end(last=key == Qt.Key.Key_End)
        elif key == Qt.Key.Key_Escape:
            state.close()
        elif key == Qt.Key.Key_1:
            state.set_zoom(1.0)
        elif key == Qt.Key.Key_0:
            state.fit_to_window()
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.canvas.zoom_by(ZOOM_STEP)
        elif key == Qt.Key.Key_Minus:
            self.canvas.zoom_by(1 / ZOOM_STEP)
        elif key == Qt.Key.Key_Delete:
            if not event.isAutoRepeat():  # held down, each repeat deleted the image shown next
                state.delete()
        elif key == Qt.Key.Key_Z and ctrl:
            self._undo()
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closed from its title bar: the state closes too (no picture kept)."""
        self.state.close()
        super().closeEvent(event)
