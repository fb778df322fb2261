"""Errors in plain words: what happened, what to try. Non-blocking (``open``), so the window never freezes."""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget

from app.engine_errors import EngineError

_TITLES = {"user": "Can't do that", "oom": "Out of memory", "internal": "Something went wrong",
           "notice": "Please note"}
_ICONS = {"internal": QMessageBox.Icon.Critical, "notice": QMessageBox.Icon.Information}


def _box(parent: QWidget | None, error: EngineError, title: str | None = None) -> QMessageBox:
    box = QMessageBox(parent)
    box.setObjectName("errorDialog")
    box.setIcon(_ICONS.get(error.kind, QMessageBox.Icon.Warning))
    box.setWindowTitle(title or _TITLES.get(error.kind, "Problem"))
    box.setText(error.message)
    if error.hint:
        box.setInformativeText(error.hint)
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    return box


def show_error(parent: QWidget, error: EngineError) -> QMessageBox:
    box = _box(parent, error)
    box.open()
    return box


def show_fatal_error(error: EngineError) -> None:
    """Before any window exists (the app cannot start): a blocking dialog instead of a traceback."""
    _box(None, error, "Nibble Studio cannot start").exec()
