"""Models that disappear: removed while selected, or moved/deleted on disk between sessions. The app never keeps
a model selected that every job would fail on; it falls back to one that opens and says why, naming the file."""

from __future__ import annotations

import json
import logging
import shutil

from PySide6.QtCore import Qt

from app.settings import LastJob, Settings, save_settings
from gpu.paths import resources_dir
from tests.app.gui import (
    TEST_SIZE,
    TEST_STEPS,
    added_copy,
    answer_stop,
    engine_held_at,
    open_window,
    step_held_till_quit,
)


def _item(window, name: str):
    panel = window.model_panel
    return next(panel.list.item(r) for r in range(panel.list.count())
                if panel.list.item(r).data(Qt.ItemDataRole.UserRole) == name)


def _listed(data_root) -> list[str]:
    """The names of the user's models that library.json lists."""
    return [m["name"] for m in json.loads((data_root / "library.json").read_text())["models"]]


def _mine_in_use(qtbot, controller, tmp_path):
    """A copy of the demo model added as 'mine' and in use (its facts read), the prompt panel set for a quick job
    of "a red circle"; the copy's path."""
    mine = tmp_path / "mine.safetensors"
    assert added_copy(qtbot, controller, mine) == "mine"
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "mine", timeout=60000)
    controller.prompt.prompt = "a red circle"
    controller.prompt.steps, controller.prompt.width, controller.prompt.height = TEST_STEPS, TEST_SIZE, TEST_SIZE
    return mine


def test_removing_the_selected_model_falls_back_and_generation_works(qtbot, window, tmp_path):
    controller = window.controller
    mine = tmp_path / "mine.safetensors"
    shutil.copy(resources_dir() / "models" / "demo-int4.safetensors", mine)
    said: list[str] = []
    controller.status_message.connect(said.append)
    with qtbot.waitSignal(controller.add_ended, timeout=60000):
        controller.add_model(mine)
    # A model just added is the one in use next: it was only listed, and nothing said so.
    assert controller.prompt.model == "mine"
    assert said == ["The model 'mine' was added to the library; it is selected."]
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "mine", timeout=60000)
    assert window.model_panel.list.currentItem() is _item(window, "mine")

    with qtbot.waitSignal(controller.library_changed, timeout=60000):
        window.model_panel._remove()
    assert controller.prompt.model == "demo"
    # Said, with the model now in use: the list alone changed, and "Remove" could be read as deleting the file.
    qtbot.waitUntil(lambda: len(said) > 1, timeout=30000)  # once its file is looked at, on a thread
    assert said[1:] == [f"The model 'mine' was removed from the library ({mine} itself is not deleted); "
                        "'demo' is selected."]
    assert mine.is_file()
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo", timeout=60000)
    controller.prompt.steps, controller.prompt.width, controller.prompt.height = TEST_STEPS, TEST_SIZE, TEST_SIZE
    controller.prompt.prompt = "a red circle"
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as done:
        controller.generate()
    assert done.args[0][0].settings["model"] == "demo"


def test_a_model_removed_while_a_job_runs_is_shown_pending_and_removed_once(qtbot, window, tmp_path, data_root):
    """The engine takes a model off only after the jobs queued before (a FLUX batch: minutes). Remove changed
    nothing on screen meanwhile, so it was clicked again: the second removal, run after the first, was refused with
    "'mine' is not a user-added model (built-in models cannot be removed)". Now the row and the panel say it is
    being removed and after what, Remove is greyed on it, and it is asked of the engine once."""
    controller, panel = window.controller, window.model_panel
    errors, said = [], []
    controller.error.connect(errors.append)
    controller.status_message.connect(said.append)
    mine = _mine_in_use(qtbot, controller, tmp_path)
    with engine_held_at(controller, lambda _progress: True) as reached:
        controller.generate()
        qtbot.waitUntil(reached.is_set, timeout=60000)
        assert panel.remove_button.isEnabled()
        panel.remove_button.click()
        assert not panel.remove_button.isEnabled()  # greyed on the row being removed
        assert _item(window, "mine").text() == "mine  (removing…)"
        assert panel.removing.text() == "Removing 'mine' after the running job…" and panel.removing.isVisible()
        controller.remove_model("mine")  # asked again (the controller's own way in): not sent a second time
        qtbot.wait(300)
        assert _listed(data_root) == ["mine"]  # still listed till the job ends
    qtbot.waitUntil(lambda: controller.queue.idle and "mine" not in [e.name for e in controller.entries],
                    timeout=120000)  # fmt: skip
    qtbot.wait(500)  # a second removal, had it been sent, was answered by now
    assert errors == []
    qtbot.waitUntil(lambda: len(said) > 1, timeout=30000)  # once its file is looked at, on a thread
    assert said[1:] == [f"The model 'mine' was removed from the library ({mine} itself is not deleted); "
                        "'demo' is selected."]  # what a removal says when it ends, as before
    assert panel.removing.isHidden() and controller.prompt.model == "demo"
    assert _listed(data_root) == []


