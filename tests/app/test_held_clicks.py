"""A Generate click held while the LoRA copy check reads the files (``app.held_clicks``), as a user meets it beside
the jobs that run, the reads that fail and the keys that cancel: what the status line says, and that the click
ends, queued or refused with a message, never left waiting."""

from __future__ import annotations

import builtins
import errno
import os
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from PySide6.QtCore import Qt

from app.held_clicks import CHECKING
from tests.app.gui import engine_held_at, loras_added
from tests.app.test_lora_twins import SHIPPED, _click_generate, _copies_being_read

PROMPT = "a red circle on a blue background"
TWO_HELD = "Checking LoRA files… the 2 jobs are queued once they are read"


def _dialog(window) -> str | None:
    """What the error dialog shows (its text and hint), None while none is shown."""
    dialog = window.error_dialog
    return None if dialog is None or not dialog.isVisible() else f"{dialog.text()} {dialog.informativeText()}"


@contextmanager
def _a_job_running(qtbot, window):
    """A job of ``PROMPT`` (no LoRA) held at its first step while the block runs, its step on the status line."""
    controller = window.controller
    window.prompt_panel.prompt_edit.setPlainText(PROMPT)
    with engine_held_at(controller, lambda _progress: True) as reached:
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(reached.is_set, timeout=60000)
        qtbot.waitUntil(lambda: controller.job.status.startswith("step"), timeout=60000)
        yield


def test_the_status_line_says_a_held_click_once_the_running_job_ends_and_never_goes_back_to_its_step(
        qtbot, window, tmp_path, monkeypatch):  # fmt: skip
    """Generate clicked while a job runs, as the copy check reads two copies of a LoRA just added: the click is held,
    said in passing (the line is the job's). The job ended: the line said "Done: 1 image" while the click still
    waited (Cancel usable, nothing said of it); a click then said "Checking LoRA files…", and when the read ended
    and the pair was refused, the line went back to the ended job's "step 1/2, ETA 0:00", as if it still ran. Now
    the line says the click waits once the job ended, and then the line it replaced."""
    controller = window.controller
    with _a_job_running(qtbot, window):
        held, _a, _b = _copies_being_read(qtbot, window, tmp_path, monkeypatch)
        _click_generate(qtbot, window, held)
        assert controller.job.status.startswith("step")  # the running job's line; the click said in passing
        finished = qtbot.waitSignal(controller.job_finished, timeout=60000)
    try:
        with finished:
            pass
        assert controller.job.status == CHECKING, controller.job.status  # was: "Done: 1 image", the click unsaid
        _click_generate(qtbot, window, held)  # clicked again, idle: the line as it was, the clicks counted
        assert controller.job.status == TWO_HELD
    finally:
        held.release.set()
    qtbot.waitUntil(lambda: _dialog(window) is not None, timeout=60000)
    assert "are the same LoRA (identical files)" in _dialog(window)
    window.error_dialog.accept()
    assert controller.job.status == "Done: 1 image", controller.job.status  # was: "step 1/2, ETA 0:00"
    assert not window.prompt_panel.cancel_button.isEnabled()


