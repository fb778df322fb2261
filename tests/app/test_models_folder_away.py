"""A models folder kept on an external drive (``models/`` a link to it) whose drive is unplugged: the app starts
all the same, on its built-in models, says once why the folder's models are missing, refuses to save a quantized
model there, and loses nothing it knows of those models. Real window, real engine, the demo model."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from PIL import Image

from app.model_list_state import Pick
from app.settings import LastJob, Settings, save_settings
from gpu.generation.png_metadata import write_png
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from tests.app.gui import accept_dialog_later, added_copy, open_window, restored_from

DEMO_INT4 = resources_dir() / "models" / "demo-int4.safetensors"


@pytest.mark.skipif(os.name == "nt", reason="links need a privilege on Windows")
def test_the_app_starts_without_a_models_folder_whose_drive_is_unplugged_and_keeps_what_it_knows(
        qtbot, tmp_path, data_root):  # fmt: skip
    """The app refused to start ("The data folder cannot be used: …/models is a link to …, which is not there")
    though the gallery, the history and the built-in models need none of it. Started so, it saved the built-in
    model and its defaults as the user's last ones, for good; a model removed meanwhile came back with the drive;
    and an image's settings restored meanwhile were overwritten by the built-in model's defaults."""
    drive = tmp_path / "usb" / "models"
    drive.mkdir(parents=True)
    for name in ("mine.safetensors", "removed.safetensors", "dropped.safetensors"):
        shutil.copyfile(DEMO_INT4, drive / name)
    (data_root / "models").symlink_to(drive)
    library = ModelLibrary(data_root)
    for name in ("mine", "removed", "dropped"):
        library.add(data_root / "models" / f"{name}.safetensors")
    library.remove("removed")
    settings = Settings()
    settings.last_job = LastJob(model="mine", prompt="a lake", steps=3, width=256, height=256, guidance=4.0)
    save_settings(data_root / "settings.json", settings)
    drive.parent.rename(tmp_path / "unplugged")
    # An image dropped while the engine starts (or opened with the app) names a model the library lacks, as
    # another program's images do: its settings, not the built-in model's defaults, stay in the panel, and the
    # model it says new images use is the one selected
    png = write_png(tmp_path / "pic.png", Image.new("RGB", (8, 8)), {"prompt": "from the png", "steps": 7,
                    "width": 384, "height": 320, "guidance": 2.5, "model": "flux-dev"})  # fmt: skip
    said_then: list[str] = []
    panel_then: list[tuple] = []

    def restore_png(window) -> None:
        window.controller.error.connect(lambda error: said_then.append(error.message))
        state = window.controller.prompt
        window.controller.model_info_changed.connect(
            lambda _info: panel_then.append((state.model, state.steps, state.width, state.height, state.guidance)))
        restored_from(window.controller, [png])

    window = open_window(qtbot, data_root, restore_png)
    controller = window.controller
    assert controller.model_info is not None and controller.prompt.model == "demo"  # the built-in model works
    assert panel_then[0] == ("demo", 7, 384, 320, 2.5), panel_then
    assert [m for m in said_then if "flux-dev" in m] == [
        "The image was made with the model 'flux-dev', which is not in your library. Its other settings were "
        "restored; new images use 'demo'."], said_then  # fmt: skip
    said = [n for n in window.notices if "models folder" in n.message]
    assert len(said) == 1 and said[0].kind == "notice", window.notices  # said once, among the start-up notices
    assert f"{data_root / 'models'} is a link to {drive}, which is not there" in said[0].message
    assert said[0].hint.startswith("Plug in or mount the drive the link leads to"), said[0].hint
    assert [(e.name, e.missing) for e in controller.entries if not e.builtin] == [("mine", True), ("dropped", True)]
    # Removed while its drive is away: not found and added again once the drive is back
    controller.remove_model("dropped")
    qtbot.waitUntil(lambda: not controller.library.removing, timeout=60000)

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
    added_copy(qtbot, controller, tmp_path / "elsewhere" / "other.safetensors", select=False)
    saved = json.loads(library.file.read_text())
    assert [m["name"] for m in saved["models"]] == ["mine", "other"]
    assert [(r["path"], r["why"]) for r in saved["unlisted"]] == [(str(drive / n), "removed")
                                                                  for n in ("removed.safetensors",
                                                                            "dropped.safetensors")]  # fmt: skip
    window.close()
    # The user's model is saved as the last one, with the fields the user left (the image's): the built-in model
    # selected in its place, and its defaults, were this session's only
    last = json.loads((data_root / "settings.json").read_text())["last_job"]
    assert [last[k] for k in ("model", "steps", "width", "height", "guidance")] == ["mine", 7, 384, 320, 2.5], last

    # The drive plugged in again: the next start lists its model again, and not the ones removed, and selects it
    (tmp_path / "unplugged").rename(drive.parent)
    window = open_window(qtbot, data_root)
    assert window.controller.prompt.model == "mine"
    assert not [n for n in window.notices if "models folder" in n.message]
    assert window.controller.data.models_away == ""
    assert [(e.name, e.missing) for e in window.controller.entries if not e.builtin] == [("mine", False),
                                                                                         ("other", False)]

    # Its file deleted for good: the notice at the next start says how to keep working with the model selected
    # instead, and picking it (a click on the model in use, Enter) is the user's word: saved from then on. It did not
    # count as a pick, and the deleted model stayed in the settings, its notice back at every start.
    window.close()
    (drive / "mine.safetensors").unlink()
    shown: list = []
    window = open_window(qtbot, data_root, lambda w: w.controller.error.connect(shown.append))
    assert window.controller.prompt.model == "demo"
    (said,) = [n for n in shown if "'mine' you used last time cannot be opened" in n.message]
    assert "To keep working with 'demo' (and save its size, steps and guidance rather than those of 'mine'), pick " \
        "it in the Models list." in said.hint, said.hint  # fmt: skip
    assert window.controller.last_job().model == "mine"  # not picked yet: kept
    # An image made with the model in use, its settings reused, is the user's word too: it kept the deleted model,
    # the image's settings saved under it and lost at the next start
    kept = window.controller.library._kept
    png = write_png(tmp_path / "of demo.png", Image.new("RGB", (8, 8)), {"prompt": "a lake", "steps": 7,
                                                                         "width": 384, "height": 320, "model": "demo"})
    restored_from(window.controller, [png])
    qtbot.waitUntil(lambda: window.controller.prompt.steps == 7)
    assert (window.controller.last_job().model, window.controller.last_job().steps) == ("demo", 7)
    window.controller.library._kept = kept  # the start's state again, for the pick below
    window.controller.prompt.steps = 5  # set on the model in use, then picked: saved with it
    assert window.model_panel.state.pick("demo") is Pick.CURRENT
    window.close()
    last = json.loads((data_root / "settings.json").read_text())["last_job"]
    assert (last["model"], last["steps"]) == ("demo", 5), last
