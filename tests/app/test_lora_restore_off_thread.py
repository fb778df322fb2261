"""Restoring an image's LoRAs (a drop, "Reuse settings") read every LoRA file it touched on the window's thread: the
header of a file it named that was not listed (added), those of the rows switched on, again, and whether each row of
the image's file names was there: a slowed read of 0.5 s froze the window 2 s for an image of three LoRAs, and a hung
network share as long as it hung. They are now read on a thread of their own; a Generate click meanwhile waits for
them, a later drop drops them, and the user's own change of the panel meanwhile wins."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from app.held_clicks import CHECKING
from gpu.generation.png_metadata import write_png
from gpu.paths import resources_dir
from tests.app.gui import drop_file, held, hung_share, loras_restored

SHIPPED = resources_dir() / "loras" / "monochrome-style.safetensors"


def _our_png(path: Path, lora_list: list[dict]) -> Path:
    """A PNG with our settings, made with the LoRAs of ``lora_list``."""
    write_png(path, Image.new("RGB", (16, 16)),
              {"prompt": "a cat", "model": "demo", "version": "NibbleStudio 0.9", "lora_list": lora_list})  # fmt: skip
    return path


def _slowed_files(monkeypatch) -> tuple[threading.Event, list[str]]:
    """LoRA headers (``header_summary``) held till the event is set, as on a hung network share (``held``); each look
    at a LoRA file on the window's thread (a header read, or ``Path.is_file``: not held there) noted in the list."""
    import gpu.lora.metadata

    release, on_gui = threading.Event(), []
    monkeypatch.setattr(gpu.lora.metadata, "header_summary", held(gpu.lora.metadata.header_summary, release, on_gui))
    is_file = Path.is_file

    def noted_is_file(path: Path) -> bool:
        if path.suffix == ".safetensors" and threading.current_thread() is threading.main_thread():
            on_gui.append(f"is_file {path.name}")
        return is_file(path)

    monkeypatch.setattr(Path, "is_file", noted_is_file)
    return release, on_gui


def _three_loras(folder: Path) -> list[Path]:
    """Three LoRA files: a, b and c."""
    return [Path(shutil.copy(SHIPPED, folder / f"{name}.safetensors")) for name in "abc"]


def test_a_restore_reads_the_lora_files_off_the_windows_thread(qtbot, bare_window, tmp_path, monkeypatch):
    """An image of three LoRAs, two listed (one on the panel's list twice by name: several rows of a name), one not:
    nothing of their files is looked at on the window's thread, and once read the rows are switched on as before."""
    controller = bare_window.controller
    a, b, c = _three_loras(tmp_path)
    (tmp_path / "other").mkdir()
    a_twin = Path(shutil.copy(SHIPPED, tmp_path / "other" / "a.safetensors"))
    row_a, row_a_twin, row_b = controller.loras.add_files([a, a_twin, b], enabled=False).added
    png = _our_png(tmp_path / "made.png", [{"name": "a", "file": str(a), "strength": 0.7},
                                           {"name": "b", "file": str(b), "strength": 0.5},
                                           {"name": "c", "file": str(c), "strength": 0.3}])  # fmt: skip
    release, on_gui = _slowed_files(monkeypatch)
    try:
        drop_file(bare_window.prompt_panel, png)
        assert on_gui == []  # was: every header and is_file here, the window frozen meanwhile
        assert controller.loras.reading  # a Generate click waits for them
    finally:
        release.set()
    loras_restored(qtbot, controller.loras)
    assert on_gui == []
    (row_c,) = [e for e in controller.loras.entries if e.path == c]
    assert controller.loras.requests() == [(str(a), 0.7), (str(b), 0.5), (str(c), 0.3)]
    assert not row_a_twin.enabled and row_a.enabled and row_b.enabled and row_c.enabled


def test_a_restore_adding_a_file_on_a_hung_share_looks_up_its_folder_off_the_windows_thread(qtbot, bare_window,
                                                                                             tmp_path,
                                                                                             monkeypatch):  # fmt: skip
    """An image's LoRA file not listed is added once read: its folder was resolved (``named_path``) then, on the
    window's thread, which a hung network share froze. Now on the restore's thread, with the rest of the file."""
    controller = bare_window.controller
    share = tmp_path / "share"
    share.mkdir()
    style = Path(shutil.copy(SHIPPED, share / "style.safetensors"))
    png = _our_png(tmp_path / "made.png", [{"name": "style", "file": str(style), "strength": 0.7}])
    release, on_gui = threading.Event(), []
    hung_share(monkeypatch, share, release, on_gui)
    try:
        drop_file(bare_window.prompt_panel, png)
        assert on_gui == [] and controller.loras.reading
    finally:
        release.set()
    loras_restored(qtbot, controller.loras)
    assert on_gui == []  # was: ["resolve"], once the file was read
    assert controller.loras.requests() == [(str(style), 0.7)]
    assert [e.path for e in controller.loras.entries if e.enabled] == [style]


