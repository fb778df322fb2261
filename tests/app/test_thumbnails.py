"""The thumbnail queue: the rows on screen now are decoded first, and rows scrolled past do not pile up ahead."""

from __future__ import annotations

import threading

import app.thumbnails
from app.thumbnails import ThumbnailCache


def _held_decodes(monkeypatch) -> tuple[threading.Event, list[str]]:
    """Decodes that wait for the event (the first holds the pool's one thread while the others are asked for),
    and the files decoded, in order."""
    release = threading.Event()
    decoded: list[str] = []

    def decode(path: str):
        release.wait(5)
        decoded.append(path)
        return app.thumbnails.QImage(4, 4, app.thumbnails.QImage.Format.Format_RGB32)

    monkeypatch.setattr(app.thumbnails, "_decode", decode)
    return release, decoded


def test_the_latest_asked_are_decoded_first_and_old_requests_are_dropped(qtbot, monkeypatch):
    """Flinging through 60 pages left the decodes of rows scrolled past queued ahead of the last screen's (first
    asked, first decoded): it took 280 ms to fill. The newest request goes first now, one asked again moves up,
    and past ``capacity`` waiting the oldest is dropped; asked again (its row painted again), it is decoded."""
    release, decoded = _held_decodes(monkeypatch)
    cache = ThumbnailCache(capacity=3)
    cache._pool.setMaxThreadCount(1)
    assert cache.get("a") is None
    qtbot.waitUntil(lambda: not cache._queue.paths)  # "a" taken by the thread
    for name in ("b", "c", "d", "e", "c"):
        assert cache.get(name) is None
    release.set()
    cache.wait()
    qtbot.waitUntil(lambda: len(decoded) == 4)
    assert decoded == ["a", "c", "e", "d"]  # "b" was dropped: 3 newer ones were waiting
    with qtbot.waitSignal(cache.loaded, check_params_cb=lambda path: path == "b"):
        assert cache.get("b") is None
    assert cache.get("b") is not None and decoded[-1] == "b"
    cache.stop()


def test_a_request_forgotten_then_dropped_is_kept_when_decoded_again(qtbot, monkeypatch):
    """A file forgotten while queued is marked stale (its decode may be of the file as it was). Dropped past
    ``capacity`` it was no longer pending but still stale, so its next decode, of the file as it is now, was
    thrown away and done again."""
    release, decoded = _held_decodes(monkeypatch)
    cache = ThumbnailCache(capacity=1)
    cache._pool.setMaxThreadCount(1)
    assert cache.get("a") is None
    qtbot.waitUntil(lambda: not cache._queue.paths)  # "a" holds the pool's one thread
    assert cache.get("b") is None
    cache.forget("b")  # queued: any decode of it now may be of the file as it was
    assert cache.get("c") is None  # "b" dropped: no decode of it will come
    release.set()
    cache.wait()
    with qtbot.waitSignal(cache.loaded, check_params_cb=lambda path: path == "b"):
        assert cache.get("b") is None
    assert cache.get("b") is not None  # was: None, the decode thrown away, "b" decoded a second time
    assert decoded.count("b") == 1
    cache.stop()


def test_a_thumbnail_not_decoded_says_whether_its_file_was_there(qtbot, tmp_path):
    """The grid draws "missing" or "unreadable" for a thumbnail that could not be decoded by what the decode's
    thread found (``file_gone``), not by a look at the disk at each paint (a freeze on a drive that sleeps)."""
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot a picture")
    cache = ThumbnailCache()
    gone, broken = tmp_path / "gone.png", tmp_path / "broken.png"
    assert not cache.file_gone(gone)  # none held yet: not known
    for path in (gone, broken):
        cache.get(path)
    qtbot.waitUntil(lambda: cache.get(gone) is not None and cache.get(broken) is not None, timeout=30000)
    assert cache.get(gone).isNull() and cache.get(broken).isNull()
    assert cache.file_gone(gone) and not cache.file_gone(broken)
