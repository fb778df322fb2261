"""The model library changes owed (``app.owed_changes``): a removal made at quit or at the next start takes off
only the model the user asked to remove, the quit never waits for good on a stuck engine, and a removal that failed
(said) is not made behind the user's back later."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from PySide6.QtCore import Qt

import app.owed_changes as owed_changes
from app.data_dir import resolve_data_dir
from app.owed_changes import ADD, OLD_OWED_REMOVALS, OWED_CHANGES, REMOVE, OwedChanges, make_change, make_changes_now
from gpu.library import ModelLibrary
from gpu.paths import resources_dir


def _listed(data_root: Path) -> dict[str, str]:
    """The user's models library.json lists: name -> path."""
    return {m["name"]: m["path"] for m in json.loads((data_root / "library.json").read_text())["models"]}


def _copy(path: Path) -> Path:
    """A copy of the demo SVDQ model at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(resources_dir() / "models" / "demo-int4.safetensors", path)
    return path


def _record(data_root: Path, removals: list[dict[str, str]]) -> Path:
    """``owed-removals.json`` in ``data_root`` listing ``removals``, as a session of a version that recorded only
    removals and could not make them left it; the path of the record that replaces it is returned."""
    (data_root / OLD_OWED_REMOVALS).write_text(json.dumps({"removals": removals}), encoding="utf-8")
    return data_root / OWED_CHANGES


def test_a_carried_removal_leaves_another_model_listed_under_that_name_since(data_root, tmp_path, caplog):
    """A removal of 'mine' at P left to the next start, while library.json now lists 'mine' at Q (P removed and Q
    added under that name by the CLI meanwhile): the model at Q stays. A record naming Q removes it."""
    library = ModelLibrary(data_root)
    first, second = _copy(tmp_path / "p" / "mine.safetensors"), _copy(tmp_path / "q" / "mine.safetensors")
    library.add(first)
    library.remove("mine")
    assert library.add(second).name == "mine"
    record = _record(data_root, [{"name": "mine", "path": str(first)}])
    owed = OwedChanges(record)
    with caplog.at_level(logging.INFO, logger="app.owed_changes"):
        assert owed.carried() == [(REMOVE, "mine")]
        assert make_change(library, owed, REMOVE, "mine")
    assert _listed(data_root) == {"mine": str(second)}
    assert "left 'mine' as it is" in caplog.text
    assert owed.owed() == [] and not record.exists()  # not tried again at the start after
    assert not (data_root / OLD_OWED_REMOVALS).exists()  # read once

    owed = OwedChanges(_record(data_root, [{"name": "mine", "path": str(second)}]))
    for kind, name in owed.carried():
        make_change(library, owed, kind, name)
    assert _listed(data_root) == {}  # the path it was asked for: removed


def test_a_corrupt_record_is_logged_and_no_removal_made(data_root, tmp_path, caplog):
    """A record that cannot be read (cut short, or entries without a name) makes no removal: a model is never taken
    off on a guess; the log names the file."""
    library = ModelLibrary(data_root)
    mine = _copy(tmp_path / "mine.safetensors")
    library.add(mine)
    for text in ('{"changes": [{"kind": "remove", "name": "mi',
                 json.dumps({"changes": [{"kind": "remove", "path": str(mine)}]})):
        record = data_root / OWED_CHANGES
        record.write_text(text, encoding="utf-8")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="app.owed_changes"):
            owed = OwedChanges(record)
        assert owed.carried() == [] and owed.owed() == []
        assert f"the model library changes owed in {record} could not be read" in caplog.text
        make_changes_now(resolve_data_dir(data_root), owed)
        assert _listed(data_root) == {"mine": str(mine)}


def test_a_removal_is_made_when_its_record_cannot_be_written(data_root, tmp_path, caplog):
    """The record's folder cannot be written (a read-only or full data folder): the failure is logged and the removal
    asked in this session is still made, at quit."""
    library = ModelLibrary(data_root)
    mine = _copy(tmp_path / "mine.safetensors")
    library.add(mine)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("", encoding="utf-8")  # a file where the record's folder would be: any write fails (as root too)
    owed = OwedChanges(blocked / OWED_CHANGES)
    with caplog.at_level(logging.WARNING, logger="app.owed_changes"):
        owed.put(REMOVE, "mine", str(mine))
    assert "the model library changes owed could not be recorded" in caplog.text
    make_changes_now(resolve_data_dir(data_root), owed)
    assert _listed(data_root) == {} and mine.is_file()
    assert owed.owed() == []


def test_an_add_drops_the_removal_still_owed_of_that_file(data_root, tmp_path):
    """Remove, then the same file added back before the engine made the removal (stuck on a hung drive): the
    user's latest word is that it is listed, so neither the quit nor the next start takes it off."""
    library = ModelLibrary(data_root)
    mine = _copy(tmp_path / "mine.safetensors")
    other = _copy(tmp_path / "other.safetensors")
    library.add(mine)
    library.add(other)
    record = data_root / OWED_CHANGES
    owed = OwedChanges(record)
    owed.put(REMOVE, "mine", str(mine))
    owed.put(REMOVE, "other", str(other))
    owed.put(ADD, str(tmp_path / "." / "mine.safetensors"))  # the same file, named another way
    assert owed.owed() == [(REMOVE, "other"), (ADD, str(tmp_path / "." / "mine.safetensors"))]
    assert [r.get("name") for r in json.loads(record.read_text())["changes"]] == ["other", None]
    make_changes_now(resolve_data_dir(data_root), owed)
    assert _listed(data_root) == {"mine": str(mine)}


