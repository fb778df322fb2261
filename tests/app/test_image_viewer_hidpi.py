"""The full-size viewer on a screen of two device pixels per pixel of the desktop (QT_SCALE_FACTOR=2, a 4K laptop's
200%): its "100%" is one screen pixel per picture pixel, and a picture scaled down is smoothed at the screen's own
resolution. Before, 100% drew each picture pixel as 2x2 screen pixels, and a fit picture was smoothed to half the
screen's resolution, then stretched: blurred. In a process of its own: Qt reads the scale factor at its start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import pairwise

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_DRIVER = """
import json, sys, time
from pathlib import Path
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from app.data_dir import resolve_data_dir
from app.main_window import MainWindow
from app.store import Store
from gpu.generation.png_metadata import write_png

qt = QApplication(["nibble-studio"])
data = resolve_data_dir(Path(sys.argv[1]))
checker = Image.new("L", (400, 300))  # picture pixels black and white in turn
checker.putdata([255 * ((x + y) % 2) for y in range(300) for x in range(400)])
stripes = Image.new("L", (1600, 1200))  # columns black and white in turn, 2 picture pixels wide
stripes.putdata([255 * (x // 2 % 2) for y in range(1200) for x in range(1600)])
store = Store(data.database)
for created, (name, picture) in enumerate([("stripes.png", stripes), ("checker.png", checker)]):
    write_png(data.images / name, picture.convert("RGB"), {"prompt": name})
    store.add_image(name, {"prompt": name}, created=float(created))
store.close()

def until(done, what):
    ends = time.monotonic() + 60
    while not done():
        if time.monotonic() > ends:
            raise SystemExit("timed out waiting for " + what)
        qt.processEvents()
        time.sleep(0.01)

window = MainWindow(data)
window.show()
window.start()
until(lambda: window.controller.model_info is not None, "the engine")
panel = window.gallery_panel
viewer, state = panel.viewer, window.controller.viewer

def seen():
    # The canvas's device pixels along the middle row of the picture shown: the grey of each, from the picture's left
    until(lambda: state.image is not None, "the picture")
    for _ in range(20):
        qt.processEvents()
    canvas = viewer.canvas
    grab = canvas.grab().toImage()
    ratio = grab.devicePixelRatio()
    y = round((canvas.offset.y() + state.image.height() * canvas.scale() / ratio / 2) * ratio)
    row = [grab.pixelColor(x, y).red() for x in range(grab.width())]
    drawn = [x for x, grey in enumerate(row) if grey != 32]  # the canvas around it is (32, 32, 32)
    return {"ratio": ratio, "scale": canvas.scale(), "said": viewer.info.text(),
            "width": drawn[-1] + 1 - drawn[0] if drawn else 0, "greys": row[drawn[0]:drawn[0] + 16] if drawn else []}

panel.select_row(0)
panel.view_current()
shown = {"checker fit": seen()}
QTest.keyClick(viewer.canvas, Qt.Key.Key_Right)
shown["stripes fit"] = seen()
state.set_zoom(0.5)
shown["stripes at 50%"] = seen()
print("SEEN " + json.dumps(shown))
window.close()
"""


def _black_and_white_in_turn(greys: list[int]) -> bool:
    """Whether each screen pixel of ``greys`` is black or white, and the next one the other: one picture pixel
    (or stripe) per screen pixel, none smoothed to grey nor drawn on two."""
    return set(greys) == {0, 255} and all(a != b for a, b in pairwise(greys))


def test_100_percent_is_one_screen_pixel_per_picture_pixel_at_200_percent_desktop_scaling(tmp_path):
    env = {**os.environ, "PYTHONPATH": REPO, "QT_SCALE_FACTOR": "2",
           "QT_QPA_PLATFORM": f"offscreen:configfile={os.path.join(REPO, 'tests', 'app', 'desktop_screen.json')}"}
    out = subprocess.run([sys.executable, "-c", _DRIVER, str(tmp_path / "data")], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    seen = [line for line in out.stdout.splitlines() if line.startswith("SEEN ")]
    assert len(seen) == 1, out.stderr[-3000:]
    shown = json.loads(seen[0].removeprefix("SEEN "))
    checker = shown["checker fit"]
    assert checker["ratio"] == 2.0
    # A picture smaller than the window at its own size: 100%, each of its pixels one of the screen's
    assert checker["scale"] == 1.0 and "400×300   100%" in checker["said"]
    # was 800 screen pixels wide, each picture pixel 2x2 of them: greys [0, 0, 255, 255, …]
    assert checker["width"] == 400, checker
    assert _black_and_white_in_turn(checker["greys"]), checker
    # Fit: to the window's screen pixels (scale as said: picture pixels per screen pixel)
    fit = shown["stripes fit"]
    assert fit["width"] == round(1600 * fit["scale"]), fit  # was twice as wide as its scale said
    # Scaled down, smoothed to the screen's resolution: at 50% each 2-pixel stripe is one screen pixel, black or
    # white; was smoothed to half of it (each stripe half a pixel: grey) and stretched to 1600 screen pixels
    half = shown["stripes at 50%"]
    assert half["width"] == 800 and "50%" in half["said"], half
    assert _black_and_white_in_turn(half["greys"]), half
