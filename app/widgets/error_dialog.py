"""Errors in plain words: what happened, what to try. Non-blocking (``open``), so the window never freezes."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

from app.engine_errors import EngineError
from app.wording import sentences

_TITLES = {"user": "Can't do that", "oom": "Out of memory", "internal": "Something went wrong",
           "notice": "Please note"}
_ICONS = {"internal": QMessageBox.Icon.Critical, "notice": QMessageBox.Icon.Information}
# For an error raised without a hint of its own (many engine errors are one-liners for the command line): a
# dialog that only says what went wrong leaves the user with nothing to do. Notices need none: nothing failed.
FALLBACK_HINT = "Check the file, folder or setting the message names, then try again."


def _box(parent: QWidget | None, error: EngineError, title: str | None = None,
         log_file: Path | None = None) -> QMessageBox:
    box = QMessageBox(parent)
    box.setObjectName("errorDialog")
    box.setIcon(_ICONS.get(error.kind, QMessageBox.Icon.Warning))
    box.setWindowTitle(title or _TITLES.get(error.kind, "Problem"))
    # Engine messages and hints are command-line one-liners ("x.safetensors: truncated: …", "copy or download
    # the file again"): in a dialog they read as sentences. Done here, where every dialog is made, not in each
    # place an error is raised.
    message = sentences(error.message)
    box.setTextFormat(Qt.TextFormat.PlainText)  # messages quote the user's text: never drawn as HTML (app.plain_text)
    box.setText(message)
    hint = error.hint or ("" if error.kind == "notice" else FALLBACK_HINT)
    if hint:
        box.setInformativeText(sentences(hint))
    if log_file is not None and error.kind != "notice":  # what to send with a problem report, and where it is
        box.setDetailedText(f"{message}\n\nThe log file {log_file} has the details (tracebacks included); "
                            "send it with a problem report.")
    box.setStandardButtons(QMessageBox.StandardButton.Ok)
    return box


def show_error(parent: QWidget, error: EngineError, log_file: Path | None = None) -> QMessageBox:
    """Opens the dialog without blocking; for an error (not a notice) its details name ``log_file`` if given."""
    box = _box(parent, error, log_file=log_file)
    box.open()
    return box


def show_error_and_wait(parent: QWidget, error: EngineError, log_file: Path | None = None) -> None:
    """Blocks until dismissed: for what the user must read before the window goes (a failure while quitting)."""
    _box(parent, error, log_file=log_file).exec()


def show_fatal_error(error: EngineError, log_file: Path | None = None) -> None:
    """Before any window exists (the app cannot start): a blocking dialog instead of a traceback."""
    _box(None, error, "Nibble Studio cannot start", log_file).exec()
