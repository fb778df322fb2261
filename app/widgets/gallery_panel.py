"""Gallery: a virtualized thumbnail grid (QListView over ``GalleryModel``) plus a metadata pane.

Smooth at 10,000 images: uniform item sizes and batched layout keep layout O(visible), and thumbnails are
decoded lazily off the GUI thread (``app.thumbnails``).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QItemSelection, QItemSelectionModel, QModelIndex, QSize, Qt
from PySide6.QtGui import QDesktopServices, QGuiApplication, QImage, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLineEdit,
    QListView,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.background import Lookup
from app.bindings import bind_enabled
from app.controller import AppController
from app.engine_errors import EngineError
from app.file_urls import file_url
from app.gallery_errors import FavoritesNotSaved
from app.gallery_order import row_runs
from app.image_summary import describe_image
from app.latest_lookup import LatestLookup
from app.store import ImageRecord
from app.theme import WARNING_COLOR
from app.thumbnails import THUMB_SIZE
from app.trash_listing import TrashListing
from app.trash_notices import empty_trash_question
from app.widgets.image_viewer import ImageViewer
from app.widgets.search_field import connect_search
from app.widgets.selection import selected_rows
from app.widgets.shortcuts import local_shortcuts
from app.widgets.wrap_grid import WrapGrid
from app.widgets.wrapped_label import WrappedLabel


def ask_png_name(parent: QWidget, suggested: str) -> str:
    """The file name the user picks in a "Save image as" dialog starting at ``suggested`` ("" when cancelled). The
    dialog adds ".png" to a name typed without it, so it is the real name it asks about before replacing a file:
    Qt's own dialog and GTK's add no suffix themselves, and "portrait" typed beside portrait.png was no file of
    that name, so nothing asked (``AppController.save_image_as`` refuses such a name, whatever dialog gave it)."""
    dialog = QFileDialog(parent, "Save image as", suggested, "PNG image (*.png)")
    dialog.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
    dialog.setDefaultSuffix("png")
    try:
        accepted = dialog.exec() == QDialog.DialogCode.Accepted
        return dialog.selectedFiles()[0] if accepted and dialog.selectedFiles() else ""
    finally:
        dialog.deleteLater()  # a child of the panel: one left per save otherwise


class GalleryPanel(QWidget):
    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("galleryPanel")
        self.controller = controller
        model = controller.gallery

        self.search = QLineEdit(placeholderText="Search by prompt, model or seed…", clearButtonEnabled=True)
        self._pending_search = connect_search(self.search, model.set_filter)
        self.favorites_only = QCheckBox("★ only")
        self.favorites_only.toggled.connect(self._favorites_toggled)
        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.favorites_only)
        # Above the grid while the images folder is away (removed, its drive unplugged): the log alone said it, and
        # the next job was refused. In the warning colour, for as long as it lasts (``FolderWatch.away``).
        self.folder_away = WrappedLabel()
        self.folder_away.setObjectName("imagesFolderAway")
        self.folder_away.setStyleSheet(f"color: {WARNING_COLOR}")
        self.folder_away.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)  # its path copied
        controller.folder_watch.away_changed.connect(self._show_folder_away)  # a method: gone with the panel
        self._show_folder_away(controller.folder_watch.away)

        self.view = QListView()
        self.view.setViewMode(QListView.ViewMode.IconMode)
        self.view.setResizeMode(QListView.ResizeMode.Adjust)
        self.view.setMovement(QListView.Movement.Static)
        self.view.setUniformItemSizes(True)
        self.view.setLayoutMode(QListView.LayoutMode.Batched)
        self.view.setBatchSize(200)
        self.view.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.view.setGridSize(QSize(THUMB_SIZE + 16, THUMB_SIZE + 36))
        self.view.setWordWrap(False)
        self.view.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setModel(model)
        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        # A key moving the current image selects before it moves: the pane follows the move too (``current``).
        self.view.selectionModel().currentChanged.connect(self._selection_changed)
        # A search or the "★ only" view lists the rows anew (``GalleryModel.reload``): the selection model clears
        # its selection then without a ``selectionChanged``, and the pane went on describing an image no longer
        # selected, its buttons enabled and doing nothing. The images still listed are selected again instead.
        self._kept_selection: tuple[list[int], int | None] = ([], None)
        model.modelAboutToBeReset.connect(self._keep_selection)
        model.modelReset.connect(self._select_kept)
        model.dataChanged.connect(self._rows_changed)
        # Double-click or Enter: the picture at full size, in the viewer (its settings: Reuse settings)
        self.view.doubleClicked.connect(lambda index: controller.viewer.show_row(index.row()))
        self.view.setAccessibleDescription("Generated images, newest first. Double-click or Enter views one at full "
                                           "size.")  # fmt: skip
        self.viewer = ImageViewer(controller.viewer, controller.undo_delete, self)
        controller.viewer.row_shown.connect(self._follow_viewer)
        self.view.setDragEnabled(True)  # out only: to a file manager, a browser, an image editor
        self.view.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.view.setDefaultDropAction(Qt.DropAction.CopyAction)

        self.metadata = QPlainTextEdit(readOnly=True)
        # The selected image's file is read on a thread (``_describe``): on a drive that sleeps or a share that
        # hangs, a read on the window's thread froze the window at each click on an image.
        # One read at a time, of the image selected last (``LatestLookup``): a thread per key press piled up there.
        self._descriptions = LatestLookup("Gallery: describing the selected image", self)
        self._descriptions.ended.connect(self._described)
        self.metadata.setPlaceholderText("Select an image to see how it was made.")

        self.favorite_button = QPushButton("★ Favorite")
        self.delete_button = QPushButton("Delete")
        self.undo_button = QPushButton("Undo delete")
        self.empty_trash_button = QPushButton("Empty trash…")
        self.folder_button = QPushButton("Open folder")
        self.copy_button = QPushButton("Copy prompt")
        self.save_button = QPushButton("Save as…")
        self.reuse_button = QPushButton("Reuse settings")
        self.favorite_button.clicked.connect(self.toggle_favorite)
        self.delete_button.clicked.connect(self.delete_selected)
        self.undo_button.clicked.connect(controller.undo_delete)
        self.empty_trash_button.clicked.connect(self.empty_trash)
        self.folder_button.clicked.connect(self.open_folder)
        self.copy_button.clicked.connect(self.copy_prompt)
        self.save_button.clicked.connect(self.save_as)
        self.reuse_button.clicked.connect(self.reuse_settings)
        model.trash_changed.connect(lambda n: self.undo_button.setEnabled(n > 0))
        model.notice.connect(controller.error.emit)
        self.undo_button.setEnabled(model.undo_count > 0)  # deletions of an earlier session too
        bind_enabled(model, "has_trash", self.empty_trash_button)
        model.emptying_changed.connect(self._delete_enabled)  # greyed while Empty trash deletes
        controller.image_copy.ready.connect(self._to_clipboard)  # Ctrl+C's picture, decoded
        # The keys act on the gallery's selection only while the focus is in the gallery. Window-wide, Delete
        # clashed with the history's (Qt runs neither of two shortcuts with one key in one window), Ctrl+Z
        # brought images back when the user meant the prompt they had just replaced, Ctrl+C in the history or
        # the LoRA panel copied the gallery's picture, and Ctrl+S in the prompt box saved a picture the user
        # may not even see. (A text field in the gallery keeps its own Ctrl+Z and Ctrl+C: it takes them first.)
        local_shortcuts(self.view, ((QKeySequence.StandardKey.Delete, self.delete_selected),  # the grid, its viewport
                                    (QKeySequence.StandardKey.Copy, self.copy_image),
                                    (QKeySequence(Qt.Key.Key_Return), self.view_current),
                                    (QKeySequence(Qt.Key.Key_Enter), self.view_current)))  # fmt: skip
        local_shortcuts(self, ((QKeySequence.StandardKey.Undo, controller.undo_delete),  # anywhere in the gallery
                               (QKeySequence.StandardKey.Save, self.save_as)))  # fmt: skip

        # Two rows of four: eight buttons in one made the gallery at least 770 px wide, and with the docks beside
        # it the window could not be narrower than 1386 px (wider than a 1366x768 laptop screen). Four rows of two
        # in a narrower window: four in a row held the window at 880 px, wider than half such a screen.
        self.buttons = (
            self.reuse_button,
            self.copy_button,
            self.save_button,
            self.favorite_button,
            self.folder_button,
            self.delete_button,
            self.undo_button,
            self.empty_trash_button,
        )
        self.button_grid = WrapGrid(self.buttons, (4, 2))
        side = QWidget()
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.addWidget(self.metadata)

        self.splitter = splitter = QSplitter(Qt.Orientation.Horizontal)  # its state is the window's to keep
        splitter.setObjectName("gallerySplitter")
        splitter.addWidget(self.view)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.folder_away)
        layout.addWidget(splitter, 1)
        layout.addWidget(self.button_grid)
        self._selection_changed()

    def _show_folder_away(self, text: str) -> None:
        """The images folder away said above the grid; the line hidden while it is there (``text`` empty)."""
        self.folder_away.setText(text)
        self.folder_away.setVisible(bool(text))

    # ---- selection ----------------------------------------------------------------------------------------

    def selected_rows(self) -> list[int]:
        return selected_rows(self.view)

    def current_row(self) -> int | None:
        """The row of the image the pane describes and its buttons act on: the one clicked (or moved to) last while
        it is selected, else the topmost selected one; None with none selected. The topmost one always: with an
        image below it Ctrl-clicked, the pane went on describing the first, and Copy prompt copied its prompt."""
        current = self.view.currentIndex()
        if current.isValid() and self.view.selectionModel().isSelected(current):
            return current.row()
        rows = self.selected_rows()
        return rows[0] if rows else None

    def current(self) -> ImageRecord | None:
        row = self.current_row()
        return None if row is None else self.controller.gallery.record(row)

    def select_row(self, row: int) -> None:
        """The image at ``row`` selected alone and current. Said so to the selection model: the view's
        ``setCurrentIndex`` chose by the keys held down, and with Ctrl or Shift held it added the row instead."""
        index = self.controller.gallery.index(row)
        self.view.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def view_current(self) -> None:
        """Enter: the current image in the full-size viewer."""
        if (row := self.current_row()) is not None:
            self.controller.viewer.show_row(row)

    def _follow_viewer(self, row: int) -> None:
        """The viewer went to the image at ``row``: selected alone, and scrolled to."""
        self.select_row(row)
        self.view.scrollTo(self.controller.gallery.index(row))

    def _selection_changed(self, *_: QItemSelection) -> None:
        record = self.current()
        for button in (
            self.favorite_button,
            self.folder_button,
            self.copy_button,
            self.save_button,
            self.reuse_button,
        ):
            button.setEnabled(record is not None)
        self._delete_enabled()
        self._describe(record)

    def _keep_selection(self) -> None:
        """The ids of the selected images and of the current one, before the rows are listed anew."""
        gallery = self.controller.gallery
        current = self.view.currentIndex()
        current_id = gallery.record(current.row()).id if current.isValid() else None
        self._kept_selection = ([gallery.record(row).id for row in self.selected_rows()], current_id)

    def _select_kept(self) -> None:
        """The images selected before the rows were listed anew selected again where still listed, the current one
        current again; the pane and the buttons follow (with none left, they say there is no selection)."""
        gallery = self.controller.gallery
        ids, current_id = self._kept_selection
        self._kept_selection = ([], None)
        if ids or current_id is not None:
            row_of = {gallery.record(row).id: row for row in range(gallery.rowCount())}
            selection = QItemSelection()
            for first, last in row_runs(row_of[i] for i in ids if i in row_of):
                selection.select(gallery.index(first), gallery.index(last))
            selection_model = self.view.selectionModel()
            if current_id in row_of:  # first: the pane describes the current image (``current``)
                selection_model.setCurrentIndex(gallery.index(row_of[current_id]),
                                                QItemSelectionModel.SelectionFlag.NoUpdate)  # fmt: skip
            selection_model.select(selection, QItemSelectionModel.SelectionFlag.Select)
        self._selection_changed()

    def _delete_enabled(self, *_: bool) -> None:
        """Delete: for a selection, and not while Empty trash deletes (``GalleryModel.emptying``: refused)."""
        selected = self.view.selectionModel().hasSelection()
        self.delete_button.setEnabled(selected and not self.controller.gallery.emptying)

    def _rows_changed(self, top: QModelIndex, bottom: QModelIndex, roles: list[int] | None = None) -> None:
        """The pane follows the selected image's entry when it changes in place: a repair put its file back (the
        old trash gathered from another drive; ``GalleryModel._refresh`` keeps the selection, so no
        ``selectionChanged`` came) and the pane still said "⚠ File missing". A thumbnail decoded (the decoration
        alone) changes nothing the pane says: not rewritten, its scrolling kept."""
        if roles and all(role == Qt.ItemDataRole.DecorationRole for role in roles):
            return
        row = self.current_row()
        if row is not None and top.row() <= row <= bottom.row():  # the row the pane describes
            self._selection_changed()

    def _describe(self, record: ImageRecord | None) -> None:
        """The pane describes ``record`` (nothing for None) once its file is read on a thread (``describe_image``:
        its stat and its PNG's text, which wait as long as its drive does), "Reading …" said meanwhile; a read still
        under way for an image selected before is dropped at its end. Its thumbnail is checked against the file too
        (``ThumbnailCache.recheck``, off the GUI thread): replaced under its name, the grid showed the old picture."""
        if record is None:
            self._descriptions.cancel()
            self.metadata.setPlainText("")
            return
        path, settings, missing = self.controller.gallery.path_of(record), dict(record.settings), record.missing
        self.controller.gallery.thumbnails.recheck(path)
        self.metadata.setPlainText(f"Reading {path}…")
        self._descriptions.ask((path, settings, missing), f"describing {path}",
                               lambda: describe_image(path, settings, missing))  # fmt: skip

    @property
    def describing(self) -> bool:
        """Whether the pane waits for the selected image's file to be read (it says "Reading …")."""
        return self._descriptions.busy

    def _described(self, lookup: Lookup) -> None:
        """The read of the image selected last ended (``_describe``): its text in the pane."""
        error = lookup.error
        self.metadata.setPlainText(lookup.result if error is None else f"⚠ The file could not be read: {error}")

    # ---- actions ------------------------------------------------------------------------------------------

    def _favorites_toggled(self, on: bool) -> None:
        # With the text as it is, a search still pending included: that search would only repeat this one.
        self._pending_search.stop()
        self.controller.gallery.set_filter(self.search.text(), on)

    def toggle_favorite(self) -> None:
        """The selected images' stars (``GalleryModel.toggle_favorites``). Unstarred in the "★ only" view, they
        leave it, and the image that takes the first one's place is selected (left with no selection, the next
        ★ click or Delete did nothing)."""
        rows = self.selected_rows()
        if not rows:
            return
        gallery = self.controller.gallery
        try:
            gallery.toggle_favorites(rows)
        except FavoritesNotSaved as exc:
            self.controller.error.emit(exc.error)
        if not self.selected_rows() and gallery.rowCount():
            self.select_row(min(rows[0], gallery.rowCount() - 1))
        self._selection_changed()  # the pane and the buttons follow, also when no image is left

    def delete_selected(self) -> None:
        rows = self.selected_rows()
        if rows:
            self.controller.delete_images(rows)

    def open_folder(self) -> None:
        record = self.current()
        if record:
            folder = self.controller.gallery.path_of(record).parent
            QDesktopServices.openUrl(file_url(folder))

    def copy_prompt(self) -> None:
        record = self.current()
        if record:
            QGuiApplication.clipboard().setText(record.prompt)

    def empty_trash(self) -> None:
        """Empty trash clicked: the trash is listed on a thread, then ``_confirm_empty_trash`` asks."""
        self.controller.gallery.list_trash_to_empty(self._confirm_empty_trash)

    def _confirm_empty_trash(self, listing: TrashListing) -> None:
        """Asks before Empty trash removes what ``listing`` found for good (``empty_trash_question``)."""
        if listing.empty:
            self.controller.error.emit(EngineError("notice", "The trash is empty."))
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "Empty trash", empty_trash_question(listing),
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)  # fmt: skip
        box.setInformativeText("Deleted images can no longer be brought back with Undo.")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        self.trash_dialog = box  # tests answer it
        box.exec()
        if box.standardButton(box.clickedButton()) == QMessageBox.StandardButton.Yes:
            self.controller.empty_trash(listing)

    def copy_image(self) -> None:
        """Ctrl+C: the selected image's pixels, for pasting into an image editor or a chat, once decoded on a thread
        (``AppController.copy_image``; ``_to_clipboard``). (The files, with their settings, leave by dragging or
        Save as: a QMimeData made in Python and left on the clipboard crashes PySide6 at exit, PYSIDE-2254, so the
        clipboard only gets what Qt builds itself.) An image that cannot be read leaves the clipboard as it was
        (the controller says why)."""
        record = self.current()
        if record is not None:
            self.controller.copy_image(record)

    @staticmethod
    def _to_clipboard(image: QImage) -> None:
        """The image Ctrl+C asked for last, decoded: on the clipboard (set on the Qt thread, as it must be)."""
        QGuiApplication.clipboard().setImage(image)

    def save_as(self) -> None:
        record = self.current()
        if record is None:
            return
        suggested = str(Path.home() / self.controller.gallery.path_of(record).name)
        if name := ask_png_name(self, suggested):
            self.controller.save_image_as(record, Path(name))

    def reuse_settings(self) -> None:
        record = self.current()
        if record:
            self.controller.reuse_settings(record)