def _copy_of_demo_int4(tmp_path, name: str = "mine.safetensors"):
    """The shipped demo INT4 model copied to ``tmp_path``/``name``, not added: for an add the test asks itself."""
    path = tmp_path / name
    shutil.copyfile(resources_dir() / "models" / "demo-int4.safetensors", path)
    return path


def test_a_model_added_during_a_job_keeps_the_fields_edited_since(qtbot, window, tmp_path):
    """(R54) Add SVDQ file… clicked while a job runs: the add waits behind the job on the engine's thread. The user
    set steps and width for the next image meanwhile; when the add ended, the model was selected and its defaults
    went over every field, undoing those edits. Now they go only to the fields left as they were at the click, as
    for a model picked during a job
    (test_model_panel.test_a_model_picked_during_a_job_keeps_the_fields_edited_since)."""
    controller, state = window.controller, window.controller.prompt
    mine = _copy_of_demo_int4(tmp_path)
    state.prompt, state.steps = "a red circle", 4
    with engine_held_at(controller, lambda progress: True) as reached:
        controller.generate()
        qtbot.waitUntil(reached.is_set, timeout=60000)
        controller.add_model(mine)  # what the panel's "Add SVDQ file…" does with the file picked
        qtbot.wait(300)
        window.prompt_panel.steps_spin.setValue(3)  # the user's next image, set while the job runs
        state.width = 192
    with qtbot.waitSignal(controller.add_ended, timeout=60000):
        pass
    qtbot.waitUntil(lambda: state.model == "mine", timeout=60000)
    assert (state.steps, state.width) == (3, 192)  # was: the model's 16 and 128
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "mine", timeout=60000)
    assert state.height == controller.model_info.defaults["height"]  # not edited: the model's


def test_a_model_picked_while_an_add_waits_behind_a_job_stays_selected(qtbot, window, tmp_path):
    """(R54) Add clicked during a job, then another model picked (and jobs queued on it, maybe): when the add ended
    after the job, the selection jumped to the added model over the user's pick, and its defaults replaced the
    fields. Now the user's later pick holds, and the status bar says the model was added and which stays selected."""
    controller, state = window.controller, window.controller.prompt
    said: list[str] = []
    controller.status_message.connect(said.append)
    mine = _copy_of_demo_int4(tmp_path)
    state.prompt, state.steps = "a red circle", 4
    with engine_held_at(controller, lambda progress: True) as reached:
        controller.generate()
        qtbot.waitUntil(reached.is_set, timeout=60000)
        controller.add_model(mine)
        qtbot.wait(300)
        window.model_panel.state.pick("demo-int4")  # a click on its row
        assert state.model == "demo-int4"
        state.steps = 3
    with qtbot.waitSignal(controller.add_ended, timeout=60000):
        pass
    qtbot.wait(500)
    assert (state.model, state.steps) == ("demo-int4", 3)  # was: 'mine', with its 16 steps
    assert "The model 'mine' was added to the library; 'demo-int4' stays selected." in said, said


def test_an_add_waiting_behind_a_job_is_said_till_it_ends(qtbot, window, tmp_path):
    """(R54) A file picked with Add SVDQ file… during a job: nothing in the window said anything until the job ended
    (minutes for a FLUX.1 batch), where a Remove says "Removing 'mine' after the running job…"; the user saw the
    click do nothing and added it again. Now the panel says it under the buttons, as Remove's, till the add ends."""
    controller, panel = window.controller, window.model_panel
    mine = _copy_of_demo_int4(tmp_path)
    controller.prompt.prompt = "a red circle"
    assert panel.adding.isHidden()
    with engine_held_at(controller, lambda progress: True) as reached:
        controller.generate()
        qtbot.waitUntil(reached.is_set, timeout=60000)
        controller.add_model(mine)  # what the panel's "Add SVDQ file…" does with the file picked
        assert panel.adding.text() == "Adding 'mine.safetensors' after the running job…" and panel.adding.isVisible()
        qtbot.wait(300)
        assert panel.adding.isVisible()  # till the job ends
    with qtbot.waitSignal(controller.add_ended, timeout=60000):
        pass
    assert panel.adding.isHidden() and controller.prompt.model == "mine"


