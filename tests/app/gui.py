"""Helpers the GUI tests import (a module of its own name: ``conftest`` is ambiguous when tests/app and
tests/gpu run in one pytest command, and the later conftest wins that name)."""

from __future__ import annotations

from pathlib import Path

TEST_STEPS = 2
TEST_SIZE = 128

open_windows: list = []  # strong references: pytest-qt keeps only weak ones, and a window collected
# before teardown would never run closeEvent (engine thread left running)


def window_without_engine(qtbot, data):
    """The window on the DataDir ``data``, shown as ``run_app`` shows it, the engine not started (``start`` not
    called: tests of the gallery and its files need none)."""
    from app.main_window import MainWindow

    window = MainWindow(data)
    qtbot.addWidget(window)
    open_windows.append(window)
    window.show()
    return window


def open_window(qtbot, root: Path):
    from app.data_dir import resolve_data_dir

    window = window_without_engine(qtbot, resolve_data_dir(root))
    with qtbot.waitSignal(window.controller.engine_ready, timeout=60000):
        window.start()
    # the model's info (and so the model panel) arrives right after the engine is ready
    qtbot.waitUntil(lambda: window.controller.model_info is not None, timeout=60000)
    # the images found in the folder are imported after the window shows: what a test checks is there by now
    qtbot.waitUntil(lambda: not window.controller.folder_import.running, timeout=60000)
    state = window.controller.prompt
    state.steps, state.width, state.height, state.batch_count = TEST_STEPS, TEST_SIZE, TEST_SIZE, 1
    return window


def accept_dialog_later(seen: list[str]) -> None:
    """Accepts the next message box once it shows (a modal one blocks the caller), noting its text."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    def check() -> None:
        box = next((w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()), None)
        if box is None:
            QTimer.singleShot(50, check)
            return
        seen.append(f"{box.windowTitle()}\n{box.text()}\n{box.informativeText()}")
        box.accept()

    QTimer.singleShot(50, check)


def drop_file(widget, path: Path) -> None:
    """Drops the file ``path`` on ``widget`` (as from a file manager)."""
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    widget.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier))


def trash_listing(qtbot, gallery):
    """What Empty trash finds in the trash (``TrashListing``), listed on its thread as "Empty trash…" lists it."""
    listed: list = []
    gallery.list_trash_to_empty(listed.append)
    qtbot.waitUntil(lambda: bool(listed), timeout=30000)
    return listed[0]


def trash_settled(qtbot, gallery) -> None:
    """Waits until the gallery's listing of the trash (after a delete, an undo, Empty trash) has ended."""
    qtbot.waitUntil(lambda: not gallery.listing_trash, timeout=30000)
