"""Pictures renamed or moved by the user inside the images folder: the missing entry takes its file over at the
next start (favorite and id kept) when it is surely the same picture, and never when it might be another."""

from __future__ import annotations

import json
import shutil

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from app.data_dir import DataDir, resolve_data_dir
from app.gallery_model import GalleryModel
from app.reconcile import reconcile
from app.store import Store
from gpu.generation.png_metadata import NIBBLE_KEY, write_png


def _entries(store: Store) -> dict[str, tuple[int, bool, bool]]:
    """path -> (id, favorite, missing) of the gallery's entries."""
    return {r.path: (r.id, r.favorite, r.missing) for r in store.images()}


def _move(data: DataDir, old: str, new: str) -> None:
    (data.images / new).parent.mkdir(parents=True, exist_ok=True)
    (data.images / old).rename(data.images / new)


def test_a_renamed_or_moved_picture_keeps_its_entry_and_another_never_takes_one(qtbot, data_root):
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    write_png(data.images / "d" / "fox.png", Image.new("RGB", (16, 16), "red"), {"prompt": "a red fox", "seed": 1})
    Image.new("RGB", (16, 16), "green").save(data.images / "d" / "plain.png")  # no settings text
    write_png(data.images / "d" / "twin.png", Image.new("RGB", (16, 16)), {"prompt": "a twin", "seed": 2})
    reconcile(store, data)  # imported from the folder: size stored, no hash
    gallery = GalleryModel(store, data)  # made by the app: size and hash stored
    cat = {"prompt": "a cat", "seed": 3}
    for name, colour, settings in (("owl", "blue", {"prompt": "an owl", "seed": 4}), ("cat", "red", cat)):
        write_png(data.images / "d" / f"{name}.png", Image.new("RGB", (16, 16), colour), settings)
        gallery.add(f"d/{name}.png", settings)
    before = _entries(store)
    store.set_favorites([entry[0] for entry in before.values()], True)

    _move(data, "d/fox.png", "renamed/by hand/fox.png")  # known by its size and settings text
    _move(data, "d/owl.png", "owl 2.png")  # known by its size and bytes
    _move(data, "d/plain.png", "plain 2.png")  # no settings, no hash: nothing tells it from another picture
    shutil.copy(data.images / "d" / "twin.png", data.images / "t1.png")  # two files for one entry: which?
    _move(data, "d/twin.png", "t2.png")
    size = (data.images / "d" / "cat.png").stat().st_size
    (data.images / "d" / "cat.png").unlink()  # another picture with the same settings text and size
    write_png(data.images / "other" / "cat.png", Image.new("RGB", (16, 16), (254, 0, 0)), cat)
    assert (data.images / "other" / "cat.png").stat().st_size == size
    report = reconcile(store, data)

    after = _entries(store)
    # was: each a missing entry plus a new, starless one
    assert after["renamed/by hand/fox.png"] == (before["d/fox.png"][0], True, False)
    assert after["owl 2.png"] == (before["d/owl.png"][0], True, False)
    assert report.moved == 2
    for old, new in (("d/plain.png", "plain 2.png"), ("d/cat.png", "other/cat.png"), ("d/twin.png", "t1.png")):
        assert after[old] == (before[old][0], True, True) and not after[new][1], old  # imported as it is
    assert not after["t2.png"][1] and report.imported == 4 and report.missing == 3
    assert "d/fox.png" not in after and "d/owl.png" not in after
    again = reconcile(store, data)  # the next start finds everything in place
    assert (again.moved, again.imported, again.missing) == (0, 0, 0) and _entries(store) == after


def test_start_up_with_hundreds_of_renamed_and_new_pictures_commits_in_batches(data_root):
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    source = data_root / "one.png"
    write_png(source, Image.new("RGB", (16, 16)), {"prompt": "a fox"})
    (data.images / "2026-01-01").mkdir()
    for i in range(300):  # as write_png writes them, less its disk sync per file
        info = PngInfo()
        info.add_itxt(NIBBLE_KEY, json.dumps({"prompt": f"a fox {i}"}))
        Image.new("RGB", (16, 16)).save(data.images / "2026-01-01" / f"{i}.png", pnginfo=info)
    reconcile(store, data)
    ids = {path.replace("2026-01-01", "january"): entry[0] for path, entry in _entries(store).items()}
    (data.images / "2026-01-01").rename(data.images / "january")  # a day's folder renamed: 300 pictures moved
    for i in range(300):
        shutil.copy(source, data.images / f"new-{i}.png")  # and 300 new ones
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    report = reconcile(store, data)
    store._db.set_trace_callback(None)
    assert (report.moved, report.imported, report.missing) == (300, 300, 0)
    # One commit, and with it one disk sync, per imported image made this start-up take 1.2 s instead of 0.16 s;
    # counted rather than timed, so that a slow machine cannot fail it.
    assert 1 <= statements.count("COMMIT") <= 4, statements.count("COMMIT")
    assert {path: entry[0] for path, entry in _entries(store).items() if path.startswith("january/")} == ids


def test_a_start_up_reads_only_the_files_it_has_no_entry_for(data_root, monkeypatch):
    """Every start opened every PNG of the folder for its signature (with a Path per file made relative again):
    2.7 s of a 5.3 s start-up at 30,000 unchanged images. Only files without an entry are opened now; a file
    without the PNG signature is still left alone, hidden scratch folders still skipped, a file gone still missing."""
    import app.reconcile

    data = resolve_data_dir(data_root)
    store = Store(data.database)
    source = data_root / "one.png"
    write_png(source, Image.new("RGB", (8, 8)), {"prompt": "a fox"})
    for i in range(5):
        shutil.copy(source, data.images / f"{i}.PNG")
    (data.images / "scratch").mkdir()
    (data.images / "scratch" / "not a picture.png").write_bytes(b"GIF89a")
    (data.images / ".x.png.tmp").mkdir()
    shutil.copy(source, data.images / ".x.png.tmp" / "new.png")
    assert reconcile(store, data).imported == 5
    opened: list[str] = []
    real_read = app.reconcile.read_new_file
    monkeypatch.setattr(app.reconcile, "read_new_file", lambda rel, path: opened.append(path) or real_read(rel, path))
    write_png(data.images / "scratch" / "new.png", Image.new("RGB", (8, 8)), {"prompt": "an owl"})
    (data.images / "3.PNG").unlink()
    report = reconcile(store, data)
    assert (report.imported, report.missing) == (1, 1)
    assert sorted(opened) == sorted(str(data.images / "scratch" / n) for n in ("new.png", "not a picture.png"))
    assert sorted(_entries(store)) == ["0.PNG", "1.PNG", "2.PNG", "3.PNG", "4.PNG", "scratch/new.png"]