def test_a_model_picked_during_a_job_says_it_is_read_after_the_job(qtbot, window):
    """A model picked while a job runs is read by the engine only after it: the details said "Reading model…" for
    the minutes of a FLUX.1 batch, as if the read were slow or stuck. Now they say what it waits for, and the
    model's facts come once the job ends."""
    controller, panel = window.controller, window.model_panel
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo", timeout=60000)
    controller.prompt.prompt = "a red circle"
    with engine_held_at(controller, lambda progress: True) as reached:
        controller.generate()
        qtbot.waitUntil(reached.is_set, timeout=60000)
        panel._picked(_item(window, "demo-int4"))
        assert panel.details.text() == "Reading model after the running job…"
    qtbot.waitUntil(lambda: "Model: demo-int4" in panel.details.text(), timeout=60000)
    panel._picked(_item(window, "demo"))  # no job: read at once, no wait said
    assert panel.details.text() == "Reading model…"


def test_a_model_picked_as_a_job_decodes_its_last_image_says_it_waits_for_it(qtbot, window):
    """Past its last step a job still decodes and saves its image (seconds for a FLUX.1 1024² image), and the engine
    reads the model after it; the details said "Reading model…" as if nothing were before it (the finishing job was
    not counted among those the pick waits behind)."""
    controller, panel = window.controller, window.model_panel
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo", timeout=60000)
    controller.prompt.prompt, controller.prompt.batch_count = "a red circle", 1

    def last_step(progress) -> bool:
        return progress.step == progress.total_steps and progress.image_index + 1 == progress.image_count

    with engine_held_at(controller, last_step) as reached:
        controller.generate()
        qtbot.waitUntil(reached.is_set, timeout=60000)
        qtbot.waitUntil(lambda: controller.queue.unfinished == [], timeout=10000)  # the window knows it is finishing
        panel._picked(_item(window, "demo-int4"))
        assert panel.details.text() == "Reading model after the running job…"
    qtbot.waitUntil(lambda: "Model: demo-int4" in panel.details.text(), timeout=60000)


def _held_in_engine(monkeypatch, owner, name: str, when=lambda *_args: True):
    """``owner.name`` (an object of the engine thread's) held there, for a call ``when`` takes, until the test
    ends -> (reached, release): two ``threading.Event``."""
    import threading

    reached, release = threading.Event(), threading.Event()
    real = getattr(owner, name)

    def hold(*args, **kwargs):
        if when(*args) and not reached.is_set():
            reached.set()
            release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, hold)
    return reached, release


def test_what_the_library_waits_for_is_said_anew_as_the_jobs_before_it_end(qtbot, window, tmp_path, monkeypatch):
    """A Remove, a pick and an add made while a job runs say they wait "after the running job". Once that job ended
    and the engine made them (a FLUX.1 model's read takes seconds), they still said so, a job queued after them
    counted as the one they waited for. Now each says what is still ahead of it: nothing, once its jobs ended."""
    controller, panel = window.controller, window.model_panel
    _mine_in_use(qtbot, controller, tmp_path)
    other = _copy_of_demo_int4(tmp_path, "other.safetensors")
    worker = controller._engine.worker
    with engine_held_at(controller, lambda _progress: True) as reached:
        controller.generate()
        qtbot.waitUntil(reached.is_set, timeout=60000)
        removing, release = _held_in_engine(monkeypatch, worker._library, "remove")
        panel.remove_button.click()
        panel._picked(_item(window, "demo-int4"))
        controller.add_model(other)
        controller.generate()  # queued after them: they do not wait for it
        assert panel.removing.text() == "Removing 'mine' after the running job…"
        assert panel.details.text() == "Reading model after the running job…"
        assert panel.adding.text() == "Adding 'other.safetensors' after the running job…"
    try:
        qtbot.waitUntil(lambda: removing.is_set() and len(controller.queue.unfinished) == 1, timeout=60000)
        assert panel.removing.text() == "Removing 'mine'…"
        assert panel.details.text() == "Reading model…"
        assert panel.adding.text() == "Adding 'other.safetensors'…"
    finally:
        release.set()
    qtbot.waitUntil(lambda: controller.queue.idle and panel.adding.isHidden(), timeout=120000)
    assert panel.removing.isHidden()


