"""A new image saved under the name of an entry in the trash whose file is no longer there: the entry deleted while
its file was missing (moved away by hand, the gallery showed it "missing"), or its file removed from the trash
folder by hand. Undo brings such an entry back, marked missing, with its prompt and settings (its picture gone, its
settings can still be reused). The image's name is checked against the files of the images folder and the trash
only (``save_new_image``: the engine's thread has no database), so it can be the entry's, and the gallery's add took
the entry over (``Store.add_images``'s ON CONFLICT clears ``trashed``): the deleted entry was gone from the trash,
its prompt and settings overwritten by the new image's, and the Undo still listing it renamed the new image's row
to a file that is not there, the grid showing one database row twice and the new picture left without an entry.
As test_trash's test_an_image_in_the_trash_is_never_replaced_by_one_of_the_same_name, the name is that of an image
made at the same second with the same seed (a locked seed; the clock set back, the hour repeated when summer time
ends)."""

from __future__ import annotations

from PIL import Image

from app.data_dir import resolve_data_dir
from app.image_files import new_image_path, relative, save_new_image
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app.gui import window_without_engine


def test_a_new_image_never_takes_over_an_entry_in_the_trash_whose_file_is_gone(qtbot, data_root):
    data = resolve_data_dir(data_root)
    name = new_image_path(data, 42, 0, when=1_800_000_000)  # made at that second with seed 42
    rel = relative(data, name)
    store = Store(data.database)
    store.add_image(rel, {"prompt": "old fox", "seed": 42}, created=1.0)  # its file moved away: shown missing
    store.close()
    window = window_without_engine(qtbot, data)
    gallery, panel = window.controller.gallery, window.gallery_panel
    assert [(gallery.record(0).prompt, gallery.record(0).missing)] == [("old fox", True)]
    panel.select_row(0)
    panel.delete_selected()  # the missing entry deleted: in the trash, no file there
    assert panel.undo_button.isEnabled()
    # A finished job's image, as the engine saves it (another second, the same name) and the gallery adds it.
    written = save_new_image(data, name, lambda tmp: write_png(tmp, Image.new("RGB", (16, 16), "blue"),
                                                               {"prompt": "new owl", "seed": 42}))
    gallery.add(relative(data, written), {"prompt": "new owl", "seed": 42})
    trashed = [r.prompt for batch in window.controller.store.trash_batches() for r in batch]
    assert trashed == ["old fox"]  # was: [] (the entry taken over by the new image, its prompt gone)
    panel.undo_button.click()
    shown = sorted((gallery.record(r).id, gallery.record(r).prompt) for r in range(gallery.rowCount()))
    stored = sorted((r.id, r.prompt) for r in window.controller.store.images())
    assert shown == stored  # was: one row id twice in the grid, the database holding one "new owl" row
    by_prompt = {r.prompt: r for r in window.controller.store.images()}
    assert set(by_prompt) == {"old fox", "new owl"}
    assert by_prompt["new owl"].path == relative(data, written) and not by_prompt["new owl"].missing
    assert by_prompt["old fox"].missing


def test_an_entry_whose_file_left_the_trash_keeps_its_own_row_and_undo_across_a_restart(qtbot, data_root):
    """The other way the trash keeps an entry without its file: deleted with its picture, which was then removed
    from the trash folder by hand. The new image of its name leaves it in the trash under another name, in the
    database too: Undo after a restart brings it back, missing, and the new image's entry stays as it is."""
    from tests.app import gui

    data = resolve_data_dir(data_root)
    name = new_image_path(data, 7, 0, when=1_800_000_000)
    write_png(name, Image.new("RGB", (16, 16), "red"), {"prompt": "old fox", "seed": 7})
    store = Store(data.database)
    store.add_image(relative(data, name), {"prompt": "old fox", "seed": 7}, created=1.0)
    store.close()
    window = window_without_engine(qtbot, data)
    assert window.controller.gallery.record(0).prompt == "old fox"
    window.gallery_panel.select_row(0)
    window.gallery_panel.delete_selected()
    (data.trash / relative(data, name)).unlink()  # removed from the trash folder by hand
    written = save_new_image(data, name, lambda tmp: write_png(tmp, Image.new("RGB", (16, 16), "blue"),
                                                               {"prompt": "new owl", "seed": 7}))
    window.controller.gallery.add(relative(data, written), {"prompt": "new owl", "seed": 7})
    gui.open_windows.remove(window)
    window.close()

    window = window_without_engine(qtbot, data)
    gallery = window.controller.gallery
    assert gallery.undo_count == 1
    window.gallery_panel.undo_button.click()
    shown = {gallery.record(r).prompt: gallery.record(r) for r in range(gallery.rowCount())}
    assert set(shown) == {"old fox", "new owl"}
    assert shown["new owl"].path == relative(data, written) and not shown["new owl"].missing
    assert shown["old fox"].missing and shown["old fox"].path != relative(data, written)
    assert not (data.images / shown["old fox"].path).exists()  # a free name: no stranger's picture shown as its own
