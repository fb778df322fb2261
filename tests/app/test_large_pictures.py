"""Pictures past Pillow's decompression-bomb limit (179 megapixels: an upscaler's output, a panorama) in the images
folder: the grid showed them "unreadable" and Ctrl+C said their file "could not be read as an image". They are
the user's own pictures: shown and copied where the memory they need can be spared, else said as too large, with
their size. Pillow's limit stays as it is for the rest of the process."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QGuiApplication, QImage, QImageReader

import app.image_decode
from app.data_dir import resolve_data_dir
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import window_without_engine

GiB = 2**30


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _black_png(path: Path, width: int, height: int) -> None:
    """A black 1-bit PNG of ``width`` x ``height`` pixels written by hand, its rows of zeros compressed as they go:
    a few hundred KB at any size, in a fraction of a second (Pillow would hold the whole picture first). Qt's reader
    refuses one of 20000x12000 (past its 256 MB allocation limit as it would hold it), and Pillow's open refuses
    one past 179 megapixels."""
    row = b"\0" * (1 + (width + 7) // 8)  # the filter byte, then the row's bits
    packer = zlib.compressobj(1)
    idat = b"".join([packer.compress(row) for _ in range(height)] + [packer.flush()])
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def _in_gallery(data, name: str) -> None:
    store = Store(data.database)
    store.add_image(name, {"prompt": name})
    store.close()


def _thumbnail(qtbot, gallery) -> QImage:
    """The first row's picture in the grid once decoded (asked as a paint asks)."""
    decoration = Qt.ItemDataRole.DecorationRole
    gallery.data(gallery.index(0), decoration)
    qtbot.waitUntil(lambda: gallery.thumbnails.get(gallery.path_of(gallery.record(0))) is not None, timeout=60000)
    return gallery.data(gallery.index(0), decoration)


@pytest.fixture
def qt_reader_limit():
    """Sets Qt's reader's allocation limit (MB, for the whole process) for a test, and puts it back after."""
    before = QImageReader.allocationLimit()
    yield QImageReader.setAllocationLimit
    QImageReader.setAllocationLimit(before)


def test_a_picture_past_pillows_limit_has_its_thumbnail(qtbot, data_root, monkeypatch):
    monkeypatch.setattr(app.image_decode, "installed_ram_bytes", lambda: 8 * GiB, raising=False)
    limit = Image.MAX_IMAGE_PIXELS
    data = resolve_data_dir(data_root)
    data.images.mkdir(parents=True, exist_ok=True)
    _black_png(data.images / "panorama.png", 16000, 11200)  # 179.2 megapixels: just past Pillow's limit
    _in_gallery(data, "panorama.png")
    window = window_without_engine(qtbot, data)
    thumbnail = _thumbnail(qtbot, window.controller.gallery)
    # Was the "unreadable" placeholder (160x160): Pillow refused to open it, Qt to allocate it.
    assert thumbnail.size() == QSize(160, 112)
    assert thumbnail.pixelColor(80, 56).getRgb() == (0, 0, 0, 255)
    assert Image.MAX_IMAGE_PIXELS == limit  # left as it is for the rest of the process


def test_ctrl_c_copies_a_picture_past_pillows_limit(qtbot, data_root, monkeypatch, qt_reader_limit):
    # Small, for a test's memory: both readers' limits lowered as a picture of gigapixels would meet them.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # refused past 100,000 pixels
    qt_reader_limit(4)  # 1200x1000 is 4.8 MB as Qt holds it
    data = resolve_data_dir(data_root)
    write_png(data.images / "upscaled.png", Image.new("RGB", (1200, 1000), (10, 200, 30)), {"prompt": "upscaled"})
    _in_gallery(data, "upscaled.png")
    window = window_without_engine(qtbot, data)
    panel = window.gallery_panel
    errors: list = []
    window.controller.error.connect(errors.append)
    panel.select_row(0)
    panel.copy_image()
    clipboard = QGuiApplication.clipboard()
    # Was: "The image …/upscaled.png could not be copied: its file could not be read as an image".
    qtbot.waitUntil(lambda: clipboard.image().size() == QSize(1200, 1000) or bool(errors), timeout=30000)
    assert [e.message for e in errors] == []
    assert clipboard.image().pixelColor(600, 500).getRgb()[:3] == (10, 200, 30)
    assert Image.MAX_IMAGE_PIXELS == 50_000


