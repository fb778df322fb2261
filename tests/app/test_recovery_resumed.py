"""After a damaged database the images are imported again while the window is in use, with the stars and history
read back from it. Those were held in memory only: a quit (or a crash) during that import lost them for good for
the images not imported yet, as the next start found a healthy database and imported the rest without stars or
history. They are kept in the new database until the import has ended."""

from __future__ import annotations

from app.data_dir import resolve_data_dir
from app.store import Store
from tests.app import test_startup_import
from tests.app.gui import open_windows, window_without_engine
from tests.app.test_history import damage
from tests.app.test_startup_import import BATCH, COUNT

disk = test_startup_import.disk  # its fixture: new pictures on a slow disk, which a test lets read
STARRED = ("00", "01", f"{COUNT - 1}")  # the oldest two (the last imported) and the newest (the first)


def test_a_recovery_cut_short_by_a_quit_goes_on_with_its_stars_and_history_at_the_next_start(qtbot, data_root, disk):
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    store.record_prompt("never made an image", "", when=1)
    ids = [store.add_image(f"2026-01-01/{name}.png", {"prompt": f"p{int(name)}"}, 1000 + int(name)).id
           for name in STARRED]  # fmt: skip
    store.set_favorites(ids, True)
    damage(store)

    window = window_without_engine(qtbot, data)
    assert "damaged" in window.notices[0].message
    window.controller.folder_import.start()
    qtbot.waitUntil(lambda: window.controller.gallery.rowCount() == BATCH)
    window.close()  # the first batch committed, the rest not read
    open_windows.remove(window)

    disk.allow(2 * COUNT)  # as many as both starts read
    again = window_without_engine(qtbot, data)
    assert not again.notices  # the database opened is a healthy one
    again.controller.folder_import.start()
    qtbot.waitUntil(lambda: not again.controller.folder_import.running)
    store = again.controller.store
    # was: only the newest (imported before the quit) starred, and only its batch's prompts in the history
    assert sorted(r.path for r in store.images(favorites_only=True)) == [f"2026-01-01/{n}.png" for n in STARRED]
    history = sorted(p.prompt for p in store.prompts())
    assert history == sorted(["never made an image"] + [f"p{i}" for i in range(COUNT)])
    assert store.recovery() is None  # ended: a picture added to the folder later is not starred for its name
