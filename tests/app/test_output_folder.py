"""An images folder that cannot take the job's images (a file in the way, a read-only folder or disk): the job
is refused before it runs, in words that name the folder, and the app keeps working once it is fixed."""

from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import Qt

from tests.app.gui import TEST_SIZE, TEST_STEPS


def _refused(qtbot, window) -> str:
    """Clicks Generate and returns the dialog's text once the job has failed; asserts no step ran."""
    controller = window.controller
    steps: list[int] = []
    controller.job.step_changed.connect(steps.append)
    with qtbot.waitSignal(controller.error, timeout=120000) as blocker:
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
    assert blocker.args[0].kind == "user", blocker.args[0]  # was: "internal", "report the message above"
    assert not any(steps), "the job ran its steps before its images were found unsaveable"
    assert controller.job.status == "Failed" and controller.gallery.rowCount() == 0
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    text = f"{window.error_dialog.text()}\n{window.error_dialog.informativeText()}"
    window.error_dialog.accept()
    return text


def test_a_file_in_the_way_of_the_days_folder_refuses_the_job_and_names_it(qtbot, window):
    controller = window.controller
    controller.prompt.prompt = "a yellow star"
    day = controller.data.images / time.strftime("%Y-%m-%d")
    if day.is_dir():
        day.rmdir()
    day.write_text("someone's notes, not ours")
    text = _refused(qtbot, window)
    # was: "Something went wrong: FileExistsError: [Errno 17] File exists: '…'", after the whole job had run
    assert f"Images cannot be saved in {day}: {day} is a file, not a folder." in text
    assert "Move that file out of the way" in text and "--data-dir" in text
    assert day.read_text() == "someone's notes, not ours"

    day.unlink()  # moved away: the next job works
    with qtbot.waitSignal(controller.job_finished, timeout=120000):
        controller.generate()
    assert controller.gallery.rowCount() == 1 and controller.gallery.path_of(controller.gallery.record(0)).is_file()


def test_a_read_only_images_folder_refuses_the_job_and_names_it(qtbot, window, monkeypatch):
    controller = window.controller
    controller.prompt.prompt = "a yellow star"
    images = controller.data.images.resolve()
    mkstemp = tempfile.mkstemp

    def read_only_disk(*args, **kwargs):  # a read-only disk (tests run as root, for whom chmod changes nothing)
        folder = kwargs.get("dir")
        if folder is not None and Path(folder).resolve().is_relative_to(images):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder))
        return mkstemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", read_only_disk)
    text = _refused(qtbot, window)
    assert f"Images cannot be saved in {controller.data.images / time.strftime('%Y-%m-%d')}" in text
    assert os.strerror(errno.EROFS) in text and "not read-only" in text


def test_an_image_that_cannot_be_written_mid_batch_is_said_in_the_apps_words(qtbot, window, monkeypatch):
    """The folder took the job at its start, then the second image's write failed (the disk went read-only): the
    dialog names that image, says it was not saved, and gives the app's remedy, as the check at a job's start
    does; the first image is kept and the queued job runs."""
    from gpu.generation import png_metadata

    controller = window.controller
    state = controller.prompt
    state.prompt, state.width, state.height, state.steps = "a yellow star", TEST_SIZE, TEST_SIZE, TEST_STEPS
    state.seed, state.seed_locked, state.batch_count = 5, True, 3
    encode_png, writes = png_metadata.encode_png, []

    def read_only_at_the_second(*args, **kwargs):
        writes.append(args[0])
        if len(writes) == 2:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))
        return encode_png(*args, **kwargs)

    monkeypatch.setattr(png_metadata, "encode_png", read_only_at_the_second)
    shown: list = []
    controller.error.connect(shown.append)
    finished: list[list] = []
    controller.job_finished.connect(finished.append)
    controller.generate()
    state.batch_count = 1
    controller.generate()  # queued behind the batch
    qtbot.waitUntil(lambda: len(finished) == 1 and not controller.job.busy, timeout=120000)
    assert [e.kind for e in shown] == ["user"], shown
    day = controller.data.images / time.strftime("%Y-%m-%d")
    # was: "cannot write …-6-1.png: Read-only file system", "choose a folder you can write to" (the command line's
    # words: the app offers no folder to choose)
    assert re.fullmatch(rf"The image \d{{6}}-6-1\.png cannot be saved in {re.escape(str(day))}: "
                        rf"{os.strerror(errno.EROFS)}\. The picture just generated was not saved\.", shown[0].message)
    assert "not read-only" in shown[0].hint and "--data-dir" in shown[0].hint
    assert "choose a folder" not in shown[0].hint.lower()
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    window.error_dialog.accept()
    assert len(finished[0]) == 1  # the queued job went on
    assert controller.gallery.rowCount() == 2  # the batch's first image, kept, and the queued job's
    assert len(list(day.glob("*.png"))) == 2 and not list(day.glob("*-6-1*.png"))