def _unreadable(monkeypatch, path: Path) -> None:
    """``path`` cannot be opened from now on, by any thread (the engine's too), as a file whose access was taken
    away, or that another program holds (a sharing violation on Windows): at the OS boundary, ``open``."""
    real = builtins.open

    def refused(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and Path(file) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", refused)


def test_a_lora_file_that_cannot_be_read_while_the_click_waits_is_refused_at_once_naming_it(
        qtbot, window, tmp_path, monkeypatch):  # fmt: skip
    """The click waits for the copy check's read; meanwhile one copy can no longer be read (its access taken away,
    or another program holds it). The read ended without knowing whether they are the same LoRA, and the job was
    queued all the same: its model loaded (a minute for FLUX.1), and the engine then refused it, naming only
    "style.safetensors" (both copies are named so), the status line "Failed". Now the click is refused as the read
    ends, naming the file by its path and why, no job queued; a click after tries the file again."""
    held, _a, b = _copies_being_read(qtbot, window, tmp_path, monkeypatch)

    def click_then_unreadable() -> None:
        _click_generate(qtbot, window, held)
        _unreadable(monkeypatch, b)
        held.release.set()

    errors = _refused_as_unreadable(qtbot, window.controller, b, click_then_unreadable)
    assert errors[0].hint == ("Check that you may read it and that no other program holds it, then click Generate "
                              "again; or switch it off in the LoRA panel.")  # fmt: skip


def _refused_as_unreadable(qtbot, controller, path: Path, act: Callable[[], None]) -> list:
    """``act`` (a Generate click, ``path`` made unreadable) refused once, saying ``path`` cannot be read, no job
    started (was: the job queued, its model loaded, refused by the engine); the errors said."""
    errors: list = []
    controller.error.connect(errors.append)
    started: list = []
    controller.job.busy_changed.connect(started.append)
    act()
    qtbot.waitUntil(lambda: bool(errors), timeout=120000)
    qtbot.wait(200)  # a job the click would queue
    assert started == [] and controller.queue.idle
    assert [(e.kind, e.message) for e in errors] == [
        ("user", f"The LoRA file {path} cannot be read (Permission denied). It is switched on, so no image was "
                 "made.")]  # fmt: skip (was: "…, so whether it is the same LoRA as another one switched on is not
    # known", of a lone LoRA too, which has no other one to be)
    assert not controller.job.status.startswith(("Checking", "Failed"))
    return errors


def test_a_lone_lora_whose_file_cannot_be_read_is_refused_at_the_click_naming_it(qtbot, window, tmp_path,
                                                                                 monkeypatch):  # fmt: skip
    """A LoRA switched on with no copy beside it is never read by the copy check: its file made unreadable after it
    was added (its access taken away, or another program holds it), Generate queued the job, its model loaded (a
    minute for FLUX.1), and the engine refused it then. Now the click opens it on the copy check's thread (never on
    the window's) and is refused there, as the copy check refuses a file it cannot read; no job is queued."""
    controller = window.controller
    lone = tmp_path / "style.safetensors"
    shutil.copy(SHIPPED, lone)
    loras_added(qtbot, controller, [lone])
    (row,) = [e for e in controller.loras.entries if e.enabled]
    assert row.path == lone and not row.problem and not controller.loras.twins.busy, row
    window.prompt_panel.prompt_edit.setPlainText(PROMPT)

    def unreadable_then_click() -> None:
        _unreadable(monkeypatch, lone)
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)

    _refused_as_unreadable(qtbot, controller, lone, unreadable_then_click)
    monkeypatch.undo()  # readable again: a click after opens it again, and the job goes
    with qtbot.waitSignal(controller.job_finished, timeout=120000):
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)


def test_two_clicks_held_say_that_two_jobs_are_queued_and_both_are(qtbot, window, tmp_path, monkeypatch):
    """Generate clicked twice as the LoRA files are read: the status line said "the job is queued once they are
    read", as if the second click were lost. Now it says the 2 jobs are, and both are queued once they are read."""
    controller = window.controller
    held, _a, _b = _copies_being_read(qtbot, window, tmp_path, monkeypatch)
    window.lora_panel.row_for("style — a").enabled.setChecked(False)  # the jobs may go once they are read
    finished: list = []
    controller.job_finished.connect(finished.append)
    try:
        _click_generate(qtbot, window, held)
        assert controller.job.status == CHECKING
        _click_generate(qtbot, window, held)
        assert controller.job.status == TWO_HELD, controller.job.status  # was: "… the job is queued …"
    finally:
        held.release.set()
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=120000)
    assert controller.queue.idle and not controller.job.checking


