"""A models folder kept on an external drive (``models/`` a link to it) whose drive is unplugged: the app starts
all the same, on its built-in models, says once why the folder's models are missing, refuses to save a quantized
model there, and loses nothing it knows of those models. Real window, real engine, the demo model."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from tests.app.gui import accept_dialog_later, added_copy, open_window

DEMO_INT4 = resources_dir() / "models" / "demo-int4.safetensors"


@pytest.mark.skipif(os.name == "nt", reason="links need a privilege on Windows")
def test_the_app_starts_without_a_models_folder_whose_drive_is_unplugged_and_keeps_what_it_knows(
        qtbot, tmp_path, data_root):  # fmt: skip
    """The app refused to start ("The data folder cannot be used: …/models is a link to …, which is not there")
    though the gallery, the history and the built-in models need none of it."""
    drive = tmp_path / "usb" / "models"
    drive.mkdir(parents=True)
    for name in ("mine.safetensors", "removed.safetensors"):
        shutil.copyfile(DEMO_INT4, drive / name)
    (data_root / "models").symlink_to(drive)
    library = ModelLibrary(data_root)
    library.add(data_root / "models" / "mine.safetensors")
    library.add(data_root / "models" / "removed.safetensors")
    library.remove("removed")
    drive.parent.rename(tmp_path / "unplugged")

    window = open_window(qtbot, data_root)
    controller = window.controller
    assert controller.model_info is not None and controller.prompt.model == "demo"  # the built-in model works
    said = [n for n in window.notices if "models folder" in n.message]
    assert len(said) == 1 and said[0].kind == "notice", window.notices  # said once, among the start-up notices
    assert f"{data_root / 'models'} is a link to {drive}, which is not there" in said[0].message
    assert said[0].hint.startswith("Plug in or mount the drive the link leads to"), said[0].hint
    assert [(e.name, e.missing) for e in controller.entries if not e.builtin] == [("mine", True)]

    # Quantizing into the folder is refused, naming it and the drive, before anything is made on the system disk
    window.quantize_panel.open_wizard()
    wizard = window.quantize_panel.wizard
    wizard.next()
    wizard.next()
    seen: list[str] = []
    accept_dialog_later(seen)
    with qtbot.waitSignal(wizard.run_page.completeChanged, timeout=120000):
        wizard.next()
    text = wizard.run_page.error.text()
    assert f"{data_root / 'models'} is a link to {drive}, which is not there" in text, text
    assert "plug in or mount the drive its link leads to" in text, text
    qtbot.waitUntil(lambda: len(seen) == 1)
    wizard.close()
    assert not drive.parent.exists()

    # A model added meanwhile saves the library: what it says of the folder's models is kept
    added_copy(qtbot, controller, tmp_path / "elsewhere" / "other.safetensors")
    saved = json.loads(library.file.read_text())
    assert [m["name"] for m in saved["models"]] == ["mine", "other"]
    assert [(r["path"], r["why"]) for r in saved["unlisted"]] == [(str(drive / "removed.safetensors"), "removed")]
    window.close()

    # The drive plugged in again: the next start lists its model again, and not the one removed
    (tmp_path / "unplugged").rename(drive.parent)
    window = open_window(qtbot, data_root)
    assert not [n for n in window.notices if "models folder" in n.message]
    assert window.controller.data.models_away == ""
    assert [(e.name, e.missing) for e in window.controller.entries if not e.builtin] == [("mine", False),
                                                                                         ("other", False)]
