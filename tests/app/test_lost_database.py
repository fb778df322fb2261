"""A gallery database missing or empty (0 bytes) beside images made before is no first start: SQLite takes an empty
file for a new database, and the stars and the whole prompt history were gone without a word. It is handled as a
damaged one: kept aside, the history rebuilt from the PNGs, the user told. A true first start stays silent."""

from __future__ import annotations

from PIL import Image

from app.data_dir import DataDir
from app.startup_notices import no_database_notice
from app.store import Store
from app.store_recovery import open_store
from gpu.generation.png_metadata import write_png
from tests.app.gui import open_window, window_without_engine


def _made_before(images, prompts: list[str]) -> None:
    for i, prompt in enumerate(prompts):
        write_png(images / "2026-01-01" / f"12000{i}-{i}-0.png", Image.new("RGB", (8, 8)), {"prompt": prompt})


def test_an_empty_database_beside_images_is_kept_and_the_history_rebuilt(qtbot, data_root):
    data = DataDir(data_root).create()
    _made_before(data.images, ["a red fox", "a blue owl"])
    data.database.write_bytes(b"")  # as a sync tool or a failed disk can leave it
    wal = data.database.with_name(data.database.name + "-wal")
    wal.write_bytes(b"what the database may still hold")  # SQLite deletes it on opening an empty database

    window = open_window(qtbot, data_root)
    (kept,) = (p for p in data_root.glob("nibble.sqlite3.damaged-*") if not p.name.endswith("-wal"))
    assert kept.read_bytes() == b"" and kept.with_name(kept.name + "-wal").read_bytes().startswith(b"what")
    history = window.controller.history
    # was: no dialog, and an empty history
    assert sorted(history.record(r).prompt for r in range(history.rowCount())) == ["a blue owl", "a red fox"]
    assert window.error_dialog is not None and window.error_dialog.isVisible()
    assert "0 bytes" in window.error_dialog.text() and kept.name in window.error_dialog.text()


def test_a_missing_database_beside_images_is_said_and_a_first_start_is_not(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    (images / "a.png").write_bytes(b"not a picture")  # no PNG yet: a file named .png that is none counts for nothing
    (tmp_path / "b.sqlite3").write_bytes(b"")
    for name in ("a.sqlite3", "b.sqlite3"):  # missing, empty: a first start, silent
        opened = open_store(tmp_path / name)
        assert not opened.rebuilt and opened.damaged_copy is None and opened.damage == ""
        opened.store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.sqlite3", "b.sqlite3", "images"]
    (tmp_path / "nibble.sqlite3-wal").write_bytes(b"changes since the last checkpoint")  # its database deleted
    (tmp_path / "nibble.sqlite3-shm").write_bytes(b"an index SQLite makes again")
    opened = open_store(tmp_path / "nibble.sqlite3")
    opened.store.close()
    # was: deleted by SQLite as it created the new database
    kept, shm = sorted(opened.journals, reverse=True)
    assert kept.name.startswith("nibble.sqlite3-wal.damaged-") and kept.read_bytes().startswith(b"changes since")
    assert shm.name.startswith("nibble.sqlite3-shm.damaged-")
    assert not opened.rebuilt and not (tmp_path / "nibble.sqlite3-wal").exists()
    said = no_database_notice(DataDir(tmp_path), False, opened.journals)  # no pictures: what the window says
    assert "only what it left beside it" in said.message and kept.name in said.message and shm.name in said.message
    # was: the -shm named as what "may hold the database's latest changes", and a hint for pictures copied in
    assert f"({kept.name} may hold the database's latest changes)" in said.message
    assert "old computer" not in said.hint and "If the deleted nibble.sqlite3 can be found" in said.hint
    assert f"rename {kept.name} back to nibble.sqlite3-wal" in said.hint

    _made_before(images, ["a red fox"])
    opened = open_store(tmp_path / "c.sqlite3")
    # was: taken for a first start, with no word that the stars and history were lost
    assert opened.rebuilt and opened.damaged_copy is None and f"the images folder {images}" in opened.damage
    opened.store.close()


def test_a_database_deleted_beside_starred_images_is_said_and_the_history_rebuilt(qtbot, data_root):
    """A database deleted after a crash, its -wal left beside it (the changes since its last checkpoint, megabytes
    of history): the -wal was deleted as the new database was created. The notice read as a loss even for a gallery
    copied to a new computer without its database (nothing lost), and never said that the prompt history was
    filled from the pictures."""
    data = DataDir(data_root).create()
    _made_before(data.images, ["a red fox", "a blue owl"])
    store = Store(data.database)
    store.record_prompt("never made an image", "")
    store.set_favorites([store.add_image("2026-01-01/120000-0-0.png", {"prompt": "a red fox"}).id], True)
    store.close()
    data.database.unlink()  # by hand, or by a sync tool or cleaner
    wal = data.database.with_name(data.database.name + "-wal")
    wal.write_bytes(b"changes since the last checkpoint")

    window = window_without_engine(qtbot, data)
    window.controller.folder_import.start()
    qtbot.waitUntil(lambda: not window.controller.folder_import.running)
    (notice,) = window.notices  # was: silent, as if a first start
    (kept,) = data_root.glob("nibble.sqlite3-wal.damaged-*")
    assert kept.read_bytes().startswith(b"changes since")  # the new database has its own -wal
    assert f"No gallery database was found at {data.database}, though {data.images} holds pictures" in notice.message
    assert "prompt history is filled from their prompts" in notice.message and kept.name in notice.message
    assert "could not be recovered" not in notice.message and notice.kind == "notice"
    assert f"put it at {data.database}" in notice.hint
    assert f"rename {kept.name} back to nibble.sqlite3-wal" in notice.hint
    store = window.controller.store
    assert sorted(p.prompt for p in store.prompts()) == ["a blue owl", "a red fox"]  # from the pictures
    assert window.controller.gallery.rowCount() == 2 and store.recovery() is None  # done: nothing left to resume
