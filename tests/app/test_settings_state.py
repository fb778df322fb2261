"""The settings' persistence without a window (``SettingsState``): the autosave's debounce, a failed save said once
until a save succeeds, the quit's save, and a settings file that may not be written never written over."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest

import app.settings
from app.engine_errors import EngineError
from app.settings import Settings
from app.settings_state import SettingsState


class _Disk:
    """``atomic_write_text`` as a disk that can be full: the texts written, and those refused."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        self.written: list[str] = []
        self.refused = 0
        real = app.settings.atomic_write_text

        def write(target: Path, text: str) -> None:
            if self.full:
                self.refused += 1
                raise OSError(errno.ENOSPC, "No space left on device", str(target))
            self.written.append(text)
            real(target, text)

        monkeypatch.setattr(app.settings, "atomic_write_text", write)


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> _Disk:
    return _Disk(monkeypatch)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "settings.json"


def _state(path: Path, prompt: list[str]) -> tuple[SettingsState, list[EngineError]]:
    """A state on ``path`` whose settings' prompt is ``prompt[0]`` at each save, its autosave at once after a
    change; and the errors it emits."""

    def gather(settings: Settings) -> None:
        settings.last_job.prompt = prompt[0]

    state = SettingsState(path)
    state.gather_with(gather)
    state.autosave.setInterval(0)
    said: list[EngineError] = []
    state.error.connect(said.append)
    return state, said


def test_changes_are_saved_once_after_a_run_of_them(qtbot, disk, path):
    prompt = ["first"]
    state, said = _state(path, prompt)
    state.autosave.setInterval(50)
    for text in ("a", "a fox", "a fox at dusk"):
        prompt[0] = text
        state.changed()
    qtbot.waitUntil(lambda: len(disk.written) == 1)
    qtbot.wait(100)
    assert len(disk.written) == 1 and said == []
    assert json.loads(path.read_text())["last_job"]["prompt"] == "a fox at dusk"


def test_a_failed_autosave_is_said_once_and_again_after_a_success_then_a_failure(qtbot, disk, path):
    prompt = ["saved"]
    state, said = _state(path, prompt)
    state.save_now()
    disk.full = True
    for attempt in range(3):
        prompt[0] = f"lost {attempt}"
        state.changed()
        qtbot.waitUntil(lambda attempt=attempt: disk.refused == attempt + 1)
    assert len(said) == 1  # not one dialog per pause in typing
    assert str(path) in said[0].message and "No space left" in said[0].message and "tries again" in said[0].message
    assert "disk space" in said[0].hint
    assert json.loads(path.read_text())["last_job"]["prompt"] == "saved"  # the last good file is whole

    disk.full = False
    prompt[0] = "saved again"
    state.changed()
    qtbot.waitUntil(lambda: json.loads(path.read_text())["last_job"]["prompt"] == "saved again")
    assert len(said) == 1
    disk.full = True
    state.changed()
    qtbot.waitUntil(lambda: len(said) == 2)  # a new failure after a success is said again


def test_after_stop_nothing_is_autosaved_and_the_last_save_says_its_failure(qtbot, disk, path):
    prompt = ["typed"]
    state, said = _state(path, prompt)
    state.stop()
    state.changed()
    assert not state.autosave.isActive()
    qtbot.wait(20)
    assert disk.written == []

    disk.full = True
    failed = state.save_last()
    assert failed is not None and str(path) in failed.message and "No space left" in failed.message
    assert "the next start uses the settings saved before" in failed.message and said == []
    disk.full = False
    prompt[0] = "on quit"
    assert state.save_last() is None
    assert json.loads(path.read_text())["last_job"]["prompt"] == "on quit"


def test_a_settings_file_that_was_not_read_is_never_written_over(qtbot, disk, path, monkeypatch):
    """A file the system refuses to read (another program holds it) may be the user's only copy: the session runs
    on the defaults, says so, and neither the autosave nor the quit writes it."""
    path.write_text(json.dumps({"version": 2, "last_job": {"prompt": "my careful prompt"}}))
    read_bytes = Path.read_bytes

    def held_elsewhere(self: Path) -> bytes:
        if self == path:
            raise PermissionError(errno.EACCES, "being used by another process", str(self))
        return read_bytes(self)

    with monkeypatch.context() as held:
        held.setattr(Path, "read_bytes", held_elsewhere)
        state, said = _state(path, ["typed in this session"])
    assert not state.writable and state.settings.last_job.prompt == ""
    (notice,) = state.notices
    assert notice.kind == "user" and str(path) in notice.message and "saves no settings" in notice.message
    state.changed()
    assert not state.autosave.isActive()
    state.save_now()
    assert state.save_last() is None
    assert disk.written == [] and said == []
    assert json.loads(path.read_text())["last_job"]["prompt"] == "my careful prompt"


def test_a_damaged_file_is_kept_aside_and_said(qtbot, path):
    path.write_text("{ damaged")
    state, _said = _state(path, ["new"])
    assert state.writable and [n.kind for n in state.notices] == ["notice"]
    assert "could not be read" in state.notices[0].message
    (kept,) = path.parent.glob("settings.json.damaged-*")
    assert kept.read_text() == "{ damaged" and kept.name in state.notices[0].message
    assert state.save_last() is None and json.loads(path.read_text())["last_job"]["prompt"] == "new"


def test_settings_given_are_used_and_the_file_is_not_read(qtbot, path):
    path.write_text("{ damaged")
    given = Settings(preview_every=5)
    state = SettingsState(path, given)
    assert state.settings is given and state.notices == [] and path.read_text() == "{ damaged"
    assert state.save_last() is None and json.loads(path.read_text())["preview_every"] == 5  # saved as they are
