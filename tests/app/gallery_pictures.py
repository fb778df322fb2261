"""A gallery of five real pictures, each its own colour, for the trash and undo tests that move files by hand."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from app.data_dir import DataDir, resolve_data_dir
from app.gallery_model import GalleryModel
from app.store import Store


def five_picture_gallery(data_root: Path) -> tuple[GalleryModel, Store, DataDir]:
    """Five real PNGs, each its own colour, d/0.png (prompt "p0", oldest) to d/4.png ("p4", shown first)."""
    data = resolve_data_dir(data_root)
    store = Store(data.database)
    (data.images / "d").mkdir(parents=True, exist_ok=True)
    for i in range(5):
        Image.new("RGB", (4, 4), (i * 50, 0, 0)).save(data.images / "d" / f"{i}.png")
    store.add_images([(f"d/{i}.png", {"prompt": f"p{i}"}, float(i), None, None) for i in range(5)])
    return GalleryModel(store, data), store, data


def picture_colour(path: Path) -> tuple[int, int, int]:
    """The colour of the picture at ``path`` (which of the five it is)."""
    with Image.open(path) as image:
        return image.convert("RGB").getpixel((0, 0))
