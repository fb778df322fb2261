"""An earlier version's settings kept the example LoRA by its absolute path only; this version maps such a row to
the example where this app has it. The mapping ran for every row without an ``example`` name, and this version
writes ``"example": ""`` for every other row: a user's own LoRA whose file was missing at a start (a drive
unplugged) and whose path ran through a ``resources/loras`` folder with the example's file name was taken for the
example: dropped as a duplicate of the example's row, or, alone, turned into the example at the user's strength,
its path overwritten at the next save. And an earlier version's row of the example in its own install, kept beside
this one, stayed tied to that folder beside this app's example row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from app.data_dir import resolve_data_dir
from gpu.paths import resources_dir
from tests.app.gui import window_without_engine

NAME = "monochrome-style.safetensors"


def _start(qtbot, data_root: Path, rows: list[dict]) -> tuple[list[tuple], list[tuple]]:
    """The panel's rows (path, on, strength, trigger words) after a start with ``rows`` saved, and the rows saved
    when the window closes (path, example, on, strength)."""
    (data_root / "settings.json").write_text(json.dumps({"version": 2, "loras": rows}))
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    shown = [(e.path, e.enabled, e.strength, e.trigger_words) for e in window.controller.loras.entries]
    window.close()
    saved = json.loads((data_root / "settings.json").read_text())["loras"]
    return shown, [(Path(s["path"]), s["example"], s["enabled"], s["strength"]) for s in saved]


def test_a_users_own_lora_on_an_unplugged_drive_keeps_its_row(qtbot, data_root, tmp_path):
    shipped = resources_dir() / "loras" / NAME
    own = tmp_path / "usb" / "my-project" / "resources" / "loras" / NAME  # the drive is not plugged in
    mine = {"path": str(own), "enabled": True, "strength": 0.3, "trigger_words": "my words", "example": ""}
    example = {"path": str(shipped), "enabled": False, "strength": 1.0, "example": NAME}
    earlier = {k: v for k, v in mine.items() if k != "example"}  # as an earlier version saved it
    # beside the example's row (was: dropped as a duplicate), alone (was: turned into the example), and saved by an
    # earlier version beside the example's row (taken for the example, which has its row: merged into it, lost)
    for rows in ([example, mine], [mine], [example, earlier]):
        shown, saved = _start(qtbot, data_root, rows)
        assert (own, False, 0.3, "my words") in shown  # off: its file is missing
        assert (own, "", False, 0.3) in saved
        assert [s for s in saved if s[0] == shipped] == [(shipped, NAME, False, 1.0)]  # the example's row, as it was


def test_an_earlier_versions_row_of_its_installs_example_is_this_apps_example(qtbot, data_root, tmp_path):
    shipped = resources_dir() / "loras" / NAME
    old = tmp_path / "nibble-0.1.0" / "_internal" / "resources" / "loras" / NAME  # the earlier version, kept
    old.parent.mkdir(parents=True)
    shutil.copy(shipped, old)
    shown, saved = _start(qtbot, data_root, [{"path": str(old), "enabled": True, "strength": 0.6}])
    assert [s[:3] for s in shown] == [(shipped, True, 0.6)]  # was: the old install's file, and the example off
    assert saved == [(shipped, NAME, True, 0.6)]


def test_an_earlier_versions_row_of_another_file_of_the_examples_name_stays(qtbot, data_root, tmp_path):
    # a file of the user's own, where an earlier version kept it, under resources/loras with the example's name
    own = tmp_path / "my-project" / "resources" / "loras" / NAME
    own.parent.mkdir(parents=True)
    own.write_bytes(b"not the example")
    shown, saved = _start(qtbot, data_root, [{"path": str(own), "enabled": True, "strength": 0.3}])
    assert (own, "", False, 0.3) in saved  # off: no LoRA a job could use, but its row, at the user's path
    assert [s for s in saved if s[0] != own] == [(resources_dir() / "loras" / NAME, NAME, False, 1.0)]


def test_the_previous_versions_unmapped_row_of_an_earlier_installs_example_is_this_apps_example(
        qtbot, data_root, tmp_path):  # fmt: skip
    """The previous version wrote ``"example": ""`` for an earlier install's example it had not mapped (its file
    there, a copy of the example): that row stayed tied to the old install, and was switched off once the old
    install was deleted. A copy of the example, or a missing file in an app's folder, is the example now."""
    shipped = resources_dir() / "loras" / NAME
    old = tmp_path / "nibble-0.1.0" / "resources" / "loras" / NAME
    old.parent.mkdir(parents=True)
    shutil.copy(shipped, old)
    row = {"path": str(old), "enabled": True, "strength": 0.6, "example": ""}
    shown, saved = _start(qtbot, data_root, [row])  # the old install still there
    assert [s[:3] for s in shown] == [(shipped, True, 0.6)] and saved == [(shipped, NAME, True, 0.6)]
    shutil.rmtree(tmp_path / "nibble-0.1.0")
    for folder in ("nibble-0.1.0", "Nibble Studio/_internal"):  # deleted since
        row["path"] = str(tmp_path / folder / "resources" / "loras" / NAME)
        shown, saved = _start(qtbot, data_root, [row])
        assert [s[:3] for s in shown] == [(shipped, True, 0.6)] and saved == [(shipped, NAME, True, 0.6)]
