"""A start refused because the gallery database's upgrade failed says so and why: it said the database "cannot be
opened" and to check that its folder is writable, whatever the cause."""

from __future__ import annotations

import sqlite3

import pytest

from app.data_dir import resolve_data_dir
from app.main_window import run_app
from app.store import SCHEMA_VERSION
from app.store_recovery import StoreUnavailable, open_store
from tests.app.gui import accept_dialog_later
from tests.app.test_store import _old_database


def test_an_upgrade_that_fails_is_said_as_such_not_as_a_folder_that_cannot_be_written(qtbot, data_root):
    """A row another program wrote with text that is not UTF-8 (no writer of this app can): the upgrade cannot
    compute its key, and the start is refused. It said "cannot be opened: user-defined function raised exception"
    and to check that the folder is writable, which it is."""
    data = resolve_data_dir(data_root)
    _old_database(data.database, 8, "a cat", ("a dog", ""))
    db = sqlite3.connect(data.database)
    db.execute("UPDATE images SET settings = CAST(X'7B226D6F64656C223A2280FF227D' AS TEXT)")  # {"model":"\x80\xff"}
    db.commit()
    db.close()
    seen: list[str] = []
    accept_dialog_later(seen)
    assert run_app(["nibble-studio"], data_root) == 1
    assert len(seen) == 1 and str(data.database) in seen[0]
    assert f"could not be upgraded from schema 8 to schema {SCHEMA_VERSION}" in seen[0]
    assert "text that is not valid UTF-8" in seen[0] and "writable" not in seen[0]
    assert sqlite3.connect(data.database).execute("PRAGMA user_version").fetchone()[0] == 8  # left as it was


def test_an_upgrade_whose_key_cannot_be_computed_names_the_error(tmp_path, monkeypatch, caplog):
    """A key function of ours that raises (a bug): SQLite says only "user-defined function raised exception"."""
    import app.store

    path = tmp_path / "db.sqlite3"
    _old_database(path, 8, "a cat", ("a dog", ""))
    monkeypatch.setattr(app.store, "_stored_image_key", lambda prompt, settings: 1 / 0)
    with pytest.raises(StoreUnavailable) as refused:
        open_store(path, tmp_path / "images")
    assert str(refused.value).endswith("could not be computed (ZeroDivisionError: division by zero).")
    assert "writable" not in refused.value.hint and "Nothing in it was changed" in refused.value.hint
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)  # its traceback logged


def test_a_database_another_program_holds_locked_is_said_as_in_use_not_as_a_folder_that_cannot_be_written(tmp_path):
    """Another program (a database browser, a backup or sync tool, Nibble Studio on another computer sharing the
    folder) holds the database's lock through the start: SQLite gives up after its wait. The refusal said to check
    that the folder is writable and its disk healthy and not full, none of which is the matter."""
    path = tmp_path / "db.sqlite3"
    _old_database(path, 8, "a cat", ("a dog", ""))  # its upgrade must write
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable) as refused:
            open_store(path, tmp_path / "images")
    finally:
        other.rollback()
        other.close()
    assert str(refused.value) == f"The gallery database {path} is in use by another program (database is locked)."
    hint = refused.value.hint
    assert hint.startswith("Close the program that has it open") and "start Nibble Studio again" in hint
    assert "writable" not in hint and "not full" not in hint and "Nothing in it was changed" in hint
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 8  # left as it was
