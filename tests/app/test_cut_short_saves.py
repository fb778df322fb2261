"""A save cut short by a kill (``kill -9``, a power loss, the app's own exit while it wrote an image) left its file
in the hidden scratch folder of the write (``images/DAY/.xxxxxxxx.yyyyyyyy.tmp/new.png``), and nothing ever took it
out: a complete picture hidden for good, unseen by the gallery. Start-up now finishes such saves: a whole PNG is
published and imported, an unfinished file goes to the trash, and the user is told."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from app.data_dir import resolve_data_dir
from app.image_files import LIVE_SAVE_SECONDS
from app.instance_lock import AlreadyRunning
from app.main_window import MainWindow
from gpu.atomic import SCRATCH_NAME
from gpu.generation.png_metadata import png_problem, write_png
from tests.app import gui
from tests.app.gui import open_window

ROOT = Path(__file__).resolve().parents[2]

# A process that saves an image into the data folder as the app's engine worker does (``save_new_image``) and is
# killed on the way: no ``finally`` runs, as under ``kill -9``. The bytes the save writes go to EXPECTED first.
_KILLED_SAVE = r"""
import os, sys
from pathlib import Path
from PIL import Image
import gpu.atomic
from app.data_dir import DataDir
from app.image_files import new_image_path, save_new_image
from gpu.generation.png_metadata import encode_png

root, how, expected = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
data = DataDir(root).create()
image = Image.effect_noise((96, 96), 40).convert("RGB")
encode_png(expected, image, {"prompt": f"made, then killed {how}", "seed": 77})
if how == "before publishing":  # between the sync of the whole file and the link that gives it its name
    gpu.atomic.claim_free_name = lambda *args, **kwargs: os._exit(0)
    write = lambda tmp: encode_png(tmp, image, {"prompt": f"made, then killed {how}", "seed": 77})
elif how == "after publishing":  # between the publishing link and the unlink of the scratch name (POSIX)
    unlink = os.unlink
    os.unlink = lambda path, *a, **k: os._exit(0) if str(path).endswith("new.png") else unlink(path, *a, **k)
    write = lambda tmp: encode_png(tmp, image, {"prompt": f"made, then killed {how}", "seed": 77})