def test_an_error_the_copy_check_did_not_expect_ends_the_click_and_is_not_read_on_and_on(
        qtbot, window, tmp_path, monkeypatch):  # fmt: skip
    """An error the copy check's thread did not expect as it read a file (a MemoryError, on Windows with its page
    file full as a FLUX.1 model loads; a bug): the thread ended, its end looked again, found the file unread and
    started a thread again, which failed again: hundreds of reads and logged tracebacks a second, for good, the
    click waiting on "Checking LoRA files…" until the app was closed. Now the files it did not read are taken as
    not read, and the click is refused as the read ends, saying so."""
    controller = window.controller
    held, _a, b = _copies_being_read(qtbot, window, tmp_path, monkeypatch)
    import app.lora_twins

    tries: list[str] = []

    def failing(path):
        result = held(path)  # the first copy's read held, as before
        if Path(path) == b:
            tries.append(path)
            raise MemoryError
        return result

    monkeypatch.setattr(app.lora_twins, "read_contents", failing)
    errors: list = []
    controller.error.connect(errors.append)
    _click_generate(qtbot, window, held)
    held.release.set()
    qtbot.waitUntil(lambda: bool(errors), timeout=10000)  # was: never, the read started again and again
    qtbot.wait(500)
    assert len(tries) == 1 and not controller.loras.twins.busy and controller.queue.idle
    assert [e.message for e in errors] == [
        f"The LoRA file {b} cannot be read (the copy check failed on it: an error Nibble Studio did not expect, "
        "MemoryError; the log file has the details). It is switched on, so no image was made."]  # fmt: skip
    assert controller.job.status != CHECKING


def test_esc_while_a_job_runs_says_the_held_click_goes_on_and_shift_esc_drops_it(qtbot, window, tmp_path,
                                                                                 monkeypatch):  # fmt: skip
    """Esc stops the running job and lets the queued ones go on, and its line says so ("Cancelling…; 1 queued job
    goes on (Shift+Esc cancels it too)"). A Generate held for the LoRA files goes on too, queued once they are read,
    but Esc said only "Cancelling…": the job that started afterwards came unannounced. Now Esc says it goes on, in
    passing (the line is the running job's), and Shift+Esc drops it."""
    controller = window.controller
    told: list[str] = []
    controller.status_message.connect(told.append)
    with _a_job_running(qtbot, window):
        held, _a, _b = _copies_being_read(qtbot, window, tmp_path, monkeypatch)
        window.lora_panel.row_for("style — a").enabled.setChecked(False)  # the job may go once they are read
        _click_generate(qtbot, window, held)
        told.clear()
        window.cancel_action.trigger()  # Esc
        assert controller.job.status == "Cancelling…"
        assert told == ["The Generate waiting for the LoRA files goes on: its job is queued once they are read "
                        "(Shift+Esc cancels it too)"], told  # was: nothing said of it
        told.clear()
        window.cancel_all_action.trigger()  # Shift+Esc
        assert told == ["Cancelled before the LoRA files were read: no job was queued"]
    held.release.set()
    qtbot.waitUntil(lambda: controller.queue.idle, timeout=60000)
    qtbot.wait(300)
    assert controller.queue.idle and not controller.job.checking


def test_esc_with_two_clicks_held_says_that_both_go_on(qtbot, window, tmp_path, monkeypatch):
    """Two Generate clicks held for the LoRA files as a job runs, then Esc: it said "The Generate waiting for the
    LoRA files goes on: its job is queued…", as if one click were held (the status line counts them). Now it says
    the 2 go on, and both jobs are queued once the files are read."""
    controller = window.controller
    told: list[str] = []
    controller.status_message.connect(told.append)
    finished: list = []
    controller.job_finished.connect(finished.append)
    with _a_job_running(qtbot, window):
        held, _a, _b = _copies_being_read(qtbot, window, tmp_path, monkeypatch)
        window.lora_panel.row_for("style — a").enabled.setChecked(False)  # the jobs may go once they are read
        _click_generate(qtbot, window, held)
        _click_generate(qtbot, window, held)
        told.clear()
        window.cancel_action.trigger()  # Esc
        assert told == ["The 2 Generate clicks waiting for the LoRA files go on: their jobs are queued once they are "
                        "read (Shift+Esc cancels them too)"], told  # was: "The Generate … goes on: its job is …"
    held.release.set()
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=120000)  # the two held; the running one was cancelled
    assert controller.queue.idle and not controller.job.checking


