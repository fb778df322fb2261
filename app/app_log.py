"""The app's log file: ``<data folder>/logs/nibble.log``, what a user sends with a problem report.

The windowed executable has no console (PyInstaller ``console=False``: ``sys.stderr`` is None), so without a
file every warning, error and traceback would be lost. The file rotates at ``MAX_BYTES`` and keeps ``BACKUPS``
old ones (``nibble.log.1`` …), so it never grows without bound; it is UTF-8 whatever the system code page (a
prompt or a path may hold any character). Uncaught exceptions, on the GUI thread, on ``QThread`` workers (PySide
reports those through ``sys.excepthook``) and on Python threads, are written to it with their tracebacks.

A log file that cannot be opened (read-only data folder, full disk, a file where ``logs/`` goes) never stops the
app: ``start_file_log`` returns None and the app runs without one. One that cannot be written any more (the disk
filled up) loses those lines, quietly, and is tried again with the next one. This module belongs to ``app/``: the engine
only logs through ``logging``, and never configures it. It imports no Qt at module level, so the command line
(``main.py generate`` / ``quantize``) writes the same file through ``start_cli_log`` without loading PySide6.

Every line names its writer, ``gui 1234`` or ``cli 5678`` (with the process id), since the app and command-line
runs may write the file at the same time; a writer follows the file when another one rotated it, and a rotation
that another process's open file prevents (Windows) is put off instead of failing.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import platform
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

LOG_FOLDER = "logs"
LOG_NAME = "nibble.log"
MAX_BYTES = 1_000_000  # per file; with BACKUPS old files the logs never take more than about 3 MB
BACKUPS = 2
FORMAT = "%(asctime)s %(levelname)s {origin} [%(threadName)s] %(name)s: %(message)s"  # origin: gui or cli + pid
CLI_LOGGER = "nibble.cli"  # the command line's own records: in the file only, its console lines are print()ed

log = logging.getLogger(__name__)

_handler: logging.handlers.RotatingFileHandler | None = None  # the one this process writes to, if any
_console: logging.Handler | None = None  # start_cli_log's stand-in for Python's last-resort stderr output
_level_before: int | None = None  # the root logger's level before start_cli_log, put back by stop_file_log
_file: Path | None = None


class _SharedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating file that other processes (the app, command-line runs) write too.

    A process that rotated renamed the file this one has open to ``nibble.log.1``: this one then reopens
    ``nibble.log`` instead of filling the old file. On Windows a file another process has open cannot be renamed:
    the rotation is put off (the file grows a little past ``maxBytes``) instead of printing a logging error."""

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        if self.stream is not None and not self._still_current():
            self._drop_stream()
            self.stream = self._open()
        return super().shouldRollover(record)

    def _still_current(self) -> bool:
        try:
            return os.path.samestat(os.fstat(self.stream.fileno()), os.stat(self.baseFilename))
        except OSError:  # renamed away with nothing new in its place yet
            return False

    def handleError(self, record: logging.LogRecord) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # a full disk or failing drive: logging would print its own
            self._drop_stream()  # traceback on the console for every line; this line is lost, the next reopens
            return
        super().handleError(record)

    def _drop_stream(self) -> None:
        stream, self.stream = self.stream, None
        if stream is not None:
            with contextlib.suppress(OSError):  # its unwritten lines, which the disk has no room for
                stream.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):  # flushing on a full disk: the run's outcome must not turn into this
            super().close()

    def doRollover(self) -> None:
        try:
            super().doRollover()
        except OSError:  # PermissionError: another process has the file open (Windows); rotate on a later record
            if self.stream is None:
                self.stream = self._open()


def log_file_path(root: Path) -> Path:
    """Where the log file of the data folder ``root`` is (whether or not it exists)."""
    return Path(root) / LOG_FOLDER / LOG_NAME


def current_log_file() -> Path | None:
    """The log file this process writes to, or None when none could be opened (or none was started)."""
    return _file


def start_file_log(root: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS, origin: str = "gui") -> Path | None:
    """Sends the root logger's records (INFO and up) to ``log_file_path(root)``, rotating at ``max_bytes``.
    ``origin`` ("gui", "cli") starts every line, with the process id.

    Replaces the file an earlier call started (one process, one log file: tests open windows on several data
    folders). Returns the file's path, or None when it cannot be opened; that is logged to the remaining
    handlers (stderr when there is one) and never raised."""
    try:
        return _start(root, max_bytes, backups, origin)
    except OSError as exc:  # read-only folder, full disk, a file named "logs": run without a log file
        log.warning("no log file: %s cannot be opened (%s)", log_file_path(root), exc)
        return None


