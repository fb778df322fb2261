"""Command-line runs that do real work (generate, quantize) write the app's log file, marked as command-line runs,
for problem reports, and print exactly what they printed without it; the app and command-line runs share the
rotating file."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runs import run_each

from app import app_log

ROOT = Path(__file__).resolve().parent.parent

# what every command says of a model name that is no library entry and no path
NO_SUCH_MODEL = "no model named 'no-such-model' in the library (demo, demo-int4)"


@pytest.fixture(autouse=True)
def _no_log_file_left():
    yield
    app_log.stop_file_log()


def _run(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "main.py"), "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)  # fmt: skip


def _log(data_dir: Path) -> str:
    return app_log.log_file_path(data_dir).read_text(encoding="utf-8")


FULL_DISK = Path("/dev/full")  # a device that is always full


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, subprocess.CompletedProcess | Path]:
    """The command-line runs the tests below check, in two processes (a process each cost its start-up):

    - "generate": a real one in the data folder "data"; then, its library.json damaged, one after another in one
      process (cli_runs: each with its own exit code and output), ``quantize no-such-model``:
    - "unopenable": where the log file cannot be opened, first, as in a process of its own,
    - "damaged library": in "data" (a second process there: its log lines are told apart by the process id),
    - "full": where the disk under the log file is full (where /dev/full exists); last, so what Python prints at
      exit (logging closes its files then) is said in its output."""
    root = tmp_path_factory.mktemp("cli-log")
    data, unopenable, full = root / "data", root / "unopenable", root / "full"
    found: dict[str, subprocess.CompletedProcess | Path] = {"root": root, "data": data}
    found["generate"] = _run("generate", "a red star", "--steps", "1", "--width", "64", "--height", "64", "--out",
                             str(root / "star.png"), data_dir=data)  # fmt: skip
    (data / "library.json").write_text("{damaged")
    unopenable.mkdir()
    (unopenable / "logs").write_text("a file where the logs folder goes")
    folders = {"unopenable": unopenable, "damaged library": data}
    if FULL_DISK.exists():
        (full / "logs").mkdir(parents=True)
        (full / "logs" / "nibble.log").symlink_to(FULL_DISK)  # every write: ENOSPC
        folders["full"] = full
    rest = run_each([["--data-dir", str(folder), "quantize", "no-such-model", "--out", str(root / "q.safetensors")]
                     for folder in folders.values()], scratch=root / "runs")  # fmt: skip
    found.update(zip(folders, rest, strict=True))
    return found


def test_generate_and_quantize_write_the_log_file_and_print_what_they_printed(runs, capsys):
    data, png, r = runs["data"], runs["root"] / "star.png", runs["generate"]
    assert r.returncode == 0 and r.stderr == ""
    printed = r.stdout.splitlines()
    assert printed[0].startswith("Memory plan: ")  # said before the model loads
    assert printed[1].startswith(f"wrote {png} (64x64, 1 steps") and printed[-1].startswith("total ")
    text = _log(data)  # the quantize run's lines too: the generate run's are those of its process, the first one
    generate_pid = _pid(text)
    generated = "".join(line for line in text.splitlines(keepends=True) if f" cli {generate_pid} " in line)
    assert re.search(rf"INFO cli {generate_pid} \[MainThread\] nibble\.cli: Nibble Studio \S+ command line",
                     generated)  # fmt: skip
    assert f"command: main.py --data-dir {data} generate 'a red star' --steps 1" in generated
    for line in printed:  # what the console showed, for the report
        assert f"nibble.cli: {line}\n" in generated
    assert "generate ended: exit 0 after" in generated

    # a user error: the same one line on the console as ever, in the log as an error; a damaged library file is
    # said once, as a note (the engine's own log line about it goes to the file only)
    r = runs["damaged library"]
    lines = r.stderr.splitlines()
    assert r.returncode == 2 and r.stdout == ""
    assert lines[-1] == f"error: {NO_SUCH_MODEL}"
    assert [line for line in lines if "library" in line and not line.startswith("error:")] == [lines[0]]
    assert lines[0].startswith(f"note: Your model library {data / 'library.json'} could not be read"), lines
    assert not any("Logging error" in line or "nibble.cli" in line for line in lines)
    assert re.search(r"INFO cli \d+ \[MainThread\] gpu\.library: model library .* is damaged", text)
    ended = r"ERROR cli \d+ \[MainThread\] nibble\.cli: quantize ended: exit 2 after [\d.]+ s; error: no model named"
    assert re.search(ended + " 'no-such-model'", text)
    assert len(set(re.findall(r" cli (\d+) ", text))) == 2  # two runs, told apart by their process ids

    from main import main  # in this process: a third one cost its start-up

    assert main(["--data-dir", str(data), "inspect", str(runs["root"] / "missing.safetensors")]) == 2
    assert "missing.safetensors" in capsys.readouterr().err and _log(data) == text  # reads only: not logged


def _pid(text: str) -> str:
    match = re.search(r" cli (\d+) ", text)
    assert match, text
    return match.group(1)


def test_a_log_file_that_cannot_be_opened_changes_nothing_on_the_console(runs):
    r = runs["unopenable"]
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f"error: {NO_SUCH_MODEL}\n"


def test_app_and_command_line_lines_are_told_apart(tmp_path):
    app_log.start_file_log(tmp_path)
    logging.getLogger("gpu.test").warning("from the app")
    app_log.start_cli_log(tmp_path)
    logging.getLogger("gpu.test").warning("from the command line")
    app_log.stop_file_log()
    app_line, cli_line = app_log.log_file_path(tmp_path).read_text(encoding="utf-8").splitlines()
    assert f" WARNING gui {os.getpid()} [MainThread] gpu.test: from the app" in app_line
    assert f" WARNING cli {os.getpid()} [MainThread] gpu.test: from the command line" in cli_line


@pytest.mark.skipif(os.name != "posix", reason="renaming a file another handle has open")
def test_writers_of_one_log_follow_each_others_rotation(tmp_path):
    """The app and a command-line run write one file. The one that did not rotate it kept filling the renamed
    ``nibble.log.1``, and on its own next rotation pushed the other's current lines into the old files."""
    path = app_log.log_file_path(tmp_path)
    path.parent.mkdir()
    other = app_log._SharedRotatingFileHandler(path, maxBytes=300, backupCount=2, encoding="utf-8")
    try:
        app_log.start_cli_log(tmp_path, max_bytes=300)
        writer = logging.getLogger("gpu.test")
        writer.warning("before")
        other.emit(logging.makeLogRecord({"msg": "x" * 400}))  # over the cap: the other process rotates
        assert "before" in (path.parent / "nibble.log.1").read_text()
        writer.warning("after the other process rotated")
        assert "after the other process rotated" in path.read_text()
    finally:
        other.close()


