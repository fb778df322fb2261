"""The desktop app started by ``main.py`` with no terminal to print to: a .desktop file, a file manager's double
click or the Dock on Linux and macOS (stderr goes to a log file, a journal or nowhere), a windowed Windows executable
(no stderr at all). Why it cannot start is said in a dialog, and still printed where there is a stderr; the folder
the app opens is the one the command line chose."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from tests.app.gui import accept_dialog_later


def _no_window_shown() -> bool:
    return [w for w in QApplication.topLevelWidgets() if w.isVisible()] == []


def test_the_app_opens_the_data_folder_the_command_line_chose_not_the_flag_made_a_path(qtbot, tmp_path,
                                                                                     monkeypatch):  # fmt: skip
    """``main.py`` handed the flag to the app as ``Path(flag)``, which drops a leading "./": ``--data-dir ./~``,
    the folder named "~" in the current one for the command line and the engine, was "~" for the app, which took
    the home folder (and exported it to the engine in place of the first). Here both are files, so the app's
    start-up dialog names the folder it took instead of opening a window on it."""
    from main import main

    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.write_text("")
    cwd.mkdir()
    (cwd / "~").write_text("")
    monkeypatch.chdir(cwd)
    for variable in ("HOME", "USERPROFILE"):  # the latter on Windows
        monkeypatch.setenv(variable, str(home))
    monkeypatch.setattr(sys, "stderr", None)  # no terminal: the app's dialog names the folder
    seen: list[str] = []
    accept_dialog_later(seen)
    assert main(["--data-dir", "./~"]) == 1
    folder = cwd.resolve() / "~"
    assert len(seen) == 1 and f"The data folder {folder} cannot be used: it is a file, not a folder." in seen[0], seen
    assert _no_window_shown()
