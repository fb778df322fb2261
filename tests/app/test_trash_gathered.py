"""The trash of an earlier start (``DataDir.other_trash``) gathered into today's, on one drive: by a rename; when a
file cannot be moved, it stays where it is, and the user is told once, with the other start-up notices."""

from __future__ import annotations

from PIL import Image
from PySide6.QtCore import QCoreApplication

from app.data_dir import IMAGES_TRASH, DataDir
from app.image_files import free_image_path
from app.reconcile import check_folder
from app.store import Store
from gpu.generation.png_metadata import write_png
from tests.app import gui
from tests.app.gui import window_without_engine


def test_a_trash_that_cannot_be_gathered_is_left_whole_and_said_with_the_start_up_notices(qtbot, tmp_path):
    """images/ copied back with its .trash beside a data/trash that holds a deleted image: the trash is then
    images/.trash, and the deleted image must follow. A file in the way of its folder there: it stays in
    data/trash (not deleted), and one notice says so, naming both folders, in the start-up notices' dialog with
    the others (was: a dialog of its own after them, sent as a failure of the start-up import)."""
    data = DataDir(tmp_path / "data").create()
    picture = write_png(data.trash / "d" / "1.png", Image.new("RGB", (8, 8)), {"prompt": "fox"}).read_bytes()
    store = Store(data.database)
    store.add_images([("d/1.png", {"prompt": "fox"}, 1.0, None, None)])
    store.set_trashed_many([(1, None, None)], True, when=1.0)
    store.close()
    (data.images / IMAGES_TRASH).mkdir()
    (data.images / IMAGES_TRASH / "d").write_text("in the way")
    data.settings.write_text("{ unreadable")  # another start-up notice
    data = DataDir(data.root).create()
    assert data.trash == data.images / IMAGES_TRASH and data.other_trash == data.root / "trash"

    window = window_without_engine(qtbot, data)
    assert (data.root / "trash" / "d" / "1.png").read_bytes() == picture  # left whole where it was
    folder_import = window.controller.folder_import
    with qtbot.assertNotEmitted(folder_import.failed), qtbot.assertNotEmitted(folder_import.notice):
        window._show_notices()  # ``start`` without the engine's
        folder_import.start()
        QCoreApplication.processEvents()
    message, hint = window.error_dialog.text(), window.error_dialog.informativeText()
    assert "Your settings file" in message  # one dialog: the notices of the start-up together
    assert message.count("in the old trash folder") == 1
    assert f"1 file in the old trash folder {data.root / 'trash'} could not be moved into the trash folder " \
        f"{data.trash}" in message and "nothing was deleted" in message  # fmt: skip
    assert f"({data.trash / 'd'} is a file, not a folder)" in message  # was mkdir's "File exists"
    assert str(data.root / "trash" / "d" / "1.png") in message and "next start" in hint
    # a new image never takes the name it waits to have back in the trash (Undo would lose it or the new one)
    assert free_image_path(data, data.images / "d" / "1.png") == data.images / "d" / "1-2.png"
    # nor does Undo bring it back from there as an entry without its file (it comes back once its file is gathered)
    assert window.controller.gallery.undo_count == 0
    gui.open_windows.remove(window)
    window.close()

    (data.images / IMAGES_TRASH / "d").unlink()  # out of the way: the next start moves it
    store = Store(data.database)
    report, _new = check_folder(store, data)
    assert report.notices == [] and (data.trash / "d" / "1.png").read_bytes() == picture
    assert not (data.root / "trash").exists() and store.all_paths()["d/1.png"][2]  # still in the trash
    store.close()


def test_a_name_taken_in_the_trash_holds_back_no_other_file(tmp_path):
    """A different file already holds the name of one file of the old trash: it stays, said in words of its own
    (only the user can tell which to keep; "check write access and space" did not help), and the files after it
    move. It held back every file after it, at every start."""
    data = DataDir(tmp_path / "data").create()
    for rel, text in (("a/1.png", "old"), ("b/2.png", "moves")):
        (data.trash / rel).parent.mkdir(parents=True, exist_ok=True)
        (data.trash / rel).write_text(text)
    (data.images / IMAGES_TRASH / "a").mkdir(parents=True)
    (data.images / IMAGES_TRASH / "a" / "1.png").write_text("another")
    data = DataDir(data.root).create()
    store = Store(data.database)
    report, _new = check_folder(store, data)
    store.close()
    assert (data.trash / "b" / "2.png").read_text() == "moves" and not (data.other_trash / "b").exists()
    assert (data.other_trash / "a" / "1.png").read_text() == "old"  # both kept
    assert (data.trash / "a" / "1.png").read_text() == "another"
    [notice] = report.notices
    assert f"1 file in the old trash folder {data.other_trash} was not moved into the trash folder {data.trash}, " \
        "as a different file of the same name is already there: " in notice.message
    assert f"nothing was deleted ({data.other_trash / 'a' / '1.png'})" in notice.message
    assert "move a picture still wanted to a folder of your own" in notice.hint and "can be written" not in notice.hint
    assert "Leave" in notice.hint and "as it is: Undo delete" in notice.hint  # renaming there would break its undo
