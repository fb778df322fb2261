"""Nibble Studio started again on the data folder of the one open (an image double-clicked while it runs, "Open
with", the launcher clicked twice): the window open takes the image and comes forward, and the second start exits
without a word. It said in a dialog that the app runs and the image was not opened."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import shiboken6
from PIL import Image
from PySide6.QtCore import QObject, QTimer
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication

import app.instance_handoff
from app.data_dir import resolve_data_dir
from app.instance_handoff import HandoffServer, hand_over, handoff_name, socket_paths
from app.settings import load_settings
from gpu.generation.png_metadata import write_png
from tests.app import gui
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


def _second_start_waiting(root: Path, png: Path, wait_ms: int = app.instance_handoff.ANSWER_WAIT_MS,
                          env: dict[str, str] | None = None) -> subprocess.Popen:  # fmt: skip
    """``hand_over(root, [png], wait_ms)`` in another process (in ``env``): its exit code 0 when it returned True."""
    code = ("import sys; from pathlib import Path; from PySide6.QtCore import QCoreApplication; "
            "app = QCoreApplication([]); from app.instance_handoff import hand_over; "
            "sys.exit(0 if hand_over(Path(sys.argv[1]), [Path(sys.argv[2])], int(sys.argv[3])) else 1)")
    return subprocess.Popen([sys.executable, "-c", code, str(root), str(png), str(wait_ms)], cwd=REPO, env=env)


def _exit_code(qtbot, child: subprocess.Popen, settle_ms: int = 0) -> int:
    """``child``'s exit code once it ended (killed after a minute), this test's event loop running meanwhile, and
    ``settle_ms`` more (the window hands on what it was told)."""
    try:
        qtbot.waitUntil(lambda: child.poll() is not None, timeout=60000)
        qtbot.wait(settle_ms)
    finally:
        if child.poll() is None:
            child.kill()
    return child.wait()


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
    for request in (b"GET / HTTP/1.0\n", b'{"protocol": 2, "take": ["a lake.png"]}\n', b'["/a lake.png"]\n',
                    b"\xff\xfe\n", b'{"protocol": 2, "take": ["/a lake.png"]}\nnot go\n',
                    b'{"open": ["/a lake.png"]}\n', b'{"protocol": 3, "take": ["/a lake.png"]}\n'):  # fmt: skip
        socket = _connected(window)
        socket.write(request)
        qtbot.waitUntil(lambda s=socket: s.state() == QLocalSocket.LocalSocketState.UnconnectedState, timeout=5000)
    socket = _connected(window)  # answered, then given up on by the second start (it waited too long): not opened
    socket.write(b'{"protocol": 2, "take": ["/a lake.png"]}\n')
    qtbot.waitUntil(lambda: socket.bytesAvailable() > 0, timeout=5000)
    assert bytes(socket.readAll().data()) == b"ok\n"
    socket.abort()
    qtbot.wait(200)
    assert asked == []
    socket = _connected(window)  # and one that confirms is taken: the server still listens after all of the above
    socket.write(b'{"protocol": 2, "take": []}\n')
    qtbot.waitUntil(lambda: socket.bytesAvailable() > 0, timeout=5000)
    socket.write(b"go\n")
    qtbot.waitUntil(lambda: asked == [[]], timeout=5000)


def _connected(window) -> QLocalSocket:
    socket = QLocalSocket()
    socket.connectToServer(window.handoff.name)
    assert socket.waitForConnected(2000)
    return socket


def test_the_socket_is_the_data_folders(tmp_path):
    """One name for a folder however it is reached (a link to it), another for another folder: a second start on
    another data folder starts its own app."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "to a").symlink_to(tmp_path / "a")
    assert handoff_name(tmp_path / "a") == handoff_name(tmp_path / "to a") != handoff_name(tmp_path / "b")


