"""``main.py`` started with no terminal and no display to show a window on: ssh with stderr redirected, cron, CI,
a systemd service. Why it cannot start is printed and it exits 2, as from a terminal: a dialog there made Qt abort
the process (no platform plugin could open, SIGABRT, exit 134) after the line, or waited, unseen, for a click.

``main.gui_can_be_seen`` decides it; the dialog itself, where one can be seen, is tested in
tests/app/test_data_dir_start_no_terminal.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import main

ROOT = Path(__file__).resolve().parent.parent
HEADLESS = {"DISPLAY": None, "WAYLAND_DISPLAY": None, "QT_QPA_PLATFORM": None, "XDG_RUNTIME_DIR": None,
            "XDG_SESSION_TYPE": None}


@pytest.mark.parametrize(("system", "env", "seen"), [
    ("linux", {"DISPLAY": ":0"}, True),
    ("linux", {"WAYLAND_DISPLAY": "wayland-0"}, True),
    ("linux", {"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, True),
    ("linux", {}, False),  # ssh, cron, CI, systemd
    ("linux", {"DISPLAY": ""}, False),
    ("linux", {"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, False),
    ("linux", {"DISPLAY": ":0", "QT_QPA_PLATFORM": "minimal"}, False),
    ("linux", {"DISPLAY": ":0", "QT_QPA_PLATFORM": "Offscreen:size=800x600"}, False),  # with options
    ("linux", {"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen;xcb"}, False),  # the first one Qt tries
    ("win32", {}, True),  # the windowed executable, on a desktop
    ("darwin", {}, True),
    ("win32", {"QT_QPA_PLATFORM": "offscreen"}, False),
    ("linux", {"WAYLAND_DISPLAY": "wayland-0", "QT_QPA_PLATFORM": "xcb"}, False),  # X11 named, no XWayland
    ("linux", {"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland"}, False),  # Wayland named, an X server only
    ("linux", {"XDG_RUNTIME_DIR": "<with wayland-0>", "QT_QPA_PLATFORM": "wayland"}, True),  # its default socket
    ("linux", {"XDG_RUNTIME_DIR": "<with wayland-0>", "XDG_SESSION_TYPE": "wayland"}, True),
    ("linux", {"XDG_RUNTIME_DIR": "<with wayland-0>"}, False),  # ssh into a Wayland user's machine: Qt picks xcb
    ("linux", {"XDG_RUNTIME_DIR": "<with wayland-0>", "XDG_SESSION_TYPE": "tty"}, False),
    ("linux", {"XDG_RUNTIME_DIR": "<empty>", "XDG_SESSION_TYPE": "wayland"}, False),
    ("linux", {"DISPLAY": ":0", "QT_QPA_PLATFORM": "eglfs"}, False),  # its device may be missing: the line only
    ("linux", {"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland;xcb"}, True),  # Qt falls back to xcb
    ("linux", {"WAYLAND_DISPLAY": "wayland-0", "QT_QPA_PLATFORM": "xcb;wayland"}, True),
    ("linux", {"QT_QPA_PLATFORM": "wayland;xcb"}, False),  # neither has its display
    ("linux", {"QT_QPA_PLATFORM": "xcb;offscreen"}, False),  # Qt falls back to offscreen: drawn nowhere
])  # fmt: skip
def test_a_gui_is_seen_on_a_desktop_or_a_named_display_never_offscreen(monkeypatch, tmp_path, system, env, seen):
    (tmp_path / "wayland-runtime").mkdir()
    (tmp_path / "wayland-runtime" / "wayland-0").touch()  # a compositor's default socket (a file will do here)
    (tmp_path / "empty-runtime").mkdir()
    folders = {"<with wayland-0>": str(tmp_path / "wayland-runtime"), "<empty>": str(tmp_path / "empty-runtime")}
    for name, value in {**HEADLESS, **env}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, folders.get(value, value))
    monkeypatch.setattr(sys, "platform", system)
    assert main.gui_can_be_seen() is seen


@pytest.mark.parametrize(("env", "refused"), [
    ({}, True),
    ({"QT_QPA_PLATFORM": "xcb"}, True),
    ({"QT_QPA_PLATFORM": "wayland;xcb"}, True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland;xcb"}, False),  # refused, while Qt would fall back to xcb
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland:opt;;XCB"}, False),
    ({"WAYLAND_DISPLAY": "wayland-0", "QT_QPA_PLATFORM": "xcb;wayland-egl"}, False),
    ({"QT_QPA_PLATFORM": "wayland;eglfs"}, False),  # eglfs needs no display server: Qt's to try
    ({"DISPLAY": ":0"}, False),
    # read as Qt reads it: spaces kept (Qt finds no " offscreen" plugin and aborts), empty parts skipped
    ({"QT_QPA_PLATFORM": "xcb; offscreen"}, True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland; xcb"}, True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": ";"}, True),  # names no platform: Qt aborts
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xbc"}, True),  # no such plugin
    ({"QT_QPA_PLATFORM": ":offscreen"}, False),  # Qt skips the empty name before the ':'
    ({"QT_QPA_PLATFORM": "bogus;OFFSCREEN"}, False),  # Qt goes on past a name it cannot find
])  # fmt: skip
def test_the_window_is_refused_only_when_no_platform_qt_tries_has_its_display(monkeypatch, env, refused):
    for name, value in {**HEADLESS, **env}.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "platform", "linux")
    assert main.no_display_for_the_window() is refused


def _started_headless(tmp_path: Path, *argv: str, platform: str | None = None) -> subprocess.CompletedProcess[str]:
    """``main.py argv`` run as cron or ssh run it: no display named, no Qt platform chosen (else ``platform``),
    stderr a pipe."""
    env = {k: v for k, v in os.environ.items() if k not in HEADLESS}
    if platform is not None:
        env["QT_QPA_PLATFORM"] = platform
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *argv], cwd=tmp_path, env=env, text=True,
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=120)  # a guard against a hang only


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="a desktop session there can always show a dialog")
def test_a_blank_data_dir_without_a_display_is_printed_and_exits_2(tmp_path):
    """Exit 134 (SIGABRT: Qt could not open the xcb platform for the dialog) after the line, since cc53673."""
    run = _started_headless(tmp_path, "--data-dir", "")
    assert (run.returncode, run.stderr) == (2, 'error: --data-dir "": the folder name is empty (give a folder, e.g. '
                                               '--data-dir ~/nibble-data, or leave --data-dir out for the default '
                                               'one)\n')  # fmt: skip
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="a desktop session there can always show a dialog")
def test_an_unusable_data_folder_without_a_display_is_printed_and_exits_2(tmp_path):
    """The app was started for its own start-up dialog, and Qt aborted the process (exit 134)."""
    (tmp_path / "a-file").write_text("")
    run = _started_headless(tmp_path, "--data-dir", str(tmp_path / "a-file" / "x"))
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith(f"error: --data-dir {tmp_path / 'a-file' / 'x'}: cannot use it as the data folder: "
                                 f"{tmp_path / 'a-file'} is a file, not a folder"), run.stderr  # fmt: skip
    assert run.stderr.count("\n") == 1  # the one line: no Qt complaint, no abort


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="a desktop session there can always show a window")
@pytest.mark.parametrize("platform", [None, "xcb", "xcb; offscreen"])
def test_the_app_without_a_display_is_refused_in_one_line_and_exits_2(tmp_path, platform):
    """``python main.py`` over ssh: Qt, unable to open its platform, aborted the process (SIGABRT, exit 134) and said
    that reinstalling the application may fix it. Platforms that need no display (offscreen, eglfs) are Qt's."""
    run = _started_headless(tmp_path, "--data-dir", str(tmp_path / "data"), platform=platform)
    assert run.returncode == 2, run.stderr  # not -6 (SIGABRT)
    assert run.stderr == ("error: no display to open the window on (start the app in a desktop session, or over ssh "
                          "with X forwarding, ssh -X; the commands run without one: main.py --help lists them)\n")
    assert [p.name for p in tmp_path.iterdir()] == ["data"]  # nothing else made
