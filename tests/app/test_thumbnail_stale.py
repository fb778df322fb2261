"""A picture replaced under its name (by hand, or by Save as into the images folder): the grid's thumbnail, cached by
path for the session, showed the old picture while the pane read the new file."""

from __future__ import annotations

import os
import threading

from PIL import Image
from PySide6.QtCore import Qt

import app.thumbnails
from app.data_dir import resolve_data_dir
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import pane_text, saved_as, window_without_engine

RED, GREEN, BLUE = (200, 0, 0), (0, 200, 0), (0, 0, 200)


def _colour(gallery, row: int) -> tuple[int, int, int]:
    """The colour the grid shows for ``row`` (asked as a paint asks; the placeholder while it is decoded)."""
    return gallery.data(gallery.index(row), Qt.ItemDataRole.DecorationRole).pixelColor(4, 4).getRgb()[:3]


def _replace_by_hand(path, colour: tuple[int, int, int], prompt: str) -> None:
    """A new picture under ``path``'s name, as a file manager or another program writes it: beside, then renamed."""
    new = path.with_name("incoming.png")
    write_png(new, Image.new("RGB", (16, 16), colour), {"prompt": prompt})
    os.replace(new, path)


def test_a_picture_replaced_under_its_name_shows_its_new_thumbnail(qtbot, data_root, monkeypatch):
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    for i, prompt in enumerate(("an owl", "a fox", "a cat")):
        write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (16, 16), RED), {"prompt": prompt})
        store.add_image(f"d/{i}.png", {"prompt": prompt}, created=float(i))
    store.close()
    # No re-check of a painted row for the first two cases: the pane's and Save as's own, at once.
    monkeypatch.setattr(app.thumbnails, "RECHECK_AFTER_S", 3600.0, raising=False)
    window = window_without_engine(qtbot, data)
    panel, gallery = window.gallery_panel, window.controller.gallery
    rows = {gallery.record(row).prompt: row for row in range(gallery.rowCount())}
    qtbot.waitUntil(lambda: all(_colour(gallery, row) == RED for row in rows.values()))
    # By hand, then selected: the pane reads the new file, and the grid follows (it kept the red one).
    _replace_by_hand(data.images / "d" / "0.png", GREEN, "an owl, green")
    panel.select_row(rows["an owl"])
    assert "an owl, green" in pane_text(qtbot, panel)
    qtbot.waitUntil(lambda: _colour(gallery, rows["an owl"]) == GREEN, timeout=5000)
    # Save as of the owl over the fox's file (the dialog asked before replacing it): the fox's row shows it.
    assert saved_as(qtbot, window.controller, gallery.record(rows["an owl"]), data.images / "d" / "1.png")
    qtbot.waitUntil(lambda: _colour(gallery, rows["a fox"]) == GREEN, timeout=5000)
    # By hand, never selected: a row painted again a while after its file changed shows the new picture. The
    # file's state is taken off the GUI thread (a stat per painted row there would slow every scroll).
    monkeypatch.setattr(app.thumbnails, "RECHECK_AFTER_S", 0.3, raising=False)
    stamped: list[bool] = []
    stamp = getattr(app.thumbnails, "_stamp", None)
    if stamp is not None:
        monkeypatch.setattr(app.thumbnails, "_stamp", lambda path: stamped.append(
            threading.current_thread() is threading.main_thread()) or stamp(path))  # fmt: skip
    _replace_by_hand(data.images / "d" / "2.png", BLUE, "a cat")

    def repainted_blue() -> bool:
        panel.view.viewport().repaint()  # the paint asks each row in sight for its thumbnail
        return _colour(gallery, rows["a cat"]) == BLUE

    qtbot.waitUntil(repainted_blue, timeout=10000)
    assert stamped and not any(stamped)


def test_save_as_over_a_gallery_picture_through_a_link_to_the_images_folder_shows_it(qtbot, data_root, tmp_path,
                                                                                     monkeypatch):  # fmt: skip
    """Save as re-checks the thumbnail of the file it wrote: named through a link to the images folder (a shortcut
    in the user's pictures, the data folder reached through a link), the re-check looked for a thumbnail by that
    name, found none, and the grid showed the old picture until the row was painted again 2 s later."""
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    for i, (prompt, colour) in enumerate((("an owl", GREEN), ("a fox", RED))):
        write_png(data.images / "d" / f"{i}.png", Image.new("RGB", (16, 16), colour), {"prompt": prompt})
        store.add_image(f"d/{i}.png", {"prompt": prompt}, created=float(i))
    store.close()
    monkeypatch.setattr(app.thumbnails, "RECHECK_AFTER_S", 3600.0, raising=False)  # no re-check of a painted row
    window = window_without_engine(qtbot, data)
    gallery = window.controller.gallery
    rows = {gallery.record(row).prompt: row for row in range(gallery.rowCount())}
    qtbot.waitUntil(lambda: _colour(gallery, rows["a fox"]) == RED and _colour(gallery, rows["an owl"]) == GREEN)
    shortcut = tmp_path / "pictures"
    shortcut.symlink_to(data.images, target_is_directory=True)
    assert saved_as(qtbot, window.controller, gallery.record(rows["an owl"]), shortcut / "d" / "1.png")
    qtbot.waitUntil(lambda: _colour(gallery, rows["a fox"]) == GREEN, timeout=5000)
