"""The trash of an earlier start (``DataDir.other_trash``) gathered into today's, on one drive: by a rename; when a
file cannot be moved, it stays where it is, and the user is told once. On the store and the folders (no window)."""

from __future__ import annotations

from PIL import Image

from app.data_dir import IMAGES_TRASH, DataDir
from app.reconcile import FolderImport, check_folder
from app.store import Store
from gpu.generation.png_metadata import write_png


def test_a_trash_that_cannot_be_gathered_is_left_whole_and_said_once(qtbot, tmp_path):
    """images/ copied back with its .trash beside a data/trash that holds a deleted image: the trash is then
    images/.trash, and the deleted image must follow. A file in the way of its folder there: it stays in
    data/trash (not deleted), and the start-up notice says so once, naming both folders."""
    data = DataDir(tmp_path / "data").create()
    picture = write_png(data.trash / "d" / "1.png", Image.new("RGB", (8, 8)), {"prompt": "fox"}).read_bytes()
    store = Store(data.database)
    store.add_images([("d/1.png", {"prompt": "fox"}, 1.0, None, None)])
    store.set_trashed_many([(1, None, None)], True, when=1.0)
    (data.images / IMAGES_TRASH).mkdir()
    (data.images / IMAGES_TRASH / "d").write_text("in the way")
    data = DataDir(data.root).create()
    assert data.trash == data.images / IMAGES_TRASH and data.other_trash == data.root / "trash"

    report, new = check_folder(store, data)
    assert (data.root / "trash" / "d" / "1.png").read_bytes() == picture  # left whole where it was
    said: list = []
    folder_import = FolderImport(store, data, new, report)
    folder_import.failed.connect(said.append)
    folder_import.start()
    folder_import.start()
    assert len(said) == 1 and said[0].kind == "notice"
    message = said[0].message
    assert f"1 file in the old trash folder {data.root / 'trash'} could not be moved into the trash folder " \
        f"{data.trash}" in message and "nothing was deleted" in message  # fmt: skip
    assert f"({data.trash / 'd'} is a file, not a folder)" in message  # was mkdir's "File exists"
    assert str(data.root / "trash" / "d" / "1.png") in message and "next start" in said[0].hint

    (data.images / IMAGES_TRASH / "d").unlink()  # out of the way: the next start moves it
    report, _new = check_folder(store, data)
    assert report.notices == [] and (data.trash / "d" / "1.png").read_bytes() == picture
    assert not (data.root / "trash").exists() and store.all_paths()["d/1.png"][2]  # still in the trash
    store.close()
