"""The full-size viewer (``app.widgets.image_viewer``, ``app.image_viewer_state``): before it, Enter in the grid did
nothing and no picture could be seen larger than its thumbnail inside the app. On the real window, with its engine."""

from __future__ import annotations

import threading

from PIL import Image
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.data_dir import resolve_data_dir
from app.image_decode import decode_image
from app.image_viewer_state import MIN_ZOOM
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import engine_held_at, gallery_images, held, open_window
from tests.app.test_import_dates import dating_held, gallery_copied_without_file_times

WAIT_MS = 30_000  # generous: CI runs the suite on 2 cores in parallel
LOADING = "Loading…"


def _shown_viewer(qtbot):
    """The viewer's window once it shows (a window of its own); fails when none shows."""
    def shown():
        return next((w for w in QApplication.topLevelWidgets() if w.objectName() == "imageViewer" and w.isVisible()),
                    None)  # fmt: skip

    qtbot.waitUntil(lambda: shown() is not None, timeout=WAIT_MS)
    return shown()


def _opened_with_enter(qtbot, window, row: int):
    """The viewer opened on grid ``row`` by Enter in the grid, its picture decoded; returns the viewer."""
    panel = window.gallery_panel
    window.activateWindow()
    panel.view.setFocus()
    panel.select_row(row)
    qtbot.keyClick(panel.view, Qt.Key.Key_Return)
    viewer = _shown_viewer(qtbot)  # was: Enter did nothing
    qtbot.waitUntil(lambda: viewer.state.message != LOADING, timeout=WAIT_MS)
    return viewer


def _key(qtbot, viewer, key: Qt.Key, wait_decoded: bool = True) -> None:
    """``key`` pressed in the viewer; then, unless not ``wait_decoded``, its picture decoded."""
    qtbot.keyClick(viewer.canvas, key)
    if wait_decoded:
        qtbot.waitUntil(lambda: viewer.state.message != LOADING, timeout=WAIT_MS)


def _gallery_of_one(data_root, name: str, picture: Image.Image, prompt: str) -> None:
    """The gallery of the data folder ``data_root``: the one image ``picture``, in the images folder as ``name``."""
    data = resolve_data_dir(data_root)
    write_png(data.images / name, picture, {"prompt": prompt})
    store = Store(data.database)
    store.add_image(name, {"prompt": prompt})
    store.close()


def _near(a: QPointF, b: QPointF) -> bool:
    return abs(a.x() - b.x()) < 1e-6 and abs(a.y() - b.y()) < 1e-6


def test_enter_opens_the_viewer_and_the_arrows_step_through_the_grid_as_listed(qtbot, data_root):
    gallery_images(resolve_data_dir(data_root), ["a cat", "a dog", "a cat and a dog", "a bird"])
    window = open_window(qtbot, data_root)
    panel = window.gallery_panel
    panel.search.setText("cat")  # the grid lists "a cat and a dog", "a cat"
    qtbot.keyClick(panel.search, Qt.Key.Key_Return)
    viewer = _opened_with_enter(qtbot, window, 0)
    state = viewer.state
    assert state.record.prompt == "a cat and a dog" and state.place == "1 of 2" and state.message == ""
    assert state.image.size().toTuple() == (16, 16) and viewer.canvas.scale() == 1.0  # small: at its own size
    assert viewer.windowTitle() == "2.png — Nibble Studio" and "1 of 2   2.png   16×16   100%" in viewer.info.text()
    _key(qtbot, viewer, Qt.Key.Key_Right)
    assert state.record.prompt == "a cat" and state.place == "2 of 2"  # "a dog" is not listed: skipped
    assert panel.current().prompt == "a cat" and panel.selected_rows() == [1]  # the grid's selection follows
    _key(qtbot, viewer, Qt.Key.Key_PageDown)  # the last one: it stays
    assert state.record.prompt == "a cat"
    _key(qtbot, viewer, Qt.Key.Key_Left)
    assert state.record.prompt == "a cat and a dog" and panel.selected_rows() == [0]
    _key(qtbot, viewer, Qt.Key.Key_Escape, wait_decoded=False)
    assert not viewer.isVisible() and not state.open and state.image is None  # the viewer's Esc, not the window's


