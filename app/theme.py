"""Light/dark follows the system: Fusion style with the platform palette, re-applied when the scheme changes."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

WARNING_COLOR = "#e07b39"  # text that warns (a prompt longer than the model reads); legible on light and dark
# The quantize wizard's messages: what stops the user going on (red), and what they may want to change (amber)
PROBLEM_COLOR, CAUTION_COLOR = "#c0392b", "#b9770e"


def _dark_palette() -> QPalette:
    palette = QPalette()
    base, window, text = QColor(30, 30, 32), QColor(42, 42, 46), QColor(225, 225, 228)
    for role, color in (
        (QPalette.ColorRole.Window, window), (QPalette.ColorRole.WindowText, text),
        (QPalette.ColorRole.Base, base), (QPalette.ColorRole.AlternateBase, window),
        (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, window),
        (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.ToolTipBase, base),
        (QPalette.ColorRole.ToolTipText, text), (QPalette.ColorRole.Highlight, QColor(70, 120, 200)),
        (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
        (QPalette.ColorRole.PlaceholderText, QColor(140, 140, 145)),
    ):
        palette.setColor(role, color)
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(120, 120, 125))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(120, 120, 125))
    return palette


def apply_theme(app: QApplication) -> None:
    app.setStyle("Fusion")  # the same look on Windows and Linux; follows the palette below

    def update(scheme: Qt.ColorScheme | None = None) -> None:
        scheme = QGuiApplication.styleHints().colorScheme() if scheme is None else scheme
        app.setPalette(_dark_palette() if scheme == Qt.ColorScheme.Dark else app.style().standardPalette())

    update()
    QGuiApplication.styleHints().colorSchemeChanged.connect(update)
