"""Renders the README screenshots offscreen with the real engine: ``python -m app.screenshots OUT_DIR [--model PATH]``.

``--model`` registers a diffusers folder as ``demo`` first (for use before the demo model ships)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtGui import QPixmap
    from PySide6.QtWidgets import QApplication


def _wait(app: QApplication, predicate: Callable[[], bool], timeout_s: float = 300) -> None:
    import time

    end = time.time() + timeout_s
    while not predicate():
        app.processEvents()
        time.sleep(0.02)
        if time.time() > end:
            raise TimeoutError("screenshot step timed out")


def save(pixmap: QPixmap, path: Path) -> None:
    """Screenshots go into the repository: a 256-colour palette keeps each one small."""
    import io

    from PIL import Image
    from PySide6.QtCore import QBuffer, QIODevice

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    pixmap.save(buffer, "PNG")
    image = Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--steps", type=int, default=None, help="default: the model's own")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    root = Path(tempfile.mkdtemp(prefix="nibble-shots-"))
    os.environ["NIBBLE_DATA_DIR"] = str(root)
    if args.model:
        from gpu.library import ModelLibrary

        ModelLibrary(root).add(args.model, name="demo")
    from PySide6.QtWidgets import QApplication

    from app.data_dir import resolve_data_dir
    from app.main_window import MainWindow
    from app.theme import apply_theme

    app = QApplication([])
    apply_theme(app)
    window = MainWindow(resolve_data_dir(root))
    window.resize(1400, 860)
    window.show()
    window.start()
    controller = window.controller
    _wait(app, lambda: controller.model_info is not None)
    prompts = ["a large red circle in the top left", "a small blue square on a yellow background",
               "a green triangle in the bottom right", "a purple star in the center"]
    state = controller.prompt
    state.batch_count = 2
    if args.steps:
        state.steps = args.steps
    for prompt in prompts:
        state.prompt = prompt
        controller.generate()
        _wait(app, lambda: not (controller.job.busy or controller.job.checking))  # a click may wait for LoRA files
    window.gallery_panel.select_row(0)
    window.gallery_panel.view.setFocus()
    for _ in range(20):
        controller.gallery.thumbnails.wait()
        app.processEvents()
    args.out.mkdir(parents=True, exist_ok=True)
    save(window.grab(), args.out / "main-window.png")
    save(window.gallery_panel.grab(), args.out / "gallery.png")
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    if args.steps:
        wizard.compare_steps = args.steps
    wizard.next()
    wizard.next()
    wizard.calibration_page.count.setValue(16)
    wizard.calibration_page.steps.setValue(4)
    save(wizard.grab(), args.out / "wizard-calibration.png")
    wizard.next()
    _wait(app, lambda: wizard.run_page.ok or "Failed" in wizard.run_page.log.toPlainText(), 900)
    save(wizard.grab(), args.out / "wizard-run.png")
    wizard.next()
    for _ in range(50):
        app.processEvents()
    save(wizard.grab(), args.out / "wizard-result.png")
    wizard.close()
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
