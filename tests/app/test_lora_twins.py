"""A LoRA listed twice (a copy in another folder or under another name, or one whose trigger words alone were edited)
and switched on twice was refused only by the job, as it applied them, after its model had loaded (a minute for
FLUX.1): "style.safetensors and style.safetensors are the same LoRA". Each such row now says so as they are switched
on, naming the other file, and Generate refuses them at the click, naming both, no job queued.

The panel's verdict is the engine's: the same weights with another PEFT lora_alpha are another LoRA, marked by
neither, and a copy at strength 0 (which a job skips) is not marked either."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from lora_files import alpha_edited, keys_renamed, metadata_edited, save_peft_lora
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette

from app.theme import WARNING_COLOR
from gpu.lora import read_lora
from gpu.paths import resources_dir
from tests.app.gui import loras_added
from tests.app.test_lora_panel import _generate, _refused

SHIPPED = resources_dir() / "loras" / "monochrome-style.safetensors"
HINT = ("Switch one of each pair off in the LoRA panel (the other can take the strength you want), then click "
        "Generate again.")


@pytest.fixture
def loras(tmp_path) -> Path:
    """The shipped example copied into loras/a/ and loras/b/ as style.safetensors, with two copies of it edited: its
    trigger words ("my words"), and its lora_alpha ("alpha 16"); made before the window opens."""
    folder = tmp_path / "loras"
    for version in ("a", "b"):
        (folder / version).mkdir(parents=True)
        shutil.copy(SHIPPED, folder / version / "style.safetensors")
    metadata_edited(SHIPPED, folder / "my words.safetensors", **{"modelspec.trigger_phrase": "grey, sketch"})
    alpha_edited(SHIPPED, folder / "alpha 16.safetensors", 16)
    return folder


def test_a_copy_switched_on_twice_is_marked_and_refused_at_the_click_naming_both(qtbot, window, loras):
    controller, panel = window.controller, window.lora_panel
    a, b = loras / "a" / "style.safetensors", loras / "b" / "style.safetensors"
    loras_added(qtbot, controller, [a, b])  # "Add LoRA…": both listed, switched on
    row_a, row_b = panel.row_for("style — a"), panel.row_for("style — b")
    qtbot.waitUntil(lambda: "same LoRA" in row_b.info.text(), timeout=30000)  # its files read on a thread
    assert row_b.info.text().startswith(f"The same LoRA as {a} (identical files), switched on too: switch one of "
                                        "them off.\ndiffusers/PEFT, rank 8")  # fmt: skip
    assert row_a.info.text().startswith(f"The same LoRA as {b} (identical files)")
    assert row_b.info.palette().color(QPalette.ColorRole.WindowText) == QColor(WARNING_COLOR)
    assert f"The same LoRA as {a}" in row_b.enabled.toolTip()

    window.prompt_panel.prompt_edit.setPlainText("a red circle on a blue background")
    assert _refused(qtbot, window) == (
        f"The LoRA files {a} and {b} are the same LoRA (identical files), and both are switched on, so no image "
        f"was made. {HINT}")  # fmt: skip (was: a job queued, refused once its model had loaded)

    row_a.enabled.setChecked(False)  # one of them off: neither is marked, and the job runs with the other
    assert row_a.entry.twin == row_b.entry.twin == "" and not row_b.info.text().startswith("The same")
    [made] = _generate(qtbot, window)
    assert [lora["file"] for lora in made.settings["lora_list"]] == ["style.safetensors"]


def test_the_panel_says_what_the_engine_refuses_and_no_more(qtbot, window, loras):
    controller, panel, state = window.controller, window.lora_panel, window.controller.loras
    panel.row_for("monochrome-style").enabled.setChecked(True)  # the shipped example
    words, stronger = loras / "my words.safetensors", loras / "alpha 16.safetensors"
    loras_added(qtbot, controller, [stronger, words])
    row = panel.row_for("my words")
    qtbot.waitUntil(lambda: "same LoRA" in row.info.text(), timeout=30000)
    assert row.entry.twin == (f"the same LoRA as {SHIPPED} (the same weights; only their metadata differs), "
                              "switched on too: switch one of them off")  # fmt: skip
    assert panel.row_for("alpha 16").entry.twin == ""  # another lora_alpha: another LoRA, which a job takes
    window.prompt_panel.prompt_edit.setPlainText("a red circle on a blue background")
    assert _refused(qtbot, window).startswith(f"The LoRA files {SHIPPED} and {words} are the same LoRA (the same "
                                              "weights; only their metadata differs), and both are switched on")

    state.set_strength(row.entry, 0.0)  # at strength 0 a job skips it: nothing doubles, nothing is marked
    assert row.entry.twin == "" and panel.row_for("monochrome-style").entry.twin == ""
    [made] = _generate(qtbot, window)  # the engine takes the shipped LoRA and its copy of another alpha together
    assert [lora["name"] for lora in made.settings["lora_list"]] == ["monochrome-style", "alpha 16"]


def test_other_loras_of_one_layout_are_told_apart_without_reading_them_whole(qtbot, demo_model, tmp_path,
                                                                             monkeypatch):  # fmt: skip
    """Two LoRAs of one trainer (one layout) switched on together are common: a look at each file's header and
    first 64 KiB tells them apart; only files of one look are read whole (a FLUX.1 LoRA is hundreds of MB)."""
    import app.lora_twins
    from app.lora_state import LoraState

    real, whole = app.lora_twins.read_contents, []
    monkeypatch.setattr(app.lora_twins, "read_contents", lambda path: whole.append(path) or real(path))
    files = [save_peft_lora(demo_model, tmp_path / name, seed=seed) for name, seed in (("ink", 1), ("oil", 2))]
    state = LoraState()
    state.add_files(files)  # both switched on: diffusers names both pytorch_lora_weights
    assert state.entries[0].targets is state.entries[1].targets  # one layout: they may be the same LoRA
    assert _settled(qtbot, state) == [] and whole == []
    shutil.copy(files[0], tmp_path / "ink copy.safetensors")
    state.add_files([tmp_path / "ink copy.safetensors"])
    [twin] = _settled(qtbot, state)  # the copy, read whole with the file of its look, on the thread
    assert (twin.first.path, twin.second.path, twin.how) == (files[0], tmp_path / "ink copy.safetensors",
                                                             "identical files")  # fmt: skip


def _settled(qtbot, state) -> list:
    """The twins among ``state``'s rows switched on (``LoraTwins.settle``, as Generate asks) once its thread has read
    the files they need."""
    qtbot.waitUntil(lambda: not state.twins.busy, timeout=30000)
    return state.twins.settle()


def _edited_configs(tmp_path: Path) -> dict[str, Path]:
    """Copies of the shipped example whose PEFT adapter metadata a metadata editor wrote again, by what it changed:
    nothing the engine's scales come from ("grey": written without indentation, its trigger words edited;
    "r 4": the LoraConfig's r, which the engine takes from the tensors; "dropout": a training setting), or the
    scale of some layers ("rslora": lora_alpha / sqrt(r); "pattern": an alpha_pattern entry for to_k)."""
    config = json.loads(read_lora(SHIPPED).metadata["lora_adapter_metadata"])
    changes = {"grey": {}, "r 4": {"transformer.r": 4}, "dropout": {"transformer.lora_dropout": 0.1},
               "rslora": {"transformer.use_rslora": True}, "pattern": {"transformer.alpha_pattern": {"to_k": 16}}}
    return {name: metadata_edited(SHIPPED, tmp_path / f"{name}.safetensors", **{
        "lora_adapter_metadata": json.dumps({**config, **changed}), "modelspec.trigger_phrase": "grey, sketch"})
        for name, changed in changes.items()}  # fmt: skip


def test_a_copy_whose_adapter_metadata_was_written_again_is_marked_as_the_engine_refuses_it(qtbot, tmp_path):
    """A metadata editor that reads the file's metadata and writes it back (its trigger words edited) lays the
    diffusers ``lora_adapter_metadata`` JSON out its own way: the same lora_alpha, r and rsLoRA setting, the same
    scales, the same weights. The engine calls the two the same LoRA (``LoraFile.same_change``) and refuses the job
    once its model has loaded; the panel compared that JSON as text, called them two LoRAs, marked neither row and
    let Generate queue the job. It now compares the scales the engine reads from it, by the engine's own rule: a
    copy is marked exactly where the engine calls it the same LoRA."""
    from app.lora_state import LoraState

    copies = _edited_configs(tmp_path)
    engine = {name for name, path in copies.items() if read_lora(SHIPPED).same_change(read_lora(path))}
    assert engine == {"grey", "r 4", "dropout"}  # the engine: one LoRA, refused twice in one job
    state = LoraState()
    state.add_files([SHIPPED, *copies.values()])  # all switched on
    twins = _settled(qtbot, state)
    assert {t.second.path.stem for t in twins} == engine and {t.first.path for t in twins} == {SHIPPED}  # was: none


def test_a_copy_under_renamed_keys_is_marked_as_the_engine_refuses_it(qtbot, tmp_path):
    """The same LoRA under other key names (kohya's ``lora_transformer_…lora_down`` for diffusers/PEFT's
    ``transformer.…lora_A``), its data the same bytes: the engine reads both keys into the same layers and refuses
    the pair once its model has loaded; the panel compared the keys as written, put the two files in layouts of
    their own, marked neither and let Generate queue the job. It now reads the keys by the engine's own names for
    the layers they change (``check_layout``), and marks the copy."""
    from app.lora_state import LoraState

    renamed = keys_renamed(SHIPPED, tmp_path / "style kohya.safetensors")
    assert read_lora(SHIPPED).same_change(read_lora(renamed))  # the engine: one LoRA, refused twice in one job
    state = LoraState()
    first, second = state.add_files([SHIPPED, renamed]).added  # both switched on
    [twin] = _settled(qtbot, state)  # was: none
    assert (twin.first, twin.second, twin.how) == (first, second, "the same weights under other key names")
    assert second.twin == (f"the same LoRA as {SHIPPED} (the same weights under other key names), switched on too: "
                           "switch one of them off")  # fmt: skip
    stronger = keys_renamed(alpha_edited(SHIPPED, tmp_path / "alpha 16.safetensors", 16),
                            tmp_path / "alpha 16 kohya.safetensors")  # fmt: skip
    assert not read_lora(SHIPPED).same_change(read_lora(stronger))  # another lora_alpha: another LoRA, renamed too
    state.remove(second)
    state.add_files([stronger])
    assert _settled(qtbot, state) == []


class _HeldReads:
    """``read_contents`` as the LoRA twins' thread calls it, held (``release``) as a big file's read lasts; each
    call noted with whether it ran on the window's thread."""

    def __init__(self, monkeypatch) -> None:
        import app.lora_twins

        self.real, self.release, self.reads = app.lora_twins.read_contents, threading.Event(), []
        monkeypatch.setattr(app.lora_twins, "read_contents", self)

    def __call__(self, path):
        on_gui = threading.current_thread() is threading.main_thread()
        self.reads.append((on_gui, Path(path).name))
        if not on_gui:
            self.release.wait(30)
        return self.real(path)


