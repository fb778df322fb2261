"""Add LoRA… read each file's safetensors header on the window's thread: a file on a slow or hung network share
froze the window meanwhile (a second on a slowed file). The header is now read on a thread of its own, the row
saying it is being read meanwhile, and a Generate click meanwhile waits for it, as it waits for the copy check."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from app.held_clicks import CHECKING
from gpu.paths import resources_dir
from tests.app.gui import held, hung_share

SHIPPED = resources_dir() / "loras" / "monochrome-style.safetensors"


def _slow_headers(monkeypatch) -> tuple[threading.Event, list[str]]:
    """``header_summary`` held till the event is set, as on a hung network share (``held``); the calls made on the
    window's thread (not held there) noted in the list."""
    import gpu.lora.metadata

    release, on_gui = threading.Event(), []
    monkeypatch.setattr(gpu.lora.metadata, "header_summary", held(gpu.lora.metadata.header_summary, release, on_gui))
    return release, on_gui


def test_add_lora_reads_the_header_off_the_windows_thread_and_a_click_meanwhile_waits(qtbot, window, tmp_path,
                                                                                       monkeypatch):  # fmt: skip
    controller = window.controller
    style = tmp_path / "style.safetensors"
    shutil.copy(SHIPPED, style)
    release, on_gui = _slow_headers(monkeypatch)
    controller.add_loras([style])  # "Add LoRA…"
    try:
        assert on_gui == []  # was: read here, the window frozen till it ended
        (row,) = [e for e in controller.loras.entries if e.path == style]
        assert row.enabled and row.info == "Reading the file…"
        assert window.lora_panel.row_for("style").info.text() == "Reading the file…"
        window.prompt_panel.prompt_edit.setPlainText("a red circle on a blue background")
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
        assert controller.queue.idle and controller.job.status == CHECKING  # the click waits for the read
    finally:
        release.set()
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as finished:
        pass
    assert row.info.startswith("diffusers/PEFT") and on_gui == []
    [made] = finished.args[0]
    assert [lora["file"] for lora in made.settings["lora_list"]] == ["style.safetensors"]


def test_a_file_added_that_is_no_lora_is_refused_once_read_as_before(qtbot, window, tmp_path, monkeypatch):
    """A file that is no LoRA is still refused, named with why, once its header is read; its row goes."""
    controller = window.controller
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\0garbage" * 100)
    release, on_gui = _slow_headers(monkeypatch)
    errors: list = []
    controller.error.connect(errors.append)
    release.set()
    controller.add_loras([broken])
    qtbot.waitUntil(lambda: bool(errors), timeout=30000)
    assert errors[0].message.startswith(f"{broken} is not a LoRA that can be used: not a safetensors file")
    assert errors[0].hint.endswith("The LoRA list is otherwise unchanged.")
    assert all(e.path != broken for e in controller.loras.entries)
    assert on_gui == []


def test_add_lora_of_a_file_on_a_hung_share_looks_up_its_folder_off_the_windows_thread(qtbot, window, tmp_path,
                                                                                       monkeypatch):  # fmt: skip
    """The file's folder was resolved (``named_path``) on the window's thread, as it was picked and again as its row
    was added: on a hung network share the window froze until it answered. Now on the read's thread too; the row
    is named by its folder resolved all the same."""
    loras = window.controller.loras
    share = tmp_path / "share"
    share.mkdir()
    style = Path(shutil.copy(SHIPPED, share / "style.safetensors"))
    release, on_gui = threading.Event(), []
    hung_share(monkeypatch, share, release, on_gui)
    try:
        window.controller.add_loras([style])  # "Add LoRA…"
        assert on_gui == []  # was: ["resolve"], the window frozen until the share answered
        (row,) = [e for e in loras.entries if e.reading]
        assert row.enabled and row.info == "Reading the file…"
    finally:
        release.set()
    qtbot.waitUntil(lambda: not loras.adds.busy, timeout=30000)
    assert on_gui == [] and not row.reading and row.info.startswith("diffusers/PEFT")
    assert row.path == style and row.resolved == style.resolve()


def _adds_held(monkeypatch) -> threading.Event:
    """``header_summary`` held on the thread of "Add LoRA…" alone (``LoraAdds``) till the event is set; a folder's
    scan reads its files meanwhile."""
    import gpu.lora.metadata

    release, real = threading.Event(), gpu.lora.metadata.header_summary

    def summary(path):
        if threading.current_thread().name == "LoRA add":
            release.wait(60)
        return real(path)

    monkeypatch.setattr(gpu.lora.metadata, "header_summary", summary)
    return release


@pytest.mark.parametrize("other", ["link", "folder"])
def test_a_pick_giving_way_to_the_row_of_its_file_keeps_what_the_user_set_meanwhile(qtbot, window, tmp_path,
                                                                                    monkeypatch, other):  # fmt: skip
    """A file picked with "Add LoRA…" is listed by another row once read: the same file through a link, or added
    by "Add folder…" while the pick was read. The pick's row gives way to that one, which took none of what the
    user set on the pick's row meanwhile: its strength, on or off. Both are the other row's now."""
    loras = window.controller.loras
    folder = tmp_path / "loras"
    folder.mkdir()
    style = Path(shutil.copy(SHIPPED, folder / "style.safetensors"))
    picked = style
    if other == "link":
        (listed,) = loras.add_files([style], enabled=False).added
        picked = tmp_path / "link.safetensors"
        picked.symlink_to(style)
    release = _adds_held(monkeypatch)
    try:
        window.controller.add_loras([picked])
        (pick,) = [e for e in loras.entries if e.reading]
        loras.set_strength(pick, 0.6)  # the user, while it is read
        loras.set_enabled(pick, other == "link")  # switched off again, where the folder's row is off
        if other == "folder":
            window.controller.add_lora_folder(folder)
            qtbot.waitUntil(lambda: any(e.path == style and not e.reading for e in loras.entries), timeout=30000)
            (listed,) = [e for e in loras.entries if e.path == style and not e.reading]
    finally:
        release.set()
    qtbot.waitUntil(lambda: not loras.adds.busy, timeout=30000)
    assert [e for e in loras.entries if e.resolved == style.resolve()] == [listed]  # the pick's row gone
    # was: the other row at strength 1, switched on
    assert (listed.strength, listed.enabled) == (0.6, other == "link")
    assert window.lora_panel.row_for("style").value.text() == "0.60"
