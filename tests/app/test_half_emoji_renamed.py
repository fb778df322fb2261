"""A picture whose settings hold half an emoji (JSON's "\\ud83d", as JavaScript front ends write it), renamed or
moved in the images folder: its entry follows it, as any picture's does. The gallery stores such text with U+FFFD
(``app.valid_text``), and the file's settings were compared as read, half an emoji and all: they never matched the
row's, and the entry was flagged missing, its star left on it, while the file came back as a new, starless one."""

from __future__ import annotations

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from app.data_dir import resolve_data_dir
from app.reconcile import reconcile
from app.store import Store
from gpu.generation.png_metadata import NIBBLE_KEY


def test_a_renamed_picture_whose_settings_hold_half_an_emoji_keeps_its_entry(data_root):
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    info = PngInfo()
    info.add_itxt(NIBBLE_KEY, '{"prompt": "a fox \\ud83d", "seed": 1}')  # as another program wrote it
    Image.new("RGB", (16, 16), "red").save(data.images / "fox.png", pnginfo=info)
    reconcile(store, data)  # imported from the folder: its size stored, no hash (told by its size and settings)
    [entry] = store.images()
    assert entry.prompt == "a fox \ufffd"
    store.set_favorites([entry.id], True)
    (data.images / "fox.png").rename(data.images / "fox 2.png")

    report = reconcile(store, data)

    [moved] = store.images()
    assert (moved.id, moved.path, moved.favorite, moved.missing) == (entry.id, "fox 2.png", True, False)
    assert (report.moved, report.imported, report.missing) == (1, 0, 0)