def test_closing_while_a_click_waits_for_the_lora_files_asks_as_for_a_queued_job(qtbot, window, tmp_path,
                                                                               monkeypatch, caplog):  # fmt: skip
    """The window closed as a Generate waits for the LoRA files (on a network drive, a while): it closed without a
    word, and the job the status line said would be queued was gone, no trace in the log, where a job queued asks
    "Quit and cancel it?". Now it is asked about as one (No: the click still waits, and its job comes), and the log
    says what the quit cancelled."""
    import logging

    from PySide6.QtWidgets import QMessageBox

    from tests.app.gui import answer_stop

    controller = window.controller
    held, _a, _b = _copies_being_read(qtbot, window, tmp_path, monkeypatch)
    _click_generate(qtbot, window, held)
    seen: list[str] = []
    try:
        answer_stop(monkeypatch, QMessageBox.StandardButton.No, seen)
        window.close()
        assert seen == ["1 job (1 image) is running or queued. Quit and cancel it? The images already made are kept, "
                        "and the prompts stay in the prompt history."]  # fmt: skip (was: closed, nothing asked)
        assert window.isVisible() and controller.job.status == CHECKING
        answer_stop(monkeypatch, QMessageBox.StandardButton.Yes, seen)
        with caplog.at_level(logging.INFO, logger="app.main_window"):
            window.close()
    finally:
        held.release.set()
    assert not window.isVisible()
    (dropped,) = [r.getMessage() for r in caplog.records if "cancelled by the quit" in r.getMessage()]
    assert dropped.startswith("1 job (1 image) cancelled by the quit: a Generate waiting for its LoRA files, 1 image")
    assert f"'{PROMPT}'" in dropped
    assert controller.history.record(0).prompt == PROMPT  # its prompt in the history, as a queued job's is


def test_several_lora_files_that_cannot_be_read_are_named_once_each_with_why():
    """Several rows a click could not read are said in one message, each file with why; nothing of copies, which
    lone rows have none of (was: "whether they are the same LoRA as others is not known")."""
    from app.lora_entry import LoraEntry
    from app.lora_twins import unread_loras_error

    a, b = LoraEntry(Path("/loras/a.safetensors"), "a"), LoraEntry(Path("/loras/b.safetensors"), "b")
    error = unread_loras_error([(a, "Permission denied"), (b, "Input/output error")])
    assert error.message == (f"2 LoRA files switched on cannot be read, so no image was made: {a.path} (Permission "
                             f"denied); {b.path} (Input/output error).")  # fmt: skip
    assert error.hint == ("Check that you may read them and that no other program holds them, then click Generate "
                          "again; or switch them off in the LoRA panel.")  # fmt: skip


def test_a_held_click_refused_leaves_the_seed_as_a_click_refused_at_once_leaves_it(qtbot, window, tmp_path,
                                                                                  monkeypatch):  # fmt: skip
    """A click refused at once (two copies of a LoRA switched on) leaves the seed field as it was; one held for the
    LoRA files and refused as they are read moved it to a new random seed, as if its job had been queued."""
    controller = window.controller
    held, _a, _b = _copies_being_read(qtbot, window, tmp_path, monkeypatch)
    assert not controller.prompt.seed_locked
    before = controller.prompt.seed
    errors: list = []
    controller.error.connect(errors.append)
    _click_generate(qtbot, window, held)
    held.release.set()
    qtbot.waitUntil(lambda: bool(errors), timeout=60000)
    assert "are the same LoRA" in errors[0].message and controller.queue.idle
    assert controller.prompt.seed == before  # was: a new random seed
    _click_generate(qtbot, window, held)  # refused at once now: the seed as it was, as before
    assert len(errors) == 2 and controller.prompt.seed == before


def _removal_pending(qtbot, window, tmp_path) -> tuple[str, list]:
    """An added model (``x``), the demo model selected; returns the added model's name and the errors said from
    then."""
    from tests.app.gui import added_copy

    controller = window.controller
    x = added_copy(qtbot, controller, tmp_path / "models" / "x.safetensors")
    assert controller.select_model("demo")
    errors: list = []
    controller.error.connect(errors.append)
    return x, errors


def _copies_read_one_on(qtbot, window, tmp_path, monkeypatch):
    """Copies of a LoRA being read (``_copies_being_read``), one switched off: a job may go once they are read."""
    held, _a, _b = _copies_being_read(qtbot, window, tmp_path, monkeypatch)
    window.lora_panel.row_for("style — a").enabled.setChecked(False)
    return held


