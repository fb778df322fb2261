"""Library models that cannot be used, though their file is where it was: one the system will not let the app look at
(a folder the user may not enter, a stale NFS handle) stopped the whole start-up ("Something went wrong:
PermissionError", no models, "Starting the engine…" for ever, every Generate failing); one whose file is there but
unusable (a newer format, a copy cut short) was listed "(missing)", and the user told to put the file back, the
engine's remedy dropped."""

from __future__ import annotations

import errno
import json
import shutil

from PySide6.QtCore import Qt

from gpu.paths import resources_dir
from tests.app.gui import added_copy, generate_one, open_window
from tests.test_base_fit import with_recorded_base
from tests.test_library_unusable import unreachable

DEMO_INT4 = resources_dir() / "models" / "demo-int4.safetensors"


def _item(window, name: str):
    panel = window.model_panel
    return next(panel.list.item(r) for r in range(panel.list.count())
                if panel.list.item(r).data(Qt.ItemDataRole.UserRole) == name)


def _click(qtbot, window, name: str) -> None:
    panel = window.model_panel
    qtbot.mouseClick(panel.list.viewport(), Qt.MouseButton.LeftButton,
                     pos=panel.list.visualItemRect(_item(window, name)).center())


def test_a_model_the_app_may_not_look_at_leaves_the_others_usable(qtbot, data_root, tmp_path, monkeypatch):
    locked = tmp_path / "locked" / "mine.safetensors"
    locked.parent.mkdir()
    shutil.copyfile(DEMO_INT4, locked)
    # a valid-checksum file whose header has base_model.defaults "x": its ValueError stopped the start-up as well
    odd = with_recorded_base(tmp_path / "odd.safetensors", {"defaults": "x"})
    (data_root / "library.json").write_text(json.dumps({"version": 1, "models": [
        {"name": "mine", "path": str(locked)}, {"name": "odd", "path": str(odd)}]}))
    unreachable(monkeypatch, locked.parent, errno.EACCES)
    window = open_window(qtbot, data_root)
    controller, panel = window.controller, window.model_panel
    errors = []
    controller.error.connect(errors.append)
    assert [e.name for e in controller.entries] == ["demo", "demo-int4", "mine", "odd"]
    assert controller.prompt.model == "demo" and "Model: demo" in panel.details.text()
    item = _item(window, "mine")
    assert item.text() == "mine  (cannot be used)"
    assert f"{locked}: cannot be read: Permission denied" in item.toolTip()
    assert _item(window, "odd").text() == "odd  (cannot be used)"
    assert "base_model is invalid (defaults is \"x\", not a JSON object or null); re-quantize the model, or copy or " \
        "download the file again" in _item(window, "odd").toolTip()  # fmt: skip

    _click(qtbot, window, "mine")  # looked at again, then refused with why and what to do; the model in use stays
    qtbot.waitUntil(lambda: bool(errors), timeout=60000)
    assert f"{locked}: cannot be read: Permission denied" in errors[-1].message
    assert "may read the file and the folders it is in" in errors[-1].hint
    assert "Put the file back" not in errors[-1].hint
    assert controller.prompt.model == "demo" and panel.details.text().startswith("mine: cannot be used.")

    assert generate_one(qtbot, controller).settings["model"] == "demo"


def test_a_model_file_there_but_unusable_is_not_said_missing(qtbot, window, tmp_path):
    controller, panel = window.controller, window.model_panel
    errors = []
    controller.error.connect(errors.append)
    mine = tmp_path / "mine.safetensors"
    added_copy(qtbot, controller, mine)
    # The engine's answer on 'demo' waited for (its facts were 'demo''s already, the add's read of 'mine' not yet
    # answered): that read, made before this one, came at any time. After the cut below (2 loaded cores), 'mine'
    # was a pick refused at its first reading; the whole file read and answered after the pick of 'mine', it was a
    # model read, gone in use (the list on 'demo' with its facts, "selected instead"). The test expected the
    # latter, and waited for "Model: demo" in vain in the former.
    with qtbot.waitSignal(controller.model_info_changed, timeout=60000):
        controller.select_model("demo")

    cut = tmp_path / "cut"
    cut.write_bytes(DEMO_INT4.read_bytes()[:-1000])
    cut.replace(mine)  # a copy cut short where the file was, while the list still has it usable
    with qtbot.waitSignal(controller.model_info_changed, timeout=60000):  # 'demo' read again, in use again
        _click(qtbot, window, "mine")  # picked, and refused as the engine reads it
        qtbot.waitUntil(lambda: bool(errors), timeout=60000)
    assert "'mine'" in errors[-1].message and "mine.safetensors: truncated" in errors[-1].message
    assert errors[-1].message.endswith(" 'demo' stays selected.")
    assert errors[-1].hint.startswith("Copy or download the file again")  # the engine's remedy
    assert "remove 'mine' from the Models list" in errors[-1].hint and "Put the file back" not in errors[-1].hint
    assert _item(window, "mine").text() == "mine  (cannot be used)"
    assert "(copy or download the file again)" in _item(window, "mine").toolTip()
    # The refused pick stays in view with why (app/README: "A pick refused … stays highlighted"), and nothing is kept
    # in place of 'demo': never opened, 'mine' is not the model the user worked with
    assert controller.prompt.model == "demo" and controller.library.kept_fields() == {}
    assert panel.list.currentItem().text() == "mine  (cannot be used)" and panel.remove_button.isEnabled()
    assert panel.details.text() == "mine: cannot be used. New images use demo. Press Enter to look at its file again."
    _click(qtbot, window, "mine")  # picked again: looked at again, and refused
    qtbot.waitUntil(lambda: len(errors) == 2, timeout=60000)
    assert errors[-1].hint == errors[0].hint  # the same remedy
    assert panel.details.text() == "mine: cannot be used. New images use demo. Press Enter to look at its file again."

    mine.unlink()  # gone: that one is missing, and put back is the remedy
    controller.select_model("demo")
    _click(qtbot, window, "mine")
    qtbot.waitUntil(lambda: len(errors) == 3, timeout=60000)
    assert errors[-1].hint.startswith("Put the file back where it was")
    assert _item(window, "mine").text() == "mine  (missing)"
    assert panel.details.text() == "mine: missing. New images use demo. Press Enter to look at its file again."
