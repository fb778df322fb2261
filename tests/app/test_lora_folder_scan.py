"""A folder of LoRAs, added through the LoRA panel's "Add folder…" as users keep them (ComfyUI's and Forge's
subfolders, ``.SafeTensors`` names from Windows): read on a thread of its own while the window stays in use, with
its progress and a Cancel on the panel, its rows added at the end; a second folder meanwhile is refused and said;
closing or quitting the app during the reading neither hangs nor adds anything."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QRegularExpression, Qt
from PySide6.QtWidgets import QFileDialog

from tests.app.test_lora_panel import _tiny_lora


@pytest.fixture
def held_reads(monkeypatch):
    """The LoRA panel's header reads, each noting its thread; one off the Qt thread waits until the test sets the
    event returned (one on the Qt thread, as before the fix, goes on: the test fails instead of hanging). Held where
    every header read passes (``read_header`` looks ``header_summary`` up at each call): a patch of ``read_header``
    itself missed the modules that imported it by name (the row refresh, an image's LoRAs matched)."""
    import gpu.lora.metadata as lora_metadata

    gate, threads = threading.Event(), []
    read = lora_metadata.header_summary

    def held(path: Path):
        threads.append(threading.current_thread())
        if threading.current_thread() is not threading.main_thread():
            gate.wait(60)
        return read(path)

    monkeypatch.setattr(lora_metadata, "header_summary", held)
    gate.threads = threads  # type: ignore[attr-defined]
    return gate


def _comfy_folder(root: Path) -> Path:
    """A ComfyUI-like LoRA folder: files in subfolders, names in any case, a hidden folder's file left out."""
    names = ("top.safetensors", "flux/Style Upper.SafeTensors", "flux/style/deep.SAFETENSORS", ".trash/old.safetensors")
    for rel in names:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        _tiny_lora(root / rel)
    return root


def _pick_folder(qtbot, monkeypatch, window, folder: Path) -> None:
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(folder))
    qtbot.mouseClick(window.lora_panel.add_folder_button, Qt.MouseButton.LeftButton)


def _scan_thread() -> threading.Thread:
    return next(t for t in threading.enumerate() if t.name == "LoRA folder")


def test_a_folder_is_read_off_the_qt_thread_with_its_subfolders(qtbot, bare_window, tmp_path, monkeypatch,
                                                                 held_reads):  # fmt: skip
    """ "Add folder…" read every file's header on the Qt thread (2,000 files: 8 s of a frozen window), looked into
    no subfolder, and missed ``.SafeTensors`` names on Linux."""
    panel, state = bare_window.lora_panel, bare_window.controller.loras
    folder = _comfy_folder(tmp_path / "loras")
    _pick_folder(qtbot, monkeypatch, bare_window, folder)
    # The window is in use while the thread waits in the first file's header: the panel says how far it is, and
    # its rows take edits.
    qtbot.waitUntil(lambda: panel.scan_label.text() == "Reading LoRAs… 0/3", timeout=30000)
    assert panel.scan_label.isVisible() and panel.cancel_scan_button.isVisible()
    assert not panel.add_folder_button.isEnabled()  # one folder at a time
    panel.row_for("monochrome-style").slider.setValue(50)
    assert state.entries[0].strength == 0.5
    shown: list = []
    bare_window.controller.error.connect(shown.append)
    bare_window.controller.add_lora_folder(tmp_path)  # another folder meanwhile (the button waits): said
    assert str(folder) in shown[0].message and str(tmp_path) in shown[0].message
    assert "still being read" in shown[0].message

    held_reads.set()
    qtbot.waitUntil(lambda: not state.folder_scan.scanning, timeout=30000)
    assert threading.main_thread() not in held_reads.threads
    assert [e.name for e in state.entries] == ["monochrome-style", "top", "Style Upper", "deep"]
    assert [e.enabled for e in state.entries[1:]] == [False] * 3  # a folder's LoRAs come switched off
    assert panel.row_for("deep").entry.info == "kohya, rank 1, 3 tensors; changes the transformer"
    assert panel.scan_label.text() == f"Added 3 FLUX.1 LoRAs from {folder}."
    assert not panel.cancel_scan_button.isVisible() and panel.add_folder_button.isEnabled()
    assert len(shown) == 1  # nothing wrong with the folder: no dialog


