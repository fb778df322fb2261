"""``NIBBLE_DATA_DIR`` read by the engine itself (a script, the self test, a library user: not through ``main.py``
or the app, which export it absolute): it is resolved by the one rule (``gpu.paths.named_data_dir``), not taken as
written."""

from __future__ import annotations

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
