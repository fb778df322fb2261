"""Save as… onto a network share that hangs, or a drive that sleeps: its checks and its copy ran on the window's
thread, which froze for the whole copy. The copy is made on a thread of its own now, "Saving …" said meanwhile and
the same words as before once it ended; a second Save as to that file meanwhile is refused, said; a quit waits.

A hung drive is simulated as ``tests.app.gui.stat_held_under`` simulates one: the stat of what is under its folder
waits, on a thread, till the test sets an event; on the window's thread it is not held but noted (a freeze there)."""

from __future__ import annotations

import logging
import threading

from app.data_dir import resolve_data_dir
from tests.app.gui import gallery_images, stat_held_under, window_without_engine

WAIT_MS = 30_000  # generous: CI runs the suite on 2 cores in parallel


def _window(qtbot, data_root):
    """The window on a gallery of one image, d/0.png -> (window, its record, the errors said, the status said)."""
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red fox"])
    window = window_without_engine(qtbot, data)
    errors, said = [], []
    window.controller.error.connect(errors.append)
    window.controller.status_message.connect(said.append)
    return window, window.controller.gallery.record(0), errors, said


def _waits_for(monkeypatch, folder):
    """A ``threading.Event`` set once a thread other than the window's looks at what is under ``folder``."""
    import os

    looked, stat, top = threading.Event(), os.stat, os.fspath(folder) + os.sep

    def noted(path, *args, **kwargs):
        if not isinstance(path, int) and os.fspath(path).startswith(top):
            if threading.current_thread() is not threading.main_thread():
                looked.set()
        return stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", noted)
    return looked


def test_save_as_onto_a_hung_share_leaves_the_window_free(qtbot, data_root, tmp_path, monkeypatch):
    window, record, errors, said = _window(qtbot, data_root)
    controller = window.controller
    source = controller.gallery.path_of(record)
    share = tmp_path / "share"
    share.mkdir()
    release, on_gui = stat_held_under(monkeypatch, share)
    try:
        controller.save_image_as(record, share / "fox")
        assert on_gui == []  # was: ["stat", ...], the window frozen till the share answered, for the whole copy
        assert said == [f"Saving the image 0.png as {share / 'fox.png'}…"]
        controller.save_image_as(record, share / "fox.png")  # the same file again meanwhile: refused, said
        assert [(e.message, e.hint) for e in errors] == [(
            f"The image 0.png could not be saved as {share / 'fox.png'}: the image 0.png is still being saved there.",
            "Wait till the status bar says it was saved, then save again.")]  # fmt: skip
        with qtbot.waitSignal(controller.image_save.ended, timeout=WAIT_MS):  # another file: not held by the first
            controller.save_image_as(record, tmp_path / "local.png")
        assert (tmp_path / "local.png").read_bytes() == source.read_bytes() and on_gui == []
    finally:
        release.set()
    qtbot.waitUntil(lambda: said[-1] == f"The image 0.png was saved as {share / 'fox.png'}.", timeout=WAIT_MS)
    assert (share / "fox.png").read_bytes() == source.read_bytes() and len(errors) == 1


def test_a_quit_waits_for_the_save_under_way(qtbot, data_root, tmp_path, monkeypatch):
    window, record, errors, _said = _window(qtbot, data_root)
    share = tmp_path / "share"
    share.mkdir()
    release, on_gui = stat_held_under(monkeypatch, share)
    window.controller.save_image_as(record, share / "fox.png")
    assert on_gui == []
    threading.Timer(0.5, release.set).start()  # the share answers while the window closes
    window.close()
    assert (share / "fox.png").read_bytes() == window.controller.gallery.path_of(record).read_bytes()
    assert errors == []


