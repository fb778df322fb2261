"""settings.json as the user may write it by hand, in another editor or by a script: read whole, nothing in it lost.

The README sends the user to settings.json (``preview_every``). A file saved with a byte order mark (Windows
Notepad's "UTF-8 with BOM", PowerShell 5), or without its "version" field, started the app on the defaults or on an
empty prompt panel, and the next save wrote those over the user's file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.settings import LastJob, load_settings
from tests.app.gui import open_window

_LAST_JOB = {"prompt": "a lighthouse at dusk", "negative_prompt": "fog", "seed": 4242, "seed_locked": True,
             "model": "demo"}  # fmt: skip


def _kept_the_last_job(window, data_root: Path) -> None:
    """The window shows the file's last job, nothing was set aside as damaged, and what it saves keeps the job."""
    state = window.controller.prompt
    assert (state.prompt, state.negative_prompt, state.seed, state.seed_locked) == (
        "a lighthouse at dusk", "fog", 4242, True)
    assert not list(data_root.glob("settings.json.damaged-*"))
    window.close()  # saves the settings
    saved = json.loads((data_root / "settings.json").read_bytes())
    assert {k: saved["last_job"][k] for k in ("prompt", "negative_prompt", "seed")} == {
        "prompt": "a lighthouse at dusk", "negative_prompt": "fog", "seed": 4242}


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"], ids=["utf-8-with-bom", "utf-16"])
def test_a_settings_file_saved_with_a_byte_order_mark_is_read(qtbot, data_root, encoding):
    """Saved from Windows Notepad as "UTF-8 with BOM", or by PowerShell 5's Set-Content -Encoding UTF8 (its
    Out-File and ">" write UTF-16), the next start said the file could not be read, kept it as
    settings.json.damaged-…, and started on the defaults: the prompt, the seed, the LoRA list and the window's
    layout gone from the app. The file is JSON, whole; only its first bytes mark its encoding."""
    settings = {"version": 2, "preview_every": 4, "last_job": _LAST_JOB}
    (data_root / "settings.json").write_bytes(json.dumps(settings, indent=2).encode(encoding))
    window = open_window(qtbot, data_root)
    assert window.controller._engine.worker.preview_every == 4
    _kept_the_last_job(window, data_root)


def test_a_settings_file_without_its_version_keeps_the_last_job(qtbot, data_root):
    """A settings.json missing its "version" field (written by hand, or by a script, with the fields the user
    wanted: the prompt panel's last job) started with an empty prompt panel, and the next autosave wrote the empty
    one over the file: the version-1 migration moved the (absent) top-level fields into ``last_job``, replacing it.
    A missing field takes its default; the others are read."""
    (data_root / "settings.json").write_text(json.dumps({"preview_every": 4, "last_job": _LAST_JOB}))
    window = open_window(qtbot, data_root)
    _kept_the_last_job(window, data_root)


def test_a_version_1_file_is_moved_into_the_last_job_and_a_last_job_already_there_is_kept(tmp_path):
    """Version 1's prompt panel fields, at the top level, go into the last job (a real version-1 file); where the
    file holds a ``last_job`` too, its fields win and the top-level ones fill in only what it lacks."""
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"version": 1, "prompt": "old", "seed": 7, "steps": 9}))
    assert load_settings(path).last_job == LastJob(prompt="old", seed=7, steps=9)
    path.write_text(json.dumps({"prompt": "top", "steps": 9, "last_job": {"prompt": "mine", "seed": 5}}))
    assert load_settings(path).last_job == LastJob(prompt="mine", seed=5, steps=9)


def test_a_last_job_field_of_the_wrong_type_gives_way_to_the_top_level_one(tmp_path):
    """A ``last_job`` field that is no value of its type ("steps": "9", hand-written) won the merge over a sound
    top-level one, and then fell back to the default: the user's 9 steps became the default's."""
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"steps": 9, "seed": 3, "last_job": {"prompt": "mine", "steps": "9", "seed": 5}}))
    assert load_settings(path).last_job == LastJob(prompt="mine", seed=5, steps=9)