def _copies_being_read(qtbot, window, tmp_path, monkeypatch) -> tuple[_HeldReads, Path, Path]:
    """Two copies of the shipped LoRA (loras a/ and b/) switched on, their read held on the twins' thread (a FLUX.1
    LoRA is hundreds of MB), and a prompt typed: Generate is clicked next, as it often is at once after a pick (or at
    start-up, copies on from the last session)."""
    held = _HeldReads(monkeypatch)
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(SHIPPED, tmp_path / folder / "style.safetensors")
    a, b = tmp_path / "a" / "style.safetensors", tmp_path / "b" / "style.safetensors"
    loras_added(qtbot, window.controller, [a, b])
    qtbot.waitUntil(lambda: bool(held.reads), timeout=30000)  # the thread reads the first copy whole
    window.prompt_panel.prompt_edit.setPlainText("a red circle on a blue background")
    return held, a, b


def _click_generate(qtbot, window, held: _HeldReads) -> None:
    """Generate clicked while the copies are read; the read released should the click not return."""
    try:
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
    except BaseException:
        held.release.set()
        raise


def test_generate_while_copies_are_being_read_waits_for_the_read_and_refuses_them(qtbot, window, tmp_path,
                                                                                   monkeypatch):  # fmt: skip
    """Generate clicked while the copy check still read the files queued the job: its model loaded, and then the
    engine refused the pair in its own words (slow, and unlike the panel's refusal at the click). The click now
    waits for the read, saying so ("Checking LoRA files…", Cancel usable), reading nothing on the window's thread,
    and then refuses the job as a click after the read does, naming both files: no job is queued."""
    controller, panel = window.controller, window.prompt_panel
    held, a, b = _copies_being_read(qtbot, window, tmp_path, monkeypatch)
    errors: list = []
    controller.error.connect(errors.append)
    _click_generate(qtbot, window, held)
    try:
        assert controller.queue.idle and not controller.job.busy and errors == []  # was: the job queued
        assert controller.job.status.startswith("Checking LoRA files") and panel.cancel_button.isEnabled()
    finally:
        held.release.set()
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible(), timeout=60000)
    said = f"{window.error_dialog.text()} {window.error_dialog.informativeText()}"
    window.error_dialog.accept()
    assert [name for on_gui, name in held.reads if on_gui] == []  # no file read on the window's thread
    assert said == (f"The LoRA files {a} and {b} are the same LoRA (identical files), and both are switched on, so "
                    f"no image was made. {HINT}")  # fmt: skip (was: the job's "… are the same LoRA (identical files).")
    assert controller.queue.idle and len(errors) == 1  # no job queued: the panel's refusal, once
    assert not controller.job.status.startswith("Checking") and not panel.cancel_button.isEnabled()
    assert window.lora_panel.row_for("style — b").entry.twin.startswith(f"the same LoRA as {a}")  # marked