def test_a_second_start_waits_for_an_app_that_is_still_starting(qtbot, tmp_path):
    """The app open took the folder's lock a moment ago and is not listening yet (it reads its folder): the second
    start tries again until it is, rather than saying at once that an app runs. Here it listens 0.5 s after the
    start began trying."""
    png = tmp_path / "a lake.png"
    code = ("import sys; from pathlib import Path; from PySide6.QtCore import QCoreApplication; "
            "app = QCoreApplication([]); from app.instance_handoff import hand_over; print('trying', flush=True); "
            "sys.exit(0 if hand_over(Path(sys.argv[1]), [Path(sys.argv[2])]) else 1)")
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), str(png)], cwd=REPO, stdout=subprocess.PIPE,
                             text=True)  # fmt: skip
    try:
        assert child.stdout.readline().strip() == "trying"  # however long its start took on a loaded machine
        qtbot.wait(500)
        server = HandoffServer(tmp_path)
        asked: list = []
        server.asked.connect(asked.append)
        assert server.listen()
        qtbot.waitUntil(lambda: child.poll() is not None, timeout=60000)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0 and asked == [[png]]
    server.close()
    started = time.monotonic()  # none listening at all: it gives up at the end of its wait
    assert not hand_over(tmp_path, [png], wait_ms=800)
    assert 0.7 < time.monotonic() - started < 5
    started = time.monotonic()  # and soon by default (an older app without the socket): "already running" at once
    assert not hand_over(tmp_path, [png])  # it said so after the whole 5 s answer wait
    assert time.monotonic() - started < app.instance_handoff.CONNECT_WAIT_MS / 1000 + 1


def test_a_window_that_closes_drops_the_requests_it_had_not_taken(qtbot, data_root):
    """A second start connected just before the window closed and sending its request just after: not answered
    ``ok`` (it would exit without a word, its image opened nowhere), so it waits for the lock or says it runs."""
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    socket = _connected(window)
    qtbot.waitUntil(lambda: len(window.handoff.findChildren(QLocalSocket)) == 1, timeout=5000)  # accepted
    gui.open_windows.remove(window)
    window.close()
    socket.write(b'{"protocol": 2, "take": ["/tmp/a lake.png"]}\n')
    qtbot.waitUntil(lambda: socket.state() == QLocalSocket.LocalSocketState.UnconnectedState, timeout=5000)
    assert bytes(socket.readAll().data()) == b""


def test_the_socket_gone_with_a_second_start_connected_raises_nothing(qtbot, tmp_path, monkeypatch):
    """The window deleted at exit while a second start is connected: the socket's ``disconnected``, emitted from
    its destructor, called ``deleteLater`` on the deleted object from Python (an uncaught RuntimeError)."""
    errors: list = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, tb: errors.append(value))
    parent = QObject()  # the window
    server = HandoffServer(tmp_path, parent)
    assert server.listen()
    socket = QLocalSocket()
    socket.connectToServer(server.name)
    assert socket.waitForConnected(2000)
    qtbot.waitUntil(lambda: len(server.findChildren(QLocalSocket)) == 1, timeout=5000)
    shiboken6.delete(parent)
    qtbot.wait(50)
    assert errors == []


