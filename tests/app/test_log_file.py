"""The log file in the data folder: the windowed executable has no console, so this file is all a user can send
with a problem report. It is UTF-8, rotates with a size cap, holds start-up facts, engine errors and uncaught
exceptions (GUI thread, QThread workers, Python threads) with tracebacks, is named in the app, and a log file
that cannot be opened never stops the app."""

from __future__ import annotations

import logging
import sys
import threading

import pytest
from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from app import app_log
from gpu.version import __version__
from tests.app.gui import open_window


@pytest.fixture(autouse=True)
def _no_log_file_left():
    yield
    app_log.stop_file_log()  # the next test must not write into this test's folder


def _text(root) -> str:
    return app_log.log_file_path(root).read_text(encoding="utf-8")


def test_log_file_is_utf8_rotates_and_is_capped(tmp_path):
    path = app_log.start_file_log(tmp_path, max_bytes=2_000, backups=2)
    assert path == tmp_path / "logs" / "nibble.log" == app_log.current_log_file()
    for i in range(200):
        logging.getLogger("gpu.test").warning("prompt %d: 猫 on a café table, ünïcode", i)
    app_log.stop_file_log()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["nibble.log", "nibble.log.1", "nibble.log.2"]  # two old files kept, no more
    assert all((tmp_path / "logs" / name).stat().st_size <= 2_000 for name in files)
    assert "prompt 199: 猫 on a café table" in _text(tmp_path)  # UTF-8 whatever the system code page
    assert app_log.MAX_BYTES * (app_log.BACKUPS + 1) <= 10_000_000  # the shipped cap is small


def test_a_log_file_that_cannot_be_opened_does_not_stop_the_app(qtbot, data_root):
    (data_root / "logs").write_text("a file where the logs folder goes")  # like a read-only folder or full disk
    assert app_log.start_file_log(data_root) is None and app_log.current_log_file() is None
    window = open_window(qtbot, data_root)
    assert window.isVisible() and not window.log_folder_action.isEnabled()
    assert "No log file" in window.log_folder_action.statusTip()


class _Crashing(QObject):
    go = Signal()

    @Slot()
    def crash(self) -> None:
        raise RuntimeError("worker slot broke")


def test_the_app_logs_start_up_errors_and_uncaught_exceptions_with_tracebacks(qtbot, data_root, tmp_path,
                                                                              monkeypatch):
    # Python's default hooks, as in the app, for this test only: pytest's and pytest-qt's own hooks would be
    # called after the log (install_exception_hooks chains to them) and fail the test over these exceptions
    monkeypatch.setattr(sys, "excepthook", sys.__excepthook__)
    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)
    app_log.install_exception_hooks()
    path = app_log.start_file_log(data_root)
    app_log.log_startup_facts(data_root)
    window = open_window(qtbot, data_root)

    # named in the app: the Help menu opens its folder and says where it is
    assert window.log_file == path and window.log_folder_action.isEnabled()
    assert str(path) in window.log_folder_action.statusTip()
    text = _text(data_root)
    assert f"Nibble Studio {__version__}" in text and f"data folder: {data_root}" in text
    assert "GPU: " in text  # the device the engine found (or that there is none)

    # an engine error: its message in the log, the dialog's details name the log file
    missing = tmp_path / "gone.safetensors"
    window.controller.add_model(missing)
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible(), timeout=60000)
    assert str(path) in window.error_dialog.detailedText()
    window.error_dialog.accept()
    assert "gone.safetensors" in _text(data_root)

    # uncaught: on the GUI thread, in a QThread worker's slot, on a Python thread
    def gui_crash() -> None:
        raise ValueError("gui slot broke")

    QTimer.singleShot(0, gui_crash)
    thread, worker, sender = QThread(), _Crashing(), _Crashing()
    worker.moveToThread(thread)
    sender.go.connect(worker.crash)
    thread.start()
    sender.go.emit()

    def python_crash() -> None:
        raise KeyError("python thread broke")

    t = threading.Thread(target=python_crash, name="helper-thread")
    t.start()
    t.join()
    qtbot.waitUntil(lambda: "worker slot broke" in _text(data_root) and "gui slot broke" in _text(data_root),
                    timeout=10000)
    thread.quit()
    thread.wait()
    text = _text(data_root)
    for message in ("ValueError: gui slot broke", "RuntimeError: worker slot broke",
                    "KeyError: 'python thread broke'"):
        assert message in text
    assert text.count("Traceback (most recent call last)") >= 3 and "in thread helper-thread" in text


def test_another_hook_installed_before_still_sees_the_exception(tmp_path, monkeypatch):
    seen: list[str] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, tb: seen.append(str(value)))
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(str(args.exc_value)))
    app_log.install_exception_hooks()
    app_log.start_file_log(tmp_path)
    try:
        raise OSError("seen by both")
    except OSError:
        sys.excepthook(*sys.exc_info())
    t = threading.Thread(target=lambda: 1 / 0)
    t.start()
    t.join()
    assert seen == ["seen by both", "division by zero"]
    assert "OSError: seen by both" in _text(tmp_path) and "ZeroDivisionError" in _text(tmp_path)


def test_the_gpu_is_logged_once_and_again_only_when_it_changes(qtbot, data_root, monkeypatch):
    """Every status refresh logged "GPU: …" again, free memory and all, burying the log's useful lines."""
    from PySide6.QtCore import QMetaObject, Qt

    import gpu.system_info
    from gpu.system_info import GpuInfo

    app_log.start_file_log(data_root)
    window = open_window(qtbot, data_root)
    worker = window.controller._engine.worker

    def refresh() -> None:  # on the engine thread, as the app's own requests run
        with qtbot.waitSignal(window.controller.engine_ready, timeout=60000):
            QMetaObject.invokeMethod(worker, "refresh_status", Qt.ConnectionType.QueuedConnection)

    assert _text(data_root).count("GPU: ") == 1
    refresh()
    assert _text(data_root).count("GPU: ") == 1  # was: one more per refresh
    free = iter(range(8 << 30, 0, -(1 << 20)))
    monkeypatch.setattr(gpu.system_info, "detect_gpu", lambda: GpuInfo("Laptop GPU", 89, 8 << 30, next(free)))
    refresh()  # a GPU appears (an external one plugged in): said
    refresh()  # the same GPU, less memory free: not news
    text = _text(data_root)
    assert text.count("GPU: ") == 2 and text.count("Laptop GPU") == 1
