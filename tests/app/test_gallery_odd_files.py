"""Whatever the user puts in the images folder, the app starts, lists the images it can, shows a thumbnail for
each it can decode, and says "unreadable" (not "missing") for a file that is there but broken."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QImageReader

from app.data_dir import resolve_data_dir
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import open_window


def _png16(path: Path, width: int, height: int) -> None:
    """A 16-bit RGBA PNG (Pillow writes none), all red and opaque."""
    row = b"\0" + b"\xff\xff\x00\x00\x00\x00\xff\xff" * width

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height, 1))
                     + chunk(b"IEND", b""))  # fmt: skip


def test_odd_files_in_the_images_folder(qtbot, data_root, tmp_path):
    data = resolve_data_dir(data_root)
    Store(data.database).close()  # a gallery that has its database: new pictures in it are imported silently
    odd = data.images / "odd"
    odd.mkdir()
    _png16(odd / "rgba16.png", 40, 30)
    _png16(odd / "big16.png", 600, 500)  # over the reader's allocation limit set below
    Image.new("L", (40, 30), 128).save(odd / "gray.png")
    Image.new("P", (40, 30), 3).save(odd / "palette.png")
    Image.new("RGBA", (40, 30), (255, 0, 0, 100)).save(odd / "alpha.png")
    Image.new("RGB", (300, 300), "blue").save(tmp_path / "full.png")
    (odd / "truncated.png").write_bytes((tmp_path / "full.png").read_bytes()[:120])
    write_png(odd / "Äpfel und 🦊 fox.png", Image.new("RGB", (16, 16)), {"prompt": "a fox"})
    Image.new("RGB", (16, 16)).save(odd / "FROM CAMERA.PNG")  # was: never listed (the suffix matched by case)
    (odd / "folder.png").mkdir()
    Image.new("RGB", (16, 16)).save(odd / "folder.png" / "inside.png")
    Image.new("RGB", (16, 16), "green").save(tmp_path / "kept elsewhere.png")
    os.symlink(tmp_path / "kept elsewhere.png", odd / "link.png")  # was: a ValueError, and the app did not start
    os.symlink(odd / "loop-b.png", odd / "loop-a.png")
    os.symlink(odd / "loop-a.png", odd / "loop-b.png")
    os.symlink(data.images, odd / "up")  # a link back up the tree
    limit = QImageReader.allocationLimit()
    QImageReader.setAllocationLimit(1)  # MB: as a 16-bit 6000x6000 PNG exceeds the default 256, quickly
    try:
        window = open_window(qtbot, data_root)
        gallery = window.controller.gallery
        paths = sorted(gallery.record(r).path for r in range(gallery.rowCount()))
        assert paths == sorted(f"odd/{name}" for name in (
            "rgba16.png", "big16.png", "gray.png", "palette.png", "alpha.png", "truncated.png",
            "Äpfel und 🦊 fox.png", "FROM CAMERA.PNG", "folder.png/inside.png", "link.png"))  # fmt: skip
        assert window.controller.notices == [] and window.error_dialog is None
        for row in range(gallery.rowCount()):
            gallery.data(gallery.index(row), Qt.ItemDataRole.DecorationRole)  # as the view asks while painting
        gallery.thumbnails.wait()
        qtbot.waitUntil(lambda: all(gallery.data(gallery.index(r), Qt.ItemDataRole.DecorationRole) is not
                                    gallery._loading for r in range(gallery.rowCount())))  # fmt: skip
    finally:
        QImageReader.setAllocationLimit(limit)
    thumbs = {gallery.record(r).path: gallery.data(gallery.index(r), Qt.ItemDataRole.DecorationRole)
              for r in range(gallery.rowCount())}  # fmt: skip
    assert thumbs.pop("odd/truncated.png") is gallery._unreadable  # was: "missing", for a file that is there
    assert all(t not in (gallery._missing, gallery._unreadable) for t in thumbs.values())
    assert thumbs["odd/big16.png"].size().toTuple() == (160, 133)  # decoded by Pillow when Qt refuses
    assert thumbs["odd/big16.png"].pixelColor(5, 5).getRgb() == (255, 0, 0, 255)
    assert thumbs["odd/link.png"].pixelColor(5, 5).getRgb() == (0, 128, 0, 255)
    window.gallery_panel.search.setText("fox")
    qtbot.keyClick(window.gallery_panel.search, Qt.Key.Key_Return)
    assert [gallery.record(r).path for r in range(gallery.rowCount())] == ["odd/Äpfel und 🦊 fox.png"]
