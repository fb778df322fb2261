"""GUI tests run offscreen with a fresh data dir per test (never the user's real one).

They drive the real window with the real engine and the shipped demo model (``resources/models/demo``). Test
modules import their helpers from ``tests.app.gui``."""

from __future__ import annotations

import gc
import os
from pathlib import Path

HERE = Path(__file__).parent

# Offscreen on a desktop's screen (1920x1080), where the window opens at its first size, 1280x800, as the tests
# were written for: offscreen's own screen (800x800) bounds it (``MainWindow._first_geometry``). A platform named
# with options of its own (a screen of another size) is left as it is. The file's path relative: Qt splits the
# platform's options at colons, a Windows drive's too.
if os.environ.get("QT_QPA_PLATFORM", "offscreen") == "offscreen":
    os.environ["QT_QPA_PLATFORM"] = f"offscreen:configfile={os.path.relpath(HERE / 'desktop_screen.json')}"

import pytest  # noqa: E402

from gpu.paths import resources_dir  # noqa: E402
from tests.app.gui import open_window, open_windows, stop_dialog_pollers, window_without_engine  # noqa: E402


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After the last GUI test, what they left is collected again as anything else (see ``_close_windows``): the
    tests after them run as they would without the GUI tests' freezing."""
    try:
        return (yield)
    finally:  # a failed teardown too
        if nextitem is None or HERE not in nextitem.path.parents:
            gc.unfreeze()
            gc.collect()


@pytest.fixture(autouse=True)
def _close_windows():
    yield
    while open_windows:
        open_windows.pop().close()
    # Collect this test's dead windows now, on the GUI thread: left to a later automatic collection they can
    # be destroyed on an engine worker thread, and destroying widgets off the GUI thread crashes Qt.
    gc.collect()
    # What is left lives on past its test (modules, torch's and Qt's, caches): frozen (gc.freeze), no later
    # collection goes through it again. A full collection went through all of it, half a million objects, 0.3-0.5 s
    # at each test's end and at each of the engine's own collections (about half of the GUI tests' time), while
    # finding only what the test just made.
    gc.freeze()
    stop_dialog_pollers()  # after the windows closed: a test may wait for a dialog their closing shows


@pytest.fixture
def window(qtbot, data_root):
    return open_window(qtbot, data_root)


@pytest.fixture
def bare_window(qtbot, data_root):
    """The window without its engine (``window_without_engine``): the LoRA panel reads headers only."""
    from app.data_dir import resolve_data_dir

    return window_without_engine(qtbot, resolve_data_dir(data_root))
