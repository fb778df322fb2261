"""A second start on a data folder hands its work to the app that has the folder open (``app.instance_lock``), the
way a desktop user expects: an image double-clicked ("Open with", dropped on the executable, the .desktop ``%F``)
while Nibble Studio runs opens in its window, and starting it again brings that window forward, not a dialog saying
it runs.

The app that holds the lock listens on a local socket (a named pipe on Windows) whose name comes from the data
folder, so apps on other folders never answer for it; only this user can connect. A second start sends one line,
UTF-8 JSON ``{"open": [absolute paths]}``, waits for ``ok`` and confirms with ``go``: only then does it exit, and
only then does the app open the files. An app that does not answer
in time (busy, an older version without the socket, another computer's on a shared folder) leaves the second start
to say it runs, as before.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

ANSWER_WAIT_MS = 5000  # the running app answers from its event loop: it may be a moment busy (a dialog opening)
MAX_REQUEST_BYTES = 1 << 20  # thousands of paths; more is not a second start of this app
_OK = b"ok\n"
_GO = b"go\n"


def handoff_name(root: Path) -> str:
    """The socket's name for the data folder ``root``: the same for every start on that folder by this user (its
    resolved, case-folded path where the system folds case), another for another folder or user."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment nor the password database (a bare container)
        user = str(os.getuid()) if hasattr(os, "getuid") else ""
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
        """Starts listening; False (logged) when the socket cannot be made: the app works on, a second start then
        says it runs. Called with the data folder's lock held, so a socket left under the name is a dead app's."""
        if self._server.listen(self.name):
            return True
        QLocalServer.removeServer(self.name)  # a crashed app's socket file (Unix): ours to replace under the lock
        if self._server.listen(self.name):
            return True
        log.warning("a second start cannot hand its images to this window: %s", self._server.errorString())
        return False

    def close(self) -> None:
        """Stops listening (the window closes): a second start from now on waits for the lock, not for this app."""
        self._server.close()

    def _take_connections(self) -> None:
        while (socket := self._server.nextPendingConnection()) is not None:
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(lambda s=socket: self._forget(s))
            self._read(socket)  # its line may have come with the connection

    def _forget(self, socket: QLocalSocket) -> None:
        self._pending.pop(socket, None)
        socket.deleteLater()

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
    forward). True once it said it did; False when none answered within ``wait_ms`` (default ``ANSWER_WAIT_MS``)."""
    wait = ANSWER_WAIT_MS if wait_ms is None else wait_ms
    socket = QLocalSocket()
    socket.connectToServer(handoff_name(root))
    if not socket.waitForConnected(wait):
        log.info("no app answers on the data folder's socket: %s", socket.errorString())
        return False
    request = json.dumps({"open": [os.fspath(f) for f in files]}).encode() + b"\n"
    socket.write(request)
    deadline = time.monotonic() + wait / 1000
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
    socket.abort()
    return sent


def _left_ms(deadline: float) -> int:
    """The milliseconds left until ``deadline`` (``time.monotonic``), at least 1: Qt waits for ever at -1."""
    return max(1, int((deadline - time.monotonic()) * 1000))
