"""Nibble Studio started again on the data folder of the one open (an image double-clicked while it runs, "Open
with", the launcher clicked twice): the window open takes the image and comes forward, and the second start exits
without a word. It said in a dialog that the app runs and the image was not opened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image
from PySide6.QtNetwork import QLocalSocket

from app.data_dir import resolve_data_dir
from app.instance_handoff import handoff_name
from gpu.generation.png_metadata import write_png
from tests.app.gui import window_without_engine

REPO = Path(__file__).resolve().parents[2]


def _second_start(qtbot, data_root: Path, *files: Path) -> subprocess.CompletedProcess:
    """``main.py --data-dir data_root FILES`` in another process, as a file manager starts it, this test's event
    loop running meanwhile (the window answers from it)."""
    child = subprocess.Popen([sys.executable, "main.py", "--data-dir", str(data_root), *map(str, files)], cwd=REPO,
                             env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        qtbot.waitUntil(lambda: child.poll() is not None, timeout=120000)
    finally:
        if child.poll() is None:
            child.kill()
    out, err = child.communicate()
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def test_an_image_opened_while_the_app_runs_opens_in_its_window(qtbot, data_root, tmp_path):
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    window.controller.prompt.prompt = "the prompt before"
    window.showMinimized()
    png = write_png(tmp_path / "a lake.png", Image.new("RGB", (8, 8)), {"prompt": "a lake at dawn", "seed": 9})
    done = _second_start(qtbot, data_root, png)
    assert done.returncode == 0, done.stderr[-3000:]  # no refusal dialog: it would have ended in 1
    assert "handed over to the Nibble Studio open on" in done.stderr, done.stderr[-3000:]
    qtbot.waitUntil(lambda: window.controller.prompt.prompt == "a lake at dawn")
    assert window.controller.prompt.seed == 9
    assert not window.isMinimized()  # brought forward
    # Started again without a file (the launcher clicked while the window is behind others): forward, no dialog
    window.showMinimized()
    done = _second_start(qtbot, data_root)
    assert done.returncode == 0, done.stderr[-3000:]
    qtbot.waitUntil(lambda: not window.isMinimized())
    assert window.controller.prompt.prompt == "a lake at dawn"


def test_the_window_ignores_what_is_not_a_second_start(qtbot, data_root):
    """Another program on the socket's name, a damaged request, names relative to a folder it does not know: the
    connection is dropped and nothing is opened; a request is not carried out before its ``go``."""
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    asked: list = []
    window.handoff.asked.connect(asked.append)
    for request in (b"GET / HTTP/1.0\n", b'{"open": ["a lake.png"]}\n', b'["/a lake.png"]\n', b"\xff\xfe\n",
                    b'{"open": ["/a lake.png"]}\nnot go\n'):  # fmt: skip
        socket = _connected(window)
        socket.write(request)
        qtbot.waitUntil(lambda s=socket: s.state() == QLocalSocket.LocalSocketState.UnconnectedState, timeout=5000)
    socket = _connected(window)  # answered, then given up on by the second start (it waited too long): not opened
    socket.write(b'{"open": ["/a lake.png"]}\n')
    qtbot.waitUntil(lambda: socket.bytesAvailable() > 0, timeout=5000)
    assert bytes(socket.readAll().data()) == b"ok\n"
    socket.abort()
    qtbot.wait(200)
    assert asked == []
    socket = _connected(window)  # and one that confirms is taken: the server still listens after all of the above
    socket.write(b'{"open": []}\n')
    qtbot.waitUntil(lambda: socket.bytesAvailable() > 0, timeout=5000)
    socket.write(b"go\n")
    qtbot.waitUntil(lambda: asked == [[]], timeout=5000)


def _connected(window) -> QLocalSocket:
    socket = QLocalSocket()
    socket.connectToServer(handoff_name(window.data.root))
    assert socket.waitForConnected(2000)
    return socket


def test_the_socket_is_the_data_folders(tmp_path):
    """One name for a folder however it is reached (a link to it), another for another folder: a second start on
    another data folder starts its own app."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "to a").symlink_to(tmp_path / "a")
    assert handoff_name(tmp_path / "a") == handoff_name(tmp_path / "to a") != handoff_name(tmp_path / "b")