def test_a_removal_pending_at_quit_is_made_before_the_app_closes(qtbot, window, tmp_path, data_root, monkeypatch):
    """Remove clicked while a job ran, then the app quit (its question about the job answered Yes): the panel said
    "Removing 'mine' after the running job…", but the removal, queued behind the job, was dropped with the engine
    thread's calls, and 'mine' was listed again at the next start. Now the quit makes it once the engine stopped."""
    from PySide6.QtWidgets import QMessageBox

    controller, panel = window.controller, window.model_panel
    mine = _mine_in_use(qtbot, controller, tmp_path)
    in_step = step_held_till_quit(monkeypatch, controller)  # the removal is queued behind the job
    controller.generate()
    qtbot.waitUntil(in_step.is_set, timeout=60000)
    panel.remove_button.click()
    assert panel.removing.text() == "Removing 'mine' after the running job…"
    asked: list[str] = []
    answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, asked)  # "Quit Nibble Studio?": Yes
    window.close()
    assert len(asked) == 1 and not controller._engine.thread.isRunning()
    assert _listed(data_root) == [] and mine.is_file()  # taken off the list as the panel said; its file stays


def test_generate_refuses_the_model_being_removed_and_says_what_to_pick(qtbot, window, tmp_path):
    """Remove on the model in use while a job ran left it selected till the removal, so a Generate clicked meanwhile
    queued a job on it behind the removal, which then failed ("no model named 'mine'"). Now Generate refuses it,
    naming it and what to do; nothing is queued, and once another model is picked Generate runs on it."""
    controller, panel = window.controller, window.model_panel
    generate = window.prompt_panel.generate_button
    errors, finished = [], []
    controller.error.connect(errors.append)
    controller.job_finished.connect(finished.append)
    _mine_in_use(qtbot, controller, tmp_path)
    with engine_held_at(controller, lambda _progress: True) as reached:
        generate.click()
        qtbot.waitUntil(reached.is_set, timeout=60000)
        panel.remove_button.click()
        assert panel.removing.text() == "Removing 'mine' after the running job…"
        assert controller.prompt.model == "mine"  # still what the panel shows selected, marked "(removing…)"
        generate.click()
        assert len(controller.queue.unfinished) == 1  # nothing queued behind the removal
        assert [e.kind for e in errors] == ["user"]
        assert "'mine' is being removed from the library" in errors[0].message
        assert "Pick another model in the Models list" in errors[0].hint
    qtbot.waitUntil(lambda: controller.queue.idle and "mine" not in [e.name for e in controller.entries],
                    timeout=120000)  # fmt: skip
    assert len(errors) == 1 and [[r.settings["model"] for r in records] for records in finished] == [["mine"]]
    assert controller.prompt.model == "demo"  # as the end of a removal selects, as before
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo", timeout=60000)
    controller.prompt.steps, controller.prompt.width, controller.prompt.height = TEST_STEPS, TEST_SIZE, TEST_SIZE
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as done:
        generate.click()
    assert done.args[0][0].settings["model"] == "demo" and len(errors) == 1


def test_a_model_file_deleted_between_sessions(qtbot, data_root, tmp_path):
    gone = tmp_path / "gone.safetensors"  # added in an earlier session, deleted since
    (data_root / "library.json").write_text(json.dumps({"version": 1, "models": [{"name": "gone",
                                                                                     "path": str(gone)}]}))
    save_settings(data_root / "settings.json", Settings(last_job=LastJob(model="gone", prompt="a blue star",
                                                                        steps=3, width=192, height=192)))
    errors = []
    window = open_window(qtbot, data_root)  # waits for the selected model's facts: there must be some
    controller = window.controller
    controller.error.connect(errors.append)
    assert controller.prompt.model == "demo" and controller.model_info.name == "demo"
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    assert "'gone'" in window.error_dialog.text() and str(gone) in window.error_dialog.text()
    window.error_dialog.accept()
    item = _item(window, "gone")
    assert "(missing)" in item.text()

    window.model_panel.list.setCurrentItem(item)
    window.model_panel._picked(item)  # looked at again, then refused with the reason; the model in use stays
    qtbot.waitUntil(lambda: bool(errors), timeout=60000)
    assert controller.prompt.model == "demo"
    assert str(gone) in errors[-1].message
    assert "missing" in window.model_panel.details.text()
    assert window.model_panel.remove_button.isEnabled()
    with qtbot.waitSignal(controller.library_changed, timeout=60000):
        window.model_panel._remove()
    assert "gone" not in [e.name for e in controller.entries]
    assert controller.prompt.prompt == "a blue star"  # the rest of the last session's panel is kept


