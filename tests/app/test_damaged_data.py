"""A damaged database or settings file: kept aside under a new name (never overwritten), the app starts fresh and
says so; a database that cannot be opened at all is a clear error naming its path, not a traceback."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from PIL import Image

import app.settings
from app.data_dir import resolve_data_dir
from app.main_window import MainWindow, run_app
from app.settings import Settings, SettingsKept, load_settings, save_settings
from app.store_recovery import StoreUnavailable
from gpu.damaged_files import move_aside
from gpu.generation.png_metadata import write_png
from tests.app.gui import accept_dialog_later, open_window

GARBAGE = os.urandom(8192)


def _files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_move_aside_never_overwrites_an_earlier_copy(tmp_path):
    db = tmp_path / "nibble.sqlite3"
    kept = []
    for round_ in range(3):  # three damaged files within the same second
        db.write_bytes(b"damaged %d" % round_)
        (tmp_path / "nibble.sqlite3-wal").write_bytes(b"wal %d" % round_)
        kept.append(move_aside(db, ("-wal", "-shm"), when=1_700_000_000))
    assert len(set(kept)) == 3 and not db.exists() and not (tmp_path / "nibble.sqlite3-wal").exists()
    for round_, path in enumerate(kept):
        assert path.name.startswith("nibble.sqlite3.damaged-")
        assert path.read_bytes() == b"damaged %d" % round_
        assert path.with_name(path.name + "-wal").read_bytes() == b"wal %d" % round_  # its journal goes along


def test_corrupt_database_is_kept_and_the_gallery_rebuilt(qtbot, data_root):
    data = resolve_data_dir(data_root)
    data.database.write_bytes(GARBAGE)
    earlier = data_root / "nibble.sqlite3.damaged-20200101-000000"  # from an earlier incident: must survive
    earlier.write_bytes(b"an older damaged copy")
    for i, prompt in enumerate(["a red fox", "a blue owl"]):
        write_png(data.images / "2026-01-01" / f"12000{i}-{i}-0.png", Image.new("RGB", (16, 16)),
                  {"prompt": prompt, "seed": i, "steps": 2})
    before = _files(data_root)

    window = open_window(qtbot, data_root)  # used to die with "file is not a database"
    gallery = window.controller.gallery
    assert {gallery.record(r).prompt for r in range(gallery.rowCount())} == {"a red fox", "a blue owl"}
    assert window.controller.reconcile_report.imported == 2
    copies = sorted(p for p in data_root.iterdir() if p.name.startswith("nibble.sqlite3.damaged-"))
    assert len(copies) == 2 and earlier in copies
    new_copy = next(p for p in copies if p != earlier)
    assert new_copy.read_bytes() == GARBAGE and earlier.read_bytes() == b"an older damaged copy"
    after = _files(data_root)
    for name, content in before.items():  # nothing deleted or changed, only the damaged file renamed
        assert after.get(name if name != "nibble.sqlite3" else new_copy.name) == content
    # the user is told, in the window
    assert window.error_dialog is not None and window.error_dialog.isVisible()
    assert "damaged" in window.error_dialog.text() and new_copy.name in window.error_dialog.text()
    assert new_copy.name in window.statusBar().currentMessage()
    # and the new database works
    window.error_dialog.accept()
    window.controller.history.add("after the repair", "")
    window.close()
    again = open_window(qtbot, data_root)
    assert again.controller.history.record(0).prompt == "after the repair"
    assert not again.notices and again.controller.gallery.rowCount() == 2




def test_a_database_that_cannot_be_opened_is_a_clear_error(qtbot, data_root):
    data = resolve_data_dir(data_root)
    data.database.mkdir()  # something in the way that SQLite cannot open (a folder), even for root
    (data.database / "keep.txt").write_text("not ours to delete")
    try:
        MainWindow(data)
    except StoreUnavailable as exc:
        assert str(data.database) in str(exc)
    else:
        raise AssertionError("expected StoreUnavailable")

    seen: list[str] = []
    accept_dialog_later(seen)
    assert run_app(["nibble-studio"], data_root) == 1  # a dialog, then a clean exit: no traceback
    assert len(seen) == 1 and "cannot start" in seen[0] and str(data.database) in seen[0]
    assert (data.database / "keep.txt").read_text() == "not ours to delete"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="Linux: /proc is a folder no one can create files in")
def test_a_data_folder_that_takes_no_files_is_named_before_the_window_opens(qtbot, tmp_path, monkeypatch):
    """A data folder that exists but cannot be written passed mkdir; start-up then failed naming some file or
    folder inside it (/proc/images). /proc stands for a read-only folder here: permission bits do not stop root,
    and creating a file there fails for every user."""
    monkeypatch.setenv("NIBBLE_DATA_DIR", "/proc")  # the default folder, as far as the app is concerned
    with pytest.raises(OSError) as refused:
        resolve_data_dir()
    assert refused.value.filename == "/proc"  # the system's reason after this depends on the kernel
    assert refused.value.strerror.startswith("no file can be created in it: ")
    seen: list[str] = []
    accept_dialog_later(seen)
    assert run_app(["nibble-studio"]) == 1  # a dialog, then a clean exit: no traceback
    assert len(seen) == 1 and "The data folder /proc cannot be used: " in seen[0]
    assert "no file can be created in it" in seen[0]

    monkeypatch.setenv("NIBBLE_DATA_DIR", str(tmp_path / "data"))  # the check leaves nothing behind
    assert sorted(p.name for p in resolve_data_dir().root.iterdir()) == ["images", "models", "trash"]

    # A writable data folder whose images/ takes no files (here a link to /proc: read-only for root too) started,
    # and every finished picture then failed to save.
    images = tmp_path / "data" / "images"
    images.rmdir()
    images.symlink_to("/proc")
    with pytest.raises(OSError) as refused:
        resolve_data_dir()
    assert refused.value.filename == str(images)
    seen.clear()
    accept_dialog_later(seen)
    assert run_app(["nibble-studio"]) == 1
    # the data folder asked for is named (308b928), then images/ inside it, whose reason it is
    said = f"The data folder {tmp_path / 'data'} cannot be used: {images}: no file can be created in it: "
    assert len(seen) == 1 and said in seen[0], seen


def test_corrupt_settings_file_is_kept_before_it_is_replaced(tmp_path):
    path = tmp_path / "settings.json"
    path.write_bytes(b'{"version": 2, "last_job": {"prompt": "my long careful pro')
    notices: list[str] = []
    assert load_settings(path, notices) == Settings()
    copies = list(tmp_path.glob("settings.json.damaged-*"))
    assert len(copies) == 1 and copies[0].read_bytes().endswith(b"careful pro")
    assert len(notices) == 1 and copies[0].name in notices[0]
    save_settings(path, Settings())  # what quitting does: the kept copy is untouched
    path.write_text("[1, 2]")  # valid JSON, but not settings: kept too, under another name
    load_settings(path, notices)
    copies = sorted(tmp_path.glob("settings.json.damaged-*"))
    assert len(copies) == 2 and {c.read_bytes()[-3:] for c in copies} == {b"pro", b" 2]"}


def test_corrupt_settings_file_in_the_app(qtbot, data_root):
    (data_root / "settings.json").write_bytes(b"\xff\xfe not even text")
    window = open_window(qtbot, data_root)
    assert window.error_dialog is not None and "settings" in window.error_dialog.text()
    window.close()  # saves settings.json anew
    assert json.loads((data_root / "settings.json").read_text())["version"]
    (copy,) = data_root.glob("settings.json.damaged-*")
    assert copy.read_bytes() == b"\xff\xfe not even text"


def test_settings_that_cannot_be_saved_on_quit_are_said_and_the_folder_released(qtbot, data_root):
    """Saving settings.json on quit raised out of closeEvent: a traceback in the log, nothing on screen (the
    session's prompt and LoRA list silently not kept), and the data folder's lock never released."""
    window = open_window(qtbot, data_root)
    window.controller.prompt.prompt = "a prompt typed this session"
    path = data_root / "settings.json"
    path.unlink(missing_ok=True)  # saved soon after the start already
    path.mkdir()  # in the way of the save, as a full disk or read-only folder would be
    seen: list[str] = []
    accept_dialog_later(seen)
    window.close()
    assert len(seen) == 1 and str(data_root / "settings.json") in seen[0] and "not kept" in seen[0]
    open_window(qtbot, data_root)  # the folder is free again: no "already in use by this process"


def test_settings_from_a_newer_version_are_copied_before_they_are_rewritten(qtbot, data_root):
    """A newer version's settings.json was read for what this version knows and rewritten on quit without the
    rest: going back to the newer version found its own settings gone."""
    newer = {"version": 9, "theme": "sepia", "last_job": {"prompt": "a fox", "sampler": "dpm"},
             "loras": [{"path": "/loras/x.safetensors", "strength": 0.5, "blocks": [1, 2]}]}
    (data_root / "settings.json").write_text(json.dumps(newer))
    window = open_window(qtbot, data_root)
    assert window.controller.prompt.prompt == "a fox"  # what this version knows is used
    (copy,) = data_root.glob("settings.json.v9-*")
    assert json.loads(copy.read_text()) == newer
    assert window.error_dialog is not None and copy.name in window.error_dialog.text()
    assert "newer version" in window.error_dialog.text()
    window.close()
    assert json.loads((data_root / "settings.json").read_text())["version"] == 2
    assert json.loads(copy.read_text()) == newer
    open_window(qtbot, data_root).close()  # a file of this version: no second copy, no notice
    assert len(list(data_root.glob("settings.json.v*"))) == 1


def test_a_newer_settings_file_that_cannot_be_copied_is_left_as_it_is(tmp_path, monkeypatch):
    """A newer version's settings.json whose copy could not be written (a full disk) was only said to be so: the
    autosave then cut it down to what this version knows, the newer version's settings gone for good. What this
    version knows of it is used; the session may save none over it (``SettingsKept``, as the window reads it)."""
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"version": 9, "theme": "sepia", "last_job": {"prompt": "a fox"}}))
    before = path.read_bytes()

    def disk_full(kept: Path, *args: object, **kwargs: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(kept))

    monkeypatch.setattr(app.settings, "copy_aside", disk_full)
    with pytest.raises(SettingsKept) as kept:
        load_settings(path, [])
    assert kept.value.settings.last_job.prompt == "a fox"
    said = kept.value.text
    assert str(path) in said and "newer version" in said and "No space left" in said and "saves no settings" in said
    assert str(tmp_path) in kept.value.hint and list(tmp_path.iterdir()) == [path] and path.read_bytes() == before


def test_a_settings_file_nested_past_the_parser_limit_is_kept_aside(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("[" * 100_000)  # RecursionError out of json.loads: it stopped start-up
    notices: list[str] = []
    assert load_settings(path, notices) == Settings()
    assert len(list(tmp_path.glob("settings.json.damaged-*"))) == 1 and len(notices) == 1


def test_settings_with_a_number_past_a_float_and_a_newer_crlf_file_load(tmp_path):
    """A LoRA strength of 10**400 in a hand-edited settings.json raised OverflowError at start-up; a newer
    version's file was copied aside re-encoded (CRLF became LF), not as the bytes it was."""
    from app.settings import load_settings

    path = tmp_path / "settings.json"
    path.write_text('{"version": 1, "loras": [{"path": "/l.safetensors", "enabled": true, "strength": '
                    + "1" + "0" * 400 + "}]}")  # fmt: skip
    settings = load_settings(path)
    assert settings.loras[0].path == "/l.safetensors" and settings.loras[0].strength == 1.0
    raw = b'{\r\n  "version": 99,\r\n  "future": true\r\n}\r\n'
    path.write_bytes(raw)
    notices: list[str] = []
    load_settings(path, notices)
    (copy,) = tmp_path.glob("settings.json.v99-*")
    assert copy.read_bytes() == raw and copy.name in notices[0]