def test_a_copy_switched_off_while_generate_waits_lets_the_job_go_with_the_other(qtbot, window, tmp_path,
                                                                                 monkeypatch):  # fmt: skip
    """The click waits for the LoRA files; meanwhile the user switches one copy off (or edits the prompt for the
    next image). The job goes once the read ends, with the LoRAs switched on then, and with the prompt as it was at
    the click, as a job queued at the click takes it."""
    controller = window.controller
    held, a, _b = _copies_being_read(qtbot, window, tmp_path, monkeypatch)
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as finished:
        _click_generate(qtbot, window, held)
        try:
            assert controller.queue.idle  # waits for the read
            window.lora_panel.row_for("style — a").enabled.setChecked(False)
            window.prompt_panel.prompt_edit.setPlainText("the next prompt, being typed")
        finally:
            held.release.set()
    [made] = finished.args[0]
    assert [lora["file"] for lora in made.settings["lora_list"]] == ["style.safetensors"]
    assert made.settings["prompt"] == "a red circle on a blue background"
    assert controller.history.record(0).prompt == "a red circle on a blue background"  # its history too
    assert window.error_dialog is None or not window.error_dialog.isVisible()


def test_cancel_while_generate_waits_for_the_lora_files_queues_no_job(qtbot, window, tmp_path, monkeypatch):
    """Esc (or Cancel) while the click waits for the LoRA files drops it: no job is queued once they are read, and
    the status line says so."""
    controller, panel = window.controller, window.prompt_panel
    held, _a, _b = _copies_being_read(qtbot, window, tmp_path, monkeypatch)
    _click_generate(qtbot, window, held)
    try:
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
        assert controller.job.status == "Cancelled before the LoRA files were read: no job was queued"
        assert not panel.cancel_button.isEnabled()
    finally:
        held.release.set()
    qtbot.waitUntil(lambda: window.lora_panel.row_for("style — b").entry.twin != "", timeout=30000)  # read, marked
    qtbot.wait(200)
    assert controller.queue.idle and (window.error_dialog is None or not window.error_dialog.isVisible())