def test_a_model_file_moved_while_the_app_runs(qtbot, window, tmp_path):
    """The list read at start still had the file: the model was taken as usable, its details stayed on "Reading
    model…" and every job failed on it. Now the failure reads the list again: it is marked missing, and the
    app falls back to a model that opens and says so once."""
    controller, panel = window.controller, window.model_panel
    errors = []
    controller.error.connect(errors.append)
    mine, moved = tmp_path / "mine.safetensors", tmp_path / "moved.safetensors"
    shutil.copy(resources_dir() / "models" / "demo-int4.safetensors", mine)
    with qtbot.waitSignal(controller.add_ended, timeout=60000):
        controller.add_model(mine)
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "mine", timeout=60000)

    mine.rename(moved)  # while it is selected
    controller.prompt.prompt = "a red circle"
    with qtbot.waitSignal(controller.library_changed, timeout=60000):
        controller.generate()
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
    assert controller.job.status == "Failed"
    assert "(missing)" in _item(window, "mine").text()
    assert controller.prompt.model == "demo"
    assert len(errors) == 1  # the job's own "no such file" is not said a second time
    assert str(mine) in errors[0].message and "'demo' is selected instead" in errors[0].message
    assert "pick 'mine' again" in errors[0].hint and "remove it from the Models list" in errors[0].hint
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo", timeout=60000)

    moved.rename(mine)  # the hint's remedy: put back and added again, it is usable and selected
    with qtbot.waitSignal(controller.add_ended, timeout=60000):
        controller.add_model(mine)
    assert controller.prompt.model == "mine" and "(missing)" not in _item(window, "mine").text()
    # 'demo' read: its facts were 'demo''s already, and the read of 'mine' asked by the add could come after the
    # move below, where the pick of 'mine' read it (its file there): no longer a pick refused, a model gone in use
    with qtbot.waitSignal(controller.model_info_changed, timeout=60000):
        controller.select_model("demo")

    mine.rename(moved)  # while another model is selected: listed as usable, then picked
    panel._picked(_item(window, "mine"))
    assert panel.details.text() == "Reading model…"
    with qtbot.waitSignal(controller.model_info_changed, timeout=60000):  # 'demo' read again, in use again
        qtbot.waitUntil(lambda: len(errors) == 2, timeout=60000)
    assert "(missing)" in _item(window, "mine").text() and str(mine) in errors[1].message
    assert controller.prompt.model == "demo"
    # The refused pick stays in view, as a "(missing)" row picked does: the list went to 'demo' with its facts, as if
    # nothing had been picked, once the dialog was closed nothing said what became of the pick, and Remove acted
    # on 'demo'
    assert panel.list.currentItem().text() == "mine  (missing)" and panel.remove_button.isEnabled()
    assert panel.details.text() == "mine: missing. New images use demo. Press Enter to look at its file again."

    # The hint's remedy: the file back (a drive reconnected), the "(missing)" entry picked: its file is looked at
    # again and it is selected (the pick was refused from the list read before, until the model was added again).
    # The pick must be decided by the list read after it: one the engine read before the file was back (a failed
    # request's) and delivered just after the pick refused it (seen in CI's timing, a third dialog).
    read_while_away = list(controller.entries)
    moved.rename(mine)
    panel._picked(_item(window, "mine"))
    window.controller._engine.worker.library_changed.emit(read_while_away)
    qtbot.waitUntil(lambda: controller.prompt.model == "mine", timeout=60000)
    assert len(errors) == 2
    assert "(missing)" not in _item(window, "mine").text()
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "mine", timeout=60000)

    # A missing model picked, then another before the engine answered that pick's list read: the answer undid the
    # later pick (the first model, its file back, replaced it).
    controller.select_model("demo")
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo", timeout=60000)
    worker = window.controller._engine.worker
    worker.library_changed.emit(read_while_away)  # 'mine' listed as missing again (its file is there)
    panel._picked(_item(window, "mine"))
    controller.select_model("demo")  # the user changes their mind before the answer
    with qtbot.waitSignal(worker.library_read, timeout=60000):
        pass
    qtbot.waitUntil(lambda: "(missing)" not in _item(window, "mine").text(), timeout=60000)
    assert controller.prompt.model == "demo" and len(errors) == 2