def test_a_quit_gives_up_on_a_save_that_does_not_end_and_logs_it(qtbot, data_root, tmp_path, monkeypatch, caplog):
    window, record, _errors, _said = _window(qtbot, data_root)
    share = tmp_path / "share"
    share.mkdir()
    monkeypatch.setattr("app.image_save.QUIT_WAIT_S", 0.3, raising=False)
    release, on_gui = stat_held_under(monkeypatch, share)
    try:
        window.controller.save_image_as(record, share / "fox.png")
        assert on_gui == []
        with caplog.at_level(logging.WARNING, logger="app.image_save"):
            window.close()
        assert not (share / "fox.png").exists()
        assert any("was still being saved as" in r.getMessage() and "not saved" in r.getMessage()
                   for r in caplog.records)  # fmt: skip
    finally:
        release.set()


def test_an_image_deleted_while_its_save_waits_for_the_share_is_saved_as_it_was(qtbot, data_root, tmp_path,
                                                                                  monkeypatch):  # fmt: skip
    window, record, errors, said = _window(qtbot, data_root)
    controller = window.controller
    source = controller.gallery.path_of(record)
    picture = source.read_bytes()
    share = tmp_path / "share"
    share.mkdir()
    release, _on_gui = stat_held_under(monkeypatch, share)
    waiting = _waits_for(monkeypatch, share)
    try:
        controller.save_image_as(record, share / "fox.png")
        assert waiting.wait(WAIT_MS / 1000)  # the save waits for the share
        controller.delete_images([0])  # Save as clicked first: its copy is of the picture as it was then
        assert not source.exists()
    finally:
        with qtbot.waitSignal(controller.image_save.ended, timeout=WAIT_MS):
            release.set()
    # was: "could not be saved as …/fox.png: No such file or directory.", "Pick another folder, …"
    assert [(e.message, e.hint) for e in errors] == []
    assert said[-1] == f"The image 0.png was saved as {share / 'fox.png'}."
    assert (share / "fox.png").read_bytes() == picture


def test_undo_while_a_save_writes_the_deleted_images_name_brings_it_back_under_another(qtbot, data_root,
                                                                                         monkeypatch):  # fmt: skip
    """fox (d/0.png) deleted; owl saved as images/d/0.png, a name free then (the dialog asks nothing); Undo while the
    copy is written. Undo put fox back at d/0.png, and the save's copy, published after, replaced it: fox's picture
    lost for good, its row showing owl's."""
    import app.image_save

    data = resolve_data_dir(data_root)
    gallery_images(data, ["a red fox", "an owl"])
    window = window_without_engine(qtbot, data)
    controller, gallery = window.controller, window.controller.gallery
    errors: list = []
    controller.error.connect(errors.append)
    row = {gallery.record(r).prompt: r for r in range(2)}
    fox_file = gallery.path_of(gallery.record(row["a red fox"]))
    fox, owl = fox_file.read_bytes(), gallery.path_of(gallery.record(row["an owl"])).read_bytes()
    assert fox != owl
    controller.delete_images([row["a red fox"]])
    assert not fox_file.exists()
    copying, release = threading.Event(), threading.Event()
    real = app.image_save._copied_from

    def held_copy(picture, tmp):
        copying.set()
        release.wait(WAIT_MS / 1000)
        real(picture, tmp)

    monkeypatch.setattr(app.image_save, "_copied_from", held_copy)
    owl_record = gallery.record(0)
    assert owl_record.prompt == "an owl"
    try:
        controller.save_image_as(owl_record, fox_file)
        assert copying.wait(WAIT_MS / 1000)
        controller.undo_delete()
    finally:
        with qtbot.waitSignal(controller.image_save.ended, timeout=WAIT_MS):
            release.set()
    assert errors == []
    back = next(gallery.record(r) for r in range(gallery.rowCount()) if gallery.record(r).prompt == "a red fox")
    assert back.path != "d/0.png"  # was: d/0.png, then written over by the save
    assert gallery.path_of(back).read_bytes() == fox  # was: owl's picture
    assert fox_file.read_bytes() == owl
