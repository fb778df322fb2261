"""A gallery imported by a version before the import took the date a picture's settings give (``created``): its
rows kept their files' times, and a gallery copied without them (cp without -p, a cloud download) stayed listed in
the order it was copied. The first start after the update dates those rows again, once, off the window's thread."""

from __future__ import annotations

import os
import sqlite3
import threading

from PIL import Image

from app.data_dir import resolve_data_dir
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import held, open_window, pane_text, window_without_engine

MADE = ["2026-01-01T10:00:00+00:00", "2026-01-02T10:00:00+00:00", "2026-01-03T10:00:00+00:00"]


def _prompts(gallery) -> list[str]:
    return [gallery.record(row).prompt for row in range(gallery.rowCount())]


def _schema_9(database) -> None:
    """The database as the version before this step left it (schema 9: no re-dating to do, none done)."""
    db = sqlite3.connect(database)
    db.execute("DROP TABLE IF EXISTS import_dates")
    db.execute("PRAGMA user_version=9")
    db.commit()
    db.close()


def test_a_gallery_imported_by_an_earlier_version_is_put_in_the_order_its_images_were_made(qtbot, data_root,
                                                                                            monkeypatch):  # fmt: skip
    import app.import_dates

    monkeypatch.setattr(app.import_dates, "_BATCH", 1, raising=False)  # a commit per date: the batches add up
    data = resolve_data_dir(data_root)
    data.images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, created in enumerate(MADE):  # the newest made copied first: the oldest has the latest file time
        settings = {"prompt": f"made {created[:10]}", "created": created}
        write_png(path := data.images / f"img{i}.png", Image.new("RGB", (8, 8), (i, 0, 0)), settings)
        os.utime(path, (copied := 1_760_000_000 + 100 * (len(MADE) - i), copied))
        rows.append((path.name, settings, path.stat().st_mtime, path.stat().st_size, None))  # as it was imported
    # Made here: dated when its row was added, after its settings' date; and one with no date in its settings.
    write_png(path := data.images / "here.png", Image.new("RGB", (8, 8)), here := {
        "prompt": "made here", "created": "2026-01-04T10:00:00+00:00"})  # fmt: skip
    rows.append((path.name, here, 1_750_000_000.0, path.stat().st_size, None))
    write_png(path := data.images / "undated.png", Image.new("RGB", (8, 8)), undated := {"prompt": "undated"})
    os.utime(path, (1_760_000_250, 1_760_000_250))  # copied between the first two
    rows.append((path.name, undated, path.stat().st_mtime, path.stat().st_size, None))
    store = Store(data.database)
    store.add_images(rows)
    store.close()
    _schema_9(data.database)

    window = window_without_engine(qtbot, data)
    gallery = window.controller.gallery
    assert _prompts(gallery) == ["made 2026-01-01", "undated", "made 2026-01-02", "made 2026-01-03", "made here"]
    window.controller.folder_import.start()  # after the window shows
    # Was: listed in the order it was copied for good (the import of new files reads no row already there).
    qtbot.waitUntil(lambda: _prompts(gallery) == [
        "made 2026-01-03", "made 2026-01-02", "made 2026-01-01", "undated", "made here"], timeout=10000)  # fmt: skip
    assert window.controller.store.dates_to_check() is None  # once: the next start reads none again


def test_a_new_gallery_has_no_dates_to_read_again(tmp_path):
    store = Store(tmp_path / "gallery.sqlite3")
    assert store.dates_to_check() is None
    store.close()



def gallery_copied_without_file_times(data) -> None:
    """The images made on the days of ``MADE``, imported by an earlier version (schema 9) from a copy that lost
    their file times, the newest made copied first: each dated by its file's time, the oldest made listed on top."""
    data.images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, created in enumerate(MADE):
        settings = {"prompt": f"made {created[:10]}", "created": created}
        write_png(path := data.images / f"img{i}.png", Image.new("RGB", (8, 8), (i, 0, 0)), settings)
        os.utime(path, (copied := 1_760_000_000 + 100 * (len(MADE) - i), copied))
        rows.append((path.name, settings, copied, path.stat().st_size, None))  # as that import dated it
    store = Store(data.database)
    store.add_images(rows)
    store.close()
    _schema_9(data.database)


def dating_held(monkeypatch) -> threading.Event:
    """The dating of those images held on its thread (with the rows not yet dated) until the event is set."""
    import app.import_dates

    release = threading.Event()
    monkeypatch.setattr(app.import_dates, "_date_to_take", held(app.import_dates._date_to_take, release))
    return release


def test_the_images_selected_stay_selected_as_the_gallery_is_put_in_order(qtbot, data_root, monkeypatch):
    gallery_copied_without_file_times(resolve_data_dir(data_root))
    release = dating_held(monkeypatch)  # until an image is selected
    window = open_window(qtbot, data_root)
    panel, gallery = window.gallery_panel, window.controller.gallery
    assert _prompts(gallery) == ["made 2026-01-01", "made 2026-01-02", "made 2026-01-03"]
    panel.select_row(0)
    release.set()
    qtbot.waitUntil(lambda: _prompts(gallery) == ["made 2026-01-03", "made 2026-01-02", "made 2026-01-01"],
                    timeout=10000)  # fmt: skip
    # Was: none selected, the pane emptied and its buttons greyed (the rows taken out and put back)
    assert panel.selected_rows() == [2] and panel.current().prompt == "made 2026-01-01"
    assert "made 2026-01-01" in pane_text(qtbot, panel) and panel.copy_button.isEnabled()
