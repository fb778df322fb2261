"""The full-size viewer's state: which gallery image it shows, its picture decoded off the Qt thread, and its scale.

The viewer shows one image of the gallery as the grid lists it now (the search and the "★ only" view included), known
by its id: the rows may change under it (images generated or imported above it, a search typed). Stepping goes to
the previous or next row; an image that leaves the grid while shown (deleted, hidden by a search) gives its place to
the one listed there now, and the viewer closes when none is left; one the gallery sorts again (dated again) stays
shown at its new place. ``row_shown`` tells the grid, whose selection follows the image the user stepped to.

The picture is decoded at full size on a thread (``decode_image``: pictures past Qt's 256 MB image limit too), one at a
time: stepping through the gallery faster than pictures decode skips those stepped past, and only the latest one
asked for is decoded next. Meanwhile ``message`` says "Loading…"; a file that is missing or cannot be read is said
there, with what to do, instead of a picture."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QModelIndex, QObject, Qt, Signal
from PySide6.QtGui import QImage

from app.background import Lookup, Lookups
from app.gallery_model import GalleryModel
from app.image_decode import TooLarge, decode_image
from app.observable import Prop
from app.store import ImageRecord

MIN_ZOOM, MAX_ZOOM = 1 / 32, 32.0
LOADING = "Loading…"


@dataclass(frozen=True)
class Decoded:
    """A picture as its thread read it: ``image`` null when it could not be read, ``missing`` when no file was there,
    ``too_large`` when this machine cannot spare the memory to decode it (``image_decode.TooLarge``)."""

    path: Path
    image: QImage
    missing: bool
    too_large: TooLarge | None = None


def decode_picture(path: Path) -> Decoded:
    """On a thread: the picture at ``path`` at full size (``decode_image``)."""
    try:
        image = decode_image(str(path))
    except TooLarge as exc:  # a sound file: said with its size, not as damaged
        return Decoded(path, QImage(), False, exc.with_traceback(None))  # its frames hold the reader: let go
    try:
        missing = image.isNull() and not path.is_file()
    except OSError:  # not to be looked at (no permission): there, as far as can be told
        missing = False
    return Decoded(path, image, missing)


def not_shown(decoded: Decoded) -> str:
    """Why the viewer shows no picture for ``decoded``, and what to do; "" for a picture it shows."""
    if decoded.missing:
        return (f"The picture's file {decoded.path} is missing (moved, renamed or deleted outside Nibble Studio).\n\n"
                "Put the picture back at that place to see it here, or delete its entry.")  # fmt: skip
    if decoded.too_large is not None:
        return (f"The picture {decoded.path} is not shown: {decoded.too_large.said('show')}.\n\n"
                "Open it in another program from its folder (Open folder).")  # fmt: skip
    if decoded.image.isNull():
        return (f"The file {decoded.path} could not be read as a picture: it is damaged, or no PNG.\n\n"
                "Replace it with a good copy to see it here, or delete its entry.")  # fmt: skip
    return ""


class ImageViewerState(QObject):
    """What the viewer shows (see the module's text): ``record`` and its ``image`` (None while it is decoded or
    when it cannot be), its ``place`` in the grid, ``message`` instead of a picture, and the scale: ``fit`` to the
    window (a smaller picture at its own size), else ``zoom`` (1.0: 100%)."""

    open = Prop(False)
    open_changed = Signal(bool)
    record = Prop(None)  # ImageRecord | None: the image shown
    record_changed = Signal(object)
    place = Prop("")  # "3 of 120": where it is in the grid as listed now
    place_changed = Signal(str)
    message = Prop("")  # "Loading…", or why no picture is shown and what to do; "" while the picture is shown
    message_changed = Signal(str)
    fit = Prop(True)
    fit_changed = Signal(bool)
    zoom = Prop(1.0)  # the scale while not ``fit``
    zoom_changed = Signal(float)
    image_changed = Signal(object)  # QImage | None: ``image`` (not a Prop: comparing pictures compares pixels)
    row_shown = Signal(int)  # the grid row of the image the viewer went to

    def __init__(self, gallery: GalleryModel, delete: Callable[[list[int]], object], parent: QObject | None = None
                 ) -> None:  # fmt: skip
        """``delete``: the gallery's Delete (``AppController.delete_images``), for the viewer's own."""
        super().__init__(parent)
        self._gallery = gallery
        self._delete = delete
        self.image: QImage | None = None
        self._row = -1  # where ``record`` was last found in the grid
        self._wanted: Path | None = None  # the picture to decode next (the one shown, or being stepped to)
        self._decoding: Lookup | None = None
        self._decoding_path: Path | None = None
        self._decodes = Lookups("Viewer", self)
        self._decodes.ended.connect(self._decoded)
        for signal in (gallery.rowsInserted, gallery.rowsRemoved, gallery.modelReset, gallery.layoutChanged):
            signal.connect(self._rows_changed)
        gallery.dataChanged.connect(self._entry_changed)

    # ---- what the user asks -------------------------------------------------------------------------------

    def show_row(self, row: int) -> None:
        """The viewer opened (or kept open) on the image at grid ``row``."""
        if 0 <= row < self._gallery.rowCount():
            self.open = True
            self._go(row)

    def step(self, by: int) -> None:
        """The image ``by`` rows after the one shown (before it, when negative), stopping at the first and last."""
        if self.open and self._gallery.rowCount():
            self._go(min(max(self._find() + by, 0), self._gallery.rowCount() - 1))

    def to_end(self, last: bool) -> None:
        """The grid's first image (its last, when ``last``)."""
        if self.open and self._gallery.rowCount():
            self._go(self._gallery.rowCount() - 1 if last else 0)

    def close(self) -> None:
        """Closed: no picture kept, none decoded for it any more."""
        self.open = False
        self._wanted = None
        self.record = None
        self._set_image(None, "")

    def delete(self) -> None:
        """The image shown deleted as the gallery deletes (to the trash, undone by Undo delete); the one listed in
        its place is shown next (``_rows_changed``)."""
        if self.open and (row := self._find()) >= 0:
            self._delete([row])

    def set_zoom(self, scale: float, least: float = MIN_ZOOM) -> None:
        """Shown at ``scale`` (1.0: 100%), within ``MIN_ZOOM`` (or ``least``, where smaller: the scale that fits a
        panorama to the window, which zooming out must not make larger) and ``MAX_ZOOM``."""
        self.zoom = min(max(scale, min(least, MIN_ZOOM)), MAX_ZOOM)
        self.fit = False

    def fit_to_window(self) -> None:
        self.fit = True

    # ---- the image shown ----------------------------------------------------------------------------------

    def _find(self) -> int:
        """The grid row of ``record`` now, -1 when it is not listed."""
        record = self.record
        if record is None:
            return -1
        if not (0 <= self._row < self._gallery.rowCount() and self._gallery.record(self._row).id == record.id):
            self._row = self._gallery.row_of(record.id)  # a scan: only after the rows changed above it
        return self._row

    def _go(self, row: int) -> None:
        """The image at grid ``row`` shown (decoded, unless it is the one shown already) and the grid told."""
        record = self._gallery.record(row)
        self._row = row
        if self.record is None or record.id != self.record.id:
            self.record = record
            self._load()
        self._say_place()
        self.row_shown.emit(row)

    def _say_place(self) -> None:
        self.place = f"{self._row + 1} of {self._gallery.rowCount()}" if self._row >= 0 else ""

    def _load(self) -> None:
        """``record``'s picture decoded on a thread, "Loading…" meanwhile; after the decode under way, if any."""
        assert self.record is not None
        self._wanted = self._gallery.path_of(self.record)
        self._set_image(None, LOADING)
        if self._decoding is None:
            self._decoding_path = self._wanted
            self._decoding = self._decodes.start("decoding a picture", functools.partial(decode_picture, self._wanted))

    def _decoded(self, lookup: Lookup) -> None:
        if lookup is not self._decoding:
            return
        self._decoding = None
        if self._wanted is None:  # closed meanwhile
            return
        if self._decoding_path != self._wanted:  # stepped on meanwhile: the latest one asked for, next
            self._load()
            return
        # An error the decoder let out (logged by the lookup) is an unreadable picture: said, never decoded again
        decoded: Decoded = lookup.result or Decoded(self._wanted, QImage(), False)
        self._set_image(None if decoded.image.isNull() else decoded.image, not_shown(decoded))

    def _set_image(self, image: QImage | None, message: str) -> None:
        self.image = image
        self.message = message
        self.image_changed.emit(image)

    # ---- the grid changes ---------------------------------------------------------------------------------

    def _rows_changed(self, *_: Any) -> None:
        """Rows added, removed, listed anew or sorted again (dated again: ``GalleryModel.dates_changed``): the image
        shown found again, or, gone from the grid, the one listed in its place shown; closed when the grid is
        empty."""
        if not self.open:
            return
        was = self._row
        if self._find() >= 0:
            self._say_place()
        elif count := self._gallery.rowCount():
            self._go(min(max(was, 0), count - 1))
        else:
            self.close()

    def _entry_changed(self, top: QModelIndex, bottom: QModelIndex, roles: list[int] | None = None) -> None:
        """The image shown changed in place (starred, its file back after a repair): ``record`` follows, and the
        picture is decoded again where its file may be another now."""
        if not self.open or (roles and all(role == Qt.ItemDataRole.DecorationRole for role in roles)):
            return
        row = self._find()
        if top.row() <= row <= bottom.row():
            old, self.record = self.record, self._gallery.record(row)
            if isinstance(old, ImageRecord) and (old.path, old.missing) != (self.record.path, self.record.missing):
                self._load()