else:  # half-way through writing it
    def write(tmp):
        whole = expected.read_bytes()
        with open(tmp, "wb") as f:
            f.write(whole[: len(whole) // 2])
            f.flush()
        os._exit(0)
save_new_image(data, new_image_path(data, 77, 0), write)
sys.exit("the save was not cut short")
"""


def _killed_saves(root: Path, out: Path, *hows: str, age: float = 3600) -> dict[str, Path]:
    """Runs a killed save per ``hows`` at once; returns each one's file as the kill left it, in its scratch folder,
    dated ``age`` seconds back with its folder (a kill of an earlier session; a save of the last minutes may be one
    under way, ``LIVE_SAVE_SECONDS``)."""
    before = set(_scratch_files(root))
    runs = [subprocess.Popen([sys.executable, "-c", _KILLED_SAVE, str(root), how, str(out / f"{how}.png")], cwd=ROOT)
            for how in hows]  # fmt: skip
    assert [run.wait(60) for run in runs] == [0] * len(hows)
    left = {path: path.read_bytes() for path in set(_scratch_files(root)) - before}
    expected = {how: (out / f"{how}.png").read_bytes() for how in hows}
    found = {how: next(p for p, b in left.items() if b == (e if how != "while writing" else e[: len(e) // 2]))
             for how, e in expected.items()}  # fmt: skip
    assert len(found) == len(left) == len(hows)
    then = time.time() - age
    for path in found.values():
        for dated in (path, path.parent):
            os.utime(dated, (then, then))
    return found


def _scratch_files(root: Path) -> list[Path]:
    return [p for folder in (root / "images").rglob("*") if SCRATCH_NAME.match(folder.name) for p in folder.iterdir()]


def _stamp(path: Path) -> str:
    return time.strftime("%H%M%S", time.localtime(path.stat().st_mtime))


def test_saves_cut_short_are_finished_at_the_next_start(qtbot, data_root, tmp_path):
    data = resolve_data_dir(data_root)
    left = _killed_saves(data_root, tmp_path, "before publishing", "while writing")
    whole, cut = left["before publishing"], left["while writing"]
    day = whole.parent.parent
    published = day / f"{_stamp(whole)}-77-recovered.png"
    trashed = data.trash / day.relative_to(data.images) / f"{_stamp(cut)}-cut-short.png"
    cut_bytes = cut.read_bytes()

    window = open_window(qtbot, data_root)
    gallery = window.controller.gallery
    records = [gallery.record(r) for r in range(gallery.rowCount())]
    assert [(r.prompt, r.path) for r in records] == [
        ("made, then killed before publishing", published.relative_to(data.images).as_posix())]
    assert published.read_bytes() == (tmp_path / "before publishing.png").read_bytes()
    assert trashed.read_bytes() == cut_bytes  # nothing of the unfinished picture deleted unseen
    assert _scratch_files(data_root) == [] and not [p for p in day.iterdir() if p.name.startswith(".")]
    notice = next(n for n in window.notices if "cut short" in n.message)
    assert published.name in notice.message and trashed.name in notice.message and str(data.trash) in notice.message
    assert "Empty trash deletes it" in notice.hint

    # A save under way belongs to the app that holds the data folder: a second one on it touches nothing.
    (later,) = _killed_saves(data_root, tmp_path, "before publishing").values()
    with pytest.raises(AlreadyRunning):
        MainWindow(data)
    assert later.is_file()
    gui.open_windows.remove(window)
    window.close()

    again = gui.window_without_engine(qtbot, resolve_data_dir(data_root))  # the next start: the later one only
    again.controller.folder_import.start()
    qtbot.waitUntil(lambda: not again.controller.folder_import.running)
    assert _scratch_files(data_root) == [] and again.controller.gallery.rowCount() == 2
    notice = next(n for n in again.notices if "cut short" in n.message)
    assert notice.message.startswith("1 image whose saving was cut short") and trashed.name not in notice.message


def test_a_whole_png_is_told_from_a_cut_or_damaged_one(tmp_path):
    whole = write_png(tmp_path / "whole.png", Image.effect_noise((64, 64), 40), {"prompt": "a cat"}).read_bytes()
    idat = whole.index(b"IDAT")

    def problem(data: bytes) -> str:
        (tmp_path / "x.png").write_bytes(data)
        return png_problem(tmp_path / "x.png")

    assert problem(whole) == ""
    assert problem(whole[:-12]) == "it ends before its last chunk (IEND): cut short"  # all but IEND
    assert problem(whole[: idat + 20]) == "it ends inside its IDAT chunk: cut short"
    assert problem(whole[:idat] + b"IDAT" + bytes(len(whole) - idat - 4)) == (
        "the checksum of its IDAT chunk does not match: damaged")  # blocks of zeros, as a power loss leaves
    flipped = bytearray(whole)
    flipped[idat + 10] ^= 1
    assert problem(bytes(flipped)) == "the checksum of its IDAT chunk does not match: damaged"
    assert problem(whole + b"\0") == "it goes on after its last chunk (IEND)"
    assert problem(whole[:6]) == "it does not start as a PNG does"
    assert problem(b"") == "it does not start as a PNG does"
    assert png_problem(tmp_path / "none.png").startswith("it cannot be read: ")


@pytest.mark.skipif(os.name == "nt", reason="POSIX publishes by a hard link, then unlinks the scratch name")
def test_a_save_killed_after_its_publishing_link_is_in_the_gallery_once(qtbot, data_root, tmp_path):
    (scratch,) = _killed_saves(data_root, tmp_path, "after publishing").values()
    window = open_window(qtbot, data_root)
    gallery = window.controller.gallery
    paths = [gallery.record(r).path for r in range(gallery.rowCount())]
    assert len(paths) == 1 and paths[0].endswith("-77-0.png"), paths  # its own name, not a "-recovered" twin
    assert _scratch_files(data_root) == [] and not scratch.parent.exists()
    assert not [n for n in window.notices if "cut short" in n.message]


def test_a_save_of_the_last_minutes_is_left_to_its_writer(qtbot, data_root, tmp_path):
    # main.py generate saving into the images folder holds no instance lock: its save under way is not taken
    (fresh,) = _killed_saves(data_root, tmp_path, "while writing", age=LIVE_SAVE_SECONDS / 2).values()
    half = fresh.read_bytes()
    window = open_window(qtbot, data_root)
    assert fresh.read_bytes() == half and window.controller.gallery.rowCount() == 0
    assert not [n for n in window.notices if "cut short" in n.message]


def test_a_save_dated_ahead_of_the_clock_is_finished_and_one_that_finishes_meanwhile_is_not_said(
        data_root, tmp_path, monkeypatch):  # fmt: skip
    """A scratch folder written while the clock ran hours ahead counted as a save under way until the clock caught
    up (hidden, unsaid); a save under way that finished between the listing and the look at its folder was said as
    one that "could not be finished"."""
    import app.image_files as image_files

    data = resolve_data_dir(data_root)
    (ahead,) = _killed_saves(data_root, tmp_path, "before publishing", age=-3 * 3600).values()
    finishing = [*_killed_saves(data_root, tmp_path, "while writing").values(),
                 *_killed_saves(data_root, tmp_path, "while writing").values()]  # fmt: skip
    last_change, lstat = image_files._last_change, os.lstat

    def finished_meanwhile(scratch: Path) -> float:  # a live save published its file just now, removing its folder
        if scratch == finishing[0].parent:
            finishing[0].unlink()
            scratch.rmdir()
        return last_change(scratch)

    def unlinked_as_looked_at(path, *args, **kwargs):  # listed in its folder, unlinked before its own look
        if Path(path) == finishing[1]:
            finishing[1].unlink()
        return lstat(path, *args, **kwargs)

    monkeypatch.setattr(image_files, "_last_change", finished_meanwhile)
    monkeypatch.setattr(os, "lstat", unlinked_as_looked_at)
    done = image_files.recover_cut_short_saves(data)
    monkeypatch.setattr(os, "lstat", lstat)
    assert len(done.published) == 1 and done.published[0].endswith("-77-recovered.png"), done
    assert (done.trashed, done.left) == ([], []) and not ahead.parent.exists()
    assert finishing[1].parent.is_dir()  # left for a later start, unsaid