def test_a_large_picture_is_fit_to_the_window_and_shown_at_100_percent_zoomed_and_moved(qtbot, data_root):
    _gallery_of_one(data_root, "large.png", Image.new("RGB", (3000, 2000), "teal"), "a large one")
    window = open_window(qtbot, data_root)
    view = window.gallery_panel.view
    at = view.visualRect(window.controller.gallery.index(0)).center()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=at)  # a double click's first press
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=at)
    viewer = _shown_viewer(qtbot)  # was: Reuse settings, and no viewer
    state = viewer.state
    qtbot.waitUntil(lambda: state.image is not None, timeout=WAIT_MS)
    canvas = viewer.canvas
    fit = canvas.scale()
    assert state.fit and fit < 1 and viewer.fit_button.isChecked()
    assert round(3000 * fit) <= canvas.width() and round(2000 * fit) <= canvas.height()  # all of it in view
    assert round(3000 * fit) == canvas.width() or round(2000 * fit) == canvas.height()  # as large as fits

    _key(qtbot, viewer, Qt.Key.Key_1)
    assert canvas.scale() == 1.0 and viewer.actual_button.isChecked() and not viewer.fit_button.isChecked()
    centred = canvas.offset
    assert _near(centred, QPointF((canvas.width() - 3000) / 2, (canvas.height() - 2000) / 2))  # its middle in view
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.mouseMove(canvas, QPoint(160, 70))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(160, 70))
    assert _near(canvas.offset, centred + QPointF(60, -30))  # dragged
    for _ in range(3):
        qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(10, 10))
        qtbot.mouseMove(canvas, QPoint(canvas.width() - 10, canvas.height() - 10))
        qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(canvas.width() - 10, canvas.height() - 10))
    assert _near(canvas.offset, QPointF(0, 0))  # no farther than the picture's corner

    _key(qtbot, viewer, Qt.Key.Key_0)
    assert state.fit and canvas.scale() == fit
    _key(qtbot, viewer, Qt.Key.Key_Plus)
    assert canvas.scale() == fit * 1.25 and not state.fit
    _key(qtbot, viewer, Qt.Key.Key_Minus)
    assert abs(canvas.scale() - fit) < 1e-9
    # Ctrl+wheel zooms about the pointer: the picture's point under it stays there
    _key(qtbot, viewer, Qt.Key.Key_1)
    at = QPointF(canvas.width() / 4, canvas.height() / 3)
    before = (at - canvas.offset) / canvas.scale()
    QApplication.sendEvent(canvas, QWheelEvent(at, canvas.mapToGlobal(at), QPoint(), QPoint(0, 240),
                                               Qt.MouseButton.NoButton, Qt.KeyboardModifier.ControlModifier,
                                               Qt.ScrollPhase.NoScrollPhase, False))  # fmt: skip
    assert canvas.scale() == 1.25**2 and "156%" in viewer.info.text()
    after = (at - canvas.offset) / canvas.scale()
    assert _near(after, before)


def test_the_picture_is_decoded_off_the_qt_thread_loading_said_meanwhile_the_latest_asked_for_next(
        qtbot, data_root, monkeypatch):  # fmt: skip
    gallery_images(resolve_data_dir(data_root), ["p0", "p1", "p2", "p3"])
    window = open_window(qtbot, data_root)
    release, on_qt_thread, decoded = threading.Event(), [], []

    def reading(path: str, fit: int | None = None):
        decoded.append(path.rsplit("/", 1)[-1])
        return decode_image(path, fit)

    monkeypatch.setattr("app.image_viewer_state.decode_image", held(reading, release, on_qt_thread))
    window.gallery_panel.select_row(0)
    window.gallery_panel.view_current()
    viewer = _shown_viewer(qtbot)
    state = viewer.state
    assert state.message == LOADING and state.image is None  # the window answers meanwhile
    _key(qtbot, viewer, Qt.Key.Key_Right, wait_decoded=False)
    _key(qtbot, viewer, Qt.Key.Key_Right, wait_decoded=False)  # stepped past p2 while p3 decodes
    assert state.record.prompt == "p1" and state.message == LOADING
    release.set()
    qtbot.waitUntil(lambda: state.image is not None, timeout=WAIT_MS)
    assert state.record.prompt == "p1" and state.message == ""
    assert decoded == ["3.png", "1.png"] and on_qt_thread == []  # p2, stepped past, never decoded