def test_the_quit_does_not_wait_for_good_for_an_add_behind_a_stuck_removal(data_root, tmp_path, monkeypatch, caplog):
    """The engine could not stop inside a removal's write (it holds the library's write lock for good) and an add
    is owed after it (the wizard's finished model): the quit waited for the lock for the add without end, on the
    GUI thread, and the app never exited. One wait for them all now; the removal stays recorded for the next start
    and the add is logged as given up, saying where a model is found again."""
    monkeypatch.setattr(owed_changes, "LIBRARY_WAIT_S", 0.3)
    library = ModelLibrary(data_root)
    mine = _copy(tmp_path / "mine.safetensors")
    library.add(mine)
    finished = str(resolve_data_dir(data_root).quantized / "new-svdq.safetensors")
    owed = OwedChanges(data_root / OWED_CHANGES)
    owed.put(REMOVE, "mine", str(mine))
    owed.put(ADD, finished)
    assert owed_changes.library_writes.acquire(timeout=5)  # the stuck engine's write
    try:
        with caplog.at_level(logging.WARNING, logger="app.owed_changes"):
            quit_ = threading.Thread(target=make_changes_now, args=(resolve_data_dir(data_root), owed), daemon=True)
            quit_.start()
            quit_.join(5)
            assert not quit_.is_alive()
            given_up = f"adding {finished} to the model library is left to the next start"
            # The helper's lock wait ends at the quit's deadline too: its line may come just after the quit returned
            for _ in range(100):
                if given_up in caplog.text:
                    break
                time.sleep(0.05)
    finally:
        owed_changes.library_writes.release()
    assert owed.owed() == [(REMOVE, "mine"), (ADD, finished)]
    assert OwedChanges(data_root / OWED_CHANGES).carried() == [(REMOVE, "mine"), (ADD, finished)]  # the next start's
    assert given_up in caplog.text


def test_a_removal_that_failed_is_not_made_later(qapp, data_root, tmp_path):
    """Remove failed before the library was written (the engine's start, or the model's unload, raised): the error
    was shown and 'mine' stayed listed, but the removal stayed owed and recorded, and the quit (or the next start)
    took 'mine' off without a word; asked again and made, then the file added back, the leftover removed the model
    added back at quit."""
    from app.engine_worker import EngineWorker

    data = resolve_data_dir(data_root)
    mine = _copy(tmp_path / "mine.safetensors")
    worker = EngineWorker(data)
    worker.add_model(str(mine))
    failed, ended = [], []
    worker.failed.connect(lambda _job, error: failed.append(error))
    worker.removal_ended.connect(ended.append)
    real = worker._ensure_service

    def failing():
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    worker._ensure_service = failing
    worker.owed.put(REMOVE, "mine", str(mine))  # as EngineThread.remove_model notes it before queueing the call
    worker.remove_model("mine")
    assert len(failed) == 1 and ended == ["mine"]
    assert worker.owed.owed() == [] and not (data_root / OWED_CHANGES).exists()
    make_changes_now(data, worker.owed)  # the quit
    assert _listed(data_root) == {"mine": str(mine)}

    worker._ensure_service = real
    worker.owed.put(REMOVE, "mine", str(mine))
    worker.remove_model("mine")  # asked again: made
    assert _listed(data_root) == {}
    worker.owed.put(ADD, str(mine))
    worker.add_model(str(mine))  # added back
    make_changes_now(data, worker.owed)
    assert _listed(data_root) == {"mine": str(mine)}