def test_connections_that_never_finish_their_request_are_dropped(qtbot, tmp_path, monkeypatch):
    """A peer that connects and never sends its newline, or many of them: each held a descriptor and a buffer for
    the session (800 took the app from 9 open descriptors to 809; at the usual limit of 1024 it can open no image)."""
    monkeypatch.setattr(app.instance_handoff, "REQUEST_WAIT_MS", 500)
    server = HandoffServer(tmp_path)
    assert server.listen()
    sockets = []
    for _ in range(app.instance_handoff.MAX_CONNECTIONS + 4):
        socket = QLocalSocket()
        socket.connectToServer(server.name)
        assert socket.waitForConnected(2000)
        socket.write(b'{"open": [')
        sockets.append(socket)
    qtbot.wait(200)  # taken in: those past the limit are dropped at once
    assert len(server.findChildren(QLocalSocket)) <= app.instance_handoff.MAX_CONNECTIONS
    qtbot.waitUntil(lambda: all(s.state() == QLocalSocket.LocalSocketState.UnconnectedState for s in sockets),
                    timeout=5000)  # fmt: skip
    qtbot.waitUntil(lambda: not server.findChildren(QLocalSocket), timeout=5000)
    server.close()


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to run a process as another user")
def test_a_socket_another_user_made_under_the_name_is_told_nothing(qtbot, tmp_path):
    """The name is predictable (a user id and a data folder): another user of the computer who made a socket of
    that name first was handed the image's path, and its "ok" made the second start exit as if the image opened."""
    path = socket_paths(tmp_path)[-1]  # /tmp: where another user can make one
    code = """if True:
        import os, socket, sys
        os.setgid(65534)
        os.setuid(65534)
        s = socket.socket(socket.AF_UNIX)
        s.bind(sys.argv[1])
        os.chmod(sys.argv[1], 0o777)
        s.listen(1)
        print("ready", flush=True)
        c, _ = s.accept()
        c.settimeout(5)
        told = b""
        try:
            c.sendall(b"ok\\n")
            while data := c.recv(65536):
                told += data
        except OSError:  # the second start dropped the connection
            pass
        print(repr(told), flush=True)
    """
    os.chmod(tmp_path, 0o755)
    other = subprocess.Popen([sys.executable, "-c", code, path], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "ready"
        assert not hand_over(tmp_path, [tmp_path / "private shoot.png"], wait_ms=2000)
        told = other.communicate(timeout=30)[0]
    finally:
        if other.poll() is None:
            other.kill()
        if os.path.exists(path):
            os.unlink(path)
    assert "private shoot" not in told and told.strip() == "b''", told


def test_a_start_that_no_app_answers_opens_once_the_app_open_has_quit(qtbot, data_root, monkeypatch):
    """The app open was quitting (no longer listening, its lock still held): once the second start's wait ends with
    no answer, it takes the folder if that app let it go meanwhile, rather than saying an app runs."""
    from app.main_window import _window_or_handed_over

    monkeypatch.setattr(app.instance_handoff, "ANSWER_WAIT_MS", 1500)
    code = ("import sys, time; from pathlib import Path; from PySide6.QtCore import QCoreApplication; "
            "app = QCoreApplication([]); from app.data_dir import resolve_data_dir; "
            "from app.instance_lock import lock_data_dir; lock = lock_data_dir(resolve_data_dir(Path(sys.argv[1]))); "
            "print('locked', flush=True); time.sleep(0.5); lock.unlock(); time.sleep(30)")
    quitting = subprocess.Popen([sys.executable, "-c", code, str(data_root)], cwd=REPO, stdout=subprocess.PIPE,
                                text=True)  # fmt: skip
    try:
        assert quitting.stdout.readline().strip() == "locked"
        window = _window_or_handed_over(resolve_data_dir(data_root), [])
    finally:
        quitting.kill()
        quitting.wait()
    assert window is not None
    gui.open_windows.append(window)
    qtbot.addWidget(window)


class _ClosingRightAfterOk(HandoffServer):
    """A window whose closing is handled just after it answered ``ok`` (the user's Close queued behind the second
    start's request): the ``go`` is with the system, not yet read, when ``close`` drops the connection."""

    def _read(self, socket) -> None:
        super()._read(socket)
        if socket in self._pending:  # answered ok
            socket.flush()
            time.sleep(1.0)  # the second start sends its go meanwhile
            self.close()


def test_a_window_closing_between_ok_and_go_does_not_let_the_second_start_exit_as_if_it_took_the_files(
        qtbot, tmp_path):  # fmt: skip
    """The second start exited 0 once its ``go`` was written, though the closing window never read it: the image
    opened nowhere. (R45)"""
    png = tmp_path / "a lake.png"
    server = _ClosingRightAfterOk(tmp_path)
    asked: list = []
    server.asked.connect(asked.append)
    assert server.listen()
    child = _second_start_waiting(tmp_path, png)
    try:
        qtbot.waitUntil(lambda: child.poll() is not None, timeout=60000)
    finally:
        if child.poll() is None:
            child.kill()
    assert asked == [] and child.returncode == 1  # said, not lost: it says the app runs, or starts in its place


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to run as a large user id")
def test_a_user_id_past_2_31_is_its_own():
    """The peer's uid (unsigned) was read as a signed int: uid 3000000000 never matched ``os.getuid()``, and such a
    user's second start never handed over. (R45)"""
    with tempfile.TemporaryDirectory() as made:  # pytest's tmp_path lies in a folder only root may enter
        os.chmod(made, 0o777)
        _run_as_a_large_user_id(Path(made))


def _run_as_a_large_user_id(folder: Path) -> None:
    code = """if True:
        import os, sys
        from pathlib import Path
        from PySide6.QtCore import QCoreApplication
        from PySide6.QtNetwork import QLocalServer, QLocalSocket
        import app.instance_handoff as handoff
        os.environ["TMPDIR"] = sys.argv[1]
        os.setgid(3000000000)
        os.setuid(3000000000)
        qapp = QCoreApplication([])
        server = handoff.HandoffServer(Path(sys.argv[1]))
        assert server.listen()
        socket = QLocalSocket()
        socket.connectToServer(server.name)
        assert socket.waitForConnected(2000)
        sys.exit(0 if handoff._this_users(socket) else 3)
    """
    done = subprocess.run([sys.executable, "-c", code, str(folder)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen"})  # fmt: skip
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])


def test_the_done_reaches_the_second_start_while_the_window_takes_the_files_without_an_event_loop(qtbot, tmp_path):
    """``asked``'s slot reads the files synchronously (``restore_from_files``: many files, a slow disk) for longer
    than the second start waits: ``done`` stays in the socket's buffer until the slot returns (only a nested event
    loop, a dialog's, flushes it), so the start says the app runs and the files were not opened, though they were."""
    png = tmp_path / "a lake.png"
    server = HandoffServer(tmp_path)
    asked: list = []
    server.asked.connect(lambda files: (asked.append(files), time.sleep(2.5)))
    assert server.listen()
    child = _second_start_waiting(tmp_path, png, 1500)
    try:
        qtbot.waitUntil(lambda: child.poll() is not None, timeout=60000)
    finally:
        if child.poll() is None:
            child.kill()
    server.close()
    assert asked == [[png]]
    assert child.returncode == 0  # was 1: the start then said the files were not opened (R46)


class _BusyRightAfterOk(HandoffServer):
    """A window whose event loop is held up just after it answered ``ok`` (synchronous work queued behind the
    request) for longer than the second start waits for ``done``."""

    def _read(self, socket) -> None:
        super()._read(socket)
        if socket in self._pending:
            socket.flush()
            time.sleep(2.5)


def test_a_go_read_after_the_second_start_gave_up_opens_nothing(qtbot, tmp_path):
    """The start sent its ``go`` and gave up waiting for ``done`` (it then says the app runs and the files were not
    opened, or opens them in its own window once the folder is free); the busy window reads that ``go`` later and
    takes the files all the same: the go is carried out for a start that is gone."""
    png = tmp_path / "a lake.png"
    server = _BusyRightAfterOk(tmp_path)
    asked: list = []
    server.asked.connect(asked.append)
    assert server.listen()
    child = _second_start_waiting(tmp_path, png, 1500)
    try:
        qtbot.waitUntil(lambda: child.poll() is not None, timeout=60000)
        qtbot.wait(1500)  # the window's loop runs again: it reads the go
    finally:
        if child.poll() is None:
            child.kill()
    server.close()
    assert child.returncode == 1  # it gave up
    assert asked == []  # was [[png]]: taken here as well as said not opened (R46)


def test_the_done_reaches_the_second_start_while_the_window_shows_a_dialog_for_the_files(qtbot, tmp_path):
    """A dialog opened by ``asked``'s slot (restore_from_files' error box) runs an event loop that
    sends the buffered ``done``; the start exits 0 at once, the dialog still open."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    png = tmp_path / "a lake.png"
    server = HandoffServer(tmp_path)
    exits: list = []
    child = None

    def slot(files) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, "Nothing was restored", "a lake.png has no settings")
        QTimer.singleShot(4000, box.accept)
        box.exec()  # the nested loop
        exits.append(child.poll())

    server.asked.connect(slot)
    assert server.listen()
    child = _second_start_waiting(tmp_path, png, 1500)
    try:
        qtbot.waitUntil(lambda: bool(exits), timeout=60000)
    finally:
        if child.poll() is None:
            child.kill()
    server.close()
    assert exits == [0]  # the start had exited 0 before the dialog closed


def _handed_on_while_closing(qtbot, window, monkeypatch, data_root: Path, file: Path) -> int:
    """A second start handing ``file`` to ``window``, whose close (by the user) is handled in the same pass of the
    event loop as the start's ``go``, before the files were handed on (the zero timer of ``HandoffServer``): the
    start's exit code."""

    class _CloseFirst:
        @staticmethod
        def singleShot(msec, *args) -> None:
            if msec == 0 and window.isVisible():
                gui.open_windows.remove(window)
                window.close()
            QTimer.singleShot(msec, *args)

    monkeypatch.setattr(app.instance_handoff, "QTimer", _CloseFirst)
    child = _second_start_waiting(data_root, file)
    try:
        qtbot.waitUntil(lambda: child.poll() is not None, timeout=60000)
        qtbot.wait(200)  # the window's loop hands the files on, if it has not yet
    finally:
        if child.poll() is None:
            child.kill()
    return child.returncode


def test_files_told_done_are_taken_by_a_window_closing_before_they_were_handed_on(qtbot, data_root, tmp_path,
                                                                                  monkeypatch):  # fmt: skip
    """The user's close handled in the same pass of the event loop as the ``go``, before the files were handed on:
    the second start was told "done" and exited 0, and the closed window dropped them. They are taken as it closes
    (their settings saved for the next start). (R47)"""
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    restored: list = []
    monkeypatch.setattr(window.controller, "restore_from_files", restored.append)

    png = tmp_path / "a lake.png"
    assert _handed_on_while_closing(qtbot, window, monkeypatch, data_root, png) == 0
    assert restored == [[png]]


def test_files_handed_on_as_the_window_closes_leave_no_dialog_of_a_closed_window(qtbot, data_root, tmp_path,
                                                                              monkeypatch):  # fmt: skip
    """A file without settings handed on as the window closes: its error was a dialog of the closed window. (R48)"""
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    notes = tmp_path / "notes.txt"  # "Open with" on a file without generation settings: the error box for it
    notes.write_text("not an image")
    assert _handed_on_while_closing(qtbot, window, monkeypatch, data_root, notes) == 0 and not window.isVisible()
    shown = [w for w in QApplication.topLevelWidgets() if w.isVisible()]
    try:
        assert shown == [], [(type(w).__name__, w.windowTitle(), getattr(w, "text", lambda: "")()) for w in shown]
    finally:
        for w in shown:
            w.close()


def test_files_handed_on_as_the_window_closes_are_in_the_settings_it_saves(qtbot, data_root, tmp_path, monkeypatch):
    """What was restored from them as the window closed is in the settings the next start shows. (R48)"""
    data = resolve_data_dir(data_root)
    window = window_without_engine(qtbot, data)

    png = write_png(tmp_path / "a lake.png", Image.new("RGB", (8, 8)), {"prompt": "a lake at dawn", "seed": 9})
    assert _handed_on_while_closing(qtbot, window, monkeypatch, data_root, png) == 0 and not window.isVisible()
    saved = load_settings(data.settings)
    assert saved.last_job.prompt == "a lake at dawn" and saved.last_job.seed == 9, saved.last_job


def test_builds_of_another_protocol_refuse_each_other_before_ok(qtbot, tmp_path):
    """The first builds of this feature spoke ``{"open": …}``, ``ok``, ``go`` and no ``done``: an old second start
    had its files dropped by a new app and exited 0 without a word; a new start told an old app's files "not
    opened" though they were. Each now refuses the other's request before ``ok``: the start says the app runs. (R49)"""
    png = tmp_path / "a lake.png"
    server = HandoffServer(tmp_path)
    asked: list = []
    server.asked.connect(asked.append)
    assert server.listen()
    code = """if True:  # the first builds' second start, in its wire steps
        import json, socket, sys
        s = socket.socket(socket.AF_UNIX)
        s.connect(sys.argv[1])
        s.sendall(json.dumps({"open": [sys.argv[2]]}).encode() + b"\\n")
        s.settimeout(5)
        try:
            answer = s.recv(16)
        except OSError:
            answer = b""
        if answer != b"ok\\n":
            sys.exit(1)  # it says the app runs and the image was not opened
        s.sendall(b"go\\n")
        sys.exit(0)  # it exits without a word: the image taken, it believes
    """
    code = _exit_code(qtbot, subprocess.Popen([sys.executable, "-c", code, server.name, str(png)]), 300)
    server.close()
    assert code == 1 and asked == [], (code, asked)
    old = QLocalServer()  # and the other way: the first builds' app, which took what had an "open" list
    assert old.listen(socket_paths(tmp_path)[0])
    took: list = []

    def serve() -> None:
        peer = old.nextPendingConnection()

        def read() -> None:
            while peer.canReadLine():
                line = bytes(peer.readLine().data())
                if line == b"go\n":
                    took.append(png)
                    peer.disconnectFromServer()
                elif isinstance(json.loads(line).get("open"), list):
                    peer.write(b"ok\n")
                else:
                    peer.abort()
                    return

        peer.readyRead.connect(read)
        read()

    old.newConnection.connect(serve)
    code = _exit_code(qtbot, _second_start_waiting(tmp_path, png))
    old.close()
    assert code == 1 and took == []  # said not opened, and not opened


def test_a_second_start_with_another_tmpdir_finds_the_app_open(qtbot, tmp_path):
    """The socket was in $TMPDIR: an app started from a terminal that sets it and a second start from the file
    manager that does not (or the other way) looked in two places, and the start said the app runs. (R49)"""
    png = tmp_path / "a lake.png"
    server = HandoffServer(tmp_path)
    asked: list = []
    server.asked.connect(asked.append)
    assert server.listen()
    with tempfile.TemporaryDirectory() as other_tmp:
        code = _exit_code(qtbot, _second_start_waiting(tmp_path, png, env={**os.environ, "TMPDIR": other_tmp}), 300)
    server.close()
    assert code == 0 and asked == [[png]], (code, asked)


def test_one_socket_for_a_data_folder_reached_through_a_bind_mount(tmp_path):
    """The folder's lock is one file however the folder is reached, so a second start through a bind mount got
    AlreadyRunning; the socket's name was the resolved path's, and the start found no app. (R49)"""
    real, bound = tmp_path / "real", tmp_path / "bound"
    real.mkdir()
    bound.mkdir()
    if not hasattr(os, "getuid") or os.getuid() != 0 or subprocess.run(
            ["mount", "--bind", str(real), str(bound)], capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("needs root and mount --bind")
    try:
        assert os.path.samefile(real, bound) and os.path.realpath(real) != os.path.realpath(bound)
        assert handoff_name(real) == handoff_name(bound)
    finally:
        subprocess.run(["umount", str(bound)], check=False)
