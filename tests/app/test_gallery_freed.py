"""A gallery model let go of is destroyed at once, on the Qt thread: its trash objects reach it through their Qt
parents, not Python attributes. The split of the trash out of the model had made a reference cycle (model -> trash ->
model), so a parentless model lived until a garbage collection, which may run on any thread and destroy the Qt object
there (app/background.py's rule: a thread never holds the last reference to a Qt object)."""

from __future__ import annotations

import gc
import threading
import weakref

from app.data_dir import resolve_data_dir
from app.gallery_model import GalleryModel
from app.store import Store
from tests.app.gui import trash_settled

_refs: list[weakref.ref] = []  # outlive the test: each callback says on which thread its model went


def test_a_gallery_let_go_of_is_destroyed_at_once_on_the_qt_thread(qtbot, tmp_path):
    data = resolve_data_dir(tmp_path / "data")
    store = Store(data.database)
    store.add_images([("d/0.png", {"prompt": "p"}, 1.0, None, None)])
    gallery = GalleryModel(store, data)  # no parent: the Python reference owns it
    trash_settled(qtbot, gallery)
    threads: list[threading.Thread] = []
    _refs.append(weakref.ref(gallery, lambda _: threads.append(threading.current_thread())))
    gc.collect()
    gc.disable()
    try:
        del gallery
        collector = threading.Thread(target=gc.collect, name="Collector")
        collector.start()
        collector.join(10)
        assert threads == [threading.main_thread()]
    finally:
        gc.enable()
        store.close()
