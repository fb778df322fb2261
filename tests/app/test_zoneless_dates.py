"""A PNG's "created" written without a time zone (another program's, or our worker's fallback) on a machine in
another zone: read as this machine's local time, a picture made just now 23 h east of here was dated a day ahead,
listed above every image made since and shown "Created" tomorrow. It is taken as local time, never later than its
file was written, nor than now: off by at most the zones' difference, never in the future."""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import pytest
from PIL import Image

from app.data_dir import resolve_data_dir
from app.image_dates import made_at
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import open_window, pane_text

HERE, EAST = timezone(timedelta(hours=-9)), timezone(timedelta(hours=14))  # Alaska's winter, Kiribati's Line Islands


@pytest.fixture
def alaska():
    """This machine's clock in UTC-9 (POSIX writes the offset west of Greenwich as positive); its own zone again
    after the test (set back here: ``monkeypatch`` would set it back only after ``time.tzset`` had run)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "AKST+9"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def _wall_time(when: datetime, zone: timezone) -> str:
    """``when`` as a clock in ``zone`` shows it, without the zone: what a machine there writes as "created"."""
    return when.astimezone(zone).replace(tzinfo=None).isoformat(timespec="seconds")


def test_a_date_without_a_zone_is_local_time_never_after_its_file_nor_now(alaska):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    made_east = _wall_time(now, EAST)  # made just now, 23 h ahead of this machine's clock
    # was: read as this machine's local time, tomorrow
    assert made_at(made_east, file_time=now.timestamp()) == now
    assert made_at(made_east) <= datetime.now(timezone.utc)  # no file's time known: never after now
    # Made in this zone, the file copied days later (its time the copy's): local time, exact.
    made_here = now - timedelta(days=3)
    assert made_at(_wall_time(made_here, HERE), file_time=now.timestamp()) == made_here
    # Made in UTC, 9 h east, the file copied days later: local time, off by the zones' difference.
    assert made_at(_wall_time(made_here, timezone.utc), file_time=now.timestamp()) == made_here + timedelta(hours=9)
    # A date with its zone is that date, whatever the file's time.
    assert made_at("2026-01-03T10:00:00+00:00", file_time=0) == datetime(2026, 1, 3, 10, tzinfo=timezone.utc)


def test_a_picture_just_made_in_a_zone_far_east_is_listed_and_dated_as_made_now(qtbot, data_root, alaska):
    """Copied into the images folder with its file's time kept (made a minute ago 23 h ahead of this clock): it was
    imported as made tomorrow, listed above the image made after it, and the pane said "Created" tomorrow."""
    data = resolve_data_dir(data_root)
    Store(data.database).close()  # a gallery that has its database: new pictures in it are imported
    made = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    path = data.images / "d" / "east.png"
    write_png(path, Image.new("RGB", (16, 16)), {"prompt": "made in Kiribati", "created": _wall_time(made, EAST)})
    os.utime(path, (made.timestamp(), made.timestamp()))
    window = open_window(qtbot, data_root)  # which imports it
    gallery, panel = window.controller.gallery, window.gallery_panel
    write_png(data.images / "d" / "new.png", Image.new("RGB", (16, 16)), {"prompt": "made here now"})
    gallery.add("d/new.png", {"prompt": "made here now"})  # as an image the engine just made
    gallery.reload()  # listed as the database orders them, as at the next start (was: Kiribati's on top)
    assert [gallery.record(row).prompt for row in range(gallery.rowCount())] == ["made here now", "made in Kiribati"]
    panel.select_row(1)
    shown = made.astimezone().strftime("%Y-%m-%d %H:%M")  # this machine's local time (UTC-9)
    assert f"Created: {shown}" in pane_text(qtbot, panel)  # was: 23 h later, tomorrow
