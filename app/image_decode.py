"""Pictures read from their files as QImages: by Qt's reader, and by Pillow for what Qt refuses to allocate (the
gallery's thumbnails, Ctrl+C's full-size copy)."""

from __future__ import annotations

import logging

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QImageReader

log = logging.getLogger(__name__)


def _read_with_pillow(path: str, fit: int | None) -> QImage:
    """The picture decoded by Pillow (scaled down to fit in ``fit`` x ``fit`` when given), for what Qt refuses: its
    reader will not allocate more than 256 MB, and a 16-bit RGBA PNG of 6000x6000 pixels or an 8-bit one of
    8200x8200 (an upscaler's output) needs more at full size. Pillow reduces to 8 bits per channel while it
    decodes. A null QImage when Pillow cannot read it either."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            if fit is not None:
                image.thumbnail((fit, fit))
            rgba = image.convert("RGBA")
    except Exception as exc:  # any file can be in the folder: "unreadable" is all the callers need to know
        log.info("%s could not be decoded: %s", path, exc)
        return QImage()
    width, height = rgba.size
    data = rgba.tobytes()
    del rgba  # a full-size picture is held twice while it is made a QImage, not three times
    return QImage(data, width, height, width * 4, QImage.Format.Format_RGBA8888).copy()


def read_image(path: str, fit: int | None = None) -> QImage:
    """The picture in the file at ``path``, scaled down to fit in ``fit`` x ``fit`` pixels when given (a
    thumbnail); a null image for a file that is no picture either reader can decode."""
    reader = QImageReader(path)
    size = reader.size()
    if fit is not None and size.isValid() and max(size.width(), size.height()) > fit:
        reader.setScaledSize(size.scaled(QSize(fit, fit), Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull() and size.isValid():  # a header Qt reads, pixels it would not decode (too large)
        image = _read_with_pillow(path, fit)
    return image