def test_a_picture_too_large_for_this_machine_says_so(qtbot, data_root, monkeypatch):
    # A machine of 512 MiB: a quarter of it, 128 MiB, for one picture. This one needs 240 MB decoded for its
    # thumbnail (a byte a pixel: it is 1-bit), 1.8 GiB for a full-size copy (8 bytes a pixel, RGBA held twice).
    monkeypatch.setattr(app.image_decode, "installed_ram_bytes", lambda: GiB // 2, raising=False)
    data = resolve_data_dir(data_root)
    data.images.mkdir(parents=True, exist_ok=True)
    _black_png(data.images / "huge.png", 20000, 12000)
    _in_gallery(data, "huge.png")
    window = window_without_engine(qtbot, data)
    gallery, panel = window.controller.gallery, window.gallery_panel
    from app.thumbnails import placeholder

    # Was the "unreadable" placeholder, as for a damaged file.
    assert _thumbnail(qtbot, gallery) == placeholder("too large to show\n20000×12000 pixels")
    errors: list = []
    window.controller.error.connect(errors.append)
    QGuiApplication.clipboard().setText("copied before")
    panel.select_row(0)
    panel.copy_image()
    qtbot.waitUntil(lambda: bool(errors), timeout=30000)
    message = errors[0].message
    # Was: "… its file could not be read as an image", with the hint to replace a damaged file.
    assert "too large to copy: 20000×12000 pixels" in message and "could not be read" not in message
    assert "1.8 GiB" in message and "128 MiB" in message  # what it needs, what this machine spares
    assert "damaged" not in errors[0].hint and "clipboard was left as it was" in errors[0].hint
    assert QGuiApplication.clipboard().text() == "copied before"

    # The full-size viewer (Enter): was "could not be read as a picture: it is damaged", with "Replace it".
    panel.view_current()
    state = window.controller.viewer
    qtbot.waitUntil(lambda: state.message not in ("", "Loading…"), timeout=30000)
    assert state.image is None and "too large to show: 20000×12000 pixels" in state.message
    assert "damaged" not in state.message and "Replace it" not in state.message


def test_a_png_whose_header_claims_more_pixels_than_its_bytes_can_hold_is_said_damaged(qtbot, data_root, monkeypatch):
    # A machine of 8 GiB: 2 GiB for one picture. The header says 60000x60000 RGBA pixels (14.4 GB decoded), and the
    # file is 74 bytes: as tightly as a PNG's data can be packed (1032 to 1), it could hold 76 KB of pixels.
    monkeypatch.setattr(app.image_decode, "installed_ram_bytes", lambda: 8 * GiB, raising=False)
    data = resolve_data_dir(data_root)
    data.images.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">IIBBBBB", 60000, 60000, 8, 6, 0, 0, 0)  # 8 bits, RGBA
    (data.images / "lying.png").write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
                                            + _chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + _chunk(b"IEND", b""))
    _in_gallery(data, "lying.png")
    window = window_without_engine(qtbot, data)
    from app.thumbnails import placeholder

    # Was "too large to show\n60000×60000 pixels": a picture to open in another program, which has none either
    assert _thumbnail(qtbot, window.controller.gallery) == placeholder("unreadable")
    window.gallery_panel.select_row(0)
    window.gallery_panel.view_current()
    state = window.controller.viewer
    qtbot.waitUntil(lambda: state.message not in ("", "Loading…"), timeout=30000)
    assert "could not be read as a picture: it is damaged" in state.message and "too large" not in state.message
