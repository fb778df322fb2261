"""A second start on a data folder hands its work to the app that has the folder open (``app.instance_lock``), the
way a desktop user expects: an image double-clicked ("Open with", dropped on the executable, the .desktop ``%F``)
while Nibble Studio runs opens in its window, and starting it again brings that window forward, not a dialog saying
it runs.

The app that holds the lock listens on a local socket (a named pipe on Windows) whose name comes from the data
folder and the user, so apps on other folders never answer for it; only this user can connect to it, and on Linux
the second start talks only to a process of its own user (another user could make a socket of that name first).
A second start sends one line, UTF-8 JSON ``{"open": [absolute paths]}``, waits for ``ok`` and confirms with ``go``:
only then does it exit, and only then does the app open the files. An app that does not answer in time (busy, an
older version without the socket, another computer's on a shared folder, one that is quitting) leaves the second
start to say it runs, as before.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket as system_socket
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

ANSWER_WAIT_MS = 5000  # the running app answers from its event loop: it may be a moment busy (a dialog opening)
# A connection whose request is not whole within REQUEST_WAIT_MS (a stopped process, another program), or one past
# MAX_CONNECTIONS open, is dropped: each holds a descriptor and a buffer, and enough of them for the session would
# leave the app none to open an image or its database with.
REQUEST_WAIT_MS = 10000
MAX_CONNECTIONS = 16
MAX_REQUEST_BYTES = 1 << 20  # thousands of paths; more is not a second start of this app
_OK = b"ok\n"
_GO = b"go\n"
_RETRY_MS = 100  # between tries to connect while the app open sets its socket up (it took the lock just now)


def handoff_name(root: Path) -> str:
    """The socket's name for the data folder ``root``: the same for every start on that folder by this user (its
    resolved, case-folded path where the system folds case), another for another folder or user. The user is the
    user id where there is one: a name from the environment (USER) could be another's."""
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "")
    key = f"{user}\0{os.path.normcase(os.path.realpath(root))}".encode("utf-8", "surrogatepass")
    return f"nibble-studio-{hashlib.sha256(key).hexdigest()[:24]}"


class HandoffServer(QObject):
    """Listens, while the window is open, for second starts on its data folder. ``asked`` carries the files one
    was started with (absolute paths; empty when it was started without any)."""

    asked = Signal(list)

    def __init__(self, root: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = handoff_name(root)
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._take_connections)
        self._pending: dict[QLocalSocket, list[Path]] = {}  # the files of requests answered, not yet confirmed

    def listen(self) -> bool:
        """Starts listening (a socket a crashed app left under the name is replaced); False (logged) when the
        socket cannot be made: the app works on, and a second start says it runs."""
        if self._server.listen(self.name):
            return True
        log.warning("a second start cannot hand its images to this window: %s", self._server.errorString())
        return False

    def close(self) -> None:
        """Stops listening and drops the connections open (the window closes): a request they had not confirmed is
        not answered ``ok`` by a window that can no longer take it; a second start waits for the lock instead."""
        self._server.close()
        self._pending.clear()
        for socket in self._server.findChildren(QLocalSocket):
            socket.abort()

    def _take_connections(self) -> None:
        while (socket := self._server.nextPendingConnection()) is not None:
            socket.disconnected.connect(socket.deleteLater)
            socket.disconnected.connect(lambda s=socket: self._pending.pop(s, None))
            if len(self._server.findChildren(QLocalSocket)) > MAX_CONNECTIONS:
                log.warning("a second-start connection was refused: %d are open", MAX_CONNECTIONS)
                socket.abort()
                continue
            socket.readyRead.connect(lambda s=socket: self._read(s))
            QTimer.singleShot(REQUEST_WAIT_MS, socket, socket.abort)  # no-op once it is done (and gone with it)
            self._read(socket)  # its line may have come with the connection

    def _read(self, socket: QLocalSocket) -> None:
        """The request line is answered ``ok`` at once, and carried out on the ``go`` that follows it: a second
        start that gave up waiting (this app was busy) sends none, and says it runs instead; the files it then
        named are not opened here as well."""
        if socket.bytesAvailable() > MAX_REQUEST_BYTES:
            log.warning("a second start's request was refused: over %d bytes", MAX_REQUEST_BYTES)
            socket.abort()
            return
        while socket.canReadLine():
            line = bytes(socket.readLine(MAX_REQUEST_BYTES).data())
            files = self._pending.pop(socket, None)
            if files is None and (files := _requested_files(line)) is not None:
                self._pending[socket] = files
                socket.write(_OK)
                continue
            if files is not None and line == _GO:
                log.info("a second start handed over %d file(s): %s", len(files),
                         ", ".join(map(str, files)) or "none")  # fmt: skip
                socket.disconnectFromServer()
                self.asked.emit(files)
                return
            log.warning("a request on the second-start socket was not understood: %r", line[:200])
            socket.abort()
            return


