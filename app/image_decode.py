"""Pictures read from their files as QImages: by Qt's reader, and by Pillow for what Qt refuses to allocate (the
gallery's thumbnails, Ctrl+C's full-size copy). A picture whose decoding needs more memory than this machine can
spare for one picture is refused as ``TooLarge``, which says so with its size (``decode_image``)."""

from __future__ import annotations

import logging
import os

from PIL import Image
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QImageReader

from gpu.generation.png_metadata import PNG_SIGNATURE
from gpu.runtime.memory_policy import amount
from gpu.system_info import installed_ram_bytes

log = logging.getLogger(__name__)

# One picture decoded takes at most this share of the RAM the app may use: two thumbnails decode at once, and a
# copy beside them, with the app and the engine's model in memory too.
_RAM_SHARE = 4
_UNKNOWN_RAM = 4 * 2**30  # taken where the RAM cannot be read: a small machine's
_JPEG = b"\xff\xd8\xff"
# The most a PNG's pixel data can be compressed (deflate's limit, 1032 to 1), with room to spare
_PNG_MOST_PACKED = 1100


class TooLarge(ValueError):
    """A picture (``width`` x ``height`` pixels) whose decoding needs ``needed`` bytes, more than the ``budget``
    this machine spares for one picture: said with its size, where "could not be read" sent the user looking for
    a damaged file. ``said(doing)``: in words, "it is too large to copy: 20000×12000 pixels would need …"."""

    def __init__(self, width: int, height: int, needed: int, budget: int) -> None:
        super().__init__(width, height, needed, budget)
        self.width, self.height, self.needed, self.budget = width, height, needed, budget

    @property
    def size_said(self) -> str:
        return f"{self.width}×{self.height} pixels"

    def said(self, doing: str) -> str:
        return (f"it is too large to {doing}: {self.size_said} would need about {amount(self.needed)} of memory, "
                f"more than the {amount(self.budget)} Nibble Studio takes for one picture on this machine (a "
                "quarter of its memory)")  # fmt: skip

    def __str__(self) -> str:
        return self.said("show")


def _memory_budget() -> int:
    """The most memory one picture's decoding may take (``_RAM_SHARE``), in bytes."""
    return (installed_ram_bytes() or _UNKNOWN_RAM) // _RAM_SHARE


def _open(path: str) -> Image.Image:
    """The picture at ``path`` opened by Pillow, its pixels not read yet. A PNG or a JPEG by its format's own
    reader: ``Image.open`` refuses a picture past Pillow's decompression-bomb limit (2 x ``MAX_IMAGE_PIXELS``,
    179 megapixels), a guard for a server opening strangers' files. These are the user's own pictures (an
    upscaler's output, a panorama); what keeps one from taking the machine's memory is ``_check_memory``. The limit
    stays as it is for the rest of the process (other code, on other threads, opens files through it)."""
    with open(path, "rb") as f:
        head = f.read(len(PNG_SIGNATURE))
    if head == PNG_SIGNATURE:
        from PIL.PngImagePlugin import PngImageFile

        return PngImageFile(path)
    if head.startswith(_JPEG):
        from PIL.JpegImagePlugin import JpegImageFile

        return JpegImageFile(path)
    return Image.open(path)


def _holds_too_few_bytes(path: str, image: Image.Image) -> bool:
    """Whether the PNG ``image`` (at ``path``) claims more pixels than its file can hold, at one bit a pixel (a
    PNG's fewest) packed as tightly as a PNG's data can be: a damaged or made-up header, with no such picture
    behind it. It was said "too large to show" with the memory it would need, and the user sent to open it in
    another program; under the memory budget, Pillow reserved room for all those pixels before it found the data
    missing."""
    if image.format != "PNG":
        return False
    width, height = image.size
    return height * ((width + 7) // 8) > _PNG_MOST_PACKED * os.path.getsize(path)


def _check_memory(image: Image.Image, size: tuple[int, int], full_size: bool) -> None:
    """Raises ``TooLarge`` when decoding ``image`` (of ``size`` pixels before a JPEG's draft) needs more memory than
    ``_memory_budget``. A thumbnail holds the picture decoded once (a byte a pixel for a 1-bit, grey or palette
    one, Pillow holds others in 4); a full-size copy 8 bytes a pixel: the decoded picture and its RGBA copy, then
    that copy's bytes and the QImage made of them."""
    pixels = image.size[0] * image.size[1]
    needed = pixels * 8 if full_size else pixels * (1 if image.mode in ("1", "L", "P") else 4)
    if needed > (budget := _memory_budget()):
        raise TooLarge(*size, needed, budget)


def _read_with_pillow(path: str, fit: int | None) -> QImage:
    """The picture decoded by Pillow (scaled down to fit in ``fit`` x ``fit`` when given), for what Qt refuses: its
    reader will not allocate more than 256 MB, and a 16-bit RGBA PNG of 6000x6000 pixels or an 8-bit one of
    8200x8200 (an upscaler's output) needs more at full size. Pillow reduces to 8 bits per channel while it
    decodes, and a JPEG to as little as an eighth of its size for a thumbnail. A null QImage when Pillow cannot
    read it either; ``TooLarge`` when this machine cannot spare the memory (``_check_memory``)."""
    try:
        with _open(path) as image:
            if _holds_too_few_bytes(path, image):
                log.info("%s could not be decoded: its header claims %dx%d pixels, more than its bytes can hold",
                         path, *image.size)  # fmt: skip
                return QImage()
            size = image.size
            if fit is not None:
                image.draft(None, (2 * fit, 2 * fit))  # a JPEG: as Image.thumbnail would (its reducing gap of 2)
            _check_memory(image, size, full_size=fit is None)
            if fit is not None:
                image.thumbnail((fit, fit))
            rgba = image.convert("RGBA")
    except TooLarge:
        raise
    except Exception as exc:  # any file can be in the folder: "unreadable" is all the callers need to know
        log.info("%s could not be decoded: %s", path, exc)
        return QImage()
    width, height = rgba.size
    data = rgba.tobytes()
    del rgba  # a full-size picture is held twice while it is made a QImage, not three times
    return QImage(data, width, height, width * 4, QImage.Format.Format_RGBA8888).copy()


def decode_image(path: str, fit: int | None = None) -> QImage:
    """The picture in the file at ``path``, scaled down to fit in ``fit`` x ``fit`` pixels when given (a
    thumbnail); a null image for a file that is no picture either reader can decode. Raises ``TooLarge`` for a
    picture this machine cannot spare the memory to decode (``_check_memory``)."""
    reader = QImageReader(path)
    size = reader.size()
    if fit is not None and size.isValid() and max(size.width(), size.height()) > fit:
        reader.setScaledSize(size.scaled(QSize(fit, fit), Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull() and size.isValid():  # a header Qt reads, pixels it would not decode (too large)
        image = _read_with_pillow(path, fit)
    return image

