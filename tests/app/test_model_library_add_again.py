"""Adding a model that is in the library already (the same file or folder, however its path is spelled): nothing
told the user so, and a built-in model picked again was listed a second time as "<name>-2". Now the entry there is
selected and the status bar says it is in the library already; the list and library.json stay as they were."""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from gpu.paths import resources_dir

WAIT_MS = 20000  # a model added again needs no file read past its header: seconds at most


def _pick_in_add_dialog(qtbot, window, monkeypatch, picked: str) -> None:
    """The user picks ``picked`` in the Models panel's "Add folder…" or "Add SVDQ file…" dialog."""
    panel = window.model_panel
    if picked.endswith(".safetensors"):
        monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (picked, ""))
        qtbot.mouseClick(panel.add_file_button, Qt.MouseButton.LeftButton)
    else:
        monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: picked)
        qtbot.mouseClick(panel.add_folder_button, Qt.MouseButton.LeftButton)


def _added_again(qtbot, window, monkeypatch, picked: str | Path, name: str) -> None:
    """Adds ``picked`` again; waits for the status bar's word on it and checks ``name`` is the model in use."""
    window.statusBar().clearMessage()
    _pick_in_add_dialog(qtbot, window, monkeypatch, str(picked))
    qtbot.waitUntil(lambda: "already in the library" in window.statusBar().currentMessage(), timeout=WAIT_MS)
    assert f"'{name}'" in window.statusBar().currentMessage()
    controller = window.controller
    assert controller.prompt.model == name
    assert window.model_panel.list.currentItem().data(Qt.ItemDataRole.UserRole) == name
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == name, timeout=WAIT_MS)
    assert window.error_dialog is None  # a word in the status bar, not a dialog to click away


def test_a_model_added_again_under_any_spelling_is_selected_not_listed_twice(qtbot, window, tmp_path, monkeypatch):
    controller = window.controller
    models = tmp_path / "models"
    models.mkdir()
    mine = models / "mine.safetensors"
    shutil.copy(resources_dir() / "models" / "demo-int4.safetensors", mine)
    with qtbot.waitSignal(controller.add_ended, timeout=60000):
        _pick_in_add_dialog(qtbot, window, monkeypatch, str(mine))
    library_file = window.data.root / "library.json"
    saved, saved_at = library_file.read_bytes(), library_file.stat().st_mtime_ns
    names = [e.name for e in controller.entries]
    assert names == ["demo", "demo-int4", "mine"] and controller.prompt.model == "mine"  # added: selected
    controller.select_model("demo")
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo", timeout=WAIT_MS)

    link = tmp_path / "link to mine.safetensors"
    link.symlink_to(mine)
    _added_again(qtbot, window, monkeypatch, link, "mine")  # from "demo": selected now
    monkeypatch.chdir(tmp_path)
    _added_again(qtbot, window, monkeypatch, Path("models") / "mine.safetensors", "mine")  # relative
    _added_again(qtbot, window, monkeypatch, models / ".." / "models" / "mine.safetensors", "mine")
    controller.prompt.steps = 7  # the user's own, which selecting the model anew would reset to its default
    _added_again(qtbot, window, monkeypatch, mine, "mine")  # the model in use: only said
    assert controller.prompt.steps == 7

    assert [e.name for e in controller.entries] == names
    assert library_file.read_bytes() == saved and library_file.stat().st_mtime_ns == saved_at  # not rewritten


def test_a_built_in_model_added_again_is_selected_not_listed_as_a_copy(qtbot, window, data_root, tmp_path,
                                                                       monkeypatch):
    controller = window.controller
    shipped = resources_dir() / "models"
    (tmp_path / "shipped").symlink_to(shipped, target_is_directory=True)
    monkeypatch.chdir(shipped)
    _added_again(qtbot, window, monkeypatch, "demo-int4.safetensors", "demo-int4")  # relative, from "demo"
    _added_again(qtbot, window, monkeypatch, f"{tmp_path / 'shipped' / 'demo'}/", "demo")  # link, trailing slash
    assert [e.name for e in controller.entries] == ["demo", "demo-int4"]  # was: "demo-2" and "demo-int4-2" too
    assert not (data_root / "library.json").exists()


def test_a_model_added_again_during_a_job_leaves_what_the_user_set_since(qtbot, window, monkeypatch):
    """(R54) A model added again while a job runs: the add waits behind the job, and its end selected the model
    with its defaults over the steps the user had set meanwhile, or over a model the user had picked meanwhile. Now
    the fields set since keep their values, and a model picked since stays selected, said in the status bar."""
    from tests.app.gui import engine_held_at

    controller, state = window.controller, window.controller.prompt
    shipped = str(resources_dir() / "models" / "demo-int4.safetensors")
    state.prompt, state.steps = "a red circle", 4
    with engine_held_at(controller, lambda progress: True) as reached:
        controller.generate()
        qtbot.waitUntil(reached.is_set, timeout=60000)
        _pick_in_add_dialog(qtbot, window, monkeypatch, shipped)  # from "demo"
        qtbot.wait(300)
        state.steps = 3
    qtbot.waitUntil(lambda: "already in the library" in window.statusBar().currentMessage(), timeout=60000)
    assert (state.model, state.steps) == ("demo-int4", 3)  # was: its 16 steps
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo-int4", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: controller.queue.idle, timeout=60000)
    window.statusBar().clearMessage()
    with engine_held_at(controller, lambda progress: True) as reached:
        controller.generate()
        qtbot.waitUntil(reached.is_set, timeout=60000)
        _pick_in_add_dialog(qtbot, window, monkeypatch, shipped)  # the model in use
        qtbot.wait(300)
        window.model_panel.state.pick("demo")  # then another one picked
    qtbot.waitUntil(lambda: "already in the library" in window.statusBar().currentMessage(), timeout=60000)
    assert window.statusBar().currentMessage() == ("The model 'demo-int4' is already in the library; 'demo' stays "
                                                   "selected.")  # fmt: skip
    assert state.model == "demo"  # was: 'demo-int4' again
