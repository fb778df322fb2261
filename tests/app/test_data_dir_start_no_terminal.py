"""The desktop app started by ``main.py`` with no terminal to print to: a .desktop file, a file manager's double
click or the Dock on Linux and macOS (stderr goes to a log file, a journal or nowhere), a windowed Windows executable
(no stderr at all). Why it cannot start is said in a dialog, and still printed where there is a stderr; the folder
the app opens is the one the command line chose."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtWidgets import QApplication

from tests.app.gui import accept_dialog_later

FIX = "give a folder, e.g. --data-dir ~/nibble-data, or leave --data-dir out for the default one"


def _no_window_shown() -> bool:
    return [w for w in QApplication.topLevelWidgets() if w.isVisible()] == []


def test_a_blank_data_dir_with_no_terminal_is_said_in_a_dialog_and_on_stderr(qtbot, tmp_path, monkeypatch, capsys,
                                                                             a_gui_can_be_seen):  # fmt: skip
    """Only a Windows executable without a console (``sys.stderr`` None) showed the dialog: started from a .desktop
    file, the app printed its reason to a stderr no one reads and exited, and the user saw nothing happen."""
    from main import main

    monkeypatch.chdir(tmp_path)
    assert not sys.stderr.isatty()  # pytest's capture: a stderr that is no terminal, as a .desktop launch has
    seen: list[str] = []
    accept_dialog_later(seen)
    assert main(["--data-dir", ""]) == 2
    assert seen == [f'Nibble Studio cannot start\n--data-dir "": the folder name is empty.\n{FIX.capitalize()}.']
    assert capsys.readouterr().err == f'error: --data-dir "": the folder name is empty ({FIX})\n'  # for a log too
    assert _no_window_shown() and list(tmp_path.iterdir()) == []


def test_an_unusable_data_folder_with_no_terminal_is_named_in_the_apps_dialog_and_on_stderr(
        qtbot, tmp_path, capsys, a_gui_can_be_seen):  # fmt: skip
    """The command line printed "cannot use it as the data folder" to a stderr no one reads and exited 2 before
    the app could say it; with no terminal the app starts and its start-up dialog names the folder and why."""
    from main import main

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    data = a_file / "data"
    seen: list[str] = []
    accept_dialog_later(seen)
    assert main(["--data-dir", str(data)]) == 1  # the app's refusal, after its dialog
    assert seen == [f"Nibble Studio cannot start\nThe data folder {data} cannot be used: {a_file} is a file, not a "
                    "folder.\nStart Nibble Studio with a writable data folder (--data-dir PATH)."], seen  # fmt: skip
    assert capsys.readouterr().err.startswith(f"error: --data-dir {data}: cannot use it as the data folder: {a_file} "
                                              "is a file, not a folder (give --data-dir a folder")  # fmt: skip
    assert _no_window_shown()


def test_the_app_opens_the_data_folder_the_command_line_chose_not_the_flag_made_a_path(qtbot, tmp_path,
                                                                                     monkeypatch,
                                                                                     a_gui_can_be_seen):  # fmt: skip
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


def test_an_offscreen_start_with_no_terminal_prints_and_exits_without_a_dialog(qtbot, tmp_path, monkeypatch,
                                                                             capsys):  # fmt: skip
    """Qt's offscreen platform (CI, a headless test run) draws the refusal dialog nowhere: it waited for a click no
    one could give, with stderr (pytest's capture, no terminal) read all along. The line is said and the run exits 2,
    as from a terminal, even where a display is named."""
    from main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    monkeypatch.setenv("DISPLAY", ":0")
    seen: list[str] = []
    accept_dialog_later(seen)  # on the old code the dialog showed: accepted here, so that the test fails, not hangs
    assert main(["--data-dir", ""]) == 2
    assert capsys.readouterr().err == f'error: --data-dir "": the folder name is empty ({FIX})\n'
    assert seen == [] and _no_window_shown() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("given", ["a file", "gone"])
def test_a_command_line_the_frozen_app_cannot_use_with_no_terminal_is_said_in_a_dialog_and_on_stderr(
        qtbot, tmp_path, monkeypatch, capsys, a_gui_can_be_seen, given):  # fmt: skip
    """A shortcut given what the app does not take: argparse printed its usage error to a stderr no one reads and
    exited 2, and the user saw nothing happen. (A file dropped on the executable, or opened with it, opens the app:
    ``test_opened_file``; not one given before an option.)"""
    from main import main

    monkeypatch.setattr(sys, "frozen", True, raising=False)
    star = tmp_path / "star.png"
    star.write_bytes(b"")
    argv = [str(star), "--no-such-option"] if given == "a file" else ["gone"]
    seen: list[str] = []
    accept_dialog_later(seen)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    choice = f"argument COMMAND: invalid choice: '{argv[0]}' (choose from 'quantize', 'generate', 'inspect', 'bench')"
    usage = "main.py [-h] [--data-dir DATA_DIR] [--self-test] COMMAND ..."
    assert stop.value.code == 2 and seen == [f"Nibble Studio cannot start\nThe command line was not understood: "
                                             f"{choice}.\nStart Nibble Studio without arguments (what it takes: "
                                             f"{usage})."], seen  # fmt: skip
    assert capsys.readouterr().err == f"usage: {usage}\nmain.py: error: {choice}\n"  # as argparse says it
    assert _no_window_shown()


@pytest.mark.parametrize("argv", [["genrate", "a red circle"], ["--out", "x.png"], ["<a file>", "--out"], ["<a file>"],
                                  ["generate", "a red star", "--no-such-option"]])
def test_a_mistyped_command_with_stderr_redirected_is_printed_without_a_dialog(qtbot, tmp_path, monkeypatch, capsys,
                                                                               a_gui_can_be_seen, argv):  # fmt: skip
    """A script's typo (stderr captured, as ``subprocess.run(..., capture_output=True)`` does) showed a modal dialog
    that held the script up until someone clicked: only exact command names counted as a script's, and a script
    that forgot the sub-command (``main.py model.safetensors``) was still held up."""
    from main import main

    (tmp_path / "model.safetensors").write_bytes(b"")  # a .png opens the app (``test_opened_file``)
    monkeypatch.chdir(tmp_path)
    argv = [str(tmp_path / "model.safetensors") if arg == "<a file>" else arg for arg in argv]
    seen: list[str] = []
    accept_dialog_later(seen)  # on the old code the dialog showed: accepted here, so that the test fails, not hangs
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and seen == []
    assert "main.py: error: " in capsys.readouterr().err
    assert _no_window_shown()


def test_a_command_line_the_windowed_executable_cannot_use_is_said_in_a_dialog(qtbot, tmp_path, monkeypatch,
                                                                               a_gui_can_be_seen):  # fmt: skip
    """No stderr at all (the windowed executable): no script can read the line, so the dialog says it."""
    from main import main

    monkeypatch.setattr(sys, "stderr", None)
    seen: list[str] = []
    accept_dialog_later(seen)
    with pytest.raises(SystemExit) as stop:
        main(["genrate", "a red circle"])
    assert stop.value.code == 2 and len(seen) == 1 and "The command line was not understood" in seen[0], seen
