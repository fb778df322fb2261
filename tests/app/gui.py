"""Helpers the GUI tests import (a module of its own name: ``conftest`` is ambiguous when tests/app and
tests/gpu run in one pytest command, and the later conftest wins that name)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEST_STEPS = 2
TEST_SIZE = 128

open_windows: list = []  # strong references: pytest-qt keeps only weak ones, and a window collected
# before teardown would never run closeEvent (engine thread left running)


def window_without_engine(qtbot, data):
    """The window on the DataDir ``data``, shown as ``run_app`` shows it, the engine not started (``start`` not
    called: tests of the gallery and its files need none)."""
    from app.main_window import MainWindow

    window = MainWindow(data)
    # What a test left running is cancelled before pytest-qt closes the window: the close would ask first.
    qtbot.addWidget(window, before_close_func=lambda shown: shown.controller.cancel_all())
    open_windows.append(window)
    window.show()
    return window


def open_window(qtbot, root: Path, before_start: Callable[[Any], None] | None = None):
    """The window on the data folder ``root``, its engine ready and its model described, at the tests' size and
    steps; ``before_start`` is given the window before its engine starts (an image restored while it starts)."""
    from app.data_dir import resolve_data_dir

    window = window_without_engine(qtbot, resolve_data_dir(root))
    if before_start is not None:
        before_start(window)
    with qtbot.waitSignal(window.controller.engine_ready, timeout=60000):
        window.start()
    # the model's info (and so the model panel) arrives right after the engine is ready
    qtbot.waitUntil(lambda: window.controller.model_info is not None, timeout=60000)
    # the images found in the folder are imported after the window shows: what a test checks is there by now
    qtbot.waitUntil(lambda: not window.controller.folder_import.running, timeout=60000)
    state = window.controller.prompt
    state.steps, state.width, state.height, state.batch_count = TEST_STEPS, TEST_SIZE, TEST_SIZE, 1
    return window


# Bumped at each GUI test's end (``stop_dialog_pollers``): a poller whose dialog never showed (a failing test) stops
# there, where it used to poll on and accept the next test's dialog, which then failed for no fault of its own.
_poller_generation = [0]


def stop_dialog_pollers() -> None:
    """Ends every ``accept_dialog_later`` still waiting (called when a GUI test ends)."""
    _poller_generation[0] += 1


def accept_dialog_later(seen: list[str]) -> None:
    """Accepts the next message box once it shows (a modal one blocks the caller), noting its text; gives up when
    the test ends (``stop_dialog_pollers``)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    generation = _poller_generation[0]

    def check() -> None:
        if generation != _poller_generation[0]:
            return
        box = next((w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()), None)
        if box is None:
            QTimer.singleShot(50, check)
            return
        seen.append(f"{box.windowTitle()}\n{box.text()}\n{box.informativeText()}")
        box.accept()

    QTimer.singleShot(50, check)


def drop_file(widget, path: Path) -> None:
    """Drops the file ``path`` on ``widget`` (as from a file manager)."""
    from PySide6.QtCore import QUrl

    drop_urls(widget, [QUrl.fromLocalFile(str(path))])


def drop_urls(widget, urls: list) -> None:
    """Drops ``urls`` (QUrls: local files, web addresses) at once on ``widget``, as a file manager drops a selection;
    on the prompt panel, its read of the files (on a thread) waited for (``dropped_read_waited``)."""
    from PySide6.QtCore import QMimeData, QPointF, Qt
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()  # held here: the event does not own it
    mime.setUrls(urls)
    widget.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                                Qt.KeyboardModifier.NoModifier))
    controller = getattr(widget, "controller", None)  # the prompt panel's: its files are read on a thread
    if controller is not None and hasattr(controller, "dropped"):
        dropped_read_waited(controller)


def dropped_read_waited(controller) -> Any:
    """Waits (30 s at most, generous for CI) for the read of the files dropped last (``DroppedRead``) to end, the form
    filled -> what was read from the file restored (None: none was, or nothing was being read)."""
    from PySide6.QtCore import QEventLoop, QTimer

    dropped, got = controller.dropped, []
    if not dropped.reading:
        return None
    loop = QEventLoop()

    def ended(found) -> None:
        got.append(found)
        loop.quit()

    dropped.read.connect(ended)
    QTimer.singleShot(30_000, loop.quit)
    loop.exec()
    dropped.read.disconnect(ended)
    assert got, "the dropped files were not read within 30 s"
    return got[0]