def test_the_quit_does_not_hang_on_an_add_whose_read_never_ends(data_root, tmp_path, monkeypatch, caplog):
    """An add owed at quit of a file on a drive that went away (a FIFO here: its read never returns) read the file
    on the GUI thread for good, and the app never exited. The quit's wait ends it now; the add stays recorded."""
    monkeypatch.setattr(owed_changes, "LIBRARY_WAIT_S", 0.3)
    hung = tmp_path / "usb" / "mine.safetensors"
    hung.parent.mkdir()
    os.mkfifo(hung)
    owed = OwedChanges(data_root / OWED_CHANGES)
    owed.put(ADD, str(hung))
    quit_ = threading.Thread(target=make_changes_now, args=(resolve_data_dir(data_root), owed), daemon=True)
    try:
        with caplog.at_level(logging.WARNING, logger="app.owed_changes"):
            quit_.start()
            quit_.join(5)
            assert not quit_.is_alive()
        assert OwedChanges(data_root / OWED_CHANGES).carried() == [(ADD, str(hung))]  # made at the next start
        assert "left to the next start" in caplog.text
    finally:
        with open(hung, "wb"):  # the read ends (an empty file): the helper thread lets go of the library's lock
            pass
    deadline = time.monotonic() + 5
    while owed_changes.library_writes.locked() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_an_add_given_up_at_quit_of_a_removed_file_is_made_at_the_next_start(data_root, tmp_path, monkeypatch):
    """A model removed, then its file added again (the wizard's finished model, written anew under that name) and
    the add given up at quit (the lock held): the next start's search of the models folder passes over a file the
    library left out as removed, so the add was lost. It is recorded now, made at the next start, and the file is no
    longer left out."""
    from gpu.library_found import left_out

    monkeypatch.setattr(owed_changes, "LIBRARY_WAIT_S", 0.2)
    data = resolve_data_dir(data_root)
    mine = _copy(data.quantized / "mine.safetensors")
    library = ModelLibrary(data_root)
    library.add(mine)
    library.remove("mine")
    owed = OwedChanges(data_root / OWED_CHANGES)
    owed.put(ADD, str(mine))
    assert owed_changes.library_writes.acquire(timeout=5)  # the stuck engine's write
    try:
        make_changes_now(data, owed)
    finally:
        owed_changes.library_writes.release()
    assert _listed(data_root) == {}

    owed = OwedChanges(data_root / OWED_CHANGES)  # the next start
    for kind, value in owed.carried():
        assert make_change(library, owed, kind, value)
    assert _listed(data_root) == {"mine": str(mine)}
    assert left_out(library.file, mine) == ""
    assert not (data_root / OWED_CHANGES).exists()


def test_the_quit_waits_once_for_all_the_changes_owed(data_root, tmp_path, monkeypatch):
    """Three changes owed behind a lock held for good: the quit waits LIBRARY_WAIT_S in all, not once each."""
    monkeypatch.setattr(owed_changes, "LIBRARY_WAIT_S", 0.5)
    owed = OwedChanges(data_root / OWED_CHANGES)
    for name in ("a", "b", "c"):
        owed.put(ADD, str(tmp_path / f"{name}.safetensors"))
    threads = threading.active_count()
    assert owed_changes.library_writes.acquire(timeout=5)
    try:
        began = time.monotonic()
        make_changes_now(resolve_data_dir(data_root), owed)
        took = time.monotonic() - began
        time.sleep(0.3)
        assert threading.active_count() == threads  # no wait of a change goes on past the one deadline either
    finally:
        owed_changes.library_writes.release()
    assert 0.4 < took < 0.9
    assert len(owed.owed()) == 3