def start_cli_log(root: Path, max_bytes: int = MAX_BYTES, backups: int = BACKUPS) -> Path | None:
    """``start_file_log`` for a command-line run, which must print exactly what it printed without a log file.

    With no handler configured, Python prints warnings and errors to stderr as bare messages (``logging.lastResort``),
    and stops doing so once the file handler is there: a stand-in handler keeps that output. The command line's
    own records (``CLI_LOGGER``) go to the file only, and a log file that cannot be opened is not mentioned."""
    global _console, _level_before
    root_logger = logging.getLogger()
    had_handlers, level = bool(root_logger.handlers), root_logger.level
    try:
        path = _start(root, max_bytes, backups, "cli")
    except OSError:
        return None
    _level_before = level
    if not had_handlers:
        _console = _LastResortStandIn()
        logging.getLogger().addHandler(_console)
    return path


class _LastResortStandIn(logging.Handler):
    """What Python's last-resort handler printed (WARNING and up, to the current ``sys.stderr``), less the command
    line's own records."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name != CLI_LOGGER and logging.lastResort is not None:
            logging.lastResort.handle(record)


def _start(root: Path, max_bytes: int, backups: int, origin: str) -> Path:
    global _handler, _file
    stop_file_log()
    path = log_file_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    # a prompt or path Python could not decode (a lone surrogate) is escaped, not a logging error on stderr
    handler = _SharedRotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8",
                                         errors="backslashreplace")  # fmt: skip
    handler.setFormatter(logging.Formatter(FORMAT.format(origin=f"{origin} {os.getpid()}")))
    handler.setLevel(logging.INFO)
    root_logger = logging.getLogger()
    if root_logger.level > logging.INFO:  # the default WARNING would drop the start-up facts
        root_logger.setLevel(logging.INFO)
    root_logger.addHandler(handler)
    _handler, _file = handler, path
    return path


def stop_file_log() -> None:
    """Closes the log file ``start_file_log`` or ``start_cli_log`` opened (no-op when none is open)."""
    global _handler, _file, _console, _level_before
    root_logger = logging.getLogger()
    if _handler is not None:
        root_logger.removeHandler(_handler)
        _handler.close()
    if _console is not None:
        root_logger.removeHandler(_console)
    if _level_before is not None:  # a command run in-process (tests) leaves logging as it found it
        root_logger.setLevel(_level_before)
    _handler, _file, _console, _level_before = None, None, None, None


def log_startup_facts(data_root: Path) -> None:
    """The facts a problem report needs first: app and library versions, system, how it runs, the data folder.
    (The GPU is logged by the engine thread once it has looked: importing torch here would delay the window.)"""
    from PySide6 import __version__ as pyside_version

    from gpu.version import __version__

    frozen = "frozen executable" if getattr(sys, "frozen", False) else "from source"
    log.info("Nibble Studio %s starting (%s); Python %s, PySide6 %s, %s %s", __version__, frozen,
             platform.python_version(), pyside_version, platform.platform(), platform.machine())
    log.info("data folder: %s; log file: %s", data_root, current_log_file() or "none")


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None,
                  thread: str | None = None) -> None:
    where = f" in thread {thread}" if thread else ""
    log.critical("uncaught exception%s", where, exc_info=(kind, value, tb))


def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):  # Ctrl+C in a console run: keep Python's usual exit
        sys.__excepthook__(kind, value, tb)
        return
    _log_uncaught(kind, value, tb, threading.current_thread().name)
    if _previous_excepthook not in (None, sys.__excepthook__, _excepthook):
        _previous_excepthook(kind, value, tb)  # a debugger's or test runner's hook still sees it


def _threading_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:  # threading ignores it too
        return
    name = args.thread.name if args.thread is not None else None
    _log_uncaught(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback, name)
    if _previous_threading_hook not in (None, threading.__excepthook__, _threading_excepthook):
        _previous_threading_hook(args)


_previous_excepthook: Callable[[type[BaseException], BaseException, TracebackType | None], object] | None = None
_previous_threading_hook: Callable[[threading.ExceptHookArgs], object] | None = None


def install_exception_hooks() -> None:
    """Uncaught exceptions anywhere in the process go to the log (the file, and stderr when there is one)
    with their tracebacks, instead of to a stderr that the windowed executable does not have.

    Python's default hooks are replaced (they would print the traceback a second time); any other hook that
    was installed (a debugger's, pytest's) is still called after the log has the exception."""
    global _previous_excepthook, _previous_threading_hook
    if sys.excepthook is not _excepthook:
        _previous_excepthook, sys.excepthook = sys.excepthook, _excepthook
    if threading.excepthook is not _threading_excepthook:
        _previous_threading_hook, threading.excepthook = threading.excepthook, _threading_excepthook