def restored_from(controller, paths: list[Path], web_addresses: list[str] | None = None) -> Any:
    """``AppController.restore_from_files``, its read on a thread waited for (``dropped_read_waited``) -> what was
    read from the file restored (None: none was)."""
    controller.restore_from_files(paths, web_addresses)
    return dropped_read_waited(controller)


def wheel(widget, notches: int) -> None:
    """The mouse wheel over the middle of ``widget``, turned ``notches`` down (up when negative): through its
    window, as the system sends it (to the widget under the pointer, on to its parents while they do not take it)."""
    from PySide6.QtCore import QPoint, QPointF
    from PySide6.QtTest import QTest

    top = widget.window()
    QTest.wheelEvent(top.windowHandle(), QPointF(widget.mapTo(top, widget.rect().center())),
                     QPoint(0, -120 * notches))  # fmt: skip


def trash_listing(qtbot, gallery):
    """What Empty trash finds in the trash (``TrashListing``), listed on its thread as "Empty trash…" lists it."""
    listed: list = []
    gallery.list_trash_to_empty(listed.append)
    qtbot.waitUntil(lambda: bool(listed), timeout=30000)
    return listed[0]


def trash_settled(qtbot, gallery) -> None:
    """Waits until the gallery's listing of the trash (after a delete, an undo, Empty trash) has ended."""
    qtbot.waitUntil(lambda: not gallery.listing_trash, timeout=30000)


def gallery_images(data, prompts: list[str]) -> None:
    """Images in the data folder ``data`` (a ``DataDir``), one per prompt (d/0.png, d/1.png, ...), each in the
    database, the later the newer."""
    from PIL import Image

    from app.store import Store
    from gpu.generation.png_metadata import write_png

    store = Store(data.database)
    for i, prompt in enumerate(prompts):
        write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (16, 16), (i, 0, 0)), {"prompt": prompt})
        store.add_image(f"d/{i}.png", {"prompt": prompt}, created=float(i))
    store.close()


def shown_by_file_dialogs(name: str, patterns: list[str]) -> bool:
    """Whether every dialog offering ``patterns`` lists ``name``: GTK's (and the portal's) match a pattern as
    written, Qt's own dialog through its wildcards."""
    import fnmatch

    from PySide6.QtCore import QRegularExpression

    as_written = any(fnmatch.fnmatchcase(name, p) for p in patterns)
    wildcards = [QRegularExpression(QRegularExpression.wildcardToRegularExpression(p)) for p in patterns]
    return as_written and any(w.match(name).hasMatch() for w in wildcards)


def held(real, until, on_qt_thread: list[str] | None = None):
    """``real``, held on a thread of its own until the ``threading.Event`` ``until`` is set; a call on the Qt
    thread (where it froze the window) is not held, and noted in ``on_qt_thread``."""
    import threading

    def call(*args, **kwargs):
        if threading.current_thread() is threading.main_thread():
            if on_qt_thread is not None:
                on_qt_thread.append(real.__name__)
        else:
            until.wait(60)
        return real(*args, **kwargs)

    return call


def saved_as(qtbot, controller, record, target: Path) -> Path | None:
    """Save as of the gallery image ``record`` at ``target`` (``AppController.save_image_as``, on a thread),
    waited for: the file written, or None where it was refused (said)."""
    with qtbot.waitSignal(controller.image_save.ended, timeout=30000) as ended:
        controller.save_image_as(record, target)
    return ended.args[0].written


