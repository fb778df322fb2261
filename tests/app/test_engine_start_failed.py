"""The engine cannot start (a torch that cannot be loaded: a CUDA library or a Windows DLL missing). The window said
nothing and showed "Starting the engine…" for good, and each Generate queued a job that never ran: wording the error
imported torch again, raised in the error handler, and ``failed`` was never sent. Now the start ends with a dialog
naming the error and the remedy, the status line and the Models panel say it, and a Generate says it again."""

from __future__ import annotations

import sys

from app.data_dir import resolve_data_dir
from tests.app.gui import TEST_SIZE, TEST_STEPS, window_without_engine
from tests.test_torch_unusable import CUDNN_MISSING, torch_that_cannot_load


def test_a_torch_that_cannot_be_loaded_ends_the_start_with_why_and_what_to_do(qtbot, data_root, tmp_path,
                                                                              monkeypatch):  # fmt: skip
    window = window_without_engine(qtbot, resolve_data_dir(data_root))
    controller = window.controller
    errors = []
    controller.error.connect(errors.append)
    # As in a process whose torch never loaded: no engine module that imports it is loaded either
    monkeypatch.syspath_prepend(str(torch_that_cannot_load(tmp_path / "broken")))
    for name in ("torch", "gpu.out_of_memory", "gpu.generation.service"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    window.start()
    qtbot.waitUntil(lambda: bool(errors), timeout=60000)
    assert (errors[0].kind, errors[0].message) == ("user", f"PyTorch cannot be loaded: {CUDNN_MISSING}")
    assert "reinstall PyTorch" in errors[0].hint and "README.md's Set-up" in errors[0].hint
    assert controller.job.status == "The engine could not start"
    assert window.model_panel.details.text() == f"The engine could not start: {errors[0].text}"

    controller.prompt.prompt = "a red circle"
    controller.prompt.steps, controller.prompt.width, controller.prompt.height = TEST_STEPS, TEST_SIZE, TEST_SIZE
    assert controller.generate() is not None
    qtbot.waitUntil(lambda: len(errors) == 2, timeout=60000)  # the job ends, and says why, instead of waiting
    assert errors[1] == errors[0] and controller.job.status == "Failed"