def test_held_clicks_after_one_refused_for_its_models_removal_are_still_queued(qtbot, window, tmp_path, monkeypatch):
    """Two clicks held for the LoRA files, the first on a model removed meanwhile (its removal waits for the running
    job): the first was refused, said, and the second dropped without a word, its job never queued. Now each held
    click is handled: the first refused, said, the second queued."""
    controller = window.controller
    x, errors = _removal_pending(qtbot, window, tmp_path)
    finished: list = []
    controller.job_finished.connect(finished.append)
    with _a_job_running(qtbot, window):
        held = _copies_read_one_on(qtbot, window, tmp_path, monkeypatch)
        assert controller.select_model(x)
        _click_generate(qtbot, window, held)
        assert controller.select_model("demo")
        _click_generate(qtbot, window, held)
        controller.remove_model(x)  # pending: the engine runs the job
        held.release.set()
        qtbot.waitUntil(lambda: bool(errors), timeout=60000)
        assert [e.message for e in errors] == [f"The model '{x}' is being removed from the library: a job queued on "
                                               "it now would run after the removal and fail."]  # fmt: skip
        qtbot.wait(200)
        # the running job and the second click's (was: the running one alone, the second click dropped)
        assert [job.request.model for job in controller.queue.unfinished] == ["demo", "demo"]
        assert len(errors) == 1 and not controller.job.checking
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=120000)


def test_several_held_clicks_refused_for_their_models_removal_are_said_once_with_a_count(qtbot, window, tmp_path,
                                                                                       monkeypatch):  # fmt: skip
    """Two clicks held on a model removed meanwhile are both refused, said once, counted."""
    controller = window.controller
    x, errors = _removal_pending(qtbot, window, tmp_path)
    with _a_job_running(qtbot, window):
        held = _copies_read_one_on(qtbot, window, tmp_path, monkeypatch)
        assert controller.select_model(x)
        _click_generate(qtbot, window, held)
        _click_generate(qtbot, window, held)
        controller.remove_model(x)
        held.release.set()
        qtbot.waitUntil(lambda: bool(errors), timeout=60000)
        qtbot.wait(200)
        assert [e.message for e in errors] == [
            f"No job was queued for 2 Generate clicks that waited for the LoRA files: the model '{x}' is being removed "
            "from the library: a job queued on it now would run after the removal and fail."]  # fmt: skip
        assert errors[0].hint == "Pick another model in the Models list, then generate again."
        assert not controller.job.checking


def test_a_held_click_is_judged_against_its_own_model_not_the_one_selected_since(qtbot, window, tmp_path,
                                                                                monkeypatch):  # fmt: skip
    """A click on one model held for the LoRA files; meanwhile the user selects another model and sets a LoRA's
    strength so that it no longer fits. The release judged the LoRAs against the model selected then, not the
    click's: the click, made on the model 'x', was refused as "does not fit the model 'demo'", a model it would
    never run on (and one not described yet judged nothing: the job queued, to fail once 'x' had loaded). It is now
    judged against its own model, and named so."""
    from tests.app.gui import added_copy
    from tests.app.test_lora_fit_judged_once import _demo_lora

    controller, loras = window.controller, window.controller.loras
    x = added_copy(qtbot, controller, tmp_path / "models" / "x.safetensors")
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", "") == x, timeout=60000)  # described
    clip = _demo_lora(tmp_path / "clip.safetensors", 4, clip=True)  # its CLIP part 768 wide: these CLIPs are 128
    loras_added(qtbot, controller, [clip])
    (clip_row,) = [e for e in loras.entries if e.path == clip]
    loras.set_text_strength(clip_row, 0.0)  # its CLIP part left out: it fits
    assert clip_row.enabled and clip_row.misfit == ""
    errors: list = []
    controller.error.connect(errors.append)
    held = _copies_read_one_on(qtbot, window, tmp_path, monkeypatch)
    _click_generate(qtbot, window, held)  # on x
    assert controller.select_model("demo")
    qtbot.waitUntil(lambda: getattr(controller.model_info, "name", "") == "demo", timeout=60000)
    loras.set_text_strength(clip_row, None)  # its CLIP part at its strength: it fits neither model now
    assert clip_row.misfit.startswith("does not fit the model 'demo'")
    held.release.set()
    qtbot.waitUntil(lambda: bool(errors), timeout=60000)
    qtbot.wait(200)
    assert [e.message.split(":")[0] for e in errors] == [f"The LoRA file {clip} does not fit the model '{x}'"]
    assert controller.queue.idle and not controller.job.checking