def test_a_missing_or_unreadable_file_is_said_in_the_viewer(qtbot, data_root):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["gone", "damaged", "fine"])
    (data.images / "d" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a picture" * 10)
    window = open_window(qtbot, data_root)
    (data.images / "d" / "0.png").unlink()  # deleted by hand while the app runs
    viewer = _opened_with_enter(qtbot, window, 1)
    state = viewer.state
    assert state.record.prompt == "damaged" and state.image is None
    assert state.message.startswith(f"The file {data.images / 'd' / '1.png'} could not be read as a picture")
    assert "Replace it with a good copy" in state.message
    _key(qtbot, viewer, Qt.Key.Key_Right)
    assert state.record.prompt == "gone" and state.image is None
    assert state.message.startswith(f"The picture's file {data.images / 'd' / '0.png'} is missing")
    assert "Put the picture back at that place" in state.message
    _key(qtbot, viewer, Qt.Key.Key_Home)
    assert state.record.prompt == "fine" and state.image is not None and state.message == ""
    assert window.error_dialog is None  # said in the viewer, no dialog


def test_delete_in_the_viewer_is_the_galleries_and_the_next_image_takes_its_place(qtbot, data_root):
    data = resolve_data_dir(data_root)
    gallery_images(data, ["a", "b", "c"])  # listed c, b, a
    window = open_window(qtbot, data_root)
    gallery, panel = window.controller.gallery, window.gallery_panel
    viewer = _opened_with_enter(qtbot, window, 1)
    state = viewer.state
    _key(qtbot, viewer, Qt.Key.Key_Delete)
    assert [gallery.record(row).prompt for row in range(gallery.rowCount())] == ["c", "a"]
    assert (data.trash / "d" / "1.png").is_file() and not (data.images / "d" / "1.png").exists()
    assert state.record.prompt == "a" and state.place == "2 of 2" and panel.current().prompt == "a"
    assert window.statusBar().currentMessage().startswith("1 image")  # said as the gallery's Delete says it
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # the gallery's Undo
    assert gallery.rowCount() == 3 and (data.images / "d" / "1.png").is_file()
    assert state.record.prompt == "a" and state.place == "3 of 3"
    window.close()
    assert not viewer.isVisible()  # was: left open over the desktop, the app behind it closed


def test_the_image_shown_stays_shown_when_the_gallery_sorts_it_again(qtbot, data_root, monkeypatch):
    """The first start after an update dates again the images an earlier version imported by their files' times
    (``app.import_dates``), and the gallery lists them in their new order."""
    gallery_copied_without_file_times(resolve_data_dir(data_root))
    release = dating_held(monkeypatch)  # until the viewer shows
    window = open_window(qtbot, data_root)
    gallery = window.controller.gallery
    viewer = _opened_with_enter(qtbot, window, 0)
    state = viewer.state
    assert (state.record.prompt, state.place) == ("made 2026-01-01", "1 of 3")
    release.set()
    qtbot.waitUntil(lambda: gallery.record(2).prompt == "made 2026-01-01", timeout=WAIT_MS)  # now the oldest
    # Was: the viewer closed (every row taken out at once: the grid empty for a moment), or showed another image
    assert viewer.isVisible() and state.open
    assert (state.record.prompt, state.place, state.message) == ("made 2026-01-01", "3 of 3", "")
    _key(qtbot, viewer, Qt.Key.Key_Left)
    assert state.record.prompt == "made 2026-01-02"
    # Deleted in the grid meanwhile (with the image above it): the one listed in its place is shown
    window.controller.delete_images([0, 1])
    qtbot.waitUntil(lambda: state.record.prompt == "made 2026-01-01", timeout=WAIT_MS)
    assert state.place == "1 of 1" and viewer.isVisible()


def test_zooming_out_of_a_panorama_fit_below_the_least_zoom_never_makes_it_larger(qtbot, data_root):
    _gallery_of_one(data_root, "panorama.png", Image.new("RGB", (80000, 60), "teal"), "a panorama")
    window = open_window(qtbot, data_root)
    viewer = _opened_with_enter(qtbot, window, 0)
    canvas = viewer.canvas
    fit = canvas.scale()
    assert fit < MIN_ZOOM and round(80000 * fit) == canvas.width()  # fit: below 1/32 of its size
    _key(qtbot, viewer, Qt.Key.Key_Minus)
    assert canvas.scale() == fit  # was 1/32: "-" made it larger, past the window's width
    wheel_at = QPointF(canvas.width() / 2, canvas.height() / 2)
    QApplication.sendEvent(canvas, QWheelEvent(wheel_at, canvas.mapToGlobal(wheel_at), QPoint(), QPoint(0, -120),
                                               Qt.MouseButton.NoButton, Qt.KeyboardModifier.ControlModifier,
                                               Qt.ScrollPhase.NoScrollPhase, False))  # fmt: skip
    assert canvas.scale() == fit  # Ctrl+wheel down: the same
    _key(qtbot, viewer, Qt.Key.Key_Plus)
    assert canvas.scale() == fit * 1.25  # one step larger, not to 1/32 at once


def test_esc_held_down_in_the_viewer_does_not_cancel_the_running_job_once_the_viewer_closed(qtbot, data_root):
    gallery_images(resolve_data_dir(data_root), ["a", "b"])
    window = open_window(qtbot, data_root)
    controller = window.controller
    viewer = _opened_with_enter(qtbot, window, 0)
    with engine_held_at(controller, lambda progress: progress.step == 1) as reached:
        controller.prompt.prompt = "a red circle"
        controller.generate()
        qtbot.waitUntil(lambda: reached.is_set() and controller.job.step == 1, timeout=120000)
        _key(qtbot, viewer, Qt.Key.Key_Escape, wait_decoded=False)
        assert not viewer.isVisible()
        window.activateWindow()  # the desktop gives the main window back the keyboard, the key still held
        qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=WAIT_MS)
        for _ in range(3):  # the key's repeats, as the system sends them while it is held
            QTest.simulateEvent(QApplication.focusWidget(), True, Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier,
                                "", True)  # fmt: skip
    qtbot.waitUntil(lambda: not controller.job.busy, timeout=120000)
    # Was "Cancelled": the repeats of the Esc that closed the viewer were the main window's Cancel
    assert controller.job.status == "Done: 1 image" and controller.gallery.record(0).prompt == "a red circle"


def test_delete_held_down_in_the_viewer_deletes_the_image_shown_only(qtbot, data_root):
    gallery_images(resolve_data_dir(data_root), ["a", "b", "c", "d"])  # listed d, c, b, a
    window = open_window(qtbot, data_root)
    gallery = window.controller.gallery
    viewer = _opened_with_enter(qtbot, window, 0)
    QTest.simulateEvent(viewer.canvas, True, Qt.Key.Key_Delete, Qt.KeyboardModifier.NoModifier, "", False)
    for _ in range(2):  # the key's repeats, as the system sends them while it is held
        QTest.simulateEvent(viewer.canvas, True, Qt.Key.Key_Delete, Qt.KeyboardModifier.NoModifier, "", True)
    # Was ["a"]: each repeat deleted the image shown next, one deletion each for Ctrl+Z to bring back
    assert [gallery.record(row).prompt for row in range(gallery.rowCount())] == ["c", "b", "a"]
    assert viewer.state.record.prompt == "c" and window.controller.gallery.undo_count == 1
