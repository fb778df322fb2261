"""Gallery list model over the SQLite store: all rows are small records; pixels load lazily (thumbnails)."""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    QSize,
    QStringListModel,
    Qt,
    Signal,
)

from app.data_dir import DataDir
from app.file_urls import file_url
from app.gallery_errors import FavoritesNotSaved
from app.gallery_order import grid_order, row_runs
from app.gallery_trash import Deleted, GalleryTrash
from app.history_model import prompt_line, prompt_tooltip
from app.image_files import absolute, file_fingerprint, relative
from app.observable import Prop
from app.plain_text import plain_tooltip
from app.reconcile import FolderImport
from app.store import ImageRecord, Store, image_found, search_terms
from app.thumbnails import THUMB_SIZE, ThumbnailCache, placeholder
from app.trash_listing import TrashListing

RecordRole = Qt.ItemDataRole.UserRole + 1
PathRole = Qt.ItemDataRole.UserRole + 2

Index = QModelIndex | QPersistentModelIndex


class GalleryModel(QStringListModel):
    """The gallery's images (``_rows``), newest first, as the search and the "★ only" filter show them.

    A ``QStringListModel`` whose list holds one empty string per row, for its length only: the grid lays out all
    its rows again at each row added or removed (every image generated, deleted or brought back) and asks the
    model for each row's index, which asks ``rowCount``. Answered in Python, that was two calls into Python per
    image of the gallery (about 100 ms per image generated at 30,000 images); this base class answers in C++.
    The rows change only through its ``insertRows``, ``removeRows`` and ``setStringList``, and ``_rows`` follows
    in the slots connected first to their signals (``_rows_inserted``, ``_rows_removed``, ``_rows_reset``): as
    a model that changes its rows between its begin and end calls, before anyone else hears of the change.

    Delete, Undo delete and Empty trash are its ``GalleryTrash``'s (and that one's ``TrashEmptier``), which change
    its rows through ``remove_rows_at``, ``insert_records`` and ``files_back``, and its trash signals."""

    trash_changed = Signal(int)  # how many deletions (delete actions, of one image or several) can be undone
    notice = Signal(object)  # an EngineError for the user about what an action did not do as asked
    # Whether Empty trash can be asked for: it has anything to delete (images Undo can bring back, or files the
    # trash folder holds without a row: a row lost in a repaired database, a file a partial Empty trash could not
    # delete), and no Empty trash asked for is listing the trash (``list_trash_to_empty``) or deleting it.
    has_trash = Prop(False)
    has_trash_changed = Signal(bool)
    # Whether Empty trash is deleting files on its thread (``empty_trash``): deleting images, Undo and another
    # Empty trash are refused meanwhile (greyed, and said if asked for all the same).
    emptying = Prop(False)
    emptying_changed = Signal(bool)
    emptying_progress = Signal(int, int)  # while ``emptying``: files deleted so far, files to delete
    trash_emptied = Signal(object)  # TrashEmptied, once Empty trash's deletion ended (not when the app closed)
    # A TrashListing Empty trash was said Yes to, whose pictures changed while it asked were judged again on a
    # thread (``TrashEmptier._judge_again``): Empty trash goes on with it (``empty_trash``).
    judged_again = Signal(object)

    def __init__(self, store: Store, data: DataDir, parent: Any = None) -> None:
        super().__init__(parent)
        self._store = store
        self._data = data
        self._rows: list[ImageRecord] = []
        self._incoming: list[ImageRecord] = []  # the rows being inserted (or reset to), until the signal says so
        # Connected before any view, so that every other slot sees ``_rows`` as Qt's row count says it is.
        self.rowsInserted.connect(self._rows_inserted)
        self.rowsRemoved.connect(self._rows_removed)
        self.modelReset.connect(self._rows_reset)
        # Row of each path (relative, as stored), for the thumbnail that arrives later; None until one arrives after
        # the rows changed. Rebuilt after every star, delete and add, it took 230 ms of each at 30,000 images.
        self._row_of_path: dict[str, int] | None = None
        self._search = ""
        self._terms: list[str] = []  # the search's (``search_terms``), for the rows added while it is on
        self._favorites_only = False
        self.thumbnails = ThumbnailCache(parent=self)
        self.thumbnails.loaded.connect(self._thumbnail_loaded)
        self._loading = placeholder("…")
        self._missing = placeholder("missing")
        self._unreadable = placeholder("unreadable")
        self._trash = GalleryTrash(self, store, data)
        self._emptier = self._trash.emptier
        self.reload()

    # ---- Qt model API -------------------------------------------------------------------------------------

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        record = self._rows[index.row()]
        if role == Qt.ItemDataRole.DecorationRole:
            if record.missing:
                return self._missing
            path = self.path_of(record)
            image = self.thumbnails.get(path)
            if image is None or not image.isNull():
                return self._loading if image is None else image
            # A file that is there but cannot be decoded (truncated, not really a PNG) is no missing file. Told by what
            # the thumbnail's thread found: a look at the disk here, at each paint, froze the window on a dead drive.
            return self._missing if self.thumbnails.file_gone(path) else self._unreadable
        if role == Qt.ItemDataRole.ToolTipRole:
            return plain_tooltip(prompt_tooltip(record.prompt) or "(no prompt)")
        if role == Qt.ItemDataRole.DisplayRole:
            return ("★ " if record.favorite else "") + (prompt_line(record.prompt, 40) or "(no prompt)")
        if role == Qt.ItemDataRole.SizeHintRole:
            return QSize(THUMB_SIZE + 16, THUMB_SIZE + 36)
        if role == RecordRole:
            return record
        if role == PathRole:
            return str(self.path_of(record))
        return None

    # ---- queries ------------------------------------------------------------------------------------------

    def flags(self, index: Index) -> Qt.ItemFlag:
        # Those of a list model (a string list's are editable, and take drops), and dragged out.
        flags = QAbstractListModel.flags(self, index)
        return flags | Qt.ItemFlag.ItemIsDragEnabled if index.isValid() else flags

    # A string list's own ways to change its strings or their order, closed: ``_rows`` would not follow, and
    # the rows shown (and a Delete) would then be other images'. Rows change through this class's methods only.
    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:  # noqa: ARG002
        return False

    def setItemData(self, index: Index, roles: dict[int, Any]) -> bool:  # noqa: ARG002
        return False

    def moveRows(self, parent: Index, row: int, count: int, child: Index, to: int) -> bool:  # noqa: ARG002
        return False

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        pass  # newest first, always

    def itemData(self, index: Index) -> dict[int, Any]:
        return QAbstractListModel.itemData(self, index)  # from ``data``, not the placeholder strings

    def supportedDragActions(self) -> Qt.DropAction:
        # Copied out only, as any list model: a string list offers Move too, and a drop that a file manager took
        # as a move had the grid remove the dragged rows (their images not deleted, nor their entries).
        return Qt.DropAction.CopyAction

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def mimeTypes(self) -> list[str]:
        return ["text/uri-list"]

    def mimeData(self, indexes: list[QModelIndex]) -> QMimeData:
        """Dragged out (to a file manager, a browser, an image editor): the PNG files themselves, so the
        generation settings travel with them; those of the rows flagged missing left out. Known without a look at
        the disk: a stat of each dragged file froze the window at the drag's start on a drive that sleeps or a share
        that hangs. A file deleted by hand since is flagged within seconds (``app.folder_watch``); dragged before,
        the program it is dropped on says it is not there."""
        mime = QMimeData()
        records = [self._rows[i.row()] for i in indexes if i.isValid() and i.row() < len(self._rows)]
        mime.setUrls([file_url(self.path_of(r)) for r in records if not r.missing])  # a name not UTF-8 too
        return mime

    def path_of(self, record: ImageRecord) -> Path:
        return absolute(self._data, record.path)

    def record(self, row: int) -> ImageRecord:
        return self._rows[row]

    def row_of(self, image_id: int) -> int:
        for row, record in enumerate(self._rows):
            if record.id == image_id:
                return row
        return -1

    def set_filter(self, search: str = "", favorites_only: bool | None = None) -> None:
        self._search, self._terms = search, search_terms(search)
        if favorites_only is not None:
            self._favorites_only = favorites_only
        self.reload()

    def reload(self) -> None:
        self._incoming = self._store.images(self._search, self._favorites_only)
        self.setStringList([""] * len(self._incoming))

    def _refresh(self, redraw: Iterable[str] = ()) -> None:
        """The rows brought up to what the store holds now, in place: those gone removed, new ones inserted where
        they sort, changed ones (and those of the paths ``redraw``, whose file changed) drawn again. A repair that
        reloaded them all reset the grid: the image the user had selected was no longer selected."""
        fresh = {record.id: record for record in self._store.images(self._search, self._favorites_only)}
        self.remove_rows_at(row for row, record in enumerate(self._rows)
                          if record.id not in fresh or grid_order(fresh[record.id]) != grid_order(record))  # fmt: skip
        redraw = set(redraw)
        for row, record in enumerate(self._rows):
            now = fresh.pop(record.id)
            if now != record or now.path in redraw:
                self._rows[row] = now
                self._row_of_path = None
                self.dataChanged.emit(self.index(row), self.index(row))
        self.insert_records(list(fresh.values()))

    def _rows_reset(self) -> None:
        self._rows, self._incoming = self._incoming, []
        self._row_of_path = None

    def _rows_inserted(self, _parent: QModelIndex, first: int, _last: int) -> None:
        self._rows[first:first], self._incoming = self._incoming, []
        self._row_of_path = None

    def _rows_removed(self, _parent: QModelIndex, first: int, last: int) -> None:
        del self._rows[first : last + 1]
        self._row_of_path = None

    def _insert(self, row: int, records: list[ImageRecord]) -> None:
        """``records`` into the grid at ``row`` (``_rows_inserted`` puts them in ``_rows``)."""
        self._incoming = records
        self.insertRows(row, len(records))

    # ---- changes ------------------------------------------------------------------------------------------

    def add(self, rel_path: str, settings: dict[str, Any]) -> ImageRecord:
        """The image just written at ``rel_path`` (relative to the images folder) with its ``settings``: its row
        committed and shown on top when the search and filter show it; a file in the trash under its name, or a
        deleted image holding the name without one, is renamed out of the way first (``GalleryTrash.clear_name``):
        Undo brings that one back under its new name, the new image's row left as it is."""
        self._trash.clear_name(rel_path)
        # Its fingerprint, while the file just written is in the disk cache: renamed by the user later, it is known
        # by it at the next start (``app.reconcile``).
        size, sha = file_fingerprint(absolute(self._data, rel_path)) or (None, None)
        replaces = self._store.has_path(rel_path)  # a row (of a missing file) already has the name: looked up then
        record = self._store.add_image(rel_path, settings, file_size=size, file_sha256=sha)
        self.thumbnails.forget(self.path_of(record))  # a new file under a name seen before: not its thumbnail
        old = self.row_of(record.id) if replaces else -1
        if old >= 0:  # the row of a missing file of this name now stands for the new one: listed once, on top
            self.remove_rows_at([old])
        if self._matches(record):
            self._insert(0, [record])
        return record

    def file_written(self, path: Path) -> None:
        """A gallery image's file was written at ``path``, as the gallery names it (``image_files.gallery_file``;
        Save as over it): its thumbnail is checked again (``ThumbnailCache.recheck``), without waiting for its row
        to be painted again 2 s later."""
        self.thumbnails.recheck(path)

    def add_imported(self, records: list[ImageRecord]) -> None:
        """Rows the start-up import just committed (``app.reconcile.FolderImport``), put where they belong while the
        user browses: a reload per batch lost the scroll position and the selection."""
        self.insert_records(records)

    def dates_changed(self) -> None:
        """Rows were dated again (``app.import_dates``): listed in their new order in one layout change, the
        selected and current images (and the viewer's) following their rows. Taken out and put back where they now
        sort, the selected ones lost their selection (the pane emptied, its buttons greyed), the viewer showing one
        closed, and the grid was laid out again per run of rows moved. Where the rows listed are not those the store
        lists now (a date changes no search: not expected), they are brought up to it as after a repair
        (``_refresh``)."""
        fresh = self._store.images(self._search, self._favorites_only)
        if sorted(record.id for record in fresh) != sorted(record.id for record in self._rows):
            self._refresh()
            return
        row_now = {record.id: row for row, record in enumerate(fresh)}
        self.layoutAboutToBeChanged.emit()
        kept = self.persistentIndexList()  # the selection's and the current image's, the views'
        self.changePersistentIndexList(kept, [self.index(row_now[self._rows[index.row()].id]) for index in kept])
        self._rows = fresh
        self._row_of_path = None
        self.layoutChanged.emit()

    def remove_rows_at(self, rows: Iterable[int]) -> None:
        """Takes ``rows`` out of the grid, a run of consecutive rows at a time."""
        for first, last in row_runs(rows):
            self.removeRows(first, last - first + 1)  # ``_rows_removed`` takes them out of ``_rows``

    def insert_records(self, records: list[ImageRecord]) -> None:
        """Puts ``records`` in the grid where a reload would list them, a run at a time: Undo reloaded all rows
        (1 s at 30,000 images, and the grid lost its scroll position and selection)."""
        records = sorted((r for r in records if self._matches(r)), key=grid_order)
        done = 0
        while done < len(records):
            at = bisect.bisect_left(self._rows, grid_order(records[done]), key=grid_order)
            end = done + 1  # the next ones go to the same place as long as no listed row sorts between them
            while end < len(records) and (at == len(self._rows)
                                          or grid_order(records[end]) < grid_order(self._rows[at])):
                end += 1
            self._insert(at, records[done:end])
            done = end

    def files_back(self, paths: list[str]) -> None:
        """After a repair put pictures back in the images folder (``paths``: theirs) and changed entries: their
        thumbnails read again (shown as missing while the file was away), the rows as the store has them now."""
        for rel in paths:
            self.thumbnails.forget(absolute(self._data, rel))
        self._refresh(paths)

    def _matches(self, record: ImageRecord) -> bool:
        return not self.hidden_by(record)

    def hidden_by(self, record: ImageRecord) -> list[str]:
        """What keeps ``record`` out of the grid, in words: "the search", "the ★ only view", both, or none."""
        hiding = [] if image_found(self._terms, record) else ["the search"]
        if self._favorites_only and not record.favorite:
            hiding.append("the ★ only view")
        return hiding

    def toggle_favorites(self, rows: list[int]) -> None:
        """Stars the images at ``rows``, or unstars them when all are starred already (each toggled on its own,
        a selection of starred and unstarred ones swapped stars instead of getting them)."""
        self.set_favorite(rows, not all(self._rows[row].favorite for row in rows))

    def set_favorite(self, rows: list[int], favorite: bool) -> None:
        """Stars (or unstars) the images at ``rows``, in one write. The rows change only once it is saved: a
        failed write raises ``FavoritesNotSaved`` and leaves them showing what the database has. Unstarred in
        the "★ only" view, they leave it at once (they stayed until the filter was applied again)."""
        records = [self._rows[row] for row in rows]
        try:
            self._store.set_favorites([record.id for record in records], favorite)
        except sqlite3.Error as exc:
            raise FavoritesNotSaved(len(records), favorite, self._store.path, exc) from exc
        for record in records:
            record.favorite = favorite
        for first, last in row_runs(rows):
            self.dataChanged.emit(self.index(first), self.index(last))
        # A star leaves what the search finds as it was: only unstarred rows of the "★ only" view leave, all of them
        # (each row checked against the search cost more than the write, 10,000 images starred at once)
        if self._favorites_only and not favorite:
            self.remove_rows_at(rows)

    # ---- the trash (``GalleryTrash``, ``TrashEmptier``) -----------------------------------------------------

    @property
    def undo_count(self) -> int:
        """How many deletions (delete actions) Undo can bring back now (``GalleryTrash.undo_count``)."""
        return self._trash.undo_count

    def wait_for_gather(self, folder_import: FolderImport) -> None:
        """Undo and Empty trash wait for ``folder_import`` to gather the old trash, if it has one to
        (``GalleryTrash.wait_for_gather``)."""
        self._trash.wait_for_gather(folder_import)

    def undo_leaves(self, written: Callable[[Path], bool]) -> None:
        """Undo brings no picture back under a name ``written`` says a Save as under way writes (``ImageSave.writes``):
        the save's copy, published after, replaced it, that picture lost for good."""
        self._trash.written = written

    def delete(self, rows: list[int]) -> Deleted | None:
        """The images at ``rows`` moved to the trash as one deletion, which ``undo_delete`` brings back; returns
        what it did, None when refused, said (``GalleryTrash.delete``, which says what it raises)."""
        return self._trash.delete(rows)

    def undo_delete(self) -> list[ImageRecord]:
        """Brings back every image of the last deletion and returns them; none when there is none or it is
        refused, said (``GalleryTrash.undo_delete``, which says what it raises)."""
        return self._trash.undo_delete()

    @property
    def listing_trash(self) -> bool:
        """Whether the trash is being listed, or emptied (``TrashEmptier.listing_trash``)."""
        return self._emptier.listing_trash

    def list_trash_to_empty(self, then: Callable[[TrashListing], object]) -> None:
        """Empty trash asked for: the trash listed on a thread, then ``then`` given the listing, for ``empty_trash``
        (``TrashEmptier.list_trash_to_empty``)."""
        self._emptier.list_trash_to_empty(then)

    def empty_trash(self, listing: TrashListing) -> bool:
        """Deletes the trash as ``listing`` found it for good; returns whether it began
        (``TrashEmptier.empty_trash``, which says what it raises)."""
        return self._emptier.empty_trash(listing)

    def stop(self) -> None:
        """Closing: thumbnails still queued dropped (``ThumbnailCache.stop``), then the trash's listing and
        deletion under way not used or stopped (``TrashEmptier.stop``); none starts after."""
        self.thumbnails.stop()
        self._emptier.stop()

    def _thumbnail_loaded(self, path: str) -> None:
        if self._row_of_path is None:  # keyed by the stored relative path: no Path made per row
            self._row_of_path = {record.path: row for row, record in enumerate(self._rows)}
        try:
            rel = relative(self._data, Path(path))
        except ValueError:
            return
        row = self._row_of_path.get(rel)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index, [Qt.ItemDataRole.DecorationRole])
