"""Remove in the Models panel said whether the model's file is still there ("(… itself is not deleted)") by a stat
of it on the window's thread: a model on a network share that hangs froze the window when the removal ended. The
file is looked at on a thread of its own now, and the same sentence said once it answers.

A hung share is simulated as ``tests.app.gui.held`` simulates one: the stat of the model's file waits, on a
thread, till the test sets an event; on the window's thread it is not held but noted (a freeze there)."""

from __future__ import annotations

import os
import threading

from tests.app.gui import added_copy, held

WAIT_MS = 60_000  # generous: CI runs the suite on 2 cores in parallel


def test_the_removed_models_file_is_looked_at_off_the_windows_thread(qtbot, window, tmp_path, monkeypatch):
    controller = window.controller
    mine = tmp_path / "mine.safetensors"
    assert added_copy(qtbot, controller, mine) == "mine"
    said: list[str] = []
    controller.status_message.connect(said.append)
    release, on_gui = threading.Event(), []
    stat, held_stat = os.stat, held(os.stat, release, on_gui)

    def hang(_entries) -> None:
        """The share stops answering once the engine has taken the model off (its own look at the file waits on
        the engine's thread, where it freezes nothing), as the list comes to the window."""
        monkeypatch.setattr(os, "stat", lambda path, *a, **k: (held_stat if os.fspath(path) == os.fspath(mine)
                                                                  else stat)(path, *a, **k))  # fmt: skip

    controller.library_changed.connect(hang)
    try:
        with qtbot.waitSignal(controller.library_changed, timeout=WAIT_MS):
            controller.remove_model("mine")
        qtbot.wait(300)
        assert on_gui == []  # was: ["stat"], the window frozen till the share answered
        assert not any("was removed" in s for s in said)  # said once the file answers
    finally:
        release.set()
    qtbot.waitUntil(lambda: any("was removed" in s for s in said), timeout=WAIT_MS)
    assert [s for s in said if "was removed" in s] == [
        f"The model 'mine' was removed from the library ({mine} itself is not deleted); 'demo' is selected."]
    assert on_gui == []