def test_a_missing_model_picked_during_a_job_keeps_the_fields_edited_since(qtbot, window, tmp_path):
    """(R54) A "(missing)" model picked during a job, its drive back: the look at its file waits behind the job, and
    once it opened it was selected with its defaults over the steps and width the user had set meanwhile. Now they
    go only to the fields left as they were at the pick, as for a usable model picked during a job."""
    controller, state = window.controller, window.controller.prompt
    mine = tmp_path / "mine.safetensors"
    added_copy(qtbot, controller, mine)
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "mine", timeout=60000)
    assert controller.select_model("demo")
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo", timeout=60000)
    away = tmp_path / "away.safetensors"
    mine.rename(away)  # its drive unplugged
    with qtbot.waitSignal(controller.library_changed, timeout=60000):
        controller._read_library.emit(0)
    assert next(e for e in controller.entries if e.name == "mine").missing
    state.prompt, state.steps = "a red circle", 4
    with engine_held_at(controller, lambda progress: True) as reached:
        controller.generate()
        qtbot.waitUntil(reached.is_set, timeout=60000)
        away.rename(mine)  # plugged in again
        window.model_panel.state.pick("mine")  # "Looking at the file of 'mine' again…", behind the job
        window.prompt_panel.steps_spin.setValue(3)
        state.width = 192
    qtbot.waitUntil(lambda: state.model == "mine", timeout=60000)
    assert (state.steps, state.width) == (3, 192)  # was: the model's 16 and 128


def test_a_model_whose_file_broke_since_the_list_is_refused_at_its_pick_not_kept_as_the_last_used(
        qtbot, window, tmp_path, data_root):  # fmt: skip
    """(R54) The user works with 'demo'; 'mine' (usable when the list was read) is cut short on disk since (a copy
    over it failed). Picked, it failed at once and 'demo' was selected again, with its own defaults over the user's
    fields, and a dialog telling the user to pick 'demo' "to keep working with it (and save its settings rather than
    those of 'mine')": 'mine', never opened, was kept as the model the user worked with, settings.json saved it, and
    every later start said "The model 'mine' you used last time cannot be opened". Now it is refused as a
    "(missing)" model picked is: said, 'demo' stays in use with the user's fields, and nothing is kept."""
    controller, state = window.controller, window.controller.prompt
    said: list[str] = []
    controller.error.connect(lambda error: said.append(error.message))
    mine = tmp_path / "mine.safetensors"
    added_copy(qtbot, controller, mine)
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "mine", timeout=60000)
    assert controller.select_model("demo")
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo", timeout=60000)
    state.steps, state.width = 3, 192  # the user's, on 'demo'
    with open(mine, "r+b") as f:
        f.truncate(1000)
    window.model_panel.state.pick("mine")
    qtbot.waitUntil(lambda: bool(said), timeout=60000)
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "demo", timeout=60000)
    assert said[0].startswith("The model 'mine' cannot be used: ") and said[0].endswith(" 'demo' stays selected.")
    assert (state.model, state.steps, state.width) == ("demo", 3, 192)  # was: demo's own defaults
    window.close()
    last_job = json.loads((data_root / "settings.json").read_text())["last_job"]
    assert (last_job["model"], last_job["steps"], last_job["width"]) == ("demo", 3, 192)  # was: 'mine'
    later: list[str] = []
    again = open_window(qtbot, data_root, before_start=lambda w: w.controller.error.connect(
        lambda e: later.append(e.message)))  # fmt: skip
    assert again.controller.prompt.model == "demo"
    assert not [m for m in later if "you used last time" in m], later