def test_a_carried_removal_leaves_a_file_written_anew_at_that_path_listed(data_root, tmp_path):
    """A Remove recorded and left to the next start, then a new model written at the same path (a quantize run
    with --overwrite) and listed: the next start took that new model off. It stays now; with its file gone the
    removal is still made."""
    library = ModelLibrary(data_root)
    mine = _copy(tmp_path / "mine.safetensors")
    library.add(mine)
    OwedChanges(data_root / OWED_CHANGES).put(REMOVE, "mine", str(mine))
    mine.write_bytes(mine.read_bytes() + b" ")  # another file at that path: its size differs
    owed = OwedChanges(data_root / OWED_CHANGES)  # the next start
    for kind, value in owed.carried():
        make_change(library, owed, kind, value)
    assert _listed(data_root) == {"mine": str(mine)}

    _copy(mine)
    OwedChanges(data_root / OWED_CHANGES).put(REMOVE, "mine", str(mine))
    mine.unlink()  # gone (a drive away): still removed
    owed = OwedChanges(data_root / OWED_CHANGES)
    for kind, value in owed.carried():
        make_change(library, owed, kind, value)
    assert _listed(data_root) == {}


def test_the_next_start_is_ready_while_a_carried_add_never_ends_and_tries_it_once(qapp, data_root, tmp_path):
    """A recorded add of a file that never answers (a FIFO: a hung network drive) was made before ``ready``, with
    no time limit, and stayed recorded: every later start hung. ``ready`` comes first now, and the add is taken
    off the record before it is tried (a start killed inside it does not try it again)."""
    from app.engine_worker import EngineWorker

    hung = tmp_path / "usb" / "mine.safetensors"
    hung.parent.mkdir()
    os.mkfifo(hung)
    (data_root / OWED_CHANGES).write_text(json.dumps({"changes": [{"kind": "add", "path": str(hung)}]}))
    worker = EngineWorker(resolve_data_dir(data_root))
    ready = threading.Event()
    worker.ready.connect(lambda _status: ready.set(), Qt.ConnectionType.DirectConnection)  # sent on that thread
    start = threading.Thread(target=worker.initialize, daemon=True)
    start.start()
    try:
        assert ready.wait(20)
        deadline = time.monotonic() + 5
        while not owed_changes.library_writes.locked() and time.monotonic() < deadline:
            time.sleep(0.01)  # the add is under way, reading the FIFO
        assert start.is_alive()
        assert not (data_root / OWED_CHANGES).exists()
    finally:
        with open(hung, "wb"):  # the read ends (an empty file): the start goes on
            pass
        start.join(10)


def test_a_carried_add_that_fails_at_the_next_start_is_shown(qapp, data_root, tmp_path):
    """A recorded add refused at the next start (its file gone since) was only logged: the panel had said the model
    was added, and it was not listed without a word. It is shown as a notice naming the file now."""
    from app.engine_worker import EngineWorker

    gone = tmp_path / "elsewhere" / "other-svdq.safetensors"
    (data_root / OWED_CHANGES).write_text(json.dumps({"changes": [{"kind": "add", "path": str(gone)}]}))
    worker = EngineWorker(resolve_data_dir(data_root))
    said = []
    worker.failed.connect(lambda job, error: said.append(error))
    worker.initialize()
    assert len(said) == 1 and said[0].kind == "notice"
    assert str(gone) in said[0].message and "last session" in said[0].message and said[0].hint
    assert not (data_root / OWED_CHANGES).exists()


def test_a_carried_removal_of_a_folder_model_is_made_after_a_file_was_put_into_its_folder(data_root, tmp_path):
    """A folder model's (diffusers) stamp was its folder's, which changes with any file put into it: its carried
    removal was skipped as "written anew" and the removed model came back. A folder is removed by name and path."""
    library = ModelLibrary(data_root)
    folder = tmp_path / "FLUX-mine"
    shutil.copytree(resources_dir() / "models" / "demo", folder)
    entry = library.add(folder)
    OwedChanges(data_root / OWED_CHANGES).put(REMOVE, entry.name, str(library.listed_path(entry.name)))
    time.sleep(0.01)
    (folder / "README.md").write_text("notes")
    owed = OwedChanges(data_root / OWED_CHANGES)  # the next start
    for kind, value in owed.carried():
        make_change(library, owed, kind, value)
    assert _listed(data_root) == {}