def test_copies_switched_off_and_on_again_are_not_read_whole_again(qtbot, tmp_path, monkeypatch):
    """README: "only files of one look are read whole (once per version)". Two copies on, read whole and marked;
    one switched off (to try the other's strength alone) and on again: what was read of both was let go of when
    the pair was no longer on (``LoraTwins._show``), and both files were read whole again on the thread (600 MB for
    two 300 MB copies, at each such switch), their rows unmarked until then. What was read is kept for each row
    listed, by its file's version."""
    import app.lora_twins
    from app.lora_state import LoraState

    real, whole = app.lora_twins.read_contents, []
    monkeypatch.setattr(app.lora_twins, "read_contents", lambda path: whole.append(Path(path).name) or real(path))
    copies = [tmp_path / "style.safetensors", tmp_path / "style copy.safetensors"]
    for copy in copies:
        shutil.copy(SHIPPED, copy)
    state = LoraState()
    first, second = state.add_files(copies).added  # both switched on
    qtbot.waitUntil(lambda: second.twin != "", timeout=30000)  # read whole on the thread, marked
    assert sorted(whole) == ["style copy.safetensors", "style.safetensors"]
    state.set_enabled(first, False)
    assert second.twin == ""
    state.set_enabled(first, True)
    assert second.twin != ""  # marked at once, from what was read
    qtbot.wait(200)  # a read the thread may still make
    assert len(whole) == 2, whole  # was: 4, both read whole again


def test_a_copy_that_could_not_be_read_for_a_moment_is_read_again_at_generate(qtbot, tmp_path, monkeypatch):
    """A file that cannot be read for a moment (on Windows, a copy just made, held by a virus scanner: a sharing
    violation) was taken as unreadable for good, until the file changed: its row never marked, though the job
    refuses it. A file that could not be read is tried again at the next look the user causes (Generate here)."""
    import app.lora_twins
    from app.lora_state import LoraState

    real, refused = app.lora_twins.look_at, []

    def look(path):  # the first look refused, as a file another program holds is
        if not refused:
            refused.append(Path(path).name)
            raise PermissionError(13, "The process cannot access the file", str(path))
        return real(path)

    monkeypatch.setattr(app.lora_twins, "look_at", look)
    copies = [tmp_path / "style.safetensors", tmp_path / "style copy.safetensors"]
    for copy in copies:
        shutil.copy(SHIPPED, copy)
    state = LoraState()
    first, second = state.add_files(copies).added  # both switched on
    qtbot.waitUntil(lambda: not state.twins.busy, timeout=30000)
    assert refused == ["style.safetensors"] and second.twin == ""  # its look refused: not known to be the same
    state.twins.settle()  # Generate clicked: the file tried again, on the thread
    qtbot.waitUntil(lambda: second.twin != "", timeout=30000)  # was: never marked
    assert [(t.first, t.second) for t in _settled(qtbot, state)] == [(first, second)]
