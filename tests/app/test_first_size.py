"""The window's size and place where no saved geometry is restored (the first start, a damaged settings file):
1280x800 where the screen has room for it, within the screen's free area otherwise, centred."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from PySide6.QtCore import QRect

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_DRIVER = """
import json, sys
from pathlib import Path
from PySide6.QtCore import QRect
from PySide6.QtWidgets import QApplication
from app.data_dir import resolve_data_dir
from app.main_window import MainWindow

def seen(window):
    for _ in range(20):
        qt.processEvents()
    def rect(widget):  # where the widget lies on the screen
        return QRect(widget.mapToGlobal(widget.rect().topLeft()), widget.size()).getRect()
    return {"screen": window.screen().availableGeometry().getRect(), "frame": window.frameGeometry().getRect(),
            "status bar": rect(window.statusBar()), "gallery buttons": rect(window.gallery_panel.button_grid)}

qt = QApplication(["nibble-studio"])
data = resolve_data_dir(Path(sys.argv[1]))
window = MainWindow(data)
window.show()
first = seen(window)
window.close()  # saves its geometry
settings = json.loads(data.settings.read_text())
settings["window_geometry"] = "bm90IGEgc2F2ZWQgZ2VvbWV0cnk="  # base64, but of no saved geometry
data.settings.write_text(json.dumps(settings))
window = MainWindow(data)
window.show()
print("SEEN " + json.dumps([first, seen(window)]))
window.close()
"""


def test_on_a_1366x768_laptop_the_first_window_fits_the_screen(tmp_path):
    """At 1280x800 whatever the screen, the window's status bar and the gallery's bottom rows of buttons were below
    the edge of a 1366x768 laptop's screen; a saved geometry that could not be restored gave the same."""
    screen = {"name": "laptop", "x": 0, "y": 0, "width": 1366, "height": 768, "logicalDpi": 96, "logicalBaseDpi": 96,
              "dpr": 1}  # fmt: skip
    (tmp_path / "laptop.json").write_text(json.dumps({"screens": [screen]}))
    # The config file named relative to the folder it runs in: Qt splits the platform's options at colons.
    env = {**os.environ, "PYTHONPATH": REPO, "QT_QPA_PLATFORM": "offscreen:configfile=laptop.json"}
    out = subprocess.run([sys.executable, "-c", _DRIVER, str(tmp_path / "data")], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    seen = [line for line in out.stdout.splitlines() if line.startswith("SEEN ")]
    assert len(seen) == 1, out.stderr[-3000:]
    for start in json.loads(seen[0].removeprefix("SEEN ")):
        area = QRect(*start["screen"])
        assert area.size().toTuple() == (1366, 768)
        for part in ("frame", "status bar", "gallery buttons"):
            assert area.contains(QRect(*start[part])), (part, start)
        frame = QRect(*start["frame"])
        assert abs(frame.center().x() - area.center().x()) <= 1, start  # centred across


def test_on_a_larger_screen_the_first_window_is_1280x800_centred(qtbot, bare_window):
    """The size it always had where there is room for it (the tests' screen is a 1920x1080 desktop's)."""
    qtbot.waitExposed(bare_window)
    area = bare_window.screen().availableGeometry()
    assert area.width() >= 1422 and area.height() >= 889  # room for 1280x800 in 90% of it
    assert bare_window.size().toTuple() == (1280, 800)
    assert bare_window.geometry().center() == area.center()
