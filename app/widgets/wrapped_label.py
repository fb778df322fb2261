"""A word-wrapped label whose minimum height follows its width, so that docks scroll instead of squeezing it, and
whose long words (names, paths) wrap too, so that they never widen a dock."""

from __future__ import annotations

import re

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QClipboard, QContextMenuEvent, QGuiApplication, QKeyEvent, QMouseEvent, QResizeEvent
from PySide6.QtWidgets import QLabel

ZERO_WIDTH_SPACE = "\u200b"
LONG_RUN = 14  # characters a word keeps together: a longer one (a Civitai file name) may be broken in a label
_LONG_WORD = re.compile(rf"\S{{{LONG_RUN + 1},}}")
_AFTER_SEPARATOR = re.compile(r"(?<=[_.\-/\\])(?=\w)")
_INSIDE = re.compile(r"(?<=.)(?=\w)")  # before letters and digits only: never between a letter and its accent
# A selection as Qt copies it (``QTextDocument.toPlainText``): its line ends, U+2029, as line feeds, and no-break
# spaces as spaces.
_AS_COPIED = str.maketrans({"\u2029": "\n", "\u2028": "\n", "\xa0": " "})


def breakable(text: str) -> str:
    """``text`` with zero-width spaces where its words longer than ``LONG_RUN`` characters may be broken: after
    each ``_ . - / \\`` in them, and anywhere in a piece between those still longer than that. Qt wraps a label at
    spaces and hyphens only: "Model: jibMixFlux_v8_AccentuEight_realism_finetune_svdq_int4_r32" made the label,
    its dock and the window that much wider (848 px where the window's minimum is 652), for good."""

    def broken(word: re.Match[str]) -> str:
        pieces = _AFTER_SEPARATOR.split(word.group())
        return ZERO_WIDTH_SPACE.join(_INSIDE.sub(ZERO_WIDTH_SPACE, p) if len(p) > LONG_RUN else p for p in pieces)

    return _LONG_WORD.sub(broken, text)


class WrappedLabel(QLabel):
    """A word-wrapped label never squeezed below the height its text needs at its width. A plain one's minimum
    is its height at some other width: in a short dock the layout squeezed the details under the next label
    ("Size on disk" and "Estimated VRAM" hidden at 1000x700), where the dock should scroll instead. Plain text:
    what it shows (a prompt's ignored end, a model's name and path) is never drawn as HTML (``app.plain_text``).

    Its long words wrap too (``breakable``); ``text``, ``selectedText``, what is copied from it and its accessible
    name are the text as set, without the marks that let them wrap. A signal connected to its ``setText`` (Python's,
    not Qt's slot) still calls it once the label is deleted: connect it to a method of the panel, which Qt
    disconnects."""

    def __init__(self, text: str = "") -> None:
        super().__init__()
        self.setTextFormat(Qt.TextFormat.PlainText)
        self.setWordWrap(True)
        self._text = ""
        self.setText(text)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        """Shows ``text``, its long words breakable, and makes it the label's accessible name unless another
        name was given to the label."""
        # A screen reader reads Qt's own text, the marks in it (one between every letter of a long piece): the
        # name, where one is set, is read instead.
        if self.accessibleName() == self._text:  # none given, or the one set here with the text before
            self.setAccessibleName(text)
        self._text = text
        super().setText(breakable(text))

    def text(self) -> str:
        return self._text

    def selectedText(self) -> str:  # noqa: N802 (Qt's name)
        return super().selectedText().replace(ZERO_WIDTH_SPACE, "")

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(hint.width(), max(hint.height(), self.heightForWidth(self.width())))

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        if event.size().width() != event.oldSize().width():
            self.updateGeometry()  # its minimum height follows its width

    # A selectable label copies what it shows (Ctrl+C, its menu's Copy, a selection on X11): the marks are taken out
    # of the clipboard after, or a path pasted from it named no file.
    def keyPressEvent(self, event: QKeyEvent) -> None:
        super().keyPressEvent(event)
        self._unmark_clipboard(QClipboard.Mode.Clipboard)

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        super().contextMenuEvent(event)
        self._unmark_clipboard(QClipboard.Mode.Clipboard)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        super().mouseReleaseEvent(event)
        self._unmark_clipboard(QClipboard.Mode.Selection)

    def _unmark_clipboard(self, mode: QClipboard.Mode) -> None:
        """The clipboard's text without zero-width spaces, where it is this label's selection as shown."""
        clipboard = QGuiApplication.clipboard()
        copied = clipboard.text(mode)
        if ZERO_WIDTH_SPACE in copied and copied == super().selectedText().translate(_AS_COPIED):
            clipboard.setText(copied.replace(ZERO_WIDTH_SPACE, ""), mode)
