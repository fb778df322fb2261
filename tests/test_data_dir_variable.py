"""``NIBBLE_DATA_DIR`` read by the engine itself (a script, the self test, a library user: not through ``main.py``
or the app, which export it absolute): it is resolved by the one rule (``gpu.paths.named_data_dir``), not taken as
written."""

from __future__ import annotations

import os

import gpu.paths


def test_a_relative_variable_is_resolved_by_the_engine_as_the_command_line_resolves_it(tmp_path, monkeypatch):
    """``typo/../data`` over a ``typo`` that is not there made a stray ``typo`` beside ``data`` (the engine made the
    folder with its ``..`` kept) and the engine named the folder relative to whatever the current one was."""
    here = tmp_path.resolve()
    monkeypatch.chdir(here)
    monkeypatch.setenv("NIBBLE_DATA_DIR", "typo/./../data")
    assert gpu.paths.user_data_dir() == here / "data"
    assert gpu.paths.user_cache_dir() == here / "data" / "cache"
    assert gpu.paths.data_dir_override() == gpu.paths.named_data_dir("data") == here / "data"
    assert sorted(p.name for p in here.iterdir()) == ["data"]  # no typo/


def test_a_relative_variable_is_resolved_once_and_a_later_chdir_does_not_move_the_data_folder(tmp_path, monkeypatch):
    """Each read made the relative name absolute against the current folder of that moment: ``user_data_dir()``
    was ``a/data``, then ``b/data`` after a chdir, and the engine wrote its data in two places. The first read
    writes the absolute folder back into the variable, as ``main.py`` and the app export it."""
    here = tmp_path.resolve()
    (here / "a").mkdir()
    (here / "b").mkdir()
    monkeypatch.chdir(here / "a")
    monkeypatch.setenv("NIBBLE_DATA_DIR", "data")
    assert gpu.paths.user_data_dir() == here / "a" / "data"
    monkeypatch.chdir(here / "b")
    assert gpu.paths.user_data_dir() == gpu.paths.data_dir_override() == here / "a" / "data"
    assert gpu.paths.user_cache_dir() == here / "a" / "data" / "cache"
    assert os.environ["NIBBLE_DATA_DIR"] == str(here / "a" / "data")  # what a child process inherits too
    assert list((here / "b").iterdir()) == []


def test_an_unusable_relative_variable_is_named_as_the_user_set_it(tmp_path, monkeypatch, capsys):
    """The command line's error names the variable's own value, not the absolute folder its reading writes back."""
    from main import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("NIBBLE_DATA_DIR", "a-file/data")
    assert main(["inspect", "no-such-model"]) == 2
    assert capsys.readouterr().err.startswith("error: NIBBLE_DATA_DIR=a-file/data: cannot use it as the data folder: ")
