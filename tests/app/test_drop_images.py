"""Dropping files other than ``*.png`` on the prompt panel: the drag took only names ending in .png, so a Forge
JPEG or WebP, a PNG saved as .jpg, a text file or a folder dropped by mistake was refused without a word, and so
was (until later) an image dragged from a web browser, which carries only its web address."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent

from gpu.generation.png_metadata import write_png
from tests.app.gui import drop_urls
from tests.app.test_png_drop import _drop
from tests.test_image_metadata import TEXT, a1111_image

NO_LINE = ("it is a text file without an A1111 settings line (the last line, 'Steps: …', that A1111 and Forge write), "
           "not an image")  # fmt: skip


def _mime(*items) -> QMimeData:
    """A drag of ``items``: local paths, or QUrls as they are (a web browser's drag carries web addresses)."""
    mime = QMimeData()
    mime.setUrls([item if isinstance(item, QUrl) else QUrl.fromLocalFile(str(item)) for item in items])
    return mime


def _drag_accepted(widget, *items) -> bool:
    mime = _mime(*items)  # held here: the event does not own it, and a temporary is freed before Qt reads it
    event = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)  # fmt: skip
    widget.dragEnterEvent(event)
    return event.isAccepted()


def _drop_items(widget, *items) -> None:
    """``_drop`` of local paths and web addresses (QUrls) in one drag."""
    drop_urls(widget, _mime(*items).urls())


def test_any_dropped_file_restores_its_settings_or_is_named_with_why(qtbot, tmp_path, window):
    controller, state, panel = window.controller, window.controller.prompt, window.prompt_panel
    shown: list = []
    controller.error.connect(shown.append)
    webp = a1111_image(tmp_path / "forge.webp", b"UNICODE\0" + TEXT.encode("utf-16-be"), "WEBP")
    notes = tmp_path / "notes.txt"
    notes.write_text("a fox, Steps: 20")
    (tmp_path / "pictures").mkdir()
    assert _drag_accepted(panel, webp) and _drag_accepted(panel, notes) and _drag_accepted(panel, tmp_path / "pictures")

    _drop(panel, webp)
    assert (state.prompt, state.negative_prompt, state.seed, state.width, state.height) == (
        "a fox in snow, café 🦊", "blurry", 77, 512, 768)  # fmt: skip
    assert (state.steps, state.guidance) == (24, 6.5) and shown == []

    png = tmp_path / "saved-as.jpg"  # a PNG that a download named .jpg: read as the PNG it is
    write_png(png, Image.new("RGB", (8, 8)), {"prompt": "a lake", "steps": 5, "seed": 9})
    _drop(panel, png)
    assert (state.prompt, state.seed, state.steps) == ("a lake", 9, 5) and shown == []

    forge = tmp_path / "00001-77.txt"  # A1111's settings saved beside the image rather than in it
    forge.write_text(TEXT.replace("a fox in snow", "a pond"))
    _drop(panel, forge)
    assert (state.prompt, state.seed, state.steps) == ("a pond, café 🦊", 77, 24) and shown == []

    _drop(panel, notes, tmp_path / "pictures")
    assert [(e.kind, e.message) for e in shown] == [
        ("user", f"None of the dropped files carries generation settings: notes.txt ({NO_LINE}), pictures (it is a "
                 "folder, not an image).")]  # fmt: skip
    assert "JPEG, WebP or GIF saved by A1111/Forge" in shown[0].hint and state.prompt == "a pond, café 🦊"

    shown.clear()  # an image dragged from a web browser: its address only, which was refused without a word
    web = QUrl("https://example.com/images/fox.png")
    assert _drag_accepted(panel, web)
    _drop_items(panel, web)
    assert [(e.kind, e.message) for e in shown] == [
        ("user", "Nothing was restored: https://example.com/images/fox.png is a web address: save the image first, "
                 "then drop the file.")]  # fmt: skip
    assert state.prompt == "a pond, café 🦊"

    shown.clear()  # a file and a web address in one drag: the address was ignored without a word
    long = QUrl("https://example.com/" + "a" * 100 + ".png")  # named cut to a line, as when dropped alone
    _drop_items(panel, webp, long)
    assert [(e.kind, e.message) for e in shown] == [
        ("notice", "Settings restored from forge.webp, but not all as saved: the dropped web address "
                   f"https://example.com/{'a' * 59}… was not used (save the image first, then drop the "
                   "file).")]  # fmt: skip
    assert shown[0].hint.endswith("Drop one image at a time.") and state.prompt == "a fox in snow, café 🦊"

    shown.clear()  # a file without settings and a web address: the address was left out of the message
    _drop_items(panel, notes, web)
    assert [(e.kind, e.message) for e in shown] == [
        ("user", f"None of the dropped files carries generation settings: notes.txt ({NO_LINE}), "
                 "https://example.com/images/fox.png (a web address: save the image first, then drop the "
                 "file).")]  # fmt: skip