def test_a_rotation_another_process_prevents_is_put_off(tmp_path, capsys, monkeypatch):
    """On Windows a log file the app has open cannot be renamed by a command-line run: the rotation raised
    PermissionError, which logging printed to the console as '--- Logging error ---' for every later line."""
    path = app_log.start_cli_log(tmp_path, max_bytes=200)
    assert path is not None

    def in_use(source: str, dest: str) -> None:
        raise PermissionError(13, "The process cannot access the file because it is being used by another process")

    monkeypatch.setattr(app_log._handler, "rotator", in_use)
    writer = logging.getLogger("gpu.test")
    for i in range(5):
        writer.info("line %d %s", i, "y" * 100)
    assert "Logging error" not in capsys.readouterr().err
    assert "line 4" in path.read_text() and sorted(p.name for p in path.parent.iterdir()) == ["nibble.log"]


@pytest.mark.skipif(not FULL_DISK.exists(), reason="needs /dev/full, a device that is always full")
def test_a_full_disk_under_the_log_file_changes_nothing_on_the_console(runs):
    """Lines that no longer fit on the disk made logging print '--- Logging error ---' and a traceback for each,
    and closing the file at the end raised: the command's one-line error became a traceback and exit 1."""
    r = runs["full"]
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f"error: {NO_SUCH_MODEL}\n"


def test_a_log_file_that_could_not_be_written_is_tried_again(tmp_path, capsys):
    path = app_log.start_cli_log(tmp_path)
    assert path is not None
    handler = app_log._handler
    writer = logging.getLogger("gpu.test")
    writer.warning("written")
    real = handler.stream
    handler.stream = _Full(real.fileno())
    writer.warning("lost: the disk is full")
    writer.warning("written again once there is room")
    app_log.stop_file_log()
    real.close()
    assert "Logging error" not in capsys.readouterr().err
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["written", "written again once there is room"]


class _Full:
    """The log file's stream on a full disk: writing, flushing and closing fail with ENOSPC."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def write(self, *args: object) -> int:
        raise OSError(28, "No space left on device")

    flush = seek = tell = close = write


def test_a_ctrl_c_while_the_log_starts_still_closes_it(tmp_path, monkeypatch, capsys):
    """Ctrl-C inside start_log, after the file was opened, left its handler on the root logger (main closed the
    file only when start_log had returned True): an in-process caller's later records went to that file."""
    import platform

    from main import main

    def interrupted() -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(platform, "python_version", interrupted)  # the first fact start_log logs
    assert main(["--data-dir", str(tmp_path), "generate", "x", "--steps", "1"]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "error: cancelled"
    assert app_log._handler is None
    ours = [h for h in logging.getLogger().handlers
            if str(getattr(h, "baseFilename", "")).startswith(str(tmp_path))]  # fmt: skip
    assert not ours  # (pytest keeps a handler of its own there)