def _requested_files(line: bytes) -> list[Path] | None:
    """The files of one request line; None when it is not one (another program on the name, a damaged line)."""
    try:
        request = json.loads(line.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError alike
        return None
    names = request.get("open") if isinstance(request, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) and os.path.isabs(n) for n in names):
        return None
    return [Path(n) for n in names]


def hand_over(root: Path, files: Sequence[Path], wait_ms: int | None = None) -> bool:
    """Asks the app that has the data folder ``root`` open to take ``files`` (absolute paths; none: to come
    forward). True once it said it did; False when none answered within ``wait_ms`` (default ``ANSWER_WAIT_MS``),
    or what answers is not this user's. Tries to connect again until then: the app may have taken the folder's
    lock a moment ago and not be listening yet."""
    wait = ANSWER_WAIT_MS if wait_ms is None else wait_ms
    deadline = time.monotonic() + wait / 1000
    socket = QLocalSocket()
    while True:
        socket.connectToServer(handoff_name(root))
        if socket.waitForConnected(_left_ms(deadline)):
            break
        if time.monotonic() + _RETRY_MS / 1000 >= deadline:
            log.info("no app answers on the data folder's socket: %s", socket.errorString())
            return False
        time.sleep(_RETRY_MS / 1000)
    if not _this_users(socket):
        socket.abort()
        log.warning("the socket %s is another user's: the images are not handed to it", socket.fullServerName())
        return False
    if sys.platform == "win32":  # the app open may then bring its window forward (Windows lets the user's own
        import ctypes  # latest start do so, not a program in the background)

        ctypes.windll.user32.AllowSetForegroundWindow(ctypes.c_uint32(0xFFFFFFFF))  # ASFW_ANY
    socket.write(json.dumps({"open": [os.fspath(f) for f in files]}).encode() + b"\n")
    while socket.bytesToWrite() and socket.waitForBytesWritten(_left_ms(deadline)):
        pass
    answer = b""
    while len(answer) < len(_OK) and socket.waitForReadyRead(_left_ms(deadline)):
        answer += bytes(socket.readAll().data())
    if answer != _OK:
        socket.abort()
        log.info("the app on the data folder did not take the request (answer %r)", answer)
        return False
    socket.write(_GO)
    # Once with the system, the app reads it even after this process is gone; a "go" still here is never sent.
    sent = socket.waitForBytesWritten(_left_ms(deadline)) and socket.bytesToWrite() == 0
    if sent:
        socket.disconnectFromServer()
        socket.waitForDisconnected(_left_ms(deadline))  # the app closes it once it read the "go"
    socket.abort()
    return sent


def _this_users(socket: QLocalSocket) -> bool:
    """Whether the process at the other end of ``socket`` runs as this user: its credentials on Linux, the socket
    file's owner on other Unix systems. Windows: True (the pipe's own access control is the app's)."""
    if not hasattr(os, "getuid"):
        return True
    if hasattr(system_socket, "SO_PEERCRED"):
        peer = system_socket.socket(fileno=os.dup(int(socket.socketDescriptor())))
        try:
            _pid, uid, _gid = struct.unpack("3i", peer.getsockopt(
                system_socket.SOL_SOCKET, system_socket.SO_PEERCRED, struct.calcsize("3i")))  # fmt: skip
        finally:
            peer.close()
        return uid == os.getuid()
    try:
        return os.stat(socket.fullServerName()).st_uid == os.getuid()
    except OSError:
        return False


def _left_ms(deadline: float) -> int:
    """The milliseconds left until ``deadline`` (``time.monotonic``), at least 1: Qt waits for ever at -1."""
    return max(1, int((deadline - time.monotonic()) * 1000))
