"""Ctrl+C's copy of a gallery image: its file decoded on a thread of its own (``decode_image``; an upscaler's
8200x8200 picture took seconds, and the window froze meanwhile), the status bar saying so meanwhile, and the pixels
handed on (``ready``) on the Qt thread, where the clipboard is set. Only the latest image asked for is handed on: a
second Ctrl+C while the first decodes copies that one, not both, whichever decode ends first."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from app.background import Lookup, Lookups
from app.image_decode import TooLarge, decode_image

# Why a picture could not be copied: in words, its picture too large for this machine, or (problem, what to do)
# where the images folder holding it is away (``Away``)
Problem = str | TooLarge | tuple[str, str]

log = logging.getLogger(__name__)
# How long a quit waits for the picture Ctrl+C is decoding (``ImageCopy.finish``): an upscaler's 8200x8200 takes
# seconds; one on a drive that does not answer is given up
QUIT_WAIT_S = 30.0


class ImageCopy(QObject):
    """Decodes the pictures Ctrl+C asks for (``copy``), one thread each; ``ready`` with the latest one's pixels.
    ``tell``: a passing word for the status bar; ``failed``: the picture's file and why it could not be copied, in
    words or as ``TooLarge`` (the clipboard is then left as it was: a null image put there emptied it, what the
    user had copied before included)."""

    ready = Signal(QImage)  # the pixels of the image asked for last, on the Qt thread: for the clipboard

    def __init__(self, tell: Callable[[str], object], failed: Callable[[Path, Problem], object],
                 away: Callable[[], tuple[str, str] | None], parent: QObject | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self._tell = tell
        self._failed = failed
        self._away = away  # (problem, what to do) where the images folder is away: looks at the disk
        self._lookups = Lookups("Gallery", self)
        self._lookups.ended.connect(self._decoded)
        self._asked: tuple[Path, Lookup] | None = None  # the picture asked for last, while it decodes

    def copy(self, source: Path) -> None:
        """The picture in the file ``source`` decoded on a thread, then handed on (``ready``) unless another is
        asked for meanwhile; the same picture asked for again while it decodes waits for that decode."""
        if self._asked is not None and self._asked[0] == source:
            return
        self._asked = (source, self._lookups.start("decoding an image to copy", lambda: _decoded(source, self._away)))
        self._tell(f"Copying the image {source.name}…")

    def finish(self, timeout: float = QUIT_WAIT_S) -> None:
        """The app quits: the picture asked for last, while it still decodes, waited for (``timeout`` seconds at
        most) and handed on, for the clipboard before the window goes. Left to its thread, it never came: the
        process ended first, and the user pasted what they had copied before. One that cannot be copied, or is not
        decoded in time, is logged (a dialog would hold the quit)."""
        if self._asked is None:
            return
        source, lookup = self._asked
        if not lookup.wait(timeout):
            log.warning("the image %s was still being decoded for Ctrl+C after %.0f s at the quit: not copied",
                        source, timeout)  # fmt: skip
            self._asked = None
            return
        self._hand_on(source, lookup, _not_copied_at_quit)

    def _decoded(self, lookup: Lookup) -> None:
        """On the Qt thread: a decode ended; handed on, or said as failed, only when it is the latest asked for."""
        if self._asked is None or lookup is not self._asked[1]:
            return  # another picture was asked for since (or the quit took it: ``finish``): this one is dropped
        self._hand_on(self._asked[0], lookup, self._failed)

    def _hand_on(self, source: Path, lookup: Lookup, failed: Callable[[Path, Problem], object]) -> None:
        """The decode of the picture asked for last, in ``source``, ended (``lookup``): its pixels handed on
        (``ready``) and said, or ``failed`` told why there are none."""
        self._asked = None
        image, problem = lookup.result if lookup.error is None else (None, f"it could not be decoded ({lookup.error})")
        if image is None:
            failed(source, problem)
            return
        self.ready.emit(image)
        self._tell(f"The image {source.name} was copied.")


def _not_copied_at_quit(source: Path, problem: Problem) -> None:
    """The picture in ``source`` could not be copied as the app quit (``problem``: why): logged."""
    log.warning("the image %s was not copied as the app quit: %s", source, problem)


def _decoded(source: Path, away: Callable[[], tuple[str, str] | None]) -> tuple[QImage | None, Problem]:
    """On the decode's thread: (the picture in ``source``, "") or (None, why it is none): in words for the user, its
    picture too large for this machine to decode, or ``away``'s words where its file is missing as the images folder
    is away (looked at here: on the window's thread, a file on a hung drive froze it once the copy failed)."""
    try:
        image = decode_image(str(source))  # a large picture, past Qt's 256 MB allocation limit, too
    except TooLarge as exc:  # no damaged file: said with its size, where "could not be read" sent the user looking
        return None, exc.with_traceback(None)  # its frames hold the reader: let go of here
    if not image.isNull():
        return image, ""
    if source.is_file():
        return None, "its file could not be read as an image"
    return None, away() or "its file is missing"
