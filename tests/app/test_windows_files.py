"""Windows file semantics the gallery meets, simulated on Linux: a file that another program holds open (an image
viewer, the search indexer, an antivirus scan) can be read but neither renamed, replaced nor deleted."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from app.data_dir import resolve_data_dir
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import open_window, used_restored

SHARING_VIOLATION = "The process cannot access the file because it is being used by another process"


def hold_open_elsewhere(monkeypatch: Any, path: Path) -> None:
    """From now on (until ``monkeypatch`` is undone) ``path`` behaves as a file another program has open on
    Windows: os.rename/replace/unlink/remove of it, or onto it, raise the PermissionError Windows raises."""
    held = os.path.abspath(path)

    def guard(fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if any(os.path.abspath(os.fspath(a)) == held for a in args[:2]):
                raise PermissionError(13, SHARING_VIOLATION, os.fspath(args[0]))
            return fn(*args, **kwargs)

        return call

    for name in ("rename", "replace", "unlink", "remove"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))


def test_undo_of_a_trashed_image_held_open_elsewhere_leaves_no_copy_behind(qtbot, data_root, monkeypatch):
    data = resolve_data_dir(data_root)
    write_png(data.images / "d" / "0.png", Image.new("RGB", (16, 16), "red"), {"prompt": "fox"})
    store = Store(data.database)
    store.add_image("d/0.png", {"prompt": "fox"}, created=1.0)
    store.close()
    window = open_window(qtbot, data_root)
    panel, gallery = window.gallery_panel, window.controller.gallery
    errors: list[Any] = []
    window.controller.error.connect(errors.append)
    # Deleting while a viewer has the image open: refused with the file's name, the image stays as it was.
    with monkeypatch.context() as m:
        hold_open_elsewhere(m, data.images / "d" / "0.png")
        panel.select_row(0)
        panel.delete_selected()
    assert gallery.rowCount() == 1 and (data.images / "d" / "0.png").is_file() and len(errors) == 1
    assert str(data.images / "d" / "0.png") in errors[0].message
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    window.error_dialog.accept()
    panel.select_row(0)
    panel.delete_selected()
    assert gallery.rowCount() == 0 and (data.trash / "d" / "0.png").is_file()
    # Undo while the trashed file is open elsewhere: refused the same way, and nothing lands in the images folder
    # (shutil.move copied it there before failing to delete the original: a duplicate at the next start).
    with monkeypatch.context() as m:
        hold_open_elsewhere(m, data.trash / "d" / "0.png")
        panel.undo_button.click()
    assert len(errors) == 2 and str(data.trash / "d" / "0.png") in errors[1].message
    assert list(data.images.rglob("*.png")) == [] and (data.trash / "d" / "0.png").is_file()
    assert gallery.rowCount() == 0 and panel.undo_button.isEnabled()
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    window.error_dialog.accept()
    panel.undo_button.click()  # the viewer closed: the image comes back under its own name
    assert [gallery.record(r).path for r in range(gallery.rowCount())] == ["d/0.png"]
    assert list(data.images.rglob("*.png")) == [data.images / "d" / "0.png"]


def test_reusing_an_image_made_on_windows_finds_its_lora_by_file_name(qtbot, tmp_path):
    """``lora_list[].file`` of a PNG made on Windows is a Windows path; the LoRA is listed here elsewhere."""
    from app.lora_state import LoraState
    from gpu.paths import resources_dir

    lora = tmp_path / "loras" / "monochrome-style.safetensors"
    lora.parent.mkdir()
    shutil.copyfile(resources_dir() / "loras" / lora.name, lora)
    state = LoraState()
    entry = state.add_file(lora)
    used = [{"file": "C:\\Users\\ana\\loras\\monochrome-style.safetensors", "name": "monochrome-style",
             "strength": 0.5}]
    assert used_restored(qtbot, state, used) == []
    assert entry.enabled and entry.strength == 0.5