def test_a_quit_with_an_add_whose_read_never_ends_exits_the_process(tmp_path):
    """The quit's helper thread left reading a file that never answers (a FIFO) must not hold up the process's
    exit (it is a daemon): a process that makes such an add at quit exits within seconds."""
    import subprocess
    import sys

    hung = tmp_path / "mine.safetensors"
    os.mkfifo(hung)
    (tmp_path / "data").mkdir()
    # The model file's reader imported first, as the app has it by the quit: else the helper was still importing
    # torch when the process began to exit, and failed there at once
    script = f"""
import gpu.checkpoint.format
import app.owed_changes as oc
from pathlib import Path
from app.data_dir import resolve_data_dir
oc.LIBRARY_WAIT_S = 0.5
owed = oc.OwedChanges(Path({str(tmp_path / "data")!r}) / oc.OWED_CHANGES)
owed.put(oc.ADD, {str(hung)!r})
oc.make_changes_now(resolve_data_dir(Path({str(tmp_path / "data")!r})), owed)
"""
    try:  # the imports take a few seconds of their own on a slow machine
        done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], timeout=30,
                              capture_output=True, text=True)  # fmt: skip
    except subprocess.TimeoutExpired:  # the process is killed
        raise AssertionError("the process did not exit: the quit's helper thread held it up") from None
    assert done.returncode == 0, done.stderr


def test_an_add_stays_recorded_while_the_engine_makes_it(qapp, data_root, tmp_path):
    """The engine's add stays owed (and recorded) until it ends: one discarded as it began and then never ending
    (a file on a drive that hangs) was made neither at quit nor at the next start."""
    from app.engine_worker import EngineWorker

    mine = _copy(tmp_path / "mine.safetensors")
    worker = EngineWorker(resolve_data_dir(data_root))
    worker._ensure_service()
    inside, go_on = threading.Event(), threading.Event()
    add = worker._library.add

    def blocked_add(path: Path) -> object:
        inside.set()
        assert go_on.wait(10)
        return add(path)

    worker._library.add = blocked_add
    worker.owed.put(ADD, str(mine))  # as EngineThread.add_model does before it queues the call
    engine = threading.Thread(target=worker.add_model, args=(str(mine),), daemon=True)
    engine.start()
    try:
        assert inside.wait(10)
        assert worker.owed.owed() == [(ADD, str(mine))]
        assert OwedChanges(data_root / OWED_CHANGES).carried() == [(ADD, str(mine))]
    finally:
        go_on.set()
        engine.join(10)
    assert worker.owed.owed() == [] and not (data_root / OWED_CHANGES).exists()
    assert _listed(data_root) == {"mine": str(mine)}


def test_changes_carried_stay_owed_and_recorded_until_each_is_tried(data_root, tmp_path):
    """The changes the last session left were all taken off the record before the first was tried: when that one
    never ended (a file on a hung drive) and the app quit or was killed, the others (a removal, an add of a file
    outside the models folder) were lost without a word. Handed out, they stay owed (the quit makes them) and
    recorded (the next start does) until each is tried."""
    mine = _copy(tmp_path / "mine.safetensors")
    hung, elsewhere = str(tmp_path / "nas" / "hung.safetensors"), str(tmp_path / "elsewhere" / "b.safetensors")
    asked = OwedChanges(data_root / OWED_CHANGES)
    asked.put(ADD, hung)
    asked.put(REMOVE, "mine", str(mine))
    asked.put(ADD, elsewhere)
    changes = [(ADD, hung), (REMOVE, "mine"), (ADD, elsewhere)]
    owed = OwedChanges(data_root / OWED_CHANGES)
    assert owed.carried() == changes and owed.carried() == []  # handed out once
    owed.discard(ADD, hung)  # the engine, just before trying the first, which then never ends
    assert owed.owed() == changes[1:]  # made by the quit
    assert OwedChanges(data_root / OWED_CHANGES).carried() == changes[1:]  # else by the next start


def test_a_carried_removal_of_a_path_spelled_otherwise_is_made(data_root, tmp_path):
    """A removal recorded with another spelling of the listed path (through a symlinked folder, with "..") was
    taken for a removal of another model by that name, and the model stayed listed: the path is compared as a
    file, as an add's dropping of a removal owed compares it."""
    library = ModelLibrary(data_root)
    mine = _copy(tmp_path / "real" / "mine.safetensors")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    for spelling in (tmp_path / "link" / "mine.safetensors", tmp_path / "real" / ".." / "real" / "mine.safetensors"):
        library.add(mine)
        OwedChanges(data_root / OWED_CHANGES).put(REMOVE, "mine", str(spelling))
        owed = OwedChanges(data_root / OWED_CHANGES)  # the next start
        for kind, value in owed.carried():
            make_change(library, owed, kind, value)
        assert _listed(data_root) == {}, spelling
