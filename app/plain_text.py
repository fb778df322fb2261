"""The user's text (prompts, file, model and LoRA names) shown as written. Qt draws the text of a label, a message
box or a tooltip as rich text when it looks like HTML (``Qt.mightBeRichText``: a tag on its first line): a prompt
"a neon <b>OPEN</b> sign" showed OPEN in bold without its tags, quoting another text than the user's, and a
tooltip so taken lost its line breaks. Labels and message boxes that show such text are set to plain text; a
tooltip has no such setting, and is escaped here. So is a button's or check box's text, where '&' marks a
keyboard shortcut."""

from __future__ import annotations

from PySide6.QtGui import Qt
from PySide6.QtWidgets import QLabel


def plain_tooltip(text: str) -> str:
    """``text`` as a tooltip that shows it as written: as it is, or where Qt would take it for rich text, escaped
    into HTML that keeps its spaces and line breaks (``Qt.convertFromPlainText``, white space kept: as a plain
    tooltip, it is not wrapped)."""
    return Qt.convertFromPlainText(text, Qt.WhiteSpaceMode.WhiteSpacePre) if Qt.mightBeRichText(text) else text


def plain_button_text(text: str) -> str:
    """``text`` as a button's or check box's text that shows it as written: Qt takes '&' there as the mark of a
    keyboard shortcut (a LoRA "R&B style" showed "RB style", and Alt+B anywhere in the window toggled it); "&&"
    shows one '&'."""
    return text.replace("&", "&&")


def plain_label(text: str = "") -> QLabel:
    """A label that shows ``text``, and any text set later, as written (plain text, never HTML)."""
    label = QLabel(text)
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label
