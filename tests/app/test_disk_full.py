"""A full disk while a job saves its results: the job ends, the user is told why, nothing written is lost."""

from __future__ import annotations

import errno
import os
from types import SimpleNamespace

import pytest

from app.data_dir import resolve_data_dir
from app.engine_errors import classify
from app.engine_worker import EngineWorker
from tests.app.gui import open_window

# Longer than a database page (4 KiB): its row needs a new page, which a full database cannot get.
LONG_PROMPT = "a lighthouse on a rocky coast at dusk, " * 120


def test_database_full_after_the_png_is_written(qtbot, data_root, window):
    controller = window.controller
    controller.prompt.prompt = LONG_PROMPT
    db = controller.store._db
    with qtbot.waitSignal(controller.error, timeout=120000) as blocker:
        controller.generate()  # the prompt history row is written now, before the database fills up
        # A real SQLITE_FULL ("database or disk is full") for anything that needs one more page, as on a full
        # disk; the job's result arrives only once the event loop runs again.
        db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    error = blocker.args[0]
    assert error.kind == "user"
    assert "disk is full" in error.message and str(controller.store.path) in error.message
    qtbot.waitUntil(lambda: window.error_dialog is not None and window.error_dialog.isVisible())
    assert "disk is full" in window.error_dialog.text()
    # Said as the image is saved, while its job still ends (a batch's next images would still be made).
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=60000)
    assert not window.prompt_panel.cancel_button.isEnabled()
    assert "not added to the gallery" in controller.job.status
    assert controller.gallery.rowCount() == 0
    pngs = list((data_root / "images").rglob("*.png"))
    assert len(pngs) == 1  # written before the database failed, and kept
    window.error_dialog.accept()

    # Space is back: the app keeps working, and the next start imports the image that missed its row.
    db.execute("PRAGMA max_page_count = 1073741823")
    controller.prompt.prompt = "a small prompt"
    with qtbot.waitSignal(controller.job_finished, timeout=120000):
        controller.generate()
    assert controller.gallery.rowCount() == 1
    window.close()
    again = open_window(qtbot, data_root)
    assert again.controller.reconcile_report.imported == 1
    assert {again.controller.gallery.record(r).prompt for r in range(2)} == {LONG_PROMPT, "a small prompt"}


class _DiskFullImage:
    """Stands in for the generated PIL image; its bytes go to /dev/full, so the kernel's own ENOSPC fails it."""

    def save(self, fp, **_kwargs) -> None:
        with open("/dev/full", "wb", buffering=0) as full:
            full.write(b"\x89PNG")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_png_write_on_a_full_disk_is_a_plain_error(qapp, data_root):
    data = resolve_data_dir(data_root)
    worker = EngineWorker(data)
    with pytest.raises(OSError) as raised:
        worker._save(SimpleNamespace(image=_DiskFullImage(), settings={"seed": 5, "prompt": "x"}), 0)
    assert raised.value.errno == errno.ENOSPC
    error = classify(raised.value)
    assert error.kind == "user", error
    assert error.message.startswith("Not enough disk space to save ")
    path = error.message.removeprefix("Not enough disk space to save ").removesuffix(".")
    assert path.endswith("-5-0.png") and path.startswith(str(data.images))  # the PNG, not its temp file
    assert not list(data.images.rglob("*"))[1:]  # only the day folder: no PNG, no leftover temp file
