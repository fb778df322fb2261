"""A finished quantized model is never left unlisted in the app's models folder: the add the wizard asks for at
quit is made before the engine's thread is gone, and a model left unlisted anyway (a crash, a kill) is added at the
next start, unless the user removed it. Real window, real engine, the shipped demo-int4 checkpoint as the
wizard's finished output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from app.data_dir import resolve_data_dir
from gpu.library import ModelLibrary
from gpu.paths import resources_dir
from tests.app.gui import answer_stop, open_window, step_held_till_quit, window_without_engine

DEMO_INT4 = resources_dir() / "models" / "demo-int4.safetensors"


def _finished_model(folder: Path, name: str) -> Path:
    """A model the wizard finished in ``folder`` (its output: a whole, verified SVDQ file)."""
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(DEMO_INT4, folder / name))


def _launch(qtbot, root: Path, said: list[str]):
    """The app started on ``root`` as ``open_window`` starts it, what its status bar says noted in ``said`` from
    the first moment (the start-up's search of the models folder speaks before the window is handed back)."""
    window = window_without_engine(qtbot, resolve_data_dir(root))
    window.statusBar().messageChanged.connect(said.append)
    with qtbot.waitSignal(window.controller.engine_ready, timeout=60000):
        window.start()
    # The search runs on the engine thread right after the list is sent, before the model's details
    qtbot.waitUntil(lambda: window.controller.model_info is not None, timeout=60000)
    return window


def _listed(window) -> dict[str, Path]:
    return {e.name: Path(e.path) for e in window.controller.entries}


def test_a_model_kept_at_quit_behind_a_running_job_is_in_the_library(qtbot, data_root, monkeypatch):
    """The wizard's finished model is added as the app quits (``keep_result``); with a generation job running, the
    add was queued behind it, the quit cancelled the job and stopped the engine's thread, and a thread told to
    quit drops the calls queued to it: the model stayed unlisted in the models folder."""
    window = open_window(qtbot, data_root)
    controller = window.controller
    model = _finished_model(controller.data.quantized, "demo-svdquant-int4-r8.safetensors")
    window.quantize_panel.open_wizard()
    # as a run that finished leaves it on the result page
    window.quantize_panel.wizard.run_state.result_path = str(model)

    in_step = step_held_till_quit(monkeypatch, controller)  # the add the quit asks for waits behind the job
    controller.prompt.prompt = "a red circle"
    assert controller.generate() is not None
    qtbot.waitUntil(in_step.is_set, timeout=60000)
    answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, [])  # "Quit and cancel it?"
    window.close()

    listed = {e.name: e.path for e in ModelLibrary(data_root).entries()}
    assert listed.get("demo-svdquant-int4-r8") == model  # in the library once the window has closed
    said: list[str] = []
    again = _launch(qtbot, data_root, said)
    assert _listed(again)["demo-svdquant-int4-r8"] == model
    assert not [s for s in said if "found in the models folder" in s]  # added at quit, not found now


def test_finished_models_found_in_the_models_folder_are_added_at_start(qtbot, data_root):
    """A model whose add never ran (the app killed or crashed after the run, or the add lost at quit) is found
    at the next start and added, with a word in the status bar; unfinished or damaged files never are."""
    models = data_root / "models"
    model = _finished_model(models, "flux-svdquant-int4-r32.safetensors")
    parts = models / "other-svdquant-int4-r32.safetensors.parts"  # a stopped run's finished blocks
    parts.mkdir()
    shutil.copyfile(DEMO_INT4, parts / "block-0000.safetensors")
    scratch = models / ".late.safetensors.a1b2c3.tmp"  # an atomic write cut short: its whole file not renamed yet
    scratch.mkdir()
    shutil.copyfile(DEMO_INT4, scratch / "new.safetensors")
    damaged = _finished_model(models, "damaged-svdquant-int4-r32.safetensors")
    data = bytearray(damaged.read_bytes())
    data[-100] ^= 0xFF  # a bit flipped in the tensor data: the checksum fails
    damaged.write_bytes(bytes(data))
    cut = _finished_model(models, "cut-svdquant-int4-r32.safetensors")
    with cut.open("r+b") as f:
        f.truncate(cut.stat().st_size // 2)  # a copy cut short
    (models / "notes.txt").write_text("not a model")

    said: list[str] = []
    window = _launch(qtbot, data_root, said)
    listed = _listed(window)
    assert listed["flux-svdquant-int4-r32"] == model
    assert "Added 1 quantized model found in the models folder: flux-svdquant-int4-r32." in said
    paths = set(listed.values())
    assert not paths & {damaged, cut, scratch / "new.safetensors", parts / "block-0000.safetensors"}
    assert [e.name for e in window.controller.entries if not e.builtin] == ["flux-svdquant-int4-r32"]
    # The damaged file is remembered as such, so that it is not read whole again at every start
    unlisted = json.loads((data_root / "library.json").read_text())["unlisted"]
    assert [(Path(r["path"]).name, r["why"]) for r in unlisted] == [(damaged.name, "damaged")]


def test_a_model_removed_from_the_list_does_not_come_back(qtbot, data_root):
    """Remove takes a model off the list and leaves its file in the models folder, where the start-up search
    would find it and add it again: a removal is remembered, and holds at every start."""
    model = _finished_model(data_root / "models", "flux-svdquant-int4-r32.safetensors")
    said: list[str] = []
    window = _launch(qtbot, data_root, said)
    controller = window.controller
    assert "flux-svdquant-int4-r32" in _listed(window)  # found and added
    with qtbot.waitSignal(controller.library_changed, timeout=60000):
        controller.remove_model("flux-svdquant-int4-r32")
    assert "flux-svdquant-int4-r32" not in _listed(window)
    window.close()

    for _ in range(2):
        said = []
        again = _launch(qtbot, data_root, said)
        assert "flux-svdquant-int4-r32" not in _listed(again) and model.is_file()
        assert not [s for s in said if "found in the models folder" in s]
        again.close()