def test_a_describe_that_failed_while_its_file_was_away_for_a_moment(qtbot, window, tmp_path, caplog):
    """A model whose file went away as it was picked and came back moments later (a network or removable drive). The
    pick's describe fell back to 'demo' and said why; a second describe of it, asked before, failed while the file
    was away, read the list again after the file was back, found it usable and let its "model 'mine': ... no such
    file or folder" through as a second, generic dialog: now it is only logged. The selected model's own describe in
    that case gave the same dialog and left the Models panel on "Reading model…": now it is asked once more and the
    panel shows the model; a file away again for that second describe is said, and not asked a third time: 'demo',
    in use before it, is selected again (was: 'mine' stayed selected, and "Reading model…"). A failure on a file
    that was there (being rewritten: cut short, whole again by the next reading) is said at once, not asked again
    (was: asked again, as for any failure on a file that opens after it). The file is moved as the engine reads the
    list: away for a describe's reading, back for the one after."""
    controller, worker, panel = window.controller, window.controller._engine.worker, window.model_panel
    errors = []
    controller.error.connect(errors.append)
    asked: list[tuple[str, int]] = []
    controller._describe.connect(lambda model, number: asked.append((model, number)))
    mine, moved = tmp_path / "mine.safetensors", tmp_path / "moved.safetensors"
    shutil.copy(resources_dir() / "models" / "demo-int4.safetensors", mine)
    with qtbot.waitSignal(controller.add_ended, timeout=60000):
        controller.add_model(mine)
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", None) == "mine", timeout=60000)
    with qtbot.waitSignal(controller.library_changed, timeout=60000):
        controller._read_library.emit(0)  # answered after the describes asked before it: the engine is idle now
    entries, moves = worker._library.entries, []

    def entries_after_a_move() -> list:
        if moves:
            moves.pop(0)()
        return entries()

    worker._library.entries = entries_after_a_move
    away, stays, back = (lambda: mine.rename(moved)), (lambda: None), (lambda: moved.rename(mine))

    # The engine's slots run here, on the test thread, to order the steps.
    moves[:] = [away]
    worker.describe("mine", asked[-1][1])  # the pick's: it finds the file gone, and the app falls back to 'demo'
    assert controller.prompt.model == "demo" and len(errors) == 1 and "'demo' is selected instead" in errors[0].message
    qtbot.waitUntil(lambda: "Model: demo" in panel.details.text(), timeout=60000)
    with qtbot.waitSignal(controller.library_changed, timeout=60000):
        controller._read_library.emit(0)
    caplog.set_level(logging.INFO, logger="app.model_library")
    moves[:] = [stays, back]
    worker.describe("mine", asked[-2][1])  # asked before the fallback's: it fails on the file away for a moment
    assert not moves and mine.exists()
    assert len(errors) == 1  # was: a second dialog, "model 'mine': ... no such file or folder"
    assert "not shown, asked before the selection changed" in caplog.text and "'mine'" in caplog.text
    assert controller.prompt.model == "demo"
    errors.clear()

    def pick_mine_with_its_file(*changes) -> None:
        """'demo' selected, the engine idle, then 'mine' picked (its describe on the engine's thread)."""
        controller.select_model("demo")
        with qtbot.waitSignal(controller.library_changed, timeout=60000):
            controller._read_library.emit(0)
        moves[:] = changes
        asked.clear()
        panel._picked(_item(window, "mine"))

    pick_mine_with_its_file(away, back)
    qtbot.waitUntil(lambda: "Model: mine" in panel.details.text(), timeout=60000)
    # Was: a "no such file" dialog, and "Reading model…" in the panel.
    assert errors == [] and [m for m, _ in asked] == ["mine", "mine"] and not moves

    pick_mine_with_its_file(away, back, away, back)
    qtbot.waitUntil(lambda: bool(errors), timeout=60000)
    assert not moves and [m for m, _ in asked] == ["mine", "mine", "demo"] and "'mine'" in errors[0].message
    # Refused: the model before it is in use again (it stayed selected, and the next jobs failed on it), and the
    # panel says why under 'mine' (it said "Reading model…" for good).
    assert "'demo' is selected instead" in errors[0].message and controller.prompt.model == "demo" and mine.exists()
    assert panel.list.currentItem() is _item(window, "mine") and panel.details.text().startswith("mine: ")
    assert "Press Enter to try it again" in panel.details.text()

    errors.clear()
    whole = mine.read_bytes()
    pick_mine_with_its_file(lambda: mine.write_bytes(whole[:100]), lambda: mine.write_bytes(whole))
    qtbot.waitUntil(lambda: bool(errors), timeout=60000)
    assert not moves and [m for m, _ in asked] == ["mine", "demo"] and "'mine'" in errors[0].message


def test_a_library_file_from_a_newer_version_is_kept_and_the_user_told(qtbot, data_root, tmp_path):
    """library.json in a format this version cannot read (a newer version's, or damaged) was moved aside with a
    log line only: the user's added models vanished from the list without a word."""
    newer = {"version": 2, "models": {"mine": {"path": str(tmp_path / "mine.safetensors"), "pinned": True}}}
    (data_root / "library.json").write_text(json.dumps(newer))
    window = open_window(qtbot, data_root)
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible(), timeout=10000)
    (kept,) = data_root.glob("library.json.damaged-*")
    assert json.loads(kept.read_text()) == newer  # nothing the user had is lost
    text = window.error_dialog.text()
    assert str(data_root / "library.json") in text and kept.name in text and "newer version" in text
    assert [e.name for e in window.controller.entries] == ["demo", "demo-int4"]
    assert window.controller.model_info.name == "demo"  # the app works on


