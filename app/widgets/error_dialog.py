"""Errors in plain words: what happened, what to try. Non-blocking (``open``), so the window never freezes."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from app.engine_errors import EngineError

_TITLES = {"user": "Can't do that", "oom": "Out of memory", "internal": "Something went wrong"}


def show_error(parent: QWidget, error: EngineError) -> QMessageBox:
    box = QMessageBox(parent)
    box.setObjectName("errorDialog")
    box.setIcon(QMessageBox.Icon.Warning if error.kind != "internal" else QMessageBox.Icon.Critical)
    box.setWindowTitle(_TITLES.get(error.kind, "Problem"))
    box.setText(error.message)
    if error.hint:
        box.setInformativeText(error.hint)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    box.open()
    return box