def test_cancel_or_closing_adds_nothing(qtbot, bare_window, tmp_path, monkeypatch, held_reads):
    panel, state = bare_window.lora_panel, bare_window.controller.loras
    folder = _comfy_folder(tmp_path / "loras")
    before = list(state.entries)
    _pick_folder(qtbot, monkeypatch, bare_window, folder)
    qtbot.waitUntil(lambda: panel.scan_label.text() == "Reading LoRAs… 0/3", timeout=30000)
    qtbot.mouseClick(panel.cancel_scan_button, Qt.MouseButton.LeftButton)
    assert panel.scan_label.text() == f"Cancelled: no LoRAs of {folder} were added."
    assert panel.add_folder_button.isEnabled() and not panel.cancel_scan_button.isVisible()
    thread = _scan_thread()
    held_reads.set()
    thread.join(30)
    assert not thread.is_alive()  # it stopped after the file it read, not after the folder
    QCoreApplication.processEvents()  # anything it had sent would arrive now
    assert state.entries == before

    held_reads.clear()  # closing the window while a folder is read: nothing added to the settings it saves
    _pick_folder(qtbot, monkeypatch, bare_window, folder)
    qtbot.waitUntil(lambda: panel.scan_label.text() == "Reading LoRAs… 0/3", timeout=30000)
    thread = _scan_thread()
    bare_window.close()
    held_reads.set()
    thread.join(30)
    QCoreApplication.processEvents()
    assert state.entries == before and bare_window.error_dialog is None


_QUIT_DURING_SCAN = """
import sys, threading
from pathlib import Path
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog
import gpu.lora.metadata as lora_metadata
from app.data_dir import resolve_data_dir
from app.main_window import MainWindow

never, read = threading.Event(), lora_metadata.header_summary

def held(path):  # a file on a network share that never answers (the shipped LoRA, read at start, answers)
    return read(path) if threading.current_thread() is threading.main_thread() else never.wait()

lora_metadata.header_summary = held
QFileDialog.getExistingDirectory = lambda *a, **k: sys.argv[2]
qt = QApplication(["nibble-studio"])
window = MainWindow(resolve_data_dir(Path(sys.argv[1])))
window.show()

def quit_once_reading():
    if not window.controller.loras.folder_scan.scanning:
        QTimer.singleShot(20, quit_once_reading)
        return
    window.close()
    qt.quit()

window.lora_panel.add_folder_button.click()
QTimer.singleShot(20, quit_once_reading)
print("returned", qt.exec(), flush=True)
"""


def test_quitting_while_a_folder_is_read_does_not_hang(tmp_path):
    """The thread reading a folder's LoRAs may sit in a file that never answers: quitting must not wait for it."""
    folder = _comfy_folder(tmp_path / "loras")
    out = subprocess.run([sys.executable, "-c", _QUIT_DURING_SCAN, str(tmp_path / "data"), str(folder)],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})  # fmt: skip
    assert out.returncode == 0 and "returned 0" in out.stdout, out.stderr[-2000:]


def test_the_add_lora_dialog_shows_safetensors_files_in_any_case(qtbot, bare_window, monkeypatch):
    """ "Add LoRA…" offered "*.safetensors", which GTK's dialog on Linux matches as written: ``Style.SafeTensors``
    could not be picked. Its LoRA filter now matches any case, whether the dialog matches with case (GTK, the
    desktop portal) or without (Qt's own), and an "All files" filter follows."""
    asked: list[str] = []
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: (asked.append(a[3]), ([], ""))[1])
    qtbot.mouseClick(bare_window.lora_panel.add_button, Qt.MouseButton.LeftButton)
    lora_filter, everything = asked[0].split(";;")
    patterns = lora_filter[lora_filter.index("(") + 1 : -1].split()
    for name in ("a.safetensors", "Style.SafeTensors", "B.SAFETENSORS"):
        assert any(fnmatch.fnmatchcase(name, p) for p in patterns), (name, patterns)  # GTK: as written
        qt = [QRegularExpression(QRegularExpression.wildcardToRegularExpression(p)) for p in patterns]
        assert any(r.match(name).hasMatch() for r in qt), (name, patterns)  # Qt's own: its wildcards
    assert not any(fnmatch.fnmatchcase("notes.txt", p) for p in patterns)
    assert everything.endswith("(*)")
