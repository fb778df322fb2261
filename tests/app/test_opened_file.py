"""Images given to the app on its command line (dropped on the executable in Windows Explorer, "Open with", a Linux
file manager through the .desktop file's %F) open the app and are handled as images dropped on the prompt panel.
They were refused in a dialog as a usage error, and the app did not start; so were several at once after that."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from gpu.generation.png_metadata import write_png

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# main.py's start, as the executable runs it, with the image as its one argument; what the window shows once the
# engine is ready and the file was handled is printed, then the window closed
_DRIVER = """
import json, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox
from app.main_window import MainWindow
from main import main

def drive(tries=[0]):
    tries[0] += 1
    windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
    boxes = [f"{b.text()}|{b.informativeText()}" for b in QApplication.topLevelWidgets()
             if isinstance(b, QMessageBox) and b.isVisible()]
    state = windows[0].controller.prompt if windows else None
    ready = windows and windows[0].controller.model_info is not None and (state.prompt or boxes)
    if not ready and tries[0] < 1200:
        QTimer.singleShot(50, drive)
        return
    if windows:
        print("SEEN " + json.dumps({"prompt": state.prompt, "seed": state.seed, "boxes": boxes}), flush=True)
        for box in QApplication.topLevelWidgets():
            if isinstance(box, QMessageBox) and box.isVisible():
                box.accept()
        windows[0].close()

qt = QApplication(["nibble-studio"])
QTimer.singleShot(50, drive)
sys.exit(main(sys.argv[1:]))
"""


def _start_with(tmp_path, *arguments: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _DRIVER, *arguments], capture_output=True, text=True, timeout=300,
                         cwd=REPO, env={**os.environ, "QT_QPA_PLATFORM": "offscreen",
                                        "NIBBLE_DATA_DIR": str(tmp_path / "data")})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    seen = [line for line in out.stdout.splitlines() if line.startswith("SEEN ")]
    assert len(seen) == 1, out.stderr[-3000:]
    return json.loads(seen[0].removeprefix("SEEN "))


def test_a_png_given_on_the_command_line_opens_the_app_with_its_settings_restored(tmp_path):
    png = write_png(tmp_path / "a lake.png", Image.new("RGB", (8, 8)), {"prompt": "a lake at dawn", "seed": 9})
    seen = _start_with(tmp_path, str(png))
    assert (seen["prompt"], seen["seed"], seen["boxes"]) == ("a lake at dawn", 9, [])


def test_several_files_given_on_the_command_line_are_handled_as_a_drop_of_them_a_missing_one_said(tmp_path):
    """Several images dropped on the executable at once, or opened with the app together: the last one alone was
    read as a file, and the others made the command line a usage error."""
    png = write_png(tmp_path / "a lake.png", Image.new("RGB", (8, 8)), {"prompt": "a lake at dawn", "seed": 9})
    seen = _start_with(tmp_path, str(tmp_path / "gone.png"), str(png))
    assert (seen["prompt"], seen["seed"], len(seen["boxes"])) == ("a lake at dawn", 9, 1), seen
    assert seen["boxes"][0].startswith("Settings restored from a lake.png, but not all as saved: gone.png (it "
                                       "cannot be read"), seen  # fmt: skip


@pytest.mark.parametrize("desktop", [False, True])
def test_only_a_refused_command_line_ending_in_a_file_is_read_as_the_app_opening_it(tmp_path, monkeypatch, desktop):
    """What was read before is read the same: a sub-command's name is one even where a file has that name, and a
    file (not named .png) given from a terminal or a script, the sub-command forgotten, stays a usage error there
    rather than a window that waits; the windowed executable (no stderr) opens it."""
    from main import UsageError, app_with_file, build_parser

    monkeypatch.chdir(tmp_path)
    if desktop:
        monkeypatch.setattr(sys, "stderr", None)
    (tmp_path / "generate").write_text("a file named as a sub-command")
    (tmp_path / "model.safetensors").write_text("not an image")
    parser = build_parser()

    def opened(*argv: str) -> tuple[str | None, str] | None:
        with pytest.raises(UsageError):  # asked only of what the parser refuses
            parser.parse_args(list(argv))
        args = app_with_file(parser, list(argv))
        return None if args is None else (args.data_dir, args.open_files)

    assert opened("photo.png") == (None, ["photo.png"])  # a .png, there or not: the app says what it finds
    assert opened("--data-dir", "d", str(tmp_path / "x.PNG")) == ("d", [str(tmp_path / "x.PNG")])
    assert opened("model.safetensors") == ((None, ["model.safetensors"]) if desktop else None)
    assert opened("a.png", "b.png", "c.PNG") == (None, ["a.png", "b.png", "c.PNG"])  # several dropped at once
    (tmp_path / "d").mkdir()  # a data folder there, which the desktop's executable would take for a file
    assert opened("--data-dir", "d", "a.png", "b.png") == ("d", ["a.png", "b.png"])
    assert opened("--data-dir=d", "model.safetensors", "a.png") == (
        ("d", ["model.safetensors", "a.png"]) if desktop else None)
    for refused in (["generate"], ["genrate"], ["generate", "a cat", "x.png"], ["--self-test", "x.png"],
                    ["inspect"], ["--data-dir"], ["x.png", "--seed", "3"], ["generate", "a.png", "b.png"],
                    ["x.png", "generate", "y.png"]):  # fmt: skip
        assert opened(*refused) is None, refused


def test_the_app_gets_its_program_name_first_and_the_image_after_it(tmp_path, monkeypatch):
    """main handed the app the arguments after the program, which Qt takes as a command line whose first word is the
    program: an image opened with the app became Qt's program name, and the window's X11 class (what the .desktop
    file's StartupWMClass matches) the image's name."""
    import app.main_window
    import main

    png = write_png(tmp_path / "a lake.png", Image.new("RGB", (8, 8)), {"prompt": "a lake at dawn"})
    given: list = []
    monkeypatch.setattr(app.main_window, "run_app", lambda argv, data_dir, files: given.append((argv, files)) or 0)
    monkeypatch.setattr(sys, "argv", ["/opt/Nibble Studio/nibble-studio", str(png)])
    assert main.main([str(png)]) == 0
    assert given == [(["/opt/Nibble Studio/nibble-studio", str(png)], [str(png)])]


def test_the_refusal_dialog_is_not_given_the_qt_options_it_refuses(monkeypatch):
    """A command line main refuses, shown in a dialog from the desktop: Qt was handed the refused words with the
    program first, and obeyed a '-platform' among them (a dialog on a platform no one sees, or an abort for one
    that does not exist) instead of saying the usage error."""
    import app.main_window
    import main

    shown: list = []
    monkeypatch.setattr(main, "started_by_the_desktop", lambda: True)
    monkeypatch.setattr(main, "gui_can_be_seen", lambda: True)
    monkeypatch.setattr(app.main_window, "show_start_refused", lambda argv, message, hint: shown.append(argv))
    monkeypatch.setattr(sys, "argv", ["/opt/Nibble Studio/nibble-studio", "-platform", "nosuch"])
    with pytest.raises(SystemExit):
        main.main(["-platform", "nosuch"])
    assert shown == [["/opt/Nibble Studio/nibble-studio"]]