@pytest.mark.parametrize("old_gone", [False, True])
def test_a_click_right_after_a_drop_waits_for_the_images_loras(qtbot, window, tmp_path, monkeypatch, old_gone):
    """Generate clicked while the dropped image's LoRA files are read: the job took the LoRAs on before the drop. It
    now waits ("Checking LoRA files…") and runs with the image's. ``old_gone``: the LoRA on before the drop (not the
    image's) is one no job could use, its file deleted: the click was refused for it, though the image switches it
    off."""
    controller = window.controller
    shown: list = []
    controller.error.connect(shown.append)
    a, b, _c = _three_loras(tmp_path)
    old, style = controller.loras.add_files([a, b], enabled=False).added
    controller.loras.set_enabled(old, True)
    if old_gone:
        a.unlink()
    png = _our_png(tmp_path / "made.png", [{"name": "b", "file": str(b), "strength": 0.6}])
    release, on_gui = _slowed_files(monkeypatch)
    try:
        drop_file(window.prompt_panel, png)
        window.prompt_panel.prompt_edit.setPlainText("a red circle on a blue background")
        qtbot.mouseClick(window.prompt_panel.generate_button, Qt.MouseButton.LeftButton)
        # was: queued with 'a' at once; refused, naming 'a', where its file was gone
        assert shown == [] and controller.queue.idle and controller.job.status == CHECKING
    finally:
        release.set()
    with qtbot.waitSignal(controller.job_finished, timeout=120000) as finished:
        pass
    [made] = finished.args[0]
    assert [(lora["file"], lora["strength"]) for lora in made.settings["lora_list"]] == [("b.safetensors", 0.6)]
    assert style.enabled and not old.enabled and on_gui == []


def test_a_later_drop_drops_the_earlier_and_the_users_change_meanwhile_wins(qtbot, bare_window, tmp_path,
                                                                            monkeypatch):  # fmt: skip
    """Two images dropped while the first one's files are read: the second's LoRAs are switched on, nothing of the
    first said. A row the user switches on while an image's files are read stays as they set it, and that the
    image's LoRAs were not switched on is said."""
    controller = bare_window.controller
    shown: list = []
    controller.error.connect(shown.append)
    a, b, c = _three_loras(tmp_path)
    row_a, row_b, row_c = controller.loras.add_files([a, b, c], enabled=False).added
    gone = str(tmp_path / "gone.safetensors")
    first = _our_png(tmp_path / "first.png", [{"name": "a", "file": str(a), "strength": 0.7},
                                              {"name": "gone", "file": gone}])  # fmt: skip
    second = _our_png(tmp_path / "second.png", [{"name": "b", "file": str(b), "strength": 0.5}])
    release, _on_gui = _slowed_files(monkeypatch)
    try:
        drop_file(bare_window.prompt_panel, first)
        drop_file(bare_window.prompt_panel, second)
    finally:
        release.set()
    loras_restored(qtbot, controller.loras)
    qtbot.wait(200)  # the first drop's read, ended too, is handed to the window: it does nothing
    assert controller.loras.requests() == [(str(b), 0.5)] and not row_a.enabled
    assert [e.message for e in shown if "LoRA" in e.message] == []  # 'gone' was the first image's: not said

    release.clear()
    try:
        drop_file(bare_window.prompt_panel, first)
        bare_window.lora_panel.row_for("c").enabled.click()  # the user's own choice, while the files are read
        assert controller.loras.reading
    finally:
        release.set()
    loras_restored(qtbot, controller.loras)
    assert row_b.enabled and row_c.enabled and not row_a.enabled  # as the user left it
    assert [e.message for e in shown] == [
        "The LoRA panel changed while the LoRA files of the image were read, so its LoRAs were not switched on: the "
        "panel is as you set it. Drop the image again to use its LoRAs."]  # fmt: skip


def test_the_version_found_by_hash_is_read_off_the_windows_thread(qtbot, bare_window, tmp_path, monkeypatch):
    """Two rows of the image's file name, the second with its hash: once the search found it, its header and the
    first's were read again on the window's thread to switch it on (``_on_searched``). They are read on the search's
    thread now."""
    from gpu.lora import read_lora
    from tests.app.test_foreign_loras import _tiny_lora

    controller = bare_window.controller
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    v1, v2 = controller.loras.add_files([_tiny_lora(tmp_path / "v1" / "style.safetensors", 2),
                                         _tiny_lora(tmp_path / "v2" / "style.safetensors", 3)], enabled=False).added
    png = _our_png(tmp_path / "made.png", [{"name": "style", "file": "style.safetensors", "strength": 0.8,
                                            "hash": read_lora(v2.path).short_hash}])  # fmt: skip
    release, on_gui = _slowed_files(monkeypatch)
    release.set()
    drop_file(bare_window.prompt_panel, png)
    qtbot.waitUntil(lambda: v2.enabled, timeout=30000)
    assert not v1.enabled and v2.strength == 0.8 and on_gui == []


def test_a_click_held_for_an_image_is_dropped_by_the_next_image(qtbot, window, tmp_path, monkeypatch):
    """Generate clicked (Ctrl+Enter) right after an image was dropped, then a second image dropped before the first
    one's LoRA files were read: the job ran with the first image's prompt and seed and the second's LoRAs, an image
    made as neither was. The click is now dropped, and that said; no job is queued."""
    from app.held_clicks import REPLACED

    controller = window.controller
    a, b, _c = _three_loras(tmp_path)
    controller.loras.add_files([a, b], enabled=False)
    first = _our_png(tmp_path / "first.png", [{"name": "a", "file": str(a), "strength": 0.7}])
    second = _our_png(tmp_path / "second.png", [{"name": "b", "file": str(b), "strength": 0.5}])
    release, _on_gui = _slowed_files(monkeypatch)
    try:
        drop_file(window.prompt_panel, first)
        qtbot.keyClick(window.prompt_panel.prompt_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        assert controller.job.status == CHECKING
        drop_file(window.prompt_panel, second)
        assert controller.held.requests == [] and controller.job.status == REPLACED  # was: held, run with 'b'
    finally:
        release.set()
    loras_restored(qtbot, controller.loras)
    qtbot.wait(500)  # a click still held would be queued now
    assert controller.queue.idle and controller.loras.requests() == [(str(b), 0.5)]
