"""A PNG whose iTXt chunk (UTF-8 by the PNG standard) holds bytes that are not UTF-8, as a writer that cut an emoji in
two leaves it: the chunk was said to be damaged ("its text cannot be decoded") and the picture had no settings, dropped
on the window or imported from the images folder. Its text is read, each such byte as U+FFFD, and that is said."""

from __future__ import annotations

import zlib

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from app.data_dir import resolve_data_dir
from tests.app.gui import restored_from, window_without_engine


def _png_with_text_not_utf8(path) -> None:
    """A PNG whose A1111 ``parameters`` iTXt chunk holds bytes that are not UTF-8 (half an emoji cut off)."""
    info = PngInfo()
    info.add(b"iTXt", b"parameters\0\0\0\0\0a cat \xf0\x9f in snow\nSteps: 2, Seed: 5, Size: 64x64")
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)


def test_a_png_whose_text_is_not_utf8_is_imported_with_its_settings(qtbot, data_root):
    data = resolve_data_dir(data_root)
    _png_with_text_not_utf8(data.images / "other.png")
    window = window_without_engine(qtbot, data)
    folder_import = window.controller.folder_import
    folder_import.start()
    qtbot.waitUntil(lambda: not folder_import.running)
    record = window.controller.gallery.record(0)  # was: imported without settings ("cannot be decoded")
    assert record.prompt == "a cat \ufffd in snow" and record.settings["seed"] == 5


def test_a_dropped_png_whose_text_is_not_utf8_has_its_settings_restored_and_said(qtbot, window, tmp_path):
    controller = window.controller
    shown: list = []
    controller.error.connect(shown.append)
    _png_with_text_not_utf8(tmp_path / "other.png")
    assert restored_from(controller, [tmp_path / "other.png"])  # was: "its text cannot be decoded", nothing
    assert controller.prompt.prompt == "a cat \ufffd in snow" and controller.prompt.seed == 5
    [notice] = [e.message for e in shown if "not UTF-8" in e.message]
    assert notice.startswith("Settings restored from other.png, but not all as saved: ")


@pytest.mark.parametrize("kind", [b"tEXt", b"zTXt"])
def test_a_dropped_png_whose_utf8_text_chunk_has_a_character_cut_in_two_keeps_its_other_characters(
    qtbot, window, tmp_path, kind
):
    """A tEXt or zTXt chunk is Latin-1 by the PNG standard, but some programs write UTF-8 there (read as such). One
    of theirs with a character cut in two was read as Latin-1 whole: every other accent and emoji of its prompt came
    back as two or three letters ("café" as "cafÃ©"), put in the prompt box without a word. Text that holds UTF-8's
    characters besides those bytes is UTF-8, read as an iTXt chunk's is; Latin-1 text stays Latin-1."""
    controller = window.controller
    shown: list = []
    controller.error.connect(shown.append)
    text = "a café 🐈 ".encode() + b"\xf0\x9f in snow\nSteps: 2, Seed: 5, Size: 64x64"  # a cat's emoji cut in two
    info = PngInfo()
    info.add(kind, b"parameters\0" + (text if kind == b"tEXt" else b"\0" + zlib.compress(text)))
    Image.new("RGB", (8, 8)).save(tmp_path / "other.png", pnginfo=info)
    assert restored_from(controller, [tmp_path / "other.png"])
    # was: "a cafÃ© ð\x9f\x90\x88 ð\x9f in snow"
    assert controller.prompt.prompt == "a café 🐈 \ufffd in snow" and controller.prompt.seed == 5
    [notice] = [e.message for e in shown if "not UTF-8" in e.message]
    assert notice.startswith("Settings restored from other.png, but not all as saved: ")
