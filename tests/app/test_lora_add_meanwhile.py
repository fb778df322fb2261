"""What the user does while "Add LoRA…" reads a file's header on its thread (``LoraAdds``: a file on a slow or hung
network share): the file added again, its row switched off or removed, a Generate clicked. A file is held by
``_hung``: its header is read once the test lets it go, as a share that answers late."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog

from app.held_clicks import CHECKING
from gpu.paths import resources_dir

SHIPPED = resources_dir() / "loras" / "monochrome-style.safetensors"
PROMPT = "a red circle on a blue background"


def _hung(monkeypatch, *names: str) -> dict[str, threading.Event]:
    """The header of each file named in ``names`` read on a thread only once its event is set (a hung network
    share); the other files' at once."""
    import gpu.lora.metadata

    real, releases = gpu.lora.metadata.header_summary, {name: threading.Event() for name in names}

    def header_summary(path):
        release = releases.get(Path(path).name)
        if release is not None and threading.current_thread() is not threading.main_thread():
            release.wait(60)
        return real(path)

    monkeypatch.setattr(gpu.lora.metadata, "header_summary", header_summary)
    return releases


def _pick(qtbot, window, monkeypatch, paths: list[Path]) -> None:
    """The "Add LoRA…" button clicked, ``paths`` picked in its dialog."""
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(p) for p in paths], ""))
    qtbot.mouseClick(window.lora_panel.add_button, Qt.MouseButton.LeftButton)


def _copies(tmp_path: Path, *names: str) -> list[Path]:
    """Copies of the shipped example LoRA, one per name."""
    paths = [tmp_path / f"{name}.safetensors" for name in names]
    for path in paths:
        shutil.copy(SHIPPED, path)
    return paths


def test_a_file_added_again_while_it_is_read_keeps_its_one_row_as_set(qtbot, bare_window, tmp_path, monkeypatch):
    """A file picked again while it is read (the pick seemed to do nothing), an earlier file of its first pick
    hung: its second read ended first and added a second row for it; the first read's end then took out the row the
    user had set meanwhile (strength, on or off) and switched on the new one, at 1.0, "already in the LoRA panel"."""
    window = bare_window
    loras = window.controller.loras
    hung, style = _copies(tmp_path, "hung", "style")
    release = _hung(monkeypatch, "hung.safetensors")["hung.safetensors"]
    try:
        _pick(qtbot, window, monkeypatch, [hung, style])  # the first file hangs, the second waits behind it
        row = window.lora_panel.row_for("style")
        assert row.info.text() == "Reading the file…"
        row.slider.setValue(50)
        _pick(qtbot, window, monkeypatch, [style])  # picked again: read at once
        qtbot.waitUntil(lambda: any(not e.reading for e in loras.entries if e.path == style), timeout=30000)
        (entry,) = [e for e in loras.entries if e.path == style]  # was: two rows
        assert entry.strength == 0.5 and entry.enabled and entry.info.startswith("diffusers/PEFT")
    finally:
        release.set()
    qtbot.waitUntil(lambda: not loras.adds.busy, timeout=30000)
    (after,) = [e for e in loras.entries if e.path == style]
    assert after is entry and after.strength == 0.5 and after.enabled  # was: the user's row gone, a new one at 1.0
    assert window.lora_panel.row_for("style").slider.value() == 50



def _lora_list(finished) -> list:
    """The LoRAs the one image of a ``job_finished`` was made with."""
    [made] = finished.args[0]
    return made.settings.get("lora_list", [])


def test_a_generate_waits_only_for_files_read_whose_row_is_on(qtbot, window, tmp_path, monkeypatch):
    """A file on a hung share added, then its row removed, or switched off: a Generate click waited for its read
    all the same ("Checking LoRA files…", for as long as the share hung), though no job would take it."""
    controller, panel = window.controller, window.lora_panel
    (hung,) = _copies(tmp_path, "hung")
    release = _hung(monkeypatch, "hung.safetensors")["hung.safetensors"]
    window.prompt_panel.prompt_edit.setPlainText(PROMPT)
    generate = window.prompt_panel.generate_button
    try:
        _pick(qtbot, window, monkeypatch, [hung])
        qtbot.mouseClick(panel.row_for("hung").remove_button, Qt.MouseButton.LeftButton)
        assert all(e.path != hung for e in controller.loras.entries)
        with qtbot.waitSignal(controller.job_finished, timeout=120000) as finished:
            qtbot.mouseClick(generate, Qt.MouseButton.LeftButton)
            assert not controller.queue.idle  # was: held till the share answered
        assert _lora_list(finished) == []

        _pick(qtbot, window, monkeypatch, [hung])  # again, and on: a click waits for it
        qtbot.mouseClick(generate, Qt.MouseButton.LeftButton)
        assert controller.queue.idle and controller.job.status == CHECKING
        with qtbot.waitSignal(controller.job_finished, timeout=120000) as finished:
            panel.row_for("hung").enabled.setChecked(False)  # switched off: the click waits no more
            qtbot.waitUntil(lambda: not controller.queue.idle, timeout=10000)  # was: held till the share answered
        assert _lora_list(finished) == [] and panel.row_for("hung").info.text() == "Reading the file…"

        with qtbot.waitSignal(controller.job_finished, timeout=120000) as finished:  # off before the click
            qtbot.mouseClick(generate, Qt.MouseButton.LeftButton)
            assert not controller.queue.idle
        assert _lora_list(finished) == []
    finally:
        release.set()
    qtbot.waitUntil(lambda: not controller.loras.adds.busy, timeout=30000)
    assert not panel.row_for("hung").enabled.isChecked()  # as the user left it, read


def test_a_click_goes_once_the_files_on_are_read_while_one_switched_off_still_hangs(qtbot, window, tmp_path,
                                                                                   monkeypatch):  # fmt: skip
    """A click held for a file switched on goes once it is read, a file switched off still hanging on its share:
    it waited for that one too."""
    controller = window.controller
    hung, slow = _copies(tmp_path, "hung", "slow")
    releases = _hung(monkeypatch, "hung.safetensors", "slow.safetensors")
    window.prompt_panel.prompt_edit.setPlainText(PROMPT)
    try:
        _pick(qtbot, window, monkeypatch, [hung])
        window.lora_panel.row_for("hung").enabled.setChecked(False)
        _pick(qtbot, window, monkeypatch, [slow])
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
        assert controller.queue.idle and controller.job.status == CHECKING
        with qtbot.waitSignal(controller.job_finished, timeout=120000) as finished:
            releases["slow.safetensors"].set()
            qtbot.waitUntil(lambda: not controller.queue.idle, timeout=10000)  # was: held till "hung" was read
        assert [lora["file"] for lora in _lora_list(finished)] == ["slow.safetensors"]
    finally:
        for release in releases.values():
            release.set()
    qtbot.waitUntil(lambda: not controller.loras.adds.busy, timeout=30000)