def test_a_model_added_unselected_while_no_model_is_selected_is_only_said_added(qtbot, window, tmp_path):
    """A model added without being selected (a quantize run that finished after its wizard was closed) says the
    model that stays selected; with none selected, the status bar read "...; '' stays selected."."""
    controller = window.controller
    mine = tmp_path / "mine.safetensors"
    shutil.copy(resources_dir() / "models" / "demo-int4.safetensors", mine)
    # No model selected as the add ends (a library in which none opens): emptied by the first listener of the
    # add's end, which the controller tells before it says the add.
    controller.add_ended.connect(lambda _asked, _name: setattr(controller.prompt, "model", ""))
    with qtbot.waitSignal(controller.add_ended, timeout=60000) as ended:
        asked = controller.add_model(mine, select=False)
    assert ended.args == [asked, "mine"] and controller.prompt.model == ""
    assert window.statusBar().currentMessage() == "The model 'mine' was added to the library."


def test_a_model_that_is_nowhere_is_said_without_the_apps_current_folder(qtbot, data_root, tmp_path):
    """A job's model that is neither a library name nor a file (its entry removed, an image's settings reused
    from another machine) said "no model named 'x' … and no file or folder <the app's current folder>/x", a
    folder the windowed app's user never chose; a path given as one was said twice."""
    from app.data_dir import resolve_data_dir
    from app.engine_worker import EngineWorker, Job
    from gpu.generation.request import GenerationRequest

    worker = EngineWorker(resolve_data_dir(data_root))
    failed: list = []
    worker.failed.connect(lambda _job_id, error: failed.append(error))
    gone = tmp_path / "elsewhere" / "gone.safetensors"
    for model in ("no-such-model", str(gone)):
        worker.generate(Job(GenerationRequest(prompt="a red circle", model=model)))
    assert [(e.kind, e.message) for e in failed] == [
        ("user", "no model named 'no-such-model' in the library (demo, demo-int4)"),
        ("user", f"no file or folder {gone} (and no library model of that name)"),
    ]


# The app quit while the engine's removal of 'mine' is inside its library write (a slow or hung drive) and cannot
# stop in time: the process leaves with os._exit as the app does, the removal never written there.
_QUIT_MID_REMOVAL = """
import sys, threading
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
import app.engine_worker as engine_worker
import app.owed_changes as owed_changes
import app.thread_exit as thread_exit
from app.main_window import MainWindow, run_app

thread_exit.STOP_WAIT_MS = 200
owed_changes.LIBRARY_WAIT_S = 0.2
writing = threading.Event()

def remove(library, name):  # on the engine thread, holding the library's write lock
    writing.set()
    threading.Event().wait()

engine_worker.NotedLibrary.remove = remove

def drive():
    windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
    if not windows or not any(e.name == "mine" for e in windows[0].controller.entries):
        QTimer.singleShot(100, drive)
        return
    windows[0].controller.remove_model("mine")
    close_once_writing(windows[0])

def close_once_writing(window):
    if writing.is_set():
        window.close()
    else:
        QTimer.singleShot(50, lambda: close_once_writing(window))

qt = QApplication(["nibble-studio"])
QTimer.singleShot(100, drive)
run_app(["nibble-studio", "--data-dir", sys.argv[1]])
print("returned")  # not reached: the engine thread is still in its removal
"""


def test_a_removal_the_engine_could_not_finish_at_quit_is_made_at_the_next_start(qtbot, data_root, tmp_path):
    """The engine had taken up the removal of 'mine' (the panel said it was being removed) but could not end it
    within the quit's wait: the app left without it (the engine had taken it off the removals owed at quit), and
    'mine' was listed again at the next start. The removal is recorded before it starts and made at the next start;
    the file stays."""
    import os
    import subprocess
    import sys

    from gpu.library import ModelLibrary

    mine = tmp_path / "mine.safetensors"
    shutil.copyfile(resources_dir() / "models" / "demo-int4.safetensors", mine)
    assert ModelLibrary(data_root).add(mine).name == "mine"
    out = subprocess.run([sys.executable, "-c", _QUIT_MID_REMOVAL, str(data_root)], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})  # fmt: skip
    assert out.returncode == 0 and "returned" not in out.stdout, out.stderr[-2000:]
    assert "engine thread is still busy" in out.stderr  # it was inside the removal when the app left

    assert (data_root / "owed-changes.json").is_file()  # recorded before the engine began it

    window = open_window(qtbot, data_root)
    assert "mine" not in [e.name for e in window.controller.entries]
    assert _listed(data_root) == [] and mine.is_file()
    assert not (data_root / "owed-changes.json").exists()  # made once: nothing left for the start after
