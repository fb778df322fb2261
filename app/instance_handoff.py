"""A second start on a data folder hands its work to the app that has the folder open (``app.instance_lock``), the
way a desktop user expects: an image double-clicked ("Open with", dropped on the executable, the .desktop ``%F``)
while Nibble Studio runs opens in its window, and starting it again brings that window forward, not a dialog saying
it runs.

The app that holds the lock listens on a local socket (``socket_paths``: in the user's runtime folder or /tmp; a
named pipe on Windows) whose name comes from the data folder and the user, so apps on other folders never answer
for it; only this user can connect to it, and on Linux the second start talks only to a process of its own user
(another user could make a socket of that name first; on Windows the pipe's owner is not checked). A second start
sends one line, UTF-8 JSON ``{"protocol": 2, "take": [absolute paths]}``, waits for ``ok``, confirms with ``go`` and
waits for ``done``: the app opens the files only on the ``go``, and the start exits only on the ``done``. An app
that does not answer in time (busy, a version without the socket or of another protocol, another computer's on a
shared folder, one that is quitting) leaves the second start to say it runs, as before, or to start in its place
once it has quit.
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

from gpu.paths import file_identity

log = logging.getLogger(__name__)

ANSWER_WAIT_MS = 5000  # the running app answers from its event loop: it may be a moment busy (a dialog opening)
# How long a second start tries to connect: the app open listens from the moment it takes the lock, so longer finds
# only an app that never will (an older version, another computer's) and keeps its "already running" waiting.
CONNECT_WAIT_MS = 1000
# A connection whose request is not whole within REQUEST_WAIT_MS (a stopped process, another program), or one past
# MAX_CONNECTIONS open, is dropped: each holds a descriptor and a buffer, and enough of them for the session would
# leave the app none to open an image or its database with.
REQUEST_WAIT_MS = 10000
MAX_CONNECTIONS = 16
MAX_REQUEST_BYTES = 1 << 20  # thousands of paths; more is not a second start of this app
_OK = b"ok\n"
_GO = b"go\n"
_DONE = b"done\n"
_RETRY_MS = 100  # between tries to connect while the app open sets its socket up (it took the lock just now)
DONE_GRACE_S = 1.0  # how long past its deadline a start that sent "go" still waits for "done" (``hand_over``)
# The request's protocol. Builds of another one refuse each other's requests before "ok" (session 38's first builds
# spoke "open" with no "done": a mix opened files unsaid, or said them not opened): the start then says the app runs.
PROTOCOL = 2


def handoff_name(root: Path) -> str:
    """The socket's name for the data folder ``root``: the same for every start on that folder by this user, however
    it is reached (``_folder_key``), another for another folder or user. The user is the user id where there is one:
    a name from the environment (USER) could be another's."""
    user = str(os.getuid()) if hasattr(os, "getuid") else os.environ.get("USERNAME", "")
    key = f"{user}\0{_folder_key(root)}".encode("utf-8", "surrogatepass")
    return f"nibble-studio-{hashlib.sha256(key).hexdigest()[:24]}"


def _folder_key(root: Path) -> str:
    """The data folder as one value however it is reached (a link, another spelling, a bind mount, which its lock
    file sees as one folder too): ``gpu.paths.file_identity``, its resolved path case-folded where that is all
    there is."""
    try:
        identity = file_identity(root)
    except OSError:  # not there to be looked at: its path is all it has
        identity = os.path.realpath(root)
    return os.path.normcase(identity) if isinstance(identity, str) else f"{identity[0]}:{identity[1]}"


def socket_paths(root: Path) -> list[str]:
    """Where the app open on ``root`` listens, in the order it tries (the first it can make) and a second start
    looks: on Unix the user's own runtime folder ($XDG_RUNTIME_DIR, private to the user) where there is one, then
    /tmp, not $TMPDIR (set in a terminal, not for a file manager's start, it made two starts look in two places);
    on Windows the pipe's name."""
    name = handoff_name(root)
    if sys.platform == "win32":
        return [name]
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    places = [os.path.join(runtime, name)] if os.path.isabs(runtime) and os.path.isdir(runtime) else []
    return places + [os.path.join("/tmp", name)]


