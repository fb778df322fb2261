"""GUI tests run offscreen with a fresh data dir per test (never the user's real one).

They drive the real window with the real engine and the shipped demo model (``resources/models/demo``)."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402

from gpu.paths import resources_dir  # noqa: E402

TEST_STEPS = 2
TEST_SIZE = 128


@pytest.fixture(scope="session")
def demo_model() -> Path:
    """The shipped demo model (GUI tests drive the real engine on it)."""
    path = resources_dir() / "models" / "demo"
    assert (path / "model_index.json").is_file(), "the demo model is missing from resources/models/demo"
    return path


@pytest.fixture
def data_root(tmp_path, monkeypatch, demo_model) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("NIBBLE_DATA_DIR", str(root))
    return root


_open_windows: list = []  # strong references: pytest-qt keeps only weak ones, and a window collected
# before teardown would never run closeEvent (engine thread left running)


@pytest.fixture(autouse=True)
def _close_windows():
    yield
    while _open_windows:
        _open_windows.pop().close()
    # Collect this test's dead windows now, on the GUI thread: left to a later automatic collection they can
    # be destroyed on an engine worker thread, and destroying widgets off the GUI thread crashes Qt.
    gc.collect()


def open_window(qtbot, root: Path):
    from app.data_dir import resolve_data_dir
    from app.main_window import MainWindow

    window = MainWindow(resolve_data_dir(root))
    qtbot.addWidget(window)
    _open_windows.append(window)
    window.show()
    with qtbot.waitSignal(window.controller.engine_ready, timeout=60000):
        window.start()
    # the model's info (and so the model panel) arrives right after the engine is ready
    qtbot.waitUntil(lambda: window.controller.model_info is not None, timeout=60000)
    state = window.controller.prompt
    state.steps, state.width, state.height, state.batch_count = TEST_STEPS, TEST_SIZE, TEST_SIZE, 1
    return window


@pytest.fixture
def window(qtbot, data_root):
    return open_window(qtbot, data_root)


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