def stat_held_under(monkeypatch, folder: Path):
    """The stat of everything under ``folder`` held till the returned ``threading.Event`` is set (``held``), as on a
    drive that sleeps or a share that hangs there -> (that event, the calls made on the window's thread: each a
    freeze of the window there)."""
    import os
    import threading

    release, on_gui = threading.Event(), []
    stat = os.stat
    held_stat = held(stat, release, on_gui)
    top = os.fspath(folder) + os.sep

    def hung_stat(path, *args, **kwargs):
        under = not isinstance(path, int) and os.fspath(path).startswith(top)
        return (held_stat if under else stat)(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", hung_stat)
    return release, on_gui


def hung_share(monkeypatch, share: Path, until, on_qt_thread: list[str]) -> None:
    """``Path.resolve`` of a path in the folder ``share`` held, on a thread of its own, until the ``threading.Event``
    ``until`` is set, as on a hung network share (its parent folder's lookup, ``named_path``, waits for it); a call
    on the Qt thread (where it froze the window) is not held, and noted in ``on_qt_thread``."""
    resolve = Path.resolve
    slowed = held(resolve, until, on_qt_thread)

    def resolving(path: Path, strict: bool = False) -> Path:
        inside = path == share or share in path.parents
        return slowed(path, strict) if inside else resolve(path, strict)

    monkeypatch.setattr(Path, "resolve", resolving)


def answer_stop(monkeypatch, answer, seen: list[str]) -> None:
    """Answers every question box ("Stop quantizing?", "Quit Nibble Studio?", Empty trash's) with ``answer`` (a
    ``QMessageBox.StandardButton``: the real box, its button clicked), noting its text."""
    from PySide6.QtWidgets import QMessageBox

    def exec_(box: QMessageBox) -> int:
        seen.append(box.text())
        box.button(answer).click()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", exec_)


def hold_run_at(wizard, kind: str, message: str):
    """Holds the wizard's run at its first event of ``kind`` whose message starts with ``message`` (on the worker
    thread: the run stays where it is while the test acts) -> (reached there, release it): two
    ``threading.Event``."""
    import threading

    from PySide6.QtCore import Qt

    reached, release = threading.Event(), threading.Event()

    def hold(event) -> None:
        if event.kind == kind and event.message.startswith(message) and not reached.is_set():
            reached.set()
            release.wait(60)

    wizard._thread.worker.progress.connect(hold, Qt.ConnectionType.DirectConnection)
    return reached, release


def small_run(wizard, alpha_points: int = 3) -> None:
    """To the calibration page with the settings of a run of seconds on the demo model."""
    wizard.compare_steps = 2
    wizard.next()
    wizard.method_page.rank.setValue(8)
    wizard.method_page.alpha_points.setValue(alpha_points)
    wizard.next()
    wizard.calibration_page.count.setValue(2)
    wizard.calibration_page.steps.setValue(2)


def demo_run_to_resume(wizard) -> Path:
    """Takes the Quantize ``wizard`` to its calibration page with the demo model and its default settings, and
    makes the parts folder of an unfinished run of those settings (which a run resumes); returns that run's output,
    the name a run of them takes."""
    import json

    from app.quantize_outputs import resume_key
    from gpu.paths import resources_dir

    demo = resources_dir() / "models" / "demo"
    wizard.source_page.use_path(str(demo))
    wizard.next()
    wizard.next()
    out = wizard.models_folder() / "demo-svdquant-int4-r32.safetensors"  # the default settings' name
    key = resume_key(str(demo), wizard.config())
    assert key is not None
    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    (parts / "manifest.json").write_text(json.dumps({"key": key.key, "settings": key.settings, "done": {}}))
    return out


def loras_added(qtbot, controller, paths: list[Path]) -> None:
    """``paths`` added as "Add LoRA…" adds them, once their headers are read (on a thread: ``LoraAdds``)."""
    controller.add_loras(paths)
    qtbot.waitUntil(lambda: not controller.loras.adds.busy, timeout=30000)


def loras_restored(qtbot, loras) -> None:
    """Waits until the LoRA files of an image restored (dropped, "Reuse settings") are read, on a thread of their
    own, and its rows switched on (``LoraHashSearch.restoring``; the hash search, where one runs, goes on): ``loras``
    is the ``LoraState``."""
    qtbot.waitUntil(lambda: not loras.hash_search.restoring, timeout=30000)


def used_restored(qtbot, loras, used, settled=None) -> list[str]:
    """``LoraHashSearch.restore_used`` of ``used`` (an image's ``lora_list``) on the ``LoraState`` ``loras``, once
    its files are read (``loras_restored``): what it told was not restored as saved."""
    told: list[str] = []
    loras.hash_search.restore_used(used, told.extend, settled)
    loras_restored(qtbot, loras)
    return told


def refs_restored(qtbot, loras, refs, settled) -> list[str]:
    """``used_restored`` of another program's image (``lora_refs``: ``LoraHashSearch.restore_refs``)."""
    told: list[str] = []
    loras.hash_search.restore_refs(refs, told.extend, settled)
    loras_restored(qtbot, loras)
    return told


def added_copy(qtbot, controller, path: Path, select: bool = True) -> str:
    """The shipped demo INT4 model copied to ``path`` and added to the library (selected, as a model the user adds,
    unless ``select`` is False: as a quantize run's add); returns the name the library gave it."""
    import shutil

    from gpu.paths import resources_dir

    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(resources_dir() / "models" / "demo-int4.safetensors", path)
    with qtbot.waitSignal(controller.add_ended, timeout=60000) as ended:
        controller.add_model(path, select)
    return ended.args[1]


def generate_one(qtbot, controller):
    """One image of "a red circle" at the tests' size and steps on the selected model; its ``SavedImage``."""
    controller.prompt.prompt = "a red circle"
    controller.prompt.steps, controller.prompt.width, controller.prompt.height = TEST_STEPS, TEST_SIZE, TEST_SIZE
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as done:
        controller.generate()
    return done.args[0][0]


@contextmanager
def engine_held_at(controller, at):
    """Holds the engine's thread at the first step of a job for which ``at`` (a ``JobProgress`` -> bool) is true:
    a ``DirectConnection`` on the worker's progress signal, so the job stays at that step (its cancel not yet read
    again) while the block acts; yields a ``threading.Event`` set once it is reached. The window is told of that
    step by its own (queued) connection, made before this one: wait for it in the block (the job's step, say).
    Released when the block ends, by an error too."""
    import threading

    from PySide6.QtCore import Qt

    reached, release = threading.Event(), threading.Event()

    def hold(progress) -> None:  # on the engine's thread
        if not reached.is_set() and at(progress):
            reached.set()
            release.wait(60)

    worker = controller._engine.worker
    worker.progress.connect(hold, Qt.ConnectionType.DirectConnection)
    try:
        yield reached
    finally:
        release.set()
        worker.progress.disconnect(hold)


def step_held_till_quit(monkeypatch, controller):
    """Holds the engine's thread inside a step of the next job until the quit has asked that thread to stop
    (``stop_thread`` wrapped in ``app.engine_worker``), as a 12B model's step (seconds) does: what was queued to the
    engine behind the job is then dropped with the thread's event loop, wherever the two threads are at the quit.
    Returns a ``threading.Event`` set once the job is in its step."""
    import threading

    from PySide6.QtCore import Qt

    import app.engine_worker as engine_worker

    quit_asked, in_step = threading.Event(), threading.Event()
    stop_thread = engine_worker.stop_thread

    def stop(thread, worker, starting: bool = False) -> bool:
        thread.quit()
        quit_asked.set()
        return stop_thread(thread, worker, starting)

    def step(_progress) -> None:  # on the engine's thread (direct), inside the job
        in_step.set()
        quit_asked.wait(60)

    monkeypatch.setattr(engine_worker, "stop_thread", stop)
    controller._engine.worker.progress.connect(step, Qt.ConnectionType.DirectConnection)
    return in_step


def record_alerts(monkeypatch) -> list:
    """The widgets ``QApplication.alert`` flags in the taskbar from now on (a list that grows)."""
    from PySide6.QtWidgets import QApplication

    alerted: list = []
    monkeypatch.setattr(QApplication, "alert", staticmethod(lambda widget, msec=0: alerted.append(widget)))
    return alerted


def user_elsewhere(qtbot) -> None:
    """The user goes to another program: no window of the app is active (as the desktop makes it when another
    program's window takes the focus; offscreen, by activating a window of ours and hiding it)."""
    from PySide6.QtWidgets import QApplication, QWidget

    other = QWidget()
    other.show()
    other.activateWindow()
    qtbot.waitUntil(other.isActiveWindow)
    other.hide()
    other.deleteLater()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is None)


def lora_with_own_text_strength(qtbot, window, path: Path) -> tuple[Path, Any]:
    """A LoRA with CLIP and T5 parts written at ``path`` and added to ``window``'s LoRA panel, the window active and
    the row's "same" unticked (a "Text" strength of its own, typed into): (its file, its ``LoraRow``)."""
    from PySide6.QtCore import Qt

    from tests.lora_files import text_encoder_lora

    lora = text_encoder_lora(path)
    window.controller.loras.add_files([lora])
    row = window.lora_panel.row_for(path.stem)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    qtbot.mouseClick(row.text_same, Qt.MouseButton.LeftButton)
    return lora, row


def pane_text(qtbot, panel) -> str:
    """The gallery's metadata pane's text once the selected image's file is read (on its thread: "Reading …"
    meanwhile)."""
    qtbot.waitUntil(lambda: not panel.describing, timeout=30000)
    return panel.metadata.toPlainText()