class HandoffServer(QObject):
    """Listens, while the window is open, for second starts on its data folder. ``asked`` carries the files one
    was started with (absolute paths; empty when it was started without any)."""

    asked = Signal(list)

    def __init__(self, root: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._paths = socket_paths(root)
        self.name = self._paths[0]  # where it listens (``listen``)
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._take_connections)
        self._pending: dict[QLocalSocket, list[Path]] = {}  # the files of requests answered, not yet confirmed
        self._handed: list[list[Path]] = []  # the files of starts told "done", for ``asked`` (``_deliver``)

    def listen(self) -> bool:
        """Starts listening at the first of ``socket_paths`` it can (a socket a crashed app left there is
        replaced); False (logged) when it can at none: the app works on, and a second start says it runs."""
        for path in self._paths:
            if self._server.listen(path):
                self.name = path
                return True
            log.info("cannot listen at %s: %s", path, self._server.errorString())
        log.warning("a second start cannot hand its images to this window: %s", self._server.errorString())
        return False

    def close(self) -> None:
        """Stops listening and drops the connections open (the window closes): a request they had not confirmed is
        not answered ``ok`` by a window that can no longer take it; a second start waits for the lock instead. Files
        a start was told were taken, not yet handed on, are handed on now (``asked``): the window takes them as it
        closes (their settings kept for the next start), not never."""
        self._deliver()
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

    def _deliver(self) -> None:
        """``asked`` for each start told "done" whose files are not handed on yet, in the order they came."""
        while self._handed:
            self.asked.emit(self._handed.pop(0))

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
                # Said, and sent, before the files are taken: what ``asked`` runs may read them for a while, with no
                # event loop to send a "done" only written. A start gone by then (it gave up waiting: this app was
                # busy) cannot be told, and says the files were not opened: they are not.
                socket.write(_DONE)
                socket.flush()
                if socket.state() != QLocalSocket.LocalSocketState.ConnectedState or socket.bytesToWrite():
                    log.warning("a second start gave up waiting before this window took its files: not taken")
                    socket.abort()
                    return
                log.info("a second start handed over %d file(s): %s", len(files),
                         ", ".join(map(str, files)) or "none")  # fmt: skip
                socket.disconnectFromServer()
                # Out of the socket's own signal: a dialog that ``asked`` opens runs an event loop, in which the
                # socket, closed by the start, is deleted under the readyRead that Qt is still in (a crash).
                self._handed.append(files)
                QTimer.singleShot(0, self, self._deliver)
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
    if not isinstance(request, dict) or request.get("protocol") != PROTOCOL:
        return None
    names = request.get("take")
    if not isinstance(names, list) or not all(isinstance(n, str) and os.path.isabs(n) for n in names):
        return None
    return [Path(n) for n in names]


def hand_over(root: Path, files: Sequence[Path], wait_ms: int | None = None) -> bool:
    """Asks the app that has the data folder ``root`` open to take ``files`` (absolute paths; none: to come
    forward). True once it said it took them; False when none answered within ``wait_ms`` (default
    ``ANSWER_WAIT_MS``), or what answers is not this user's. Tries to connect again for ``CONNECT_WAIT_MS``: the app
    may have taken the folder's lock a moment ago and not be listening yet."""
    wait = ANSWER_WAIT_MS if wait_ms is None else wait_ms
    deadline = time.monotonic() + wait / 1000
    connecting = time.monotonic() + min(wait, CONNECT_WAIT_MS) / 1000
    socket = QLocalSocket()
    paths = socket_paths(root)
    while not any(_connect(socket, path, deadline) for path in paths):
        if time.monotonic() + _RETRY_MS / 1000 >= connecting:
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
    socket.write(json.dumps({"protocol": PROTOCOL, "take": [os.fspath(f) for f in files]}).encode() + b"\n")
    # The "done" is waited for a moment past the deadline: the app that answered "ok" takes the files on the "go",
    # and a start giving up right after it would say they were not opened.
    answered = (_answer(socket, _OK, deadline) and socket.write(_GO) == len(_GO)
                and _answer(socket, _DONE, max(deadline, time.monotonic() + DONE_GRACE_S)))  # fmt: skip
    socket.abort()
    if not answered:  # a "done" never read: the app was closing (it dropped the request) or too busy to answer
        log.info("the app on the data folder did not take the request")
    return answered


def _connect(socket: QLocalSocket, path: str, deadline: float) -> bool:
    """Whether ``socket`` connected to the app listening at ``path`` (before ``deadline``)."""
    socket.connectToServer(path)
    return socket.waitForConnected(_left_ms(deadline))


def _answer(socket: QLocalSocket, expected: bytes, deadline: float) -> bool:
    """Whether the next line the app sends on ``socket`` (what was written sent first) is ``expected``, before
    ``deadline``."""
    while socket.bytesToWrite() and time.monotonic() < deadline and socket.waitForBytesWritten(_left_ms(deadline)):
        pass
    while not socket.canReadLine() and time.monotonic() < deadline and socket.waitForReadyRead(_left_ms(deadline)):
        pass  # (the deadline checked too: a peer trickling bytes without a newline would keep it here)
    return socket.canReadLine() and bytes(socket.readLine(len(expected) + 1).data()) == expected


def _this_users(socket: QLocalSocket) -> bool:
    """Whether the process at the other end of ``socket`` runs as this user: its credentials on Linux, the socket
    file's owner on other Unix systems. Windows: True (the pipe's own access control is the app's)."""
    if not hasattr(os, "getuid"):
        return True
    if sys.platform.startswith("linux"):  # struct ucred {pid_t; uid_t; gid_t} (the BSDs order theirs otherwise)
        peer = system_socket.socket(fileno=os.dup(int(socket.socketDescriptor())))
        try:
            _pid, uid, _gid = struct.unpack("iII", peer.getsockopt(
                system_socket.SOL_SOCKET, system_socket.SO_PEERCRED, struct.calcsize("iII")))  # fmt: skip
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
